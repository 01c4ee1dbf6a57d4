"""`textlatent sentiment train`, `eval sentiment` and `score` through typer's CliRunner."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from typer.testing import CliRunner

from textlatent.cli import app


def last_json(output: str) -> dict:
    return json.loads(output.strip().splitlines()[-1])


def test_train_linear_then_eval_on_dev_and_test(sst2_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "head"
    result = runner.invoke(app, ["sentiment", "train", "--head", "linear", "--out", str(out),
                                 "--data-dir", str(sst2_dir), "--json"])
    assert result.exit_code == 0, result.output
    assert last_json(result.stdout)["dev"]["accuracy"] >= 0.9
    for dataset, n in (("sst2-dev", 12), ("sst2-test", 8)):
        result = runner.invoke(app, ["eval", "sentiment", "--model", str(out), "--dataset", dataset,
                                     "--data-dir", str(sst2_dir), "--json"])
        assert result.exit_code == 0, result.output
        metrics = last_json(result.stdout)
        assert metrics["n"] == n and set(metrics) >= {"accuracy", "f1", "ece"}


def test_cli_errors_are_messages_with_exit_code_2(sst2_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    bad_head = runner.invoke(app, ["sentiment", "train", "--head", "forest", "--out", str(tmp_path / "x"),
                                   "--data-dir", str(sst2_dir)])
    assert bad_head.exit_code == 2 and "'forest' is not one of" in bad_head.output  # refused at parse time
    bad_set = runner.invoke(app, ["eval", "sentiment", "--dataset", "imdb", "--data-dir", str(sst2_dir)])
    assert bad_set.exit_code == 2 and "sst2-dev" in bad_set.output
    bad_precision = runner.invoke(app, ["eval", "sentiment", "--precision", "fp8", "--data-dir", str(sst2_dir)])
    assert bad_precision.exit_code == 2
    assert "precision must be one of auto, fast, fp32, bf16, int8" in bad_precision.output
    no_data = runner.invoke(app, ["eval", "sentiment", "--data-dir", str(tmp_path / "none")])
    assert no_data.exit_code == 2 and "error:" in no_data.output
    missing_input = runner.invoke(app, ["score", str(tmp_path / "nope.csv"), "-o", str(tmp_path / "o.csv"),
                                        "--workers", "1"])
    assert missing_input.exit_code == 2 and "does not exist" in missing_input.output
    src = tmp_path / "in.csv"
    src.write_text("text\ngood\n", encoding="utf-8")
    for args, message in ((["--workers", "2", "--backend", "bogus"], "backend must be"),
                          (["--workers", "2", "--precision", "half"], "precision must be"),
                          (["--workers", "2", "--backend", "onnx", "--precision", "bf16"], "no bf16 path"),
                          (["--workers", "2", "--backend", "torch", "--precision", "int8"], "runs on onnxruntime"),
                          (["--workers", "2"], "does not exist")):
        target = tmp_path / "nope.csv" if message == "does not exist" else src
        result = runner.invoke(app, ["score", str(target), "-o", str(tmp_path / "o.csv"), *args])
        assert result.exit_code == 2 and message in result.output  # said in this process, no worker started
    ft = tmp_path / "ft"  # a fine-tuned folder's config: int8 is refused in this process, before any worker
    ft.mkdir()
    (ft / "sentiment.json").write_text('{"kind": "finetune"}')
    result = runner.invoke(app, ["score", str(src), "-o", str(tmp_path / "o.csv"), "--workers", "2",
                                 "--model", str(ft), "--precision", "int8"])
    assert result.exit_code == 2 and "int8 is for linear heads" in result.output, result.output
    assert "Traceback" not in result.output and "Exception in initializer" not in result.output
    assert not (tmp_path / "o.csv").exists()


def test_train_refuses_before_touching_out(sst2_dir: Path, tmp_path: Path) -> None:
    """A folder holding an earlier head is not replaced without --overwrite; options the linear head
    ignores are refused; a bad --base or device is a message, and none of these leaves a folder."""
    runner = CliRunner()
    out = tmp_path / "head"
    out.mkdir()
    (out / "sentiment.json").write_text("{}")
    args = ["sentiment", "train", "--head", "linear", "--data-dir", str(sst2_dir)]
    res = runner.invoke(app, [*args, "--out", str(out)])
    assert res.exit_code == 2 and "--overwrite" in res.output
    assert (out / "sentiment.json").read_text() == "{}"
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "a"), "--batch-size", "8", "--lr", "1e-3",
                              "--precision", "fp32"])
    assert res.exit_code == 2 and "--batch-size, --lr, --precision apply to --head finetune only" in res.output
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "b"), "--base", str(tmp_path / "no-model")])
    assert res.exit_code == 2 and "does not exist" in res.output
    res = runner.invoke(app, ["--device", "gpu", *args, "--out", str(tmp_path / "c")])
    assert res.exit_code == 2 and "invalid setting" in res.output
    res = runner.invoke(app, ["sentiment", "train", "--head", "finetune", "--lr", "0", "--out", str(tmp_path / "d"),
                              "--data-dir", str(sst2_dir)])
    assert res.exit_code == 2 and "--lr must be above 0" in res.output
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "e"), "--pooling", "cls"])
    assert res.exit_code == 2 and "--pooling apply to --head finetune only" in res.output
    res = runner.invoke(app, ["sentiment", "train", "--head", "finetune", "--init-head", str(tmp_path / "nohead"),
                              "--out", str(tmp_path / "f"), "--data-dir", str(sst2_dir)])
    assert res.exit_code == 2 and "no sentiment.json" in res.output
    assert not any((tmp_path / n).exists() for n in "abcdef")


def test_score_csv_in_process(tmp_path: Path) -> None:
    src = tmp_path / "reviews.csv"
    src.write_text("id,review\n1,an absolute joy from start to finish\n2,\n3,a numbing bore\n", encoding="utf-8")
    out = tmp_path / "scored.csv"
    args = ["score", str(src), "-o", str(out), "--text-column", "review", "--workers", "1", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = last_json(result.stdout)
    assert report["rows"] == 3 and report["scored"] == 2 and report["errors"] == 1
    with out.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["label"] for r in rows] == ["positive", "", "negative"]
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and last_json(again.stdout)["already_complete"] is True
