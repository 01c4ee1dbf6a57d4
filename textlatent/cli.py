"""The ``textlatent`` command: argument parsing and printing around library calls.

Only typer and the settings load at start; torch, sentence-transformers and faiss load
inside the commands that need them, so ``textlatent --help`` answers at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer

from textlatent.cli_options import OverwriteOption, finite_option, json_out
from textlatent.config import Settings
from textlatent.errors import TextLatentError
from textlatent.vae.limits import MAX_SEED

if TYPE_CHECKING:
    from textlatent.service import TextLatent

app = typer.Typer(
    name="textlatent",
    help="Turn text into latent spaces and serve them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
collection_app = typer.Typer(help="Create, list and delete collections.", no_args_is_help=True)
app.add_typer(collection_app, name="collection")


class _State:
    overrides: dict[str, Any] = {}

    @classmethod
    def settings(cls) -> Settings:
        """The settings; a bad ``TEXTLATENT_*`` value is a clear error, not a traceback. ``--threads``
        (``TEXTLATENT_THREADS``) is applied here, so every command's torch work keeps to it."""
        settings = cast(Settings, _run(lambda: Settings(**{k: v for k, v in cls.overrides.items() if v is not None})))
        if settings.threads:
            os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(settings.threads)  # torch not loaded
            if "torch" in sys.modules:  # already loaded
                sys.modules["torch"].set_num_threads(settings.threads)
        return settings

    @classmethod
    def service(cls) -> TextLatent:
        from textlatent.service import TextLatent

        return _run(lambda: TextLatent(cls.settings()))


@contextlib.contextmanager
def _ensure_collection(service: TextLatent, name: str, *, create: bool, index: str) -> Iterator[None]:
    """For `add` and `ingest`: the collection must exist, or be made when --create is given.

    A collection this made is removed again if the body fails before writing anything into it (a
    missing file, a bad row), so that a failed command leaves nothing behind."""
    exists = _run(lambda: service.has_collection(name))
    if create and not exists:
        _run(lambda: service.create_collection(name, index=index, model=_State.overrides.get("model")))
    elif not exists:
        raise _fail(f"collection {name!r} does not exist; create it with `textlatent collection create {name}` "
                    "or pass --create")
    try:
        yield
    except BaseException:
        if not exists and service.collection(name).count() == 0:
            service.delete_collection(name)
        raise


# Files at the top of every folder a textlatent training command writes (VAE, Optimus, sentiment
# heads, fine-tuned encoders, rerankers): --overwrite replaces a folder whole only if it has one.
_MODEL_MARKERS = ("config.json", "sentiment.json", "modules.json", "model.pt", "checkpoint.pt", "head.pt")


def _check_out(out: Path, *, overwrite: bool, model: str | None = None, encoder: str | None = None) -> None:
    """A training run's --out, checked before any work: not a file, not the model it starts from (nor
    a folder holding it), and not a folder that already holds something unless --overwrite says to
    replace it, which is allowed only for a folder a textlatent training command wrote."""
    if out.exists() and not out.is_dir():
        raise _fail(f"--out {str(out)!r} is a file; give a folder")
    for start_from in (model, encoder):  # the model trained from, and the encoder a VAE reads with
        if start_from and Path(start_from).expanduser().exists():
            start, target = Path(start_from).expanduser().resolve(), out.resolve()
            if target == start:
                raise _fail(f"--out {str(out)!r} is the model being trained from; save to another folder")
            if target in start.parents:
                raise _fail(f"--out {str(out)!r} holds the model being trained from ({start_from}); save to "
                            "another folder")
            if start.is_dir() and start in target.parents:
                raise _fail(f"--out {str(out)!r} is inside the model being trained from ({start_from}); save to "
                            "a folder of its own")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise _fail(f"--out {str(out)!r} already holds files (a model saved earlier?); pass --overwrite to "
                        "replace its contents, or choose an empty or new folder")
        cwd = Path.cwd().resolve()
        if (out / ".git").exists() or cwd == out.resolve() or out.resolve() in cwd.parents:
            raise _fail(f"--out {str(out)!r} is a project folder or holds the current one; --overwrite replaces "
                        "a model folder whole, so give the model a folder of its own")
        if not any((out / name).is_file() for name in _MODEL_MARKERS):
            raise _fail(f"--out {str(out)!r} does not look like a model folder textlatent wrote (none of "
                        f"{', '.join(_MODEL_MARKERS)}), and --overwrite would replace all it holds; empty it "
                        "yourself or choose another folder")


