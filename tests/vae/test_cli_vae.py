"""``textlatent vae …`` through typer's CliRunner, on the tiny corpus."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tests.vae.helpers import split_corpus
from textlatent.cli import app


@pytest.fixture
def run(tmp_path, encoder, monkeypatch):
    """Invoke the CLI with the session encoder standing in for a freshly loaded MiniLM."""
    import textlatent.encoder

    monkeypatch.setattr(textlatent.encoder, "Encoder", lambda *a, **k: encoder)
    monkeypatch.setenv("TEXTLATENT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("TEXTLATENT_VAE_MODEL", raising=False)
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None):
        return runner.invoke(app, ["--device", "cpu", "vae", *args], input=input)

    return invoke


@pytest.fixture
def corpus_files(tmp_path):
    train, valid = split_corpus()
    (tmp_path / "train.txt").write_text("\n".join(train) + "\n")
    (tmp_path / "valid.txt").write_text("\n".join(valid) + "\n")
    return tmp_path / "train.txt", tmp_path / "valid.txt"


def test_train_eval_and_use(run, corpus_files, tmp_path, monkeypatch):
    train, valid = corpus_files
    out = tmp_path / "model"
    r = run("train", "--train", str(train), "--valid", str(valid), "--out", str(out), "--epochs", "2",
            "--latent-dim", "8", "--hidden-dim", "32", "--word-dim", "16", "--batch-size", "16", "--dropout", "0.3",
            "--word-dropout", "0", "--adaptive-div", "2", "--json")
    assert r.exit_code == 0, r.output
    assert len(r.stdout.strip().splitlines()) == 1  # --json: one object on stdout; per-epoch lines go to stderr
    saved = json.loads((out / "config.json").read_text())["model"]
    assert (saved["dropout"], saved["word_dropout"], saved["adaptive_div"]) == (0.3, 0.0, 2.0)
    history = json.loads(r.stdout.strip().splitlines()[-1])["history"]
    assert [h["epoch"] for h in history] == [1, 2]
    assert (out / "checkpoint.pt").is_file() and (out / "model.pt").is_file()

    r = run("train", "--train", str(train), "--valid", str(valid), "--out", str(out), "--epochs", "3",
            "--latent-dim", "8", "--hidden-dim", "32", "--word-dim", "16", "--batch-size", "16", "--dropout", "0.3",
            "--word-dropout", "0", "--adaptive-div", "2", "--resume", "--json")
    assert r.exit_code == 0, r.output
    assert [h["epoch"] for h in json.loads(r.stdout.strip().splitlines()[-1])["history"]] == [1, 2, 3]
    before = (out / "checkpoint.pt").read_bytes()
    r = run("train", "--train", str(train), "--valid", str(valid), "--out", str(out), "--epochs", "4",
            "--latent-dim", "8", "--hidden-dim", "32", "--word-dim", "16", "--batch-size", "16", "--dropout", "0.1",
            "--word-dropout", "0", "--adaptive-div", "2", "--resume")
    assert r.exit_code == 2 and "dropout 0.3 -> 0.1" in r.output, r.output  # refused, and nothing rewritten
    assert (out / "checkpoint.pt").read_bytes() == before
    assert json.loads((out / "config.json").read_text())["model"]["dropout"] == 0.3

    r = run("train", "--train", str(train), "--valid", str(valid), "--out", str(tmp_path / "rec"), "--epochs", "1",
            "--latent-dim", "8", "--hidden-dim", "32", "--word-dim", "16", "--batch-size", "16", "--select", "rec")
    assert r.exit_code == 0 and "epoch 1, kept by valid rec" in r.output, r.output

    r = run("eval", "--model", str(out), "--data", str(valid), "--k", "5", "--json")
    assert r.exit_code == 0, r.output
    figures = json.loads(r.stdout)
    assert {"nll", "iw_nll", "kl", "ppl", "au", "mi"} <= set(figures)
    assert figures["iw_nll"] <= figures["nll"] + 1.0  # IW tightens the ELBO bound (up to sampling noise)
    assert 0 <= figures["au"] <= 8 and figures["kl"] > 0 and figures["subset"] is None
    r = run("eval", "--model", str(out), "--data", str(valid), "--k", "0", "--subset", "100000", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["subset"] is None  # every sentence scored: not a subset
    assert figures["posterior"] == {"refine_steps": 0}
    r = run("eval", "--model", str(out), "--data", str(valid), "--k", "5", "--refine-steps", "30", "--json")
    assert r.exit_code == 0, r.output
    refined = json.loads(r.stdout)
    assert refined["posterior"] == {"refine_steps": 30, "refine_lr": 0.05}
    # The encoder's own figures are kept beside the refined ones, and match the plain run's.
    assert refined["amortized"]["nll"] == pytest.approx(figures["nll"], abs=1e-4)
    # Refining each q on its own sentence's ELBO lowers that bound (the model is the same).
    assert refined["nll"] < figures["nll"]
    assert refined["iw_nll"] <= refined["nll"] + 1.0
    r = run("eval", "--model", str(out), "--data", str(valid), "--k", "0", "--refine-steps", "2")
    assert r.exit_code == 0 and "refined, 2 Adam steps" in r.stdout, r.output
    for bad in (["--refine-lr", "0"], ["--refine-lr", "nan"], ["--refine-steps", "-1"]):
        r = run("eval", "--model", str(out), "--data", str(valid), *bad)
        assert r.exit_code == 2 and bad[0] in r.output, r.output

    r = run("sample", "--model", str(out), "-n", "3", "--seed", "1")
    assert r.exit_code == 0, r.output
    assert len(r.stdout.strip().splitlines()) == 3

    monkeypatch.setenv("TEXTLATENT_VAE_MODEL", str(out))  # the setting stands in for --model
    r = run("reconstruct", "the cat sees the house", "a dog buys fresh bread")
    assert r.exit_code == 0, r.output
    assert [line.split("\t")[0] for line in r.stdout.strip().splitlines()] == [
        "the cat sees the house", "a dog buys fresh bread"]
    # Sampled decodes take a temperature and a seed on every command, as `sample` does.
    for cmd in (["reconstruct", "the cat sees the house"],
                ["interpolate", "the cat sees the house", "a dog buys fresh bread", "--steps", "3"],
                ["analogy", "the cat sees the house", "the cat buys the house", "a dog sees a red car"]):
        first, again = (run(*cmd, "--strategy", "sample", "--temperature", "3", "--seed", "11") for _ in range(2))
        assert first.exit_code == 0 and first.stdout == again.stdout, first.output
        r = run(*cmd, "--strategy", "sample", "--temperature", "-1")
        assert r.exit_code == 2 and "temperature" in r.output, r.output
        r = run(*cmd, "--seed", "-3")
        assert r.exit_code == 2 and "--seed" in r.output, r.output
    r = run("interpolate", "the cat sees the house", "a dog buys fresh bread", "--steps", "3")
    assert r.exit_code == 0, r.output
    assert [line.split("\t")[0] for line in r.stdout.strip().splitlines()] == ["0", "1", "2"]
    r = run("analogy", "the cat sees the house", "the cat buys the house", "a dog sees a red car", "--strategy",
            "beam")
    assert r.exit_code == 0, r.output
    assert r.stdout.count("\n") == 1  # one decoded sentence (a tiny model may decode an empty one)

    # repeated n-grams: the model's default (3 for the GRU), or the command's
    plain = run("sample", "-n", "8", "--seed", "2", "--no-repeat-ngram", "0")
    assert plain.exit_code == 0, plain.output
    from textlatent.vae import ops

    _, texts = ops.sample(ops.VAEPipeline(out, no_repeat_ngram=0), 8, seed=2)
    assert plain.stdout.splitlines() == texts
    assert run("sample", "-n", "8", "--seed", "2").stdout != plain.stdout  # the default (3) is another decoding
    for bad in ("1", "11", "-1"):
        r = run("reconstruct", "the cat sees the house", "--no-repeat-ngram", bad)
        assert r.exit_code == 2 and ("no_repeat_ngram" in r.output or "--no-repeat-ngram" in r.output), r.output
    r = run("interpolate", "a", "b", "--steps", "1")
    assert r.exit_code == 2 and "steps" in r.output
    r = run("sample", "--strategy", "nucleus")
    assert r.exit_code == 2 and "'nucleus' is not one of" in r.output  # refused at parse time


def test_errors_are_messages_with_a_nonzero_exit(run, corpus_files, tmp_path):
    train, valid = corpus_files
    r = run("sample")
    assert r.exit_code == 2 and "TEXTLATENT_VAE_MODEL" in r.output
    r = run("sample", "--model", str(tmp_path))
    assert r.exit_code == 2 and "not a trained VAE folder" in r.output
    r = run("train", "--train", str(tmp_path / "missing.txt"), "--valid", str(valid), "--out", str(tmp_path / "m"))
    assert r.exit_code == 2 and "missing.txt" in r.output
    r = run("train", "--train", str(train), "--valid", str(valid), "--out", str(tmp_path / "m2"), "--resume")
    assert r.exit_code == 2 and "checkpoint" in r.output
    assert not (tmp_path / "m2").exists()  # a refused --resume leaves no empty folder
    for bad in (["--seed", "-1"], ["--lr", "0"], ["--lr", "nan"], ["--free-bits", "inf"]):
        # a traceback (numpy's seed), a run that cannot learn, and floats click's ranges let through
        r = run("train", "--train", str(train), "--valid", str(valid), "--out", str(tmp_path / "m4"), *bad)
        assert r.exit_code == 2 and bad[0] in r.output and "Traceback" not in r.output, r.output
        assert not (tmp_path / "m4").exists()
    r = run("eval", "--model", str(tmp_path), "--data", str(valid), "--seed", str(2**64 + 1))
    assert r.exit_code == 2 and "--seed" in r.output
    r = run("train", "--train", str(train), "--valid", str(valid), "--out", str(tmp_path / "m3"), "--select", "kl")
    assert r.exit_code == 2 and "'kl' is not one of" in r.output
    assert not (tmp_path / "m3").exists()  # refused before anything is written
    r = run("eval", "--model", str(tmp_path), "--data", str(valid))
    assert r.exit_code == 2
    kept = tmp_path / "kept"  # a folder holding a model is neither retrained over nor half-written
    kept.mkdir()
    (kept / "model.pt").write_bytes(b"an earlier model")
    r = run("train", "--train", str(train), "--valid", str(valid), "--out", str(kept))
    assert r.exit_code == 2 and "--overwrite" in r.output
    assert (kept / "model.pt").read_bytes() == b"an earlier model"
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "config.json").write_text("{")
    (damaged / "model.pt").write_bytes(b"not a checkpoint")
    r = run("sample", "--model", str(damaged))
    assert r.exit_code == 2 and "not a readable VAE folder" in r.output and "Traceback" not in r.output


def test_train_optimus_refuses_bad_options_before_loading_anything(run, corpus_files, tiny_vae_dir, tmp_path):
    train, valid = corpus_files
    latent = json.loads((tiny_vae_dir / "config.json").read_text())["model"]["latent_dim"]
    base = ["train-optimus", "--train", str(train), "--valid", str(valid), "--out", str(tmp_path / "opt")]
    for bad, message in ((["--seed", "-1"], "--seed"), (["--lr", "0"], "--lr"), (["--time-budget", "inf"], "finite"),
                         (["--init-posterior", str(tiny_vae_dir), "--latent-dim", str(latent + 1)], "latent size")):
        r = run(*base, *bad)
        assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output, r.output
        assert not (tmp_path / "opt").exists()
    r = run("train-optimus", "--train", str(train), "--valid", str(valid), "--out", str(tiny_vae_dir),
            "--init-posterior", str(tiny_vae_dir), "--latent-dim", str(latent), "--overwrite")
    assert r.exit_code == 2 and "is the model being trained from" in r.output  # never written over its own start


def test_overwrite_leaves_nothing_of_the_old_model(run, corpus_files, tmp_path):
    train, valid = corpus_files
    out = tmp_path / "model"
    out.mkdir()
    (out / "model.pt").write_bytes(b"an earlier model")
    (out / "axes.json").write_text('{"sentiment": "fitted to the earlier model\'s latent space"}')
    r = run("train", "--train", str(train), "--valid", str(valid), "--out", str(out), "--epochs", "1",
            "--latent-dim", "8", "--hidden-dim", "32", "--word-dim", "16", "--batch-size", "16", "--overwrite")
    assert r.exit_code == 0, r.output
    assert not (out / "axes.json").exists()  # transfer would have moved sentences along a stale axis
    assert (out / "model.pt").read_bytes() != b"an earlier model" and (out / "config.json").is_file()
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []  # the old files are gone, not hidden
