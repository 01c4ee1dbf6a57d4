"""`textlatent outliers`, `eval ood` and `eval compression` through typer's CliRunner."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from textlatent.cli import app


@pytest.fixture
def cli(tmp_path, encoder, monkeypatch):
    """The CLI on a fresh index folder, with the session encoder instead of a fresh load."""
    import textlatent.encoder

    monkeypatch.setattr(textlatent.encoder, "Encoder", lambda model=None, **kw: encoder)
    runner = CliRunner()
    index_dir = tmp_path / "indexes"

    def run(*args: str):
        return runner.invoke(app, ["--index-dir", str(index_dir), *args])

    return run


@pytest.fixture
def filled(cli, tmp_path):
    texts = [f"The film was {w} and the acting {v}." for w in ("wonderful", "boring", "moving", "dull")
             for v in ("superb", "weak", "fine")]
    rows = [{"id": f"r{i}", "text": t} for i, t in enumerate(texts)]
    rows.append({"id": "odd", "text": "Mitochondrial DNA polymerase gamma mutations cause ataxia."})
    f = tmp_path / "docs.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = cli("add", "reviews", str(f), "--create")
    assert res.exit_code == 0, res.output
    return cli


def test_outliers_json_and_table(filled):
    res = filled("outliers", "reviews", "--k", "3", "-n", "2", "--json")
    assert res.exit_code == 0, res.output
    body = json.loads(res.stdout.strip().splitlines()[-1])
    assert body["method"] == "knn" and body["k"] == 3 and body["count"] == 13
    assert [r["id"] for r in body["results"]][0] == "odd" and len(body["results"]) == 2
    res = filled("outliers", "reviews", "--method", "mahalanobis", "-n", "1")
    assert res.exit_code == 0, res.output
    assert "[odd]" in res.stdout and "mahalanobis outliers of reviews" in res.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["outliers", "nope"], "does not exist"),
    (["outliers", "reviews", "--method", "lof"], "method must be one of"),
    (["outliers", "reviews", "--k", "0"], "k must be"),
    (["outliers", "reviews", "--k", "20"], "needs at least 21 documents"),
    (["outliers", "reviews", "-n", "0"], "-n must be"),
    (["outliers", "reviews", "--method", "elbo"], "--vae"),
    (["outliers", "reviews", "--method", "elbo", "--vae", "/nonexistent/vae"], "not a trained VAE folder"),
])
def test_outliers_bad_input_exits_2_with_a_message(filled, args, message):
    res = filled(*args)
    assert res.exit_code == 2, res.output
    assert message in res.output


def test_eval_commands_refuse_bad_input(cli, tmp_path):
    res = cli("eval", "ood", "--data-dir", str(tmp_path / "missing"))
    assert res.exit_code == 2 and "does not exist" in res.output
    for methods in ("knn,lof", ","):  # checked before the data and the encoder load
        res = cli("eval", "ood", "--data-dir", str(tmp_path / "missing"), "--methods", methods)
        assert res.exit_code == 2 and "methods must be" in res.output, res.output
    res = cli("eval", "compression", "--data-dir", str(tmp_path / "missing"))
    assert res.exit_code == 2 and "does not exist" in res.output
    res = cli("eval", "compression", "--dims", "32,x")
    assert res.exit_code == 2 and "comma-separated integers" in res.output
    for pq in ("0", "-4", "7"):  # 0 was a ZeroDivisionError traceback after all the embedding
        res = cli("eval", "compression", "--data-dir", str(tmp_path / "missing"), "--pq", pq)
        assert res.exit_code == 2 and "positive divisor" in res.output, res.output
    (tmp_path / "folder").mkdir()
    for plot, message in ((tmp_path / "p.xyz", "cannot write '.xyz'"), (tmp_path / "folder", "is a folder"),
                          (tmp_path / "nowhere" / "p.png", "does not exist")):  # refused before any work
        res = cli("eval", "compression", "--data-dir", str(tmp_path / "missing"), "--out-plot", str(plot))
        assert res.exit_code == 2 and message in res.output, res.output


def test_eval_ood_refuses_elbo_without_a_vae(cli, data_dir):
    res = cli("eval", "ood", "--data-dir", str(data_dir), "--methods", "elbo")
    assert res.exit_code == 2 and "--vae" in res.output
    res = cli("eval", "ood", "--data-dir", str(data_dir), "--methods", "knn,lof")
    assert res.exit_code == 2 and "methods must be" in res.output
