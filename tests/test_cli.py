"""The ``textlatent`` command, through typer's CliRunner (the model is loaded once per session)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from textlatent.cli import app

DOCS = [
    {"id": "cats", "title": "Cats", "text": "Cats are small felines that purr and chase mice.", "lang": "en"},
    {"id": "rates", "text": "The central bank raised interest rates to curb inflation.", "lang": "en"},
    {"id": "vitd", "text": "Vitamin D deficiency weakens bones and causes rickets.", "lang": "fr"},
]


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def cli(runner, tmp_path, encoder, monkeypatch):
    """Run the CLI on a fresh index folder; each command builds its own TextLatent as usual, but
    the encoder it would load is the session one (``Encoder(...)`` is swapped for a factory)."""
    import textlatent.encoder

    calls = []

    def fake_encoder(model=None, **kwargs):
        calls.append((model, kwargs))
        return encoder

    monkeypatch.setattr(textlatent.encoder, "Encoder", fake_encoder)
    index_dir = tmp_path / "indexes"

    def run(*args: str, input: str | None = None):
        return runner.invoke(app, ["--index-dir", str(index_dir), *args], input=input)

    run.index_dir = index_dir
    run.calls = calls
    return run


@pytest.fixture
def docs_file(tmp_path) -> Path:
    f = tmp_path / "docs.jsonl"
    f.write_text("".join(json.dumps(d) + "\n" for d in DOCS), encoding="utf-8")
    return f


def listed(cli) -> dict[str, dict]:
    res = cli("collection", "list", "--json")
    assert res.exit_code == 0, res.output
    return {c["name"]: c for c in json.loads(res.stdout)}


def test_help(runner):
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0
    for word in ("serve", "embed", "collection", "add", "search"):
        assert word in res.output
    res = runner.invoke(app, ["collection", "--help"])
    assert res.exit_code == 0 and "create" in res.output and "delete" in res.output
    # bracketed notes are escaped for rich's markup, which used to swallow them whole
    res = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert "[env TEXTLATENT_INDEX_DIR, default ./indexes]" in res.output
    res = runner.invoke(app, ["add", "--help"], env={"COLUMNS": "200"})
    assert "[default: id, else _id]" in res.output


def test_collection_create_list_delete(cli):
    res = cli("collection", "create", "notes")
    assert res.exit_code == 0, res.output
    assert "created: notes" in res.stdout and "dim 384" in res.stdout
    assert cli.calls and cli.calls[0][0] is None  # the bundled model
    res = cli("collection", "create", "notes")
    assert res.exit_code == 0 and "exists: notes" in res.stdout
    res = cli("collection", "create", "notes", "--index", "HNSW32")
    assert res.exit_code != 0 and "error:" in res.stderr and "already exists" in res.stderr

    infos = listed(cli)
    assert list(infos) == ["notes"]
    assert (infos["notes"]["count"], infos["notes"]["dim"], infos["notes"]["index"]) == (0, 384, "Flat")
    res = cli("collection", "list")
    assert res.exit_code == 0 and "notes" in res.stdout

    res = cli("collection", "delete", "notes", "-y")
    assert res.exit_code == 0 and "deleted: notes" in res.stdout
    assert listed(cli) == {}
    assert not (cli.index_dir / "notes").exists()
    assert "no collections" in cli("collection", "list").stdout
    res = cli("collection", "delete", "notes", "-y")
    assert res.exit_code != 0 and "error:" in res.stderr


def test_collection_delete_asks_for_confirmation(cli):
    cli("collection", "create", "keep")
    res = cli("collection", "delete", "keep", input="n\n")
    assert res.exit_code != 0
    assert "keep" in listed(cli)
    res = cli("collection", "delete", "keep", input="y\n")
    assert res.exit_code == 0 and listed(cli) == {}


def test_invalid_collection_name(cli):
    res = cli("collection", "create", "../escape")
    assert res.exit_code != 0 and "error:" in res.stderr
    assert not (cli.index_dir.parent / "escape").exists()
    assert listed(cli) == {}


def test_add_and_search(cli, docs_file):
    res = cli("add", "notes", str(docs_file), "--create")
    assert res.exit_code == 0, res.output
    assert "added 3 documents to notes" in res.stdout and "3 in total" in res.stdout
    assert listed(cli)["notes"]["count"] == 3

    res = cli("search", "notes", "a vitamin deficiency and weak bones", "--json")
    assert res.exit_code == 0, res.output
    hits = json.loads(res.stdout)
    assert [h["id"] for h in hits][0] == "vitd"
    assert hits[0]["metadata"] == {"lang": "fr"}
    assert hits[0]["score"] > hits[-1]["score"]
    assert set(hits[0]) == {"id", "score", "text", "metadata"}

    res = cli("search", "notes", "kittens", "-k", "1", "--json")
    hits = json.loads(res.stdout)
    assert len(hits) == 1 and hits[0]["id"] == "cats"
    assert hits[0]["text"].startswith("Cats ")  # the title is put before the text

    res = cli("search", "notes", "anything", "--filter", "lang=fr", "--json")
    assert [h["id"] for h in json.loads(res.stdout)] == ["vitd"]
    res = cli("search", "notes", "anything", "--filter", "lang=de")
    assert res.exit_code == 0 and "no results" in res.stdout

    res = cli("search", "notes", "central bank inflation")  # plain text output
    assert res.exit_code == 0
    assert res.stdout.splitlines()[0].lstrip().startswith("1.") and "[rates]" in res.stdout.splitlines()[0]

    # re-adding the same file replaces, it does not duplicate
    assert cli("add", "notes", str(docs_file)).exit_code == 0
    assert listed(cli)["notes"]["count"] == 3


def test_search_unknown_collection(cli):
    res = cli("search", "nope", "query")
    assert res.exit_code != 0
    assert "error:" in res.stderr and "nope" in res.stderr


def test_search_bad_options(cli, docs_file):
    cli("add", "notes", str(docs_file), "--create")
    res = cli("search", "notes", "x", "-k", "0")
    assert res.exit_code != 0
    res = cli("search", "notes", "x", "--filter", "no-equals-sign")
    assert res.exit_code != 0 and "error:" in res.stderr


def test_add_to_missing_collection_without_create(cli, docs_file):
    res = cli("add", "missing", str(docs_file))
    assert res.exit_code != 0
    assert "error:" in res.stderr and "--create" in res.stderr
    assert listed(cli) == {}


def test_bad_jsonl_changes_nothing(cli, docs_file, tmp_path):
    assert cli("add", "notes", str(docs_file), "--create").exit_code == 0
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        json.dumps({"id": "new1", "text": "a new document"}) + "\n" + '{"id": "new2", "text": \n', encoding="utf-8"
    )
    res = cli("add", "notes", str(bad))
    assert res.exit_code != 0
    assert "error:" in res.stderr and "bad.jsonl:2" in res.stderr
    assert listed(cli)["notes"]["count"] == 3  # the good first line was not written either
    res = cli("search", "notes", "a new document", "--json")
    assert "new1" not in [h["id"] for h in json.loads(res.stdout)]


def test_add_missing_file_and_csv(cli, tmp_path):
    res = cli("add", "notes", str(tmp_path / "absent.jsonl"), "--create")
    assert res.exit_code != 0 and "no such file" in res.stderr
    assert listed(cli) == {}  # the collection --create made for the failed add is gone again
    csv_file = tmp_path / "docs.csv"
    csv_file.write_text("doc,body\nd1,Penguins live in Antarctica.\nd2,Tax returns are due in April.\n")
    res = cli("add", "notes", str(csv_file), "--id-field", "doc", "--text-field", "body", "--batch-size", "1",
              "--create")
    assert res.exit_code == 0, res.output
    hits = json.loads(cli("search", "notes", "birds on the ice", "--json").stdout)
    assert hits[0]["id"] == "d1"


def test_embed_command(cli, encoder):
    res = cli("embed", "hello world", "second text", "--dimensions", "8")
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert [r["index"] for r in rows] == [0, 1]
    assert all(len(r["embedding"]) == 8 and r["truncated"] is False for r in rows)
    full = encoder.encode(["hello world"])[0, :8]
    assert rows[0]["embedding"] == pytest.approx((full / (full @ full) ** 0.5).tolist(), abs=1e-5)
    res = cli("embed", "-", input="from stdin\n\nsecond line\n")
    assert res.exit_code == 0 and len(res.stdout.splitlines()) == 2
    res = cli("embed", " ")
    assert res.exit_code != 0 and "error:" in res.stderr


def test_console_script_help():
    script = Path(sys.executable).with_name("textlatent")
    cmd = [str(script), "--help"] if script.exists() else [sys.executable, "-m", "textlatent.cli", "--help"]
    if not script.exists() and shutil.which("textlatent"):
        cmd = ["textlatent", "--help"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "Turn text into latent spaces" in out.stdout
    assert "collection" in out.stdout


def test_bad_setting_is_an_error_message(cli, monkeypatch):
    monkeypatch.setenv("TEXTLATENT_MAX_K", "not-a-number")
    res = cli("collection", "list")
    assert res.exit_code == 2
    assert "error: invalid setting" in res.stderr and "max_k" in res.stderr


def test_bad_setting_is_an_error_message_in_every_command_group(cli, monkeypatch):
    """Commands that read the settings themselves (serve, vae, sentiment) say so too, not a traceback."""
    monkeypatch.setenv("TEXTLATENT_THREADS", "0")
    for args in (["vae", "sample", "-n", "1"], ["score", "in.csv", "-o", "out.csv"], ["serve"]):
        res = cli(*args)
        assert res.exit_code == 2, (args, res.output)
        assert "error: invalid setting" in res.stderr and "threads" in res.stderr


def test_a_failed_add_to_an_existing_collection_keeps_it(cli, docs_file, tmp_path):
    """Only a collection made by the failing command is removed; an existing one, even empty, stays."""
    assert cli("collection", "create", "empty").exit_code == 0
    res = cli("add", "empty", str(tmp_path / "absent.jsonl"), "--create")
    assert res.exit_code == 2
    assert listed(cli)["empty"]["count"] == 0


def test_non_utf8_file_is_an_error_message(cli, tmp_path):
    latin = tmp_path / "latin1.csv"
    latin.write_bytes("id,text\n1,caf\xe9 au lait\n".encode("latin-1"))
    res = cli("add", "notes", str(latin), "--create")
    assert res.exit_code == 2 and "error: input is not UTF-8" in res.stderr


def test_add_checks_every_row_before_writing(cli, docs_file, tmp_path):
    assert cli("add", "notes", str(docs_file), "--create").exit_code == 0
    bad = tmp_path / "late_bad.jsonl"
    rows = [{"id": f"ok{i}", "text": f"fine document {i}"} for i in range(5)] + [{"id": "x" * 600, "text": "t"}]
    bad.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    res = cli("add", "notes", str(bad), "--batch-size", "2")
    assert res.exit_code == 2 and "id must be" in res.stderr
    assert listed(cli)["notes"]["count"] == 3  # not even the first batches were written


def test_csv_with_byte_order_mark(cli, tmp_path):
    f = tmp_path / "bom.csv"
    f.write_bytes("\ufeffid,text\nb1,Owls hunt at night.\n".encode())
    res = cli("add", "notes", str(f), "--create")
    assert res.exit_code == 0, res.output
    assert json.loads(cli("search", "notes", "nocturnal birds", "--json").stdout)[0]["id"] == "b1"


def test_json_output_is_strict_json() -> None:
    # A Spearman over constant scores is NaN; `--json` printed a bare NaN, which strict parsers refuse.
    from textlatent.cli_options import json_out

    line = json_out({"spearman": float("nan"), "rows": [{"x": float("inf")}, 1.5], "n": 3})
    assert json.loads(line, parse_constant=lambda c: pytest.fail(f"non-standard {c}")) == {
        "spearman": None, "rows": [{"x": None}, 1.5], "n": 3}


def test_reading_a_missing_index_folder_does_not_create_it(tmp_path) -> None:
    from typer.testing import CliRunner

    from textlatent.cli import app

    missing = tmp_path / "typo"
    runner = CliRunner()
    for args in (["collection", "list"], ["outliers", "small"], ["collection", "delete", "small", "-y"]):
        r = runner.invoke(app, ["--index-dir", str(missing), *args])
        assert not missing.exists(), args
    assert r.exit_code == 2 and "does not exist" in r.output


def test_threads_apply_to_every_command(tmp_path, monkeypatch) -> None:
    # finetune, sentiment train and rerank calibrate used to ignore --threads
    import torch
    from typer.testing import CliRunner

    from textlatent.cli import app

    before = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", ""))  # restored after the test
    monkeypatch.setenv("MKL_NUM_THREADS", os.environ.get("MKL_NUM_THREADS", ""))
    try:
        r = CliRunner().invoke(app, ["--threads", "1", "--index-dir", str(tmp_path), "collection", "list"])
        assert r.exit_code == 0, r.output
        assert torch.get_num_threads() == 1 and os.environ["OMP_NUM_THREADS"] == "1"
    finally:
        torch.set_num_threads(before)


def test_overwrite_replaces_the_folder_whole_and_a_failed_run_loses_nothing(tmp_path, monkeypatch, capsys):
    import os
    import signal

    import typer

    from textlatent.cli import _check_out, _replacing

    out = tmp_path / "model"
    out.mkdir()
    (out / "model.pt").write_text("old weights")
    (out / "axes.json").write_text("an axis fitted to the old latent space")
    _check_out(out, overwrite=True)
    with _replacing(out, overwrite=True):
        assert [p.name for p in out.iterdir() if not p.name.startswith(".")] == []  # set aside
        (out / "model.pt").write_text("new weights")
    assert sorted(p.name for p in out.iterdir()) == ["model.pt"]  # nothing of the old model survives
    assert (out / "model.pt").read_text() == "new weights"

    def sigterm() -> None:
        os.kill(os.getpid(), signal.SIGTERM)  # a kill or a job scheduler, mid-run

    for failure in (lambda: (_ for _ in ()).throw(typer.Exit(2)), sigterm):
        try:
            with _replacing(out, overwrite=True):
                (out / "checkpoint.pt").write_text("this run's checkpoint")
                failure()
        except (typer.Exit, KeyboardInterrupt):
            pass
        assert (out / "model.pt").read_text() == "new weights"  # what OUT held is back...
        kept = [p for p in out.iterdir() if p.name.startswith(".textlatent-interrupted-")]
        assert len(kept) == 1 and (kept[0] / "checkpoint.pt").read_text() == "this run's checkpoint"  # ...and so
        assert not (out / "checkpoint.pt").exists()  # is the failed run's checkpoint, beside it
        for p in kept:
            (p / "checkpoint.pt").unlink()
            p.rmdir()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handlers are given back
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler

    # A disk that fills up mid-run: putting things back needs no new folder, only renames.
    import tempfile

    def no_new_folders(*args, **kwargs):
        raise OSError(28, "No space left on device")

    try:
        with _replacing(out, overwrite=True):
            (out / "model.pt").write_text("truncated")
            monkeypatch.setattr(tempfile, "mkdtemp", no_new_folders)
            raise OSError(28, "No space left on device")
    except OSError:
        pass
    monkeypatch.undo()
    assert (out / "model.pt").read_text() == "new weights"
    kept = [p for p in out.iterdir() if p.name.startswith(".")]
    assert len(kept) == 1 and (kept[0] / "model.pt").read_text() == "truncated"
    (kept[0] / "model.pt").unlink()
    kept[0].rmdir()

    # A SIGTERM while the old files are being moved waits until they all are, then rolls back.
    from pathlib import Path as _Path

    real_rename = _Path.rename
    fired: list[bool] = []

    def rename_then_terminate(self, target):
        if not fired:
            fired.append(True)
            os.kill(os.getpid(), signal.SIGTERM)  # held: raised once the move is complete
        return real_rename(self, target)

    (out / "config.json").write_text("{}")
    monkeypatch.setattr(_Path, "rename", rename_then_terminate)
    ran = []
    try:
        with _replacing(out, overwrite=True):
            ran.append(True)
    except KeyboardInterrupt:
        pass
    monkeypatch.undo()
    assert fired and not ran  # the run never started...
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.pt"]  # ...and nothing moved for good
    (out / "config.json").unlink()

    # A folder set aside is not part of the model: its cache keys do not move.
    from textlatent.cache import model_fingerprint

    before = model_fingerprint(out)
    (out / ".textlatent-interrupted-x").mkdir()
    (out / ".textlatent-interrupted-x" / "config.json").write_text("{}")
    assert model_fingerprint(out) == before
    (out / ".textlatent-interrupted-x" / "config.json").unlink()
    (out / ".textlatent-interrupted-x").rmdir()

    with _replacing(out, overwrite=False):  # without --overwrite it does nothing (the check refused earlier)
        assert (out / "model.pt").is_file()

    # Through a symlink: the target's contents are replaced, the link stays a link.
    link = tmp_path / "link"
    link.symlink_to(out)
    with _replacing(link, overwrite=True):
        (link / "model.pt").write_text("newer weights")
    assert link.is_symlink() and (out / "model.pt").read_text() == "newer weights"

    def refused(folder, message: str = "", **kw) -> None:
        try:
            _check_out(folder, overwrite=True, **kw)
        except typer.Exit as exc:
            assert exc.exit_code == 2
        else:
            raise AssertionError(f"{folder} was accepted")
        if message:  # refused for this reason, not another
            assert message in capsys.readouterr().err

    # Never replaced whole: a project folder, one holding the current directory, one that holds
    # no model (a folder of models, say), or one holding the model the run starts from.
    (tmp_path / "repo" / ".git").mkdir(parents=True)
    (tmp_path / "repo" / "config.json").write_text("{}")
    models = tmp_path / "models"
    (models / "a").mkdir(parents=True)
    (models / "a" / "config.json").write_text("{}")
    monkeypatch.chdir(out)
    for folder in (tmp_path / "repo", tmp_path, out):
        refused(folder)
    monkeypatch.chdir(tmp_path / "repo")
    refused(models)
    (out / "base").mkdir()
    refused(out, model=str(out / "base"))  # it would be set aside before it loads
    refused(out, encoder=str(out / "base"))  # so would the encoder a VAE reads with
    (out / "base").rmdir()
    _check_out(out, overwrite=True)  # a model folder elsewhere is accepted
    # Nor inside the starting model: replacing `SRC/encoder` would delete part of the source.
    (out / "encoder").mkdir()
    (out / "encoder" / "modules.json").write_text("{}")
    refused(out / "encoder", "inside the model", model=str(out))
    refused(out / "new", "inside the model", model=str(out))
    monkeypatch.chdir(out.parent)
    refused(Path(out.name) / "new", "inside the model", model=out.name)  # relative paths alike
    _check_out(tmp_path / "elsewhere", overwrite=True, model="sentence-transformers/all-MiniLM-L6-v2")  # a hub id


def test_benchmark_scripts_refuse_counts_below_one():
    import argparse

    import pytest

    from textlatent.cli_options import positive_int

    assert positive_int("3") == 3
    for bad in ("0", "-2", "1.5", "many"):
        with pytest.raises(argparse.ArgumentTypeError):
            positive_int(bad)


def test_one_run_at_a_time_writes_an_out_folder(tmp_path, monkeypatch, capsys):
    # A second training run on the same --out (by path, however spelt) is refused before it moves
    # anything; another folder is not held up, and the lock goes with the run that held it.
    import typer

    from textlatent.cli import _replacing

    monkeypatch.setenv("TEXTLATENT_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "model"
    out.mkdir()
    (out / "config.json").write_text("{}")
    with _replacing(out, overwrite=False):
        for spelt in (out, tmp_path / "." / "model"):
            try:
                with _replacing(spelt, overwrite=True):
                    raise AssertionError("a second run got in")
            except typer.Exit as exc:
                assert exc.exit_code == 2
            err = capsys.readouterr().err
            assert "being written by another textlatent run" in err and f"process {os.getpid()}" in err
        assert (out / "config.json").read_text() == "{}" and [p.name for p in out.iterdir()] == ["config.json"]
        with _replacing(tmp_path / "other", overwrite=False):
            pass
    with _replacing(out, overwrite=False):  # released when the first run ended
        pass
