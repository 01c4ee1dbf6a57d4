"""Planted labels on the tiny corpus and a copy of a tiny VAE with a fitted sentiment axis."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from tests.vae.helpers import tiny_corpus

POSITIVE_VERBS = ("likes", "buys")


def planted_labels(texts: list[str]) -> list[int]:
    """1 when the sentence's verb is one of ``POSITIVE_VERBS``: a label the embedding can see."""
    return [int(any(w in POSITIVE_VERBS for w in t.split())) for t in texts]


def vae_with_axis(src: Path, dest: Path, encoder: Any) -> Any:
    """Copy the trained VAE at ``src`` to ``dest``, fit the sentiment axis on the planted labels
    and save it there; returns the pipeline over the copy."""
    from textlatent.vae.ops import VAEPipeline
    from textlatent.vae.transfer import fit_axis, posterior_means, save_axis

    shutil.copytree(src, dest)
    pipeline = VAEPipeline(dest, device="cpu", encoder=encoder)
    texts = tiny_corpus()
    axis = fit_axis(posterior_means(pipeline, texts), planted_labels(texts))
    save_axis(pipeline, axis)
    return pipeline


def write_sst2_like(root: Path) -> Path:
    """A data folder shaped like ../shared/data/sst2 holding the tiny corpus with planted labels."""
    texts = tiny_corpus()
    labels = planted_labels(texts)
    kim = root / "sst2" / "kim_stsa"
    glue = root / "sst2" / "glue"
    kim.mkdir(parents=True)
    glue.mkdir(parents=True)
    (kim / "stsa.binary.train").write_text("".join(f"{y} {t}\n" for t, y in zip(texts, labels, strict=True)))
    dev = list(zip(texts, labels, strict=True))[::15]
    (glue / "dev.tsv").write_text("sentence\tlabel\n" + "".join(f"{t} \t{y}\n" for t, y in dev))
    return root
