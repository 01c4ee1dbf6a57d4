"""Reranker training (a few steps on a toy BEIR folder) and `eval beir` in every mode."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from textlatent.eval import load_beir
from textlatent.eval.tasks import evaluate_beir, fuse_runs

TOPICS = ["aspirin heart attack", "vitamin c common cold", "sleep hours adults", "coffee liver disease",
          "exercise blood pressure", "smoking lung cancer", "salt kidney stones", "sugar tooth decay",
          "sunlight vitamin d", "fish oil memory", "green tea weight", "red wine longevity"]


def _toy_beir(root: Path) -> Path:
    folder = root / "toy"
    (folder / "qrels").mkdir(parents=True)
    corpus, queries, train, test = [], [], ["query-id\tcorpus-id\tscore"], ["query-id\tcorpus-id\tscore"]
    for i, topic in enumerate(TOPICS):
        corpus.append({"_id": f"d{i}", "title": topic.title(), "text": f"A study found that {topic} are linked."})
        corpus.append({"_id": f"n{i}", "title": "", "text": f"Unrelated note {i} about {topic.split()[0]} prices."})
        queries.append({"_id": f"q{i}", "text": f"Is {topic.split()[0]} related to {topic.split()[-1]}?"})
        (test if i < 3 else train).append(f"q{i}\td{i}\t1")
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in corpus))
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    (folder / "qrels" / "train.tsv").write_text("\n".join(train) + "\n")
    (folder / "qrels" / "test.tsv").write_text("\n".join(test) + "\n")
    return root


@pytest.mark.parametrize("mode", ["bm25", "dense", "hybrid"])
def test_evaluate_beir_modes(encoder: Any, tmp_path: Path, mode: str) -> None:
    data = load_beir(_toy_beir(tmp_path), "toy", "test")
    result = evaluate_beir(encoder if mode != "bm25" else None, data, mode=mode)
    assert result["mode"] == mode and result["queries"] == 3 and result["docs"] == 24
    assert result["ndcg@10"] > 0.8  # the toy queries name their document's words
    assert result["queries_per_s"] > 0 and result["ms_per_query"] > 0


def test_fuse_runs_weighted_and_rrf() -> None:
    lexical = {"q": {"a": 9.0, "b": 1.0}}
    dense = {"q": {"b": 0.9, "c": 0.1}}
    assert list(fuse_runs(lexical, dense, fusion="rrf")["q"]) == ["b", "a", "c"]
    assert list(fuse_runs(lexical, dense, fusion="weighted", alpha=0.2)["q"]) == ["a", "b", "c"]


def test_train_reranker_a_few_steps_and_use_it(encoder: Any, tmp_path: Path) -> None:
    from textlatent.retrieval.rerank import CONFIG_FILE, Reranker, recalibrate, train_reranker

    root = _toy_beir(tmp_path / "data")
    out = tmp_path / "reranker"
    result = train_reranker(out, dataset="toy", data_dir=root, negatives=2, mine_top=5, top_n=5,
                            heldout_fraction=0.2, batch_size=4, max_length=64, max_steps=3, device="cpu")
    assert result.steps == 3 and result.train_queries == 7 and result.heldout_queries == 2
    assert result.train_pairs == 7 * 3  # one positive and two mined negatives per train query
    assert result.beta in (0.0, 0.25, 0.5, 0.75, 1.0) and len(result.heldout_ndcg10) == 5
    meta = json.loads((out / CONFIG_FILE).read_text())
    assert meta["beta"] == result.beta and meta["top_n"] == 5
    assert len(meta["heldout_query_ids"]) == 2 and not set(meta["heldout_query_ids"]) & {"q0", "q1", "q2"}
    again = recalibrate(out, data_dir=root, device="cpu")  # same held-out train queries, current first stage
    assert again["heldout_query_ids"] == meta["heldout_query_ids"] and again["recalibrated"]["beta_before"] == \
        result.beta and again["beta"] in (0.0, 0.25, 0.5, 0.75, 1.0)
    assert again["recalibrated"]["first_stage"] == "bundled all-MiniLM-L6-v2"
    import textlatent.encoder

    loaded: list[Any] = []
    real = textlatent.encoder.Encoder

    def spy(model: Any = None, **kw: Any) -> Any:
        loaded.append(model)
        return real(None, **kw)  # the toy run needs a real encoder; the point is which one was asked for

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(textlatent.encoder, "Encoder", spy)
        served = recalibrate(out, data_dir=root, device="cpu", model="models/served-encoder")
    assert loaded == ["models/served-encoder"]  # the first stage a server is set to, not always the bundled one
    assert served["recalibrated"]["first_stage"] == "models/served-encoder"
    reranker = Reranker(out, device="cpu")
    ranked = reranker.rerank("aspirin", [("x", "aspirin and the heart", 0.5), ("y", "tooth decay", 0.1)])
    assert sorted(d for d, _ in ranked) == ["x", "y"]
    assert ranked[0][1] >= ranked[1][1]
    data = load_beir(root, "toy", "test")
    scored = evaluate_beir(encoder, data, mode="hybrid", reranker=reranker, rerank_top=5)
    assert scored["reranker"] == "reranker" and scored["rerank_top"] == 5 and 0.0 <= scored["ndcg@10"] <= 1.0


def test_reranker_folder_must_exist(tmp_path: Path) -> None:
    from textlatent.errors import NotFoundError
    from textlatent.retrieval.rerank import Reranker

    with pytest.raises(NotFoundError):
        Reranker(tmp_path / "none")


def test_a_folder_that_is_not_a_cross_encoder_is_refused(tmp_path: Path) -> None:
    # A bi-encoder would load with a randomly initialised classifier head and rerank by noise.
    from textlatent.errors import InvalidInputError
    from textlatent.models import resolve_model_path
    from textlatent.retrieval.rerank import Reranker

    with pytest.raises(InvalidInputError, match="not a cross-encoder"):
        Reranker(resolve_model_path(None), device="cpu")  # the bundled MiniLM bi-encoder
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"architectures": ["BertForSequenceClassification"]}')
    (broken / "textlatent_reranker.json").write_text('{"beta": ')
    with pytest.raises(InvalidInputError, match="not a readable reranker folder"):
        Reranker(broken, device="cpu")


def test_a_folder_of_another_kind_is_not_an_encoder(tmp_path: Path) -> None:
    from textlatent.encoder import Encoder
    from textlatent.errors import InvalidInputError

    (tmp_path / "config.json").write_text('{"model": {"latent_dim": 32}}')  # a VAE's config, say
    with pytest.raises(InvalidInputError, match="could not be loaded as a sentence-transformers model"):
        Encoder(tmp_path, device="cpu")


def test_eval_beir_cli_modes(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from textlatent.cli import app

    root = _toy_beir(tmp_path)
    runner = CliRunner()
    ok = runner.invoke(app, ["eval", "beir", "--dataset", "toy", "--data-dir", str(root), "--mode", "bm25", "--json"])
    assert ok.exit_code == 0, ok.output
    result = json.loads(ok.stdout.strip().splitlines()[-1])
    assert result["mode"] == "bm25" and result["model"] is None and result["ndcg@10"] > 0.8
    bad = runner.invoke(app, ["eval", "beir", "--dataset", "toy", "--data-dir", str(root), "--mode", "sparse"])
    assert bad.exit_code == 2 and "--mode" in bad.output
    missing = runner.invoke(app, ["eval", "beir", "--dataset", "toy", "--data-dir", str(root), "--mode", "hybrid",
                                  "--rerank", str(tmp_path / "none")])
    assert missing.exit_code == 2 and "config.json" in missing.output
    for args, message in ((["--mode", "hybrid", "--fusion", "bogus"], "--fusion must be"),
                          (["--mode", "bm25", "--fusion", "rrf"], "mean nothing with --mode bm25"),
                          (["--mode", "bm25", "--rerank-top", "5"], "--rerank-top needs --rerank")):
        bad = runner.invoke(app, ["eval", "beir", "--dataset", "toy", "--data-dir", str(tmp_path / "nowhere"), *args])
        assert bad.exit_code == 2 and message in bad.output, bad.output  # before the data is even read


def test_rerank_train_cli_does_not_write_over_a_saved_reranker(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from textlatent.cli import app

    out = tmp_path / "reranker"
    out.mkdir()
    (out / "textlatent_reranker.json").write_text("{}")
    res = CliRunner().invoke(app, ["rerank", "train", "--dataset", "scifact", "--out", str(out)])
    assert res.exit_code == 2 and "--overwrite" in res.output
    assert (out / "textlatent_reranker.json").read_text() == "{}"
    for bad, message in ((["--lr", "0"], "--lr must be above 0"), (["--seed", "-3"], "--seed"),
                         (["--max-minutes", "inf"], "finite")):  # refused before minutes of mining
        res = CliRunner().invoke(app, ["rerank", "train", "--dataset", "scifact", "--out", str(tmp_path / "new"), *bad])
        assert res.exit_code == 2 and message in res.output, res.output
        assert not (tmp_path / "new").exists()