class _Interruptions:
    """Ctrl-C and SIGTERM as KeyboardInterrupt, except inside :meth:`held` sections, where they wait
    and are raised by :meth:`raise_pending`. Python runs signal handlers in the main thread whichever
    thread the signal reached (torch's workers included), so this holds where a signal mask would
    not. Installed only in the main thread; elsewhere signals keep their handlers."""

    def __init__(self) -> None:
        import threading

        self.active = threading.current_thread() is threading.main_thread()
        self.holding = self.pending = False
        self.previous: dict[int, Any] = {}

    def _handler(self, signum: int, frame: Any) -> None:
        if self.holding:
            self.pending = True
        else:
            raise KeyboardInterrupt

    def __enter__(self) -> _Interruptions:
        import signal

        if self.active:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.getsignal(sig)
                signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        import signal

        for sig, handler in self.previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        self.holding = True
        try:
            yield
        finally:
            self.holding = False

    def raise_pending(self) -> None:
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt


@contextlib.contextmanager
def _output_lock(out: Path, option: str = "--out") -> Iterator[None]:
    """One run at a time per --out (or the folder a command named by ``option`` writes into): an
    exclusive lock on a file named after OUT's resolved path, in the cache folder (not in OUT, which
    then stays exactly what the run wrote, nor beside it, where the parent may not be writable). The
    operating system releases it when the process ends, however it ends. Where no lock can be taken
    (no fcntl, an unwritable cache), the run goes on unlocked."""
    import hashlib

    try:
        import fcntl
    except ImportError:  # not a POSIX system
        yield
        return
    from textlatent.cache import cache_root

    key = hashlib.sha256(str(out.expanduser().resolve()).encode("utf-8", "surrogatepass")).hexdigest()[:24]
    try:
        folder = cache_root() / "locks"
        folder.mkdir(parents=True, exist_ok=True)
        handle = open(folder / f"{key}.lock", "a+", encoding="utf-8")  # noqa: SIM115 (held across the yield)
    except OSError:
        yield
        return
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip()
            raise _fail(f"{option} {str(out)!r} is being written by another textlatent run"
                        f"{f' (process {holder})' if holder.isdigit() else ''}; wait for it to end or choose "
                        "another folder") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _replacing(out: Path, overwrite: bool) -> Iterator[None]:
    """Around the work that writes a training run's --out, which one run at a time may do
    (:func:`_output_lock`: a second run on the same OUT is refused before it moves anything).
    With --overwrite, what OUT held is moved
    into a hidden folder inside it, deleted once the run has succeeded, and moved back if the run
    fails, is interrupted (Ctrl-C) or is terminated (SIGTERM). OUT then holds the new model only: no
    file of the old one (a transfer axis fitted to its latent space, say) survives beside the new.
    A failed run's own files, if it wrote any (a checkpoint to --resume), are kept in another hidden
    folder inside OUT, and both paths are printed. Working inside OUT (the symlink's target, if it
    is one) needs no write access to its parent and no rename across file systems. Both hidden
    folders exist before the run starts, so putting things back only renames (a full disk cannot
    stop it), and Ctrl-C or SIGTERM wait while files are being moved."""
    with _output_lock(out), _setting_aside(out, overwrite):
        yield


