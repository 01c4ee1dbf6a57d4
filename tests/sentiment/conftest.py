"""A tiny SST-2 folder (GLUE train/dev, Kim test) of clearly polar sentences."""

from __future__ import annotations

from pathlib import Path

import pytest

POSITIVE = [
    "a wonderful , moving film", "brilliant acting and a gorgeous score", "i loved every minute of it",
    "a delightful comedy", "funny , warm and beautifully made", "an excellent , heartfelt story",
    "the best movie of the year", "a charming and witty delight", "superb performances all around",
    "joyful and inspiring", "a masterpiece", "great fun for the whole family",
]
NEGATIVE = [
    "a dull , lifeless mess", "terrible acting and a boring plot", "i hated every minute of it",
    "an awful comedy", "tedious , ugly and badly made", "a stupid , cynical story",
    "the worst movie of the year", "a clumsy and witless bore", "dreadful performances all around",
    "depressing and pointless", "a disaster", "painful for the whole family",
]


def write_sst2(root: Path) -> Path:
    glue = root / "sst2" / "glue"
    glue.mkdir(parents=True)
    kim = root / "sst2" / "kim_stsa"
    kim.mkdir(parents=True)
    rows = [(t, 1) for t in POSITIVE] + [(t, 0) for t in NEGATIVE]
    train = rows[::2] + rows[1::2]  # all rows; dev reuses half of them, which is fine for plumbing tests
    dev = rows[1::2]
    (glue / "train.tsv").write_text("sentence\tlabel\n" + "".join(f"{t} \t{y}\n" for t, y in train), encoding="utf-8")
    (glue / "dev.tsv").write_text("sentence\tlabel\n" + "".join(f"{t} \t{y}\n" for t, y in dev), encoding="utf-8")
    (kim / "stsa.binary.test").write_text("".join(f"{y} {t}\n" for t, y in rows[::3]), encoding="utf-8")
    return root


@pytest.fixture
def sst2_dir(tmp_path: Path) -> Path:
    return write_sst2(tmp_path / "data")
