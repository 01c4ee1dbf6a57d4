"""``textlatent ingest`` and ``textlatent rerank train``: chunked ingestion and the reranker.

:func:`register` adds them to the main app; it is handed the main module's helpers rather than
importing :mod:`textlatent.cli`, so ``python -m textlatent.cli`` (where that module runs as
``__main__``) works too. The same thin shape as the rest of the CLI: parse, call, print.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer

from textlatent.cli_options import OverwriteOption, finite_option, json_out
from textlatent.vae.limits import MAX_SEED

DataDirOption = Annotated[
    Path, typer.Option("--data-dir", envvar="TEXTLATENT_DATA_DIR", help="Benchmark folder laid out like ../shared/data")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object (the last line of stdout)")]
ModelOption = Annotated[
    str | None,
    typer.Option("--model", help="Sentence-transformers model folder \\[default: the global --model, else bundled]"),
]


def register(app: typer.Typer, state: Any, run: Any, fail: Any) -> None:
    """Add ``ingest`` and ``rerank train`` to ``app``; ``state``/``run``/``fail`` are the main CLI's
    settings holder, error wrapper and error exit."""
    rerank_app = typer.Typer(help="Train the cross-encoder reranker.", no_args_is_help=True)
    app.add_typer(rerank_app, name="rerank")

    @app.command("ingest")
    def ingest(
        name: Annotated[str, typer.Argument(help="Collection name")],
        source: Annotated[Path, typer.Argument(help="JSONL or CSV file, or a folder of .txt/.md files")],
        chunk_tokens: Annotated[int, typer.Option(min=8, help="Most encoder tokens per chunk")] = 200,
        overlap: Annotated[int, typer.Option(min=0, help="Tokens shared by consecutive chunks")] = 40,
        fmt: Annotated[str, typer.Option("--format", help="auto, jsonl or csv (files only)")] = "auto",
        id_field: Annotated[str | None, typer.Option(help="Id field \\[default: id, else _id]")] = None,
        text_field: Annotated[str, typer.Option(help="Text field")] = "text",
        title_field: Annotated[
            str, typer.Option(help="Optional title field put before the text ('' for none)")
        ] = "title",
        batch_size: Annotated[int, typer.Option(min=1, help="Documents per write")] = 64,
        create: Annotated[bool, typer.Option("--create", help="Create the collection if it does not exist")] = False,
        index: Annotated[str, typer.Option(help="Index factory string when --create makes the collection")] = "Flat",
        as_json: JsonOption = False,
    ) -> None:
        """Chunk long documents (token-aware, overlapping, with offsets), embed and upsert them."""
        from textlatent.cli import _ensure_collection
        from textlatent.retrieval.ingest import ingest as run_ingest

        service = state.service()
        options: dict[str, Any] = {} if source.is_dir() else dict(fmt=fmt, id_field=id_field, text_field=text_field,
                                                    title_field=title_field or None)
        with _ensure_collection(service, name, create=create, index=index):
            result = run(lambda: run_ingest(service, name, source, max_tokens=chunk_tokens, overlap=overlap,
                                             batch_size=batch_size, **options))
        if as_json:
            typer.echo(json_out(asdict(result)))
            return
        typer.echo(f"ingested {result.documents} documents as {result.chunks} chunks into {name} in "
                   f"{result.seconds:.1f} s ({result.empty} empty, {result.stale_deleted} stale chunks removed)")


    @rerank_app.command("train")
    def rerank_train(
        out: Annotated[Path, typer.Option("--out", help="Folder to save the reranker to")],
        dataset: Annotated[str, typer.Option("--dataset", help="BEIR folder under --data-dir with qrels/train.tsv")],
        data_dir: DataDirOption = Path("../shared/data"),
        model: ModelOption = None,
        epochs: Annotated[float, finite_option(min=0.01, help="Training epochs")] = 1.0,
        negatives: Annotated[int, typer.Option(min=1, help="Hard negatives per query, from our hybrid retriever")] = 3,
        mine_top: Annotated[int, typer.Option(min=2, help="Draw negatives from this many top hybrid results")] = 30,
        top_n: Annotated[int, typer.Option(min=1, help="Candidates the reranker reorders at query time")] = 10,
        batch_size: Annotated[int, typer.Option(min=2)] = 16,
        lr: Annotated[float, finite_option(min=0.0, help="Learning rate")] = 3e-5,
        max_length: Annotated[int, typer.Option(min=16, help="Most tokens of query + passage")] = 128,
        heldout: Annotated[float, finite_option(help="Share of train queries held out to choose the blend")] = 0.1,
        seed: Annotated[int, typer.Option(min=0, max=MAX_SEED)] = 13,
        max_steps: Annotated[int | None, typer.Option(min=1, help="Stop after this many steps")] = None,
        max_minutes: Annotated[
            float | None,
            finite_option(min=0.1, help="End training after this many minutes, keeping the model trained so far"),
        ] = 20.0,
        overwrite: OverwriteOption = False,
        as_json: JsonOption = False,
    ) -> None:
        """Train a cross-encoder from the bundled MiniLM weights on train qrels (never test)."""
        from textlatent.cli import _check_lr, _check_out, _replacing
        from textlatent.retrieval.rerank import train_reranker

        settings = state.settings()
        _check_lr(lr)
        _check_out(out, overwrite=overwrite, model=model or settings.model)
        with _replacing(out, overwrite):
            result = run(lambda: train_reranker(
                out, dataset=dataset, data_dir=data_dir, model=model or settings.model, epochs=epochs,
                negatives=negatives, mine_top=mine_top, top_n=top_n, heldout_fraction=heldout,
                batch_size=batch_size, lr=lr, max_length=max_length, max_steps=max_steps, max_minutes=max_minutes,
                device=settings.device, seed=seed))
        if as_json:
            typer.echo(json_out(asdict(result)))
            return
        typer.echo(f"saved {result.out} ({result.steps} steps, {result.seconds:.0f} s on {result.device}); held-out "
                   f"train nDCG@10 {result.heldout_ndcg10}; beta={result.beta}. Use it with --rerank {result.out} "
                   f"or TEXTLATENT_RERANKER={result.out}")

    @rerank_app.command("calibrate")
    def rerank_calibrate(
        folder: Annotated[Path, typer.Argument(help="Reranker folder from `rerank train`")],
        data_dir: DataDirOption = Path("../shared/data"),
        as_json: JsonOption = False,
    ) -> None:
        """Choose the reranker's blend weight again for the current first stage (held-out train queries):
        the encoder set by `textlatent --model` / TEXTLATENT_MODEL, as a server would use it."""
        from textlatent.retrieval.rerank import recalibrate

        settings = state.settings()
        meta = run(lambda: recalibrate(folder, data_dir=data_dir, device=settings.device, model=settings.model))
        if as_json:
            typer.echo(json_out({k: meta[k] for k in ("beta", "heldout_ndcg10", "recalibrated")}))
            return
        typer.echo(f"beta {meta['recalibrated']['beta_before']} → {meta['beta']}; held-out train nDCG@10 "
                   f"{meta['heldout_ndcg10']}")
