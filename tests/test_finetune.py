"""Fine-tuning smoke test: a few steps on a tiny STS-B-shaped fixture lower the loss, and the
saved folder loads as an Encoder (and so as --model / TEXTLATENT_MODEL)."""

from __future__ import annotations

import json

import numpy as np
import pytest

PAIRS = [
    ("A man is playing a guitar.", "A man plays the guitar.", 4.8),
    ("A woman is slicing an onion.", "Someone cuts an onion.", 4.2),
    ("A dog runs in the park.", "The stock market fell today.", 0.0),
    ("Kids are playing football.", "Children play soccer.", 4.5),
    ("A cat sleeps on the sofa.", "A plane takes off.", 0.2),
    ("The sun is shining.", "It is a sunny day.", 4.0),
    ("He is reading a book.", "A chef is cooking pasta.", 0.4),
    ("Two people are dancing.", "A couple dances.", 4.6),
]


def _write_sts(folder, name):
    rows = [
        f"main-captions\tMSRvid\t2012test\t{i:04d}\t{score:.3f}\t{a}\t{b}\textra-field\n"
        for i, (a, b, score) in enumerate(PAIRS)
    ]
    (folder / name).write_text("".join(rows), encoding="utf-8")


@pytest.fixture()
def tiny_sts(tmp_path):
    stsb = tmp_path / "data" / "stsb"
    stsb.mkdir(parents=True)
    for split in ("train", "dev"):
        _write_sts(stsb, f"sts-{split}.csv")
    return tmp_path / "data"


def test_finetune_sts_few_steps_lowers_loss_and_saves_a_loadable_model(tiny_sts, tmp_path, encoder):
    from textlatent.encoder import Encoder
    from textlatent.finetune import finetune_sts

    out = tmp_path / "model"
    result = finetune_sts(out, data_dir=tiny_sts, max_steps=8, batch_size=8, lr=2e-4, device="cpu")
    losses = [loss for _, loss in result.loss_history]
    assert len(losses) >= 4, result.loss_history
    assert np.mean(losses[-2:]) < losses[0], result.loss_history
    assert result.steps == 8 and result.selection_score is not None
    meta = json.loads((out / "textlatent_finetune.json").read_text())
    assert meta["recipe"] == "sts/cosent" and meta["train_examples"] == len(PAIRS)
    assert not (out / "checkpoints").exists()

    tuned = Encoder(out, device="cpu")
    assert tuned.model_id == "model" and tuned.dim == 384
    vecs = tuned.encode([a for a, _, _ in PAIRS])
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    # Training moved the weights: the vectors differ from the base encoder's.
    assert not np.allclose(vecs, encoder.encode([a for a, _, _ in PAIRS]), atol=1e-3)


def test_finetune_rejects_unknown_loss(tiny_sts, tmp_path):
    from textlatent.errors import InvalidInputError
    from textlatent.finetune import finetune_sts

    with pytest.raises(InvalidInputError, match="loss"):
        finetune_sts(tmp_path / "m", data_dir=tiny_sts, loss="triplet")


def test_finetune_cli_prints_only_the_json_result_on_stdout(tiny_sts, tmp_path):
    from typer.testing import CliRunner

    from textlatent.cli import app

    out = tmp_path / "cli-model"
    res = CliRunner().invoke(
        app, ["--device", "cpu", "finetune", "sts", "--out", str(out), "--data-dir", str(tiny_sts),
              "--max-steps", "2", "--batch-size", "4", "--json"],
    )
    assert res.exit_code == 0, res.output
    lines = [line for line in res.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, lines  # trainer logs went to stderr
    payload = json.loads(lines[0])
    assert payload["steps"] == 2 and payload["out"] == str(out)
    assert (out / "modules.json").is_file()