@contextlib.contextmanager
def _setting_aside(out: Path, overwrite: bool) -> Iterator[None]:
    """The --overwrite part of :func:`_replacing`."""
    if not (overwrite and out.is_dir() and any(out.iterdir())):
        yield
        return
    import shutil
    import tempfile

    folder = out.resolve()
    with _Interruptions() as interruptions:
        with interruptions.held():
            made: list[Path] = []
            try:
                for prefix in (".textlatent-replaced-", ".textlatent-interrupted-"):
                    made.append(Path(tempfile.mkdtemp(prefix=prefix, dir=folder)))
            except OSError as exc:
                for path in made:
                    path.rmdir()
                raise _fail(f"--overwrite: cannot set aside what {str(out)!r} holds ({exc})") from None
            aside, kept = made
            moved: list[Path] = []
            try:
                for entry in sorted(folder.iterdir()):
                    if entry not in (aside, kept):
                        entry.rename(aside / entry.name)
                        moved.append(entry)
            except OSError as exc:
                for entry in moved:
                    (aside / entry.name).rename(entry)
                aside.rmdir()
                kept.rmdir()
                raise _fail(f"--overwrite: cannot set aside what {str(out)!r} holds ({exc}); nothing was "
                            "changed") from None
        try:
            interruptions.raise_pending()  # a signal that came while files moved: rolled back below
            typer.echo(f"--overwrite: what {out} held is kept in {aside} until this run succeeds", err=True)
            yield
        except BaseException:
            with interruptions.held():
                try:
                    folder.mkdir(parents=True, exist_ok=True)
                    partial = [e for e in folder.iterdir() if e not in (aside, kept)]
                    for entry in partial:
                        entry.rename(kept / entry.name)
                    for entry in aside.iterdir():
                        entry.rename(folder / entry.name)
                    aside.rmdir()
                    if not partial:
                        kept.rmdir()
                    typer.echo(f"--overwrite: the run did not finish; {out} holds what it held before"
                               + (f". This run's files are in {kept}: move that folder out of {out} to keep or "
                                  "--resume it (--resume on OUT would continue the earlier model)" if partial
                                  else ""), err=True)
                except OSError as exc:
                    typer.echo(f"--overwrite: the run did not finish, and putting back what {out} held failed "
                               f"({exc}); the earlier files are in {aside}, this run's in {kept} or at the top "
                               f"of {out}", err=True)
            raise
        with interruptions.held():  # the run succeeded: a late Ctrl-C does not undo it
            try:
                kept.rmdir()
                shutil.rmtree(aside)
            except OSError as exc:
                typer.echo(f"--overwrite: the new model is saved, but {aside} (the earlier files) could not be "
                           f"deleted ({exc}); delete it by hand", err=True)


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code)


def _run(fn: Any) -> Any:
    """Call ``fn``; turn the errors a user can cause into 'error: …' and exit code 2."""
    from pydantic import ValidationError

    try:
        return fn()
    except TextLatentError as exc:
        raise _fail(exc.message) from None
    except ValidationError as exc:  # a bad TEXTLATENT_* setting
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors())
        raise _fail(f"invalid setting: {problems}") from None
    except UnicodeDecodeError as exc:
        raise _fail(f"input is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise _fail(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")) from None


