"""`textlatent eval ...` end to end on tiny fixture folders (the bundled encoder, loaded once)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from textlatent.cli import app

runner = CliRunner()


@pytest.fixture
def shared_encoder(encoder: Any, monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, dict[str, Any]]]:
    """Make the CLI's ``Encoder(...)`` hand back the session encoder; record the arguments."""
    import textlatent.encoder

    calls: list[tuple[Any, dict[str, Any]]] = []

    def make(model: Any = None, **kwargs: Any) -> Any:
        calls.append((model, kwargs))
        return encoder

    monkeypatch.setattr(textlatent.encoder, "Encoder", make)
    return calls


def _last_json(stdout: str) -> dict[str, Any]:
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert lines, "no output on stdout"
    return json.loads(lines[-1])


def test_eval_sts_json_on_a_tiny_folder(tiny_data_dir: Path, shared_encoder: list[Any]) -> None:
    result = runner.invoke(
        app, ["--device", "cpu", "eval", "sts", "--split", "dev", "--data-dir", str(tiny_data_dir), "--json",
              "--batch-size", "4"]
    )
    assert result.exit_code == 0, result.output
    out = _last_json(result.stdout)
    assert out["task"] == "sts" and out["split"] == "dev" and out["pairs"] == 6
    assert out["model"] == "all-MiniLM-L6-v2"
    # Gold scores follow obvious similarity (identical pair 5.0 ... unrelated pair 0.0): a working
    # encoder ranks them nearly the same way.
    assert out["spearman"] > 70, out
    assert -100 <= out["pearson"] <= 100 and out["seconds"] >= 0
    [(model, kwargs)] = shared_encoder
    assert model is None and kwargs["device"] == "cpu" and kwargs["batch_size"] == 4


def test_eval_beir_json_on_a_tiny_folder(tiny_data_dir: Path, shared_encoder: list[Any]) -> None:
    result = runner.invoke(app, ["eval", "beir", "--dataset", "toyfact", "--data-dir", str(tiny_data_dir), "--json"])
    assert result.exit_code == 0, result.output
    out = _last_json(result.stdout)
    assert (out["queries"], out["docs"]) == (3, 4)
    assert 0.0 <= out["ndcg@10"] <= 1.0 and out["recall@100"] == pytest.approx(1.0)  # 4 docs: all retrieved
    assert out["ndcg@10"] > 0.5, out  # aspirin->aspirin, vitamin C->vitamin C are easy
    assert set(out) >= {"ndcg@10", "recall@100", "queries_per_s", "queries", "docs", "seconds"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["eval", "sts", "--data-dir", "{missing}"], "data folder"),
        (["eval", "sts", "--split", "validation", "--data-dir", "{data}"], "no split 'validation'"),
        (["eval", "beir", "--dataset", "nfcorpus", "--data-dir", "{data}"], "BEIR datasets there: toyfact"),
        (["eval", "beir", "--dataset", "toyfact", "--split", "dev", "--data-dir", "{data}"], "qrels/dev.tsv"),
        (["eval", "beir", "--dataset", "toyfact", "--data-dir", "{missing}"], "does not exist"),
    ],
)
def test_eval_errors_exit_non_zero_with_a_message(
    tiny_data_dir: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    """Data problems are reported before any model loads (no encoder fixture: these stay fast)."""
    argv = [a.format(data=tiny_data_dir, missing=tmp_path / "absent") for a in args]
    result = runner.invoke(app, argv)
    assert result.exit_code != 0
    assert "error: " in result.stderr and message in result.stderr, result.stderr
    assert "Traceback" not in result.output
