"""scripts/build_transfer_corpus.py: the held-out slice of fit-transfer stays out of the training text."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from textlatent.vae.transfer_eval import heldout_split

ROOT = Path(__file__).resolve().parents[2]


def _script():  # type: ignore[no-untyped-def]
    path = ROOT / "scripts" / "build_transfer_corpus.py"
    spec = importlib.util.spec_from_file_location("build_transfer_corpus", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _data(root: Path) -> list[str]:
    kim_sentences = [f"sentence number {i} is about film {i} and it is fine" for i in range(12)]
    # held out (index 6): Kim escapes brackets and slashes, GLUE writes them plainly
    kim_sentences[6] = "the sixth -lrb- and\\/or last -rrb- film is about film 6 and it is fine"
    (root / "sst2" / "kim_stsa").mkdir(parents=True)
    (root / "sst2" / "glue").mkdir(parents=True)
    (root / "ptb").mkdir()
    (root / "sst2" / "kim_stsa" / "stsa.binary.train").write_text(
        "".join(f"{i % 2} {s}\n" for i, s in enumerate(kim_sentences)), encoding="utf-8")
    phrases = ["about film 3 and", "it is fine", "about film 6 and it", "a phrase of its own here",
               "sentence number 0 is about film 0 and it is fine", "too short",
               "the sixth ( and/or last ) film",  # inside held-out sentence 6 once the escapes are undone
               "( and/or last ) film is about a cat",  # shares 6 tokens with it: a spelling variant, say
               "sentence number 4 is about film 4 and it is fine"]  # a training sentence: no extra copy
    (root / "sst2" / "glue" / "train.tsv").write_text(
        "sentence\tlabel\n" + "".join(f"{p} \t1\n" for p in phrases), encoding="utf-8")
    (root / "ptb" / "ptb.train.txt").write_text(" the market fell \n\n a <unk> rose N points \n", encoding="utf-8")
    return kim_sentences


def test_corpus_keeps_the_held_out_slice_out_and_writes_it_as_valid(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    kim = _data(tmp_path / "data")
    _script().main(["--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "out"), "--holdout", "3",
                    "--sst2-copies", "2"])
    counts = json.loads(capsys.readouterr().out)
    fit_idx, held_idx = heldout_split(len(kim), 3, 0)
    held = [kim[i] for i in held_idx]
    train = (tmp_path / "out" / "train.txt").read_text(encoding="utf-8").splitlines()
    assert (tmp_path / "out" / "valid.txt").read_text(encoding="utf-8").splitlines() == held
    assert not set(held) & set(train)
    for i in fit_idx:
        assert train.count(kim[i]) == 2  # --sst2-copies, and no phrase adds a third copy
    assert train.count("the market fell") == 1 and train.count("a <unk> rose N points") == 1
    # phrases: >= 4 tokens, and none from inside a held-out sentence (the seed holds out 0, 6 and 11)
    assert sorted(held_idx) == [0, 6, 11]
    assert "about film 3 and" in train
    assert "about film 6 and it" not in train and kim[0] not in train
    assert not any("and/or" in line for line in train)
    assert "a phrase of its own here" in train
    assert "it is fine" not in train and "too short" not in train
    assert counts["valid"] == 3 and counts["train_lines"] == len(train) == 2 + 2 * 9 + counts["phrases"]


def test_corpus_refuses_bad_requests_with_a_message_and_writes_nothing(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    _data(tmp_path / "data")
    cases = [(["--data-dir", str(tmp_path / "data"), "--holdout", "50"], "held-out slice"),
             (["--data-dir", str(tmp_path / "nowhere")], "nowhere"),
             (["--data-dir", str(tmp_path / "data"), "--seed", "-3"], "must be at least 0")]
    for args, message in cases:
        with pytest.raises(SystemExit) as err:
            _script().main([*args, "--out", str(tmp_path / "out")])
        assert err.value.code == 2 and message in capsys.readouterr().err
        assert not (tmp_path / "out").exists()