@app.callback()
def main_options(
    index_dir: Annotated[
        Path | None, typer.Option(help="Folder of collections \\[env TEXTLATENT_INDEX_DIR, default ./indexes]")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Model folder to use \\[env TEXTLATENT_MODEL, default bundled MiniLM]")
    ] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda, cuda:N \\[env TEXTLATENT_DEVICE]")] = None,
    threads: Annotated[int | None, typer.Option(min=1, help="CPU threads for torch \\[env TEXTLATENT_THREADS]")] = None,
) -> None:
    """textlatent: embeddings, FAISS collections and an OpenAI-compatible API."""
    _State.overrides = {"index_dir": index_dir, "model": model, "device": device, "threads": threads}


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind \\[env TEXTLATENT_HOST]")] = None,
    port: Annotated[int | None, typer.Option(help="Port \\[env TEXTLATENT_PORT]")] = None,
    api_keys: Annotated[
        str | None, typer.Option(help="Comma-separated API keys \\[env TEXTLATENT_API_KEYS]", show_default=False)
    ] = None,
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs)."""
    import uvicorn

    from api.app import create_app

    _State.overrides.update({"host": host, "port": port, "api_keys": api_keys})
    settings = _State.settings()
    typer.echo(f"textlatent: serving {settings.index_dir.resolve()} on http://{settings.host}:{settings.port}",
               err=True)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info")


@app.command()
def embed(
    texts: Annotated[
        list[str] | None, typer.Argument(help="Texts to embed; none or '-' reads lines from stdin")
    ] = None,
    dimensions: Annotated[int | None, typer.Option(min=1, help="Keep the first n dimensions, re-normalised")] = None,
) -> None:
    """Print one JSON object per text: {"index", "embedding", "truncated"}."""
    items = texts or ["-"]
    if items == ["-"]:
        items = _run(lambda: [line.rstrip("\n") for line in sys.stdin if line.strip()])
    service = _State.service()
    result = _run(lambda: service.embed(items, dimensions=dimensions))
    cut = set(result.truncated)
    for i, vec in enumerate(result.vectors):
        typer.echo(json_out({"index": i, "embedding": [round(float(x), 7) for x in vec], "truncated": i in cut}))
    if cut:
        typer.echo(f"note: {len(cut)} text(s) were longer than the model's token limit and were truncated", err=True)


@collection_app.command("create")
def collection_create(
    name: Annotated[str, typer.Argument(help="Plain identifier: letters, digits, '_' and '-'")],
    index: Annotated[str, typer.Option(help="FAISS index_factory string")] = "Flat",
) -> None:
    """Create a collection (no-op if it exists with the same settings)."""
    service = _State.service()
    info, created = _run(lambda: service.create_collection(name, index=index, model=_State.overrides.get("model")))
    typer.echo(f"{'created' if created else 'exists'}: {info['name']} (index {info['index']}, dim {info['dim']}, "
               f"model {info['model']})")


@collection_app.command("list")
def collection_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False) -> None:
    """List collections with their sizes."""
    infos = _run(_State.service().list_collections)
    if as_json:
        typer.echo(json_out(infos))
        return
    if not infos:
        typer.echo("no collections")
    for c in infos:
        typer.echo(f"{c['name']:<24} {c['count']:>9} docs  index={c['index']}  dim={c['dim']}  model={c['model']}")


@collection_app.command("delete")
def collection_delete(
    name: str, yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation")] = False
) -> None:
    """Delete a collection and all its documents."""
    service = _State.service()
    if not _run(lambda: service.has_collection(name)):
        raise _fail(f"collection {name!r} does not exist")
    if not yes and not typer.confirm(f"Delete collection {name!r} and all its documents?"):
        raise typer.Exit(1)
    _run(lambda: service.delete_collection(name))
    typer.echo(f"deleted: {name}")


@app.command()
def add(
    name: Annotated[str, typer.Argument(help="Collection name")],
    file: Annotated[Path, typer.Argument(help="JSONL or CSV file of documents")],
    fmt: Annotated[str, typer.Option("--format", help="auto, jsonl or csv")] = "auto",
    id_field: Annotated[str | None, typer.Option(help="Id field \\[default: id, else _id]")] = None,
    text_field: Annotated[str, typer.Option(help="Text field")] = "text",
    title_field: Annotated[str, typer.Option(help="Optional title field put before the text ('' for none)")] = "title",
    batch_size: Annotated[int, typer.Option(min=1, help="Documents per write")] = 256,
    create: Annotated[bool, typer.Option("--create", help="Create the collection if it does not exist")] = False,
    index: Annotated[str, typer.Option(help="Index factory string when --create makes the collection")] = "Flat",
) -> None:
    """Embed and upsert documents from a file (re-adding an id replaces it)."""
    import time

    service = _State.service()
    start = time.perf_counter()
    with _ensure_collection(service, name, create=create, index=index):
        n = _run(lambda: service.add_file(name, file, fmt=fmt, id_field=id_field, text_field=text_field,
                                          title_field=title_field or None, batch_size=batch_size))
    took = time.perf_counter() - start
    typer.echo(f"added {n} documents to {name} in {took:.1f} s ({n / max(took, 1e-9):.0f} docs/s); "
               f"{service.collection(name).count()} in total")


def _parse_filter(pairs: list[str] | None) -> dict[str, Any] | None:
    if not pairs:
        return None
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise _fail(f"--filter takes key=value, got {pair!r}")
        try:
            value = json.loads(raw)  # numbers, true/false, null, "quoted strings"
            if isinstance(value, list | dict):
                value = raw
        except json.JSONDecodeError:
            value = raw
        out[key] = value
    return out


@app.command()
def search(
    name: Annotated[str, typer.Argument(help="Collection name")],
    query: Annotated[str, typer.Argument(help="Text to search for")],
    k: Annotated[int, typer.Option("-k", "--k", min=1, help="Number of results")] = 10,
    filter: Annotated[
        list[str] | None, typer.Option("--filter", help="key=value metadata equality; repeatable")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    mode: Annotated[str, typer.Option(help="dense, bm25 or hybrid")] = "dense",
    rerank: Annotated[bool, typer.Option("--rerank", help="Rerank with TEXTLATENT_RERANKER")] = False,
) -> None:
    """Top-k documents of a collection for a text query."""
    conditions = _parse_filter(filter)
    service = _State.service()
    hits = _run(lambda: service.search(name, query=query, k=k, filter=conditions, mode=mode, rerank=rerank))
    if as_json:
        typer.echo(json_out([h.__dict__ for h in hits], ensure_ascii=False))
        return
    if not hits:
        typer.echo("no results")
    width = 100
    for rank, h in enumerate(hits, start=1):
        snippet = " ".join(h.text.split())
        snippet = snippet if len(snippet) <= width else snippet[: width - 1] + "…"
        typer.echo(f"{rank:>3}. {h.score:.4f}  [{h.id}]  {snippet}")


# --------------------------------------------------------------------------- eval

eval_app = typer.Typer(help="Score an encoder on public benchmarks (MTEB protocol).", no_args_is_help=True)
app.add_typer(eval_app, name="eval")

DataDirOption = Annotated[
    Path,
    typer.Option(
        "--data-dir", envvar="TEXTLATENT_DATA_DIR", help="Benchmark folder laid out like ../shared/data"
    ),
]
EvalModelOption = Annotated[
    str | None,
    typer.Option("--model", help="Sentence-transformers model folder \\[default: the global --model, else bundled]"),
]
EvalJsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object (the last line of stdout)")]
EvalBatchOption = Annotated[int | None, typer.Option("--batch-size", min=1, help="Encoder batch size")]


def _eval_encoder(model: str | None, batch_size: int | None) -> Any:
    from textlatent.encoder import Encoder

    settings = _State.settings()
    spec = model if model is not None else settings.model
    typer.echo(f"loading encoder {spec or 'all-MiniLM-L6-v2 (bundled)'} ...", err=True)
    return _run(lambda: Encoder(spec, device=settings.device, threads=settings.threads,
                                batch_size=batch_size or settings.batch_size, precision=settings.precision))


def _print_result(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json_out(result))
        return
    for key, value in result.items():
        typer.echo(f"{key:<16} {value}")


@eval_app.command("sts")
def eval_sts(
    split: Annotated[str, typer.Option(help="train, dev or test")] = "test",
    data_dir: DataDirOption = Path("../shared/data"),
    model: EvalModelOption = None,
    as_json: EvalJsonOption = False,
    batch_size: EvalBatchOption = None,
) -> None:
    """STS Benchmark: Spearman (x100) of cosine similarity against the gold scores."""
    from textlatent.eval import evaluate_sts, load_stsb

    data = _run(lambda: load_stsb(data_dir, split))
    encoder = _eval_encoder(model, batch_size)
    result = _run(lambda: evaluate_sts(encoder, data, batch_size=batch_size, split=split))
    _print_result(result, as_json)


@eval_app.command("beir")
def eval_beir(
    dataset: Annotated[str, typer.Option("--dataset", help="Folder under --data-dir in the BEIR layout")],
    split: Annotated[str, typer.Option(help="Qrels split: qrels/<split>.tsv")] = "test",
    data_dir: DataDirOption = Path("../shared/data"),
    model: EvalModelOption = None,
    as_json: EvalJsonOption = False,
    batch_size: EvalBatchOption = None,
    mode: Annotated[str, typer.Option(help="dense, bm25 or hybrid (fusion of both)")] = "dense",
    rerank: Annotated[Path | None, typer.Option(help="Reranker folder from `textlatent rerank train`")] = None,
    rerank_top: Annotated[
        int | None, typer.Option(min=1, help="Candidates to rerank \\[default: the reranker's]")
    ] = None,
    fusion: Annotated[str, typer.Option(help="hybrid fusion: weighted (min-max scores) or rrf")] = "weighted",
    alpha: Annotated[float, finite_option(min=0.0, max=1.0, help="weight of dense in weighted fusion")] = 0.4,
) -> None:
    """BEIR retrieval: nDCG@10 and Recall@100 over the whole corpus (dense, BM25 or hybrid; reranked)."""
    from textlatent.eval import evaluate_beir, load_beir

    if mode not in ("dense", "bm25", "hybrid"):
        raise _fail(f"--mode must be dense, bm25 or hybrid, got {mode!r}")
    if fusion not in ("weighted", "rrf"):  # said before minutes of indexing and embedding
        raise _fail(f"--fusion must be weighted or rrf, got {fusion!r}")
    if mode != "hybrid" and (fusion != "weighted" or alpha != 0.4):
        raise _fail(f"--fusion and --alpha fuse the runs of --mode hybrid; they mean nothing with --mode {mode}")
    if rerank_top is not None and rerank is None:
        raise _fail("--rerank-top needs --rerank DIR")
    data = _run(lambda: load_beir(data_dir, dataset, split))
    typer.echo(f"{data.name}/{split}: {len(data.corpus)} documents, {len(data.queries)} queries", err=True)
    encoder = _eval_encoder(model, batch_size) if mode != "bm25" else None
    reranker = None
    if rerank is not None:
        from textlatent.retrieval.rerank import Reranker

        reranker = _run(lambda: Reranker(rerank, device=_State.settings().device))
    top = rerank_top or (reranker.top_n if reranker is not None else 10)
    result = _run(lambda: evaluate_beir(encoder, data, mode=mode, reranker=reranker, rerank_top=top, fusion=fusion,
                                        alpha=alpha, batch_size=batch_size, show_progress=True, cache=True))
    _print_result(result, as_json)


# --------------------------------------------------------------------------- finetune

finetune_app = typer.Typer(help="Fine-tune the encoder (sentence-transformers trainer).", no_args_is_help=True)
app.add_typer(finetune_app, name="finetune")


def _print_finetune(result: Any, as_json: bool) -> None:
    from dataclasses import asdict

    payload = asdict(result)
    if as_json:
        typer.echo(json_out(payload))
        return
    typer.echo(f"saved {payload['out']} ({payload['steps']} steps, {payload['seconds']:.0f} s on {payload['device']}); "
               f"load it with --model {payload['out']} or TEXTLATENT_MODEL={payload['out']}")


def _check_lr(lr: float) -> None:
    if not lr > 0:
        raise _fail(f"--lr must be above 0, got {lr}")


@finetune_app.command("sts")
def finetune_sts_cmd(
    out: Annotated[Path, typer.Option("--out", help="Folder to save the fine-tuned model to")],
    data_dir: DataDirOption = Path("../shared/data"),
    model: EvalModelOption = None,
    loss: Annotated[str, typer.Option(help="cosent, angle or cosine")] = "cosent",
    epochs: Annotated[float, finite_option(min=0.01, help="Training epochs")] = 2.0,
    batch_size: Annotated[int, typer.Option(min=1)] = 16,
    lr: Annotated[float, finite_option(min=0.0, help="Learning rate")] = 2e-5,
    seed: Annotated[int, typer.Option(min=0, max=MAX_SEED)] = 42,
    max_steps: Annotated[int | None, typer.Option(min=1, help="Train for this many steps instead of --epochs "
                                                            "(dev is then scored once, at the end)")] = None,
    overwrite: OverwriteOption = False,
    as_json: EvalJsonOption = False,
) -> None:
    """STS-B train with CoSENT (or AnglE) loss; keeps the epoch with the best STS-B dev Spearman."""
    from textlatent.finetune import finetune_sts

    settings = _State.settings()
    _check_lr(lr)
    _check_out(out, overwrite=overwrite, model=model or settings.model)
    with _replacing(out, overwrite):
        result = _run(lambda: finetune_sts(out, data_dir=data_dir, model=model or settings.model, loss=loss,
                                           epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                                           device=settings.device, max_steps=max_steps))
    _print_finetune(result, as_json)


@finetune_app.command("retrieval")
def finetune_retrieval_cmd(
    out: Annotated[Path, typer.Option("--out", help="Folder to save the fine-tuned model to")],
    dataset: Annotated[str, typer.Option("--dataset", help="BEIR folder under --data-dir with qrels/train.tsv")],
    data_dir: DataDirOption = Path("../shared/data"),
    model: EvalModelOption = None,
    epochs: Annotated[float, finite_option(min=0.01, help="Training epochs")] = 1.0,
    batch_size: Annotated[int, typer.Option(min=2)] = 16,
    lr: Annotated[float, finite_option(min=0.0, help="Learning rate")] = 2e-5,
    negatives: Annotated[int, typer.Option(min=1, help="Hard negatives per pair")] = 1,
    range_max: Annotated[
        int, typer.Option(min=1, help="Mine negatives among the starting model's top N documents")
    ] = 100,
    dev_fraction: Annotated[
        float, finite_option(min=0.0, max=0.9, help="Share of train queries held out to pick the best epoch")
    ] = 0.0,
    seed: Annotated[int, typer.Option(min=0, max=MAX_SEED)] = 42,
    max_steps: Annotated[int | None, typer.Option(min=1, help="Train for this many steps instead of --epochs "
                                                            "(held-out queries are then scored once, at the end)")]
    = None,
    overwrite: OverwriteOption = False,
    as_json: EvalJsonOption = False,
) -> None:
    """MultipleNegativesRanking loss on the train qrels, hard negatives mined by the starting model."""
    from textlatent.finetune import finetune_retrieval

    settings = _State.settings()
    _check_lr(lr)
    if negatives > range_max:
        raise _fail(f"--negatives {negatives} cannot be mined from the top --range-max {range_max} documents; "
                    "raise --range-max or lower --negatives")
    _check_out(out, overwrite=overwrite, model=model or settings.model)
    with _replacing(out, overwrite):
        result = _run(lambda: finetune_retrieval(
            out, dataset=dataset, data_dir=data_dir, model=model or settings.model, epochs=epochs,
            batch_size=batch_size, lr=lr, negatives=negatives, range_max=range_max, seed=seed,
            device=settings.device, max_steps=max_steps, dev_fraction=dev_fraction))
    _print_finetune(result, as_json)


# Command groups that live in their own modules (imported here, after everything they use).
from textlatent import cli_sentiment  # noqa: E402,F401  (registers `sentiment`, `score`, `eval sentiment`)
from textlatent.cli_optimus import train_optimus_cmd  # noqa: E402,F401  (registers `vae train-optimus`, `eval-optimus`)
from textlatent.cli_retrieval import register as _register_retrieval  # noqa: E402
from textlatent.cli_vae import vae_app  # noqa: E402

_register_retrieval(app, _State, _run, _fail)  # `ingest`, `rerank train`
app.add_typer(vae_app, name="vae")
from textlatent import cli_transfer  # noqa: E402,F401  (registers `transfer`, `fit-transfer`, `eval transfer`)
from textlatent.cli_anomaly import register as _register_anomaly  # noqa: E402

_register_anomaly(app, eval_app)  # `outliers`, `eval ood`, `eval compression`


def main() -> None:
    from textlatent.models import set_offline_defaults

    set_offline_defaults()
    app()


if __name__ == "__main__":
    # `python -m textlatent.cli` runs this file as __main__, while the command modules above
    # register on the `textlatent.cli` module they import: run that one, so every command exists.
    from textlatent.cli import main as _main

    _main()
