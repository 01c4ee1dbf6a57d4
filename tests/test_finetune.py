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
    # the saved model is not replaced without --overwrite; --out may not be a file, nor the base model
    again = ["--device", "cpu", "finetune", "sts", "--data-dir", str(tiny_sts), "--max-steps", "2", "--batch-size", "4"]
    before = (out / "modules.json").stat().st_mtime_ns
    res = CliRunner().invoke(app, [*again, "--out", str(out)])
    assert res.exit_code == 2 and "--overwrite" in res.output
    assert (out / "modules.json").stat().st_mtime_ns == before
    res = CliRunner().invoke(app, [*again, "--out", str(out / "modules.json")])
    assert res.exit_code == 2 and "is a file" in res.output
    res = CliRunner().invoke(app, [*again, "--out", str(out), "--overwrite", "--model", str(out)])
    assert res.exit_code == 2 and "the model being trained from" in res.output
    res = CliRunner().invoke(app, [*again, "--out", str(tmp_path / "x"), "--lr", "0"])
    assert res.exit_code == 2 and "--lr must be above 0" in res.output
    res = CliRunner().invoke(app, ["finetune", "retrieval", "--dataset", "scifact", "--out", str(tmp_path / "r"),
                                   "--negatives", "5", "--range-max", "3"])  # was a ValueError after mining began
    assert res.exit_code == 2 and "--range-max" in res.output and not (tmp_path / "r").exists()


TOPICS = [
    ("penguins", "Penguins are flightless birds that live in the cold Antarctic."),
    ("volcano", "A volcano erupts when magma rises through the crust of the earth."),
    ("taxes", "Income tax returns must be filed with the revenue service every April."),
    ("coffee", "Coffee beans are roasted before they are ground and brewed."),
    ("chess", "Chess is a board game where each player starts with sixteen pieces."),
    ("vaccine", "Vaccines train the immune system to recognise a virus."),
    ("guitar", "A guitar usually has six strings that are plucked or strummed."),
    ("rainforest", "Tropical rainforests hold more than half of the world's species."),
    ("bitcoin", "Bitcoin is a digital currency recorded on a public blockchain."),
    ("marathon", "A marathon is a long-distance running race of about 42 kilometres."),
    ("insulin", "Insulin is a hormone that lowers the level of sugar in the blood."),
    ("telescope", "A telescope gathers light to make distant objects visible."),
]


@pytest.fixture()
def tiny_beir(tmp_path):
    folder = tmp_path / "data" / "tinybeir"
    (folder / "qrels").mkdir(parents=True)
    corpus = [{"_id": f"d{i}", "title": t, "text": text} for i, (t, text) in enumerate(TOPICS)]
    corpus += [{"_id": f"x{i}", "title": "", "text": f"An unrelated note number {i} about nothing."} for i in range(8)]
    queries = [{"_id": f"q{i}", "text": f"tell me about {t}"} for i, (t, _) in enumerate(TOPICS)]
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in corpus), encoding="utf-8")
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries), encoding="utf-8")
    rows = "".join(f"q{i}\td{i}\t1\r\n" for i in range(len(TOPICS)))
    (folder / "qrels" / "train.tsv").write_bytes(("query-id\tcorpus-id\tscore\r\n" + rows).encode())
    return tmp_path / "data"


def test_finetune_retrieval_selects_on_held_out_train_queries(tiny_beir, tmp_path):
    from textlatent.encoder import Encoder
    from textlatent.finetune import finetune_retrieval

    out = tmp_path / "retr"
    result = finetune_retrieval(
        out, dataset="tinybeir", data_dir=tiny_beir, max_steps=2, batch_size=4, device="cpu", dev_fraction=0.25,
    )
    assert result.selection_metric == "nDCG@10 on 3 held-out train queries"
    assert result.selection_score is not None and 0.0 <= result.selection_score <= 1.0
    assert 0 < result.train_examples <= len(TOPICS) - 3  # the held-out queries are not trained on
    assert result.steps == 2
    assert Encoder(out, device="cpu").encode(["tell me about chess"]).shape == (1, 384)


def test_finetune_retrieval_rejects_bad_dev_fraction(tiny_beir, tmp_path):
    from textlatent.errors import InvalidInputError
    from textlatent.finetune import finetune_retrieval

    with pytest.raises(InvalidInputError, match="dev_fraction"):
        finetune_retrieval(tmp_path / "m", dataset="tinybeir", data_dir=tiny_beir, dev_fraction=1.5)


def test_finetune_retrieval_trains_pairs_that_got_no_negative_with_in_batch_negatives(tiny_beir, tmp_path,
                                                                                        monkeypatch):
    import sentence_transformers.util as st_util

    from textlatent.finetune import finetune_retrieval

    real = st_util.mine_hard_negatives
    seen: dict[str, int] = {}

    def mine_for_half(pairs, *args, **kwargs):  # as if no negative passed the margin for half the pairs
        mined = real(pairs, *args, **kwargs)
        seen["pairs"] = len(pairs)
        return mined.select(range(len(mined) // 2))

    monkeypatch.setattr(st_util, "mine_hard_negatives", mine_for_half)
    result = finetune_retrieval(tmp_path / "retr", dataset="tinybeir", data_dir=tiny_beir, max_steps=2,
                                batch_size=2, device="cpu")
    assert result.train_examples == seen["pairs"] == len(TOPICS)  # none dropped
    assert result.steps == 2
