"""``textlatent sentiment train``, ``textlatent eval sentiment`` and ``textlatent score``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

import typer

from textlatent.cli import DataDirOption, EvalJsonOption, _fail, _print_result, _run, _State, app, eval_app
from textlatent.cli_options import OverwriteOption, finite_option, json_out
from textlatent.sentiment.heads import SCORE_BATCH_SIZE
from textlatent.vae.limits import MAX_SEED

sentiment_app = typer.Typer(help="Train sentiment heads over the latent space.", no_args_is_help=True)
app.add_typer(sentiment_app, name="sentiment")

SentimentModelOption = Annotated[
    Path | None,
    typer.Option("--model", help="Sentiment model folder \\[env TEXTLATENT_SENTIMENT_MODEL, default: bundled head]"),
]


def _sentiment_model(model: Path | None) -> str | None:
    if model is not None:
        return str(model)
    return _State.settings().sentiment_model


FINETUNE_ONLY = ("epochs", "max_minutes", "batch_size", "lr", "eval_steps", "group_by_length", "precision", "pooling",
                 "init_head")


@sentiment_app.command("train")
def sentiment_train(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", help="Folder to save the head to")],
    head: Annotated[Literal["linear", "finetune"],
                    typer.Option("--head", help="linear (frozen encoder) or finetune (whole encoder)")] = "linear",
    data_dir: DataDirOption = Path("../shared/data"),
    base: Annotated[str | None, typer.Option("--base", help="Encoder folder \\[default: global --model or bundled]")]
    = None,
    epochs: Annotated[float, finite_option(
        min=0.01, help="finetune: training epochs (on a CPU the time budget usually ends it first; the learning "
                       "rate decays to whichever end comes first)")] = 3.0,
    max_minutes: Annotated[
        float | None, finite_option(min=0.1, help="finetune: stop at this wall-clock budget [CPU default 40]")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="finetune: training batch size")] = 32,
    lr: Annotated[float, finite_option(min=0.0, help="finetune: learning rate")] = 8e-5,
    eval_steps: Annotated[int, typer.Option(min=1, help="finetune: evaluate on dev every N steps")] = 500,
    seed: Annotated[int, typer.Option(min=0, max=MAX_SEED)] = 42,
    normalize: Annotated[Literal["treebank", "none"], typer.Option(
        help="text normalisation before encoding, stored with the head (either kind) and applied to everything "
             "it scores; treebank undoes Penn-Treebank tokenisation (SST-2's \"does n't\" , -lrb-)")] = "treebank",
    group_by_length: Annotated[bool, typer.Option(
        "--group-by-length/--no-group-by-length",
        help="finetune: batch phrases of similar length together (~2.9x less padding on SST-2 train, so more "
             "steps in a CPU budget)")] = True,
    precision: Annotated[Literal["auto", "fast", "fp32", "bf16"], typer.Option(
        help="finetune: training arithmetic; auto = bf16 autocast on cuda, fp32 on a CPU; fast = bf16 wherever "
             "the hardware computes it natively (cuda, AVX512-BF16 or AMX CPUs)")] = "auto",
    pooling: Annotated[Literal["mean", "cls"], typer.Option(
        help="finetune: classify from the encoder's own sentence embedding (mean of its token states), starting "
             "from a linear head, or from the [CLS] token with a fresh classifier (transformers' default)")] = "mean",
    init_head: Annotated[Path | None, typer.Option(
        "--init-head", help="finetune --pooling mean: the linear head to start from, trained for the same encoder "
                            "\\[default: the bundled head, for the bundled encoder]", show_default=False)] = None,
    overwrite: OverwriteOption = False,
    as_json: EvalJsonOption = False,
) -> None:
    """Train on SST-2 train, select on SST-2 dev (the test split is never read)."""
    from textlatent.cli import _check_lr, _check_out, _replacing
    from textlatent.models import resolve_device, resolve_model_path
    from textlatent.sentiment.train import train_finetuned, train_linear

    settings = _State.settings()
    encoder = base or settings.model
    if head == "linear":  # options the linear head has no use for are refused, not silently ignored
        given = [f"--{name.replace('_', '-')}" for name in FINETUNE_ONLY  # by name: typer may bundle its own click
                 if getattr(ctx.get_parameter_source(name), "name", "DEFAULT") not in ("DEFAULT", "DEFAULT_MAP")]
        if given:
            raise _fail(f"{', '.join(given)} apply to --head finetune only; the linear head is a logistic "
                        "regression whose C is chosen on dev")
    _check_lr(lr)
    _run(lambda: resolve_model_path(encoder))  # a missing --base is said before --out is touched
    if head == "finetune":  # so is a linear head it cannot start from
        from textlatent.sentiment.train import starting_head

        _run(lambda: starting_head(pooling, encoder, init_head))
    _check_out(out, overwrite=overwrite, model=encoder)
    device = _run(lambda: resolve_device(settings.device))
    if head not in ("linear", "finetune"):
        raise _fail(f"--head must be linear or finetune, got {head!r}")
    with _replacing(out, overwrite):
        if head == "linear":
            result = _run(lambda: train_linear(out, data_dir, model=encoder, device=settings.device, seed=seed,
                                               normalize=normalize, threads=settings.threads))
        else:
            budget = max_minutes
            if budget is None and device == "cpu":
                budget = 40.0
            result = _run(lambda: train_finetuned(out, data_dir, base=encoder, epochs=epochs, max_minutes=budget,
                                                  batch_size=batch_size, learning_rate=lr, eval_steps=eval_steps,
                                                  seed=seed, device=settings.device, normalize=normalize,
                                                  group_by_length=group_by_length, precision=precision,
                                                  pooling=pooling, init_head=init_head))
    if as_json:
        typer.echo(json_out(result))
    else:
        typer.echo(f"saved {result['out']}: dev accuracy {result['dev']['accuracy']:.4f}, "
                   f"F1 {result['dev']['f1']:.4f} ({result['wall_seconds']:.0f} s); "
                   f"use it with --model {result['out']} or TEXTLATENT_SENTIMENT_MODEL={result['out']}")


@eval_app.command("sentiment")
def eval_sentiment(
    model: SentimentModelOption = None,
    dataset: Annotated[str, typer.Option(help="sst2-dev (GLUE dev) or sst2-test (Kim's labelled test)")]
    = "sst2-dev",
    data_dir: DataDirOption = Path("../shared/data"),
    precision: Annotated[str | None, typer.Option(
        help="auto (bf16 autocast on cuda, fp32 on a CPU), fast (what `score` computes by default: bf16 where the "
             "hardware does it natively), fp32, bf16, or int8 (as `score --precision int8`) "
             "\\[default: TEXTLATENT_PRECISION, else auto]",
        show_default=False)] = None,
    as_json: EvalJsonOption = False,
) -> None:
    """Accuracy, F1 and expected calibration error of a sentiment model on SST-2."""
    from textlatent.eval.loaders import require_data_dir
    from textlatent.sentiment import load_sentiment_model, open_for_scoring
    from textlatent.sentiment.heads import scoring_precision
    from textlatent.sentiment.train import EVAL_DATASETS, evaluate_sentiment

    if dataset not in EVAL_DATASETS:
        raise _fail(f"--dataset must be one of {', '.join(EVAL_DATASETS)}, got {dataset!r}")
    _run(lambda: require_data_dir(data_dir))  # fail before the model loads
    settings = _State.settings()
    spec = _sentiment_model(model)
    arithmetic = _run(lambda: scoring_precision(precision or settings.precision, settings.device))
    if arithmetic == "int8":  # the encoder quantised for onnxruntime, run as `score --precision int8` runs it
        head = _run(lambda: open_for_scoring(spec, device=settings.device, precision="int8",
                                             threads=settings.threads, batch_size=SCORE_BATCH_SIZE))
    else:
        head = _run(lambda: load_sentiment_model(spec, device=settings.device, precision=arithmetic,
                                                 batch_size=SCORE_BATCH_SIZE))
    result = _run(lambda: evaluate_sentiment(head, data_dir, dataset))
    _print_result({**result, "precision": arithmetic, "batch_size": SCORE_BATCH_SIZE}, as_json)


@app.command()
def score(
    input_file: Annotated[Path, typer.Argument(metavar="INPUT", help="CSV, JSONL or Parquet file")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output file, same format as INPUT")],
    text_column: Annotated[str, typer.Option("--text-column", help="Column (or JSON key) holding the text")]
    = "text",
    model: SentimentModelOption = None,
    chunk_size: Annotated[int, typer.Option(min=1, help="Rows read, scored and written at a time")] = 2048,
    batch_size: Annotated[int, typer.Option(min=1, help="Encoder batch size")] = SCORE_BATCH_SIZE,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Inference processes, one thread each \\[default: CPU cores, at most 8]")
    ] = None,
    backend: Annotated[str, typer.Option(help="auto (see --precision), onnx or torch")] = "auto",
    precision: Annotated[str, typer.Option(
        help="fast: bf16 autocast where the hardware computes bf16 natively (cuda; CPUs with AVX512-BF16 or "
             "AMX), else fp32 (onnxruntime on a CPU); or fp32, bf16, auto (bf16 on cuda only, as the server), "
             "int8 (a linear head's encoder quantised for onnxruntime: fastest on a CPU, lossy, and a row's score "
             "depends on its batch)")]
    = "fast",
    prefix: Annotated[str, typer.Option(help="Prefix for the added label/score/error columns")] = "",
    overwrite: Annotated[bool, typer.Option(help="Replace OUTPUT instead of resuming it")] = False,
    as_json: EvalJsonOption = False,
) -> None:
    """Score every row; bad rows get an `error` column; re-running resumes an interrupted run."""
    from textlatent.models import resolve_device
    from textlatent.scoring import check_score_request, score_file
    from textlatent.sentiment.heads import ParallelPredictor

    settings = _State.settings()
    # a missing INPUT, a wrong column or prefix, an OUTPUT in no folder: said before the workers start
    _run(lambda: check_score_request(input_file, output, text_column=text_column, prefix=prefix,
                                     chunk_size=chunk_size))
    spec = _sentiment_model(model)
    on_cpu = resolve_device(settings.device) == "cpu"
    n_workers = workers or (min(os.cpu_count() or 1, 8) if on_cpu else 1)
    predictor = _run(lambda: ParallelPredictor(spec, workers=n_workers, backend=backend, batch_size=batch_size,
                                               device=settings.device, precision=precision))
    try:
        report = _run(lambda: score_file(input_file, output, predictor, model_id=predictor.model_id,
                                         precision=predictor.precision,
                                         text_column=text_column, chunk_size=chunk_size, prefix=prefix,
                                         overwrite=overwrite, in_flight=2 * n_workers))
    finally:
        predictor.close()
    if as_json:
        typer.echo(json_out(report.as_dict()))
        return
    if report.already_complete:
        typer.echo(f"{output} is already complete ({report.rows:,} rows); --overwrite to score again")
        return
    resumed = f", resumed after {report.skipped_resumed:,}" if report.skipped_resumed else ""
    marked = f"{report.errors:,} row{'' if report.errors == 1 else 's'} marked in 'error'"
    typer.echo(f"scored {report.scored:,} of {report.rows:,} rows into {output} "
               f"({report.rows_per_second:,.0f} rows/s{resumed}); {marked}")
    for example in report.error_examples:
        typer.echo(f"  e.g. {example}", err=True)
