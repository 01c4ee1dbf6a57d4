"""``textlatent transfer``, ``textlatent fit-transfer`` and ``textlatent eval transfer``.

Argument parsing and printing only; the work is in :mod:`textlatent.vae.transfer` and
:mod:`textlatent.vae.transfer_eval`. Heavy imports stay inside the commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from textlatent.cli import DataDirOption, EvalJsonOption, _fail, _run, _State, app, eval_app
from textlatent.cli_options import finite_option, json_out
from textlatent.cli_vae import (
    ModelOpt,
    NoRepeatOpt,
    SeedOpt,
    StrategyOpt,
    TemperatureOpt,
    _holding,
    _pipeline,
    _strategy,
    _texts,
)
from textlatent.vae.limits import CONTENT_STEPS, CONTENT_THRESHOLD, MAX_CANDIDATES, MAX_DEGREE, MAX_MOVES, MAX_SEED

if TYPE_CHECKING:
    from textlatent.vae.ops import VAEPipeline

JudgeOpt = Annotated[
    Path | None,
    typer.Option("--judge", help="Sentiment model folder that judges the outputs \\[default: "
                 "TEXTLATENT_SENTIMENT_MODEL, else the shipped linear head]; a fine-tuned one is the better judge",
                 show_default=False),
]
CandidatesOpt = Annotated[int, typer.Option(
    min=1, max=MAX_CANDIDATES, help="Decode each move this many times (greedy + samples) and keep one as --rerank says "
                        "(by default the candidate whose own posterior mean is nearest the moved z); 1 = greedy "
                        "only")]
RerankOpt = Annotated[Literal["round-trip", "content"], typer.Option(
    "--rerank", help="How to choose among candidates: 'round-trip' (the one whose own posterior mean is nearest the "
                     "moved z) or 'content' (decode at degree x 1/4, 2/4, 3/4, 1, CANDIDATES each, and keep the one "
                     "nearest the source, by MiniLM cosine, among those the latent classifier puts at p(target) >= "
                     "--min-p-target)")]
MinPTargetOpt = Annotated[float, finite_option(
    "--min-p-target", min=0.5, max=0.99,
    help="Content reranking: the latent classifier's p(target) a candidate needs to be kept for its closeness to "
         "the source; lower keeps more of the source, higher flips more often")]
MovesOpt = Annotated[int, typer.Option(
    "--moves", min=1, max=MAX_MOVES,
    help="Content reranking: decode at degree × j/N for j = 1 … N, each --candidates times, and keep one over all "
         "of them")]
DegreeOpt = Annotated[float | None, finite_option("--degree", min=0.0, max=MAX_DEGREE, show_default=False,
                                                  help="0 = reconstruction, 1 = a typical sentence of the target "
                                                       "class, 2 = twice as far \\[default: the model's fitted one]")]


def _judge(judge: Path | None, pipeline: VAEPipeline) -> tuple[Any, str]:
    """The judge and a line naming it; the linear head shares the pipeline's MiniLM when it can."""
    from textlatent.models import DEFAULT_MODEL_ID
    from textlatent.sentiment import load_sentiment_model

    settings = _State.settings()
    spec = str(judge) if judge is not None else settings.sentiment_model

    def factory(s: str | None) -> Any:
        if s is None and pipeline.encoder.model_id == DEFAULT_MODEL_ID:
            return pipeline.encoder
        from textlatent.encoder import Encoder

        return Encoder(s, device=settings.device)

    model = _run(lambda: load_sentiment_model(spec, encoder_factory=factory, device=settings.device))
    kind = "fine-tuned classifier" if type(model).__name__ == "FinetunedSentiment" else "linear head"
    name = f"{spec or 'shipped linear head (textlatent/data/sentiment-linear)'} ({kind})"
    typer.echo(f"judge: {name}", err=True)
    return model, name


def _similarity_encoder(pipeline: VAEPipeline) -> Any:
    """The bundled MiniLM (the issue's measure of content), shared with the pipeline when it is that one."""
    from textlatent.encoder import Encoder
    from textlatent.models import DEFAULT_MODEL_ID

    if pipeline.encoder.model_id == DEFAULT_MODEL_ID:
        return pipeline.encoder
    return Encoder(None, device=_State.settings().device)


@app.command("transfer")
def transfer_cmd(
    texts: Annotated[list[str] | None, typer.Argument(help="Sentences; none or '-' reads stdin")] = None,
    target: Annotated[str, typer.Option("--target", help="positive or negative")] = "positive",
    degree: DegreeOpt = None,
    model: ModelOpt = None,
    strategy: StrategyOpt = "greedy",
    temperature: TemperatureOpt = 1.0,
    seed: SeedOpt = None,
    candidates: CandidatesOpt = 1,
    rerank: RerankOpt = "round-trip",
    min_p_target: MinPTargetOpt = CONTENT_THRESHOLD,
    moves: MovesOpt = CONTENT_STEPS,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line")] = False,
    no_repeat_ngram: NoRepeatOpt = None,
) -> None:
    """Move each sentence along the VAE's sentiment axis towards TARGET and decode it.

    Prints source, output and the latent classifier's p(target) before → after, tab-separated; with
    --rerank content also the degree of the move each output came from."""
    from textlatent.vae.transfer import check_attribute, check_target, load_axis, transfer

    _run(lambda: check_target(check_attribute("sentiment"), target))  # fail before the model loads
    pipeline = _pipeline(model, no_repeat_ngram=no_repeat_ngram)
    axis = _run(lambda: load_axis(pipeline, "sentiment", latent_dim=pipeline.latent_dim))
    items = _texts(texts)
    results = _run(lambda: transfer(pipeline, axis, items, target, degree, strategy=_strategy(strategy),
                                    candidates=candidates, rerank=rerank, min_p_target=min_p_target,
                                    moves=moves, temperature=temperature, seed=seed))
    for r in results:
        if as_json:
            typer.echo(json_out({"source": r.source, "output": r.output, "target": r.target, "degree": r.degree,
                                   "p_before": round(r.p_before, 4), "p_after": round(r.p_after, 4)}))
        else:
            kept = f"\tdegree {r.degree:g}" if rerank == "content" else ""
            typer.echo(f"{r.source}\t{r.output}\t{r.p_before:.2f} -> {r.p_after:.2f}{kept}")


@app.command("fit-transfer")
def fit_transfer_cmd(
    model: ModelOpt = None,
    data_dir: DataDirOption = Path("../shared/data"),
    judge: JudgeOpt = None,
    holdout: Annotated[int, typer.Option(min=1, help="Train sentences held out to choose the default degree")]
    = 500,
    candidates: CandidatesOpt = 1,
    rerank: RerankOpt = "round-trip",
    min_p_target: MinPTargetOpt = CONTENT_THRESHOLD,
    moves: MovesOpt = CONTENT_STEPS,
    axis: Annotated[Literal["auto", "logistic", "mean"], typer.Option(
        "--axis", help="The axis direction: 'logistic' (a logistic regression's weights on the latent means), "
                       "'mean' (the difference of the two classes' mean latent vectors), or 'auto' (both, keeping "
                       "the one that scores higher on the held-out slice; twice the time)")] = "auto",
    seed: Annotated[int, typer.Option(min=0, max=MAX_SEED, help="Seed of the held-out split and the axis fit")]
    = 0,
    as_json: EvalJsonOption = False,
    no_repeat_ngram: NoRepeatOpt = None,
) -> None:
    """Fit the sentiment axis in the VAE's latent space on SST-2 train; choose its default degree
    on a held-out slice of train; write both to MODEL/axes.json."""
    from textlatent.eval.loaders import require_data_dir
    from textlatent.vae.transfer_eval import fit_sentiment_transfer

    _run(lambda: require_data_dir(data_dir))
    with _holding(model or _State.settings().vae_model):  # not while a training run rewrites the folder
        pipeline = _pipeline(model, no_repeat_ngram=no_repeat_ngram)
        judge_model, judge_name = _judge(judge, pipeline)
        fitted = _run(lambda: fit_sentiment_transfer(pipeline, data_dir, judge=judge_model, judge_name=judge_name,
                                                     encoder=_similarity_encoder(pipeline), holdout=holdout,
                                                     seed=seed, candidates=candidates, rerank=rerank,
                                                     min_p_target=min_p_target, moves=moves, axis_method=axis))
    summary = {"model": str(pipeline.path), "default_degree": fitted.default_degree, "margin": fitted.margin,
               "scale": fitted.scale, **{k: v for k, v in fitted.info.items() if k != "selection"},
               "selection": fitted.info["selection"]}
    if as_json:
        typer.echo(json_out(summary))
        return
    for row in fitted.info["selection"]:
        typer.echo(f"{row['method']:<8} degree {row['degree']:<4g} flip {row['flip_rate']:.3f}  similarity "
                   f"{row['content_similarity']:.3f}  score {row['score']:.3f}")
    typer.echo(f"saved {pipeline.path / 'axes.json'}: {fitted.info['method']} axis, default degree "
               f"{fitted.default_degree:g}, latent accuracy (held-out train) {fitted.info['heldout_accuracy']:.3f}")


@eval_app.command("transfer")
def eval_transfer_cmd(
    model: ModelOpt = None,
    judge: JudgeOpt = None,
    degree: Annotated[list[float] | None, finite_option("--degree", min=0.0, max=MAX_DEGREE, show_default=False,
                                                       help="Degree(s) to score (repeat the option) \\[default: the "
                                                            "model's fitted one]; degree 0 is always added")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N dev sentences")] = None,
    baselines: Annotated[bool, typer.Option(help="Also score the sources and the degree-0 reconstructions")] = True,
    fluency: Annotated[bool, typer.Option(help="Perplexity of the outputs under SmolLM2 (slow on a CPU)")] = True,
    fluency_limit: Annotated[int | None, typer.Option(min=1, help="Perplexity on the first N outputs of each "
                                                              "set only \\[default: all]")] = None,
    candidates: CandidatesOpt = 1,
    rerank: RerankOpt = "round-trip",
    min_p_target: MinPTargetOpt = CONTENT_THRESHOLD,
    moves: MovesOpt = CONTENT_STEPS,
    outputs: Annotated[Path | None, typer.Option(
        "--outputs", dir_okay=False, help="Also write every output to this new JSONL file, one line per sentence "
                                          "and degree: degree, source, target, output")] = None,
    data_dir: DataDirOption = Path("../shared/data"),
    as_json: EvalJsonOption = False,
    no_repeat_ngram: NoRepeatOpt = None,
) -> None:
    """Style transfer on SST-2 dev: flip rate (by the judge), content similarity (MiniLM cosine),
    fluency (SmolLM2 perplexity), beside the sources and the degree-0 reconstructions."""
    from textlatent.eval.loaders import load_sst2, require_data_dir
    from textlatent.vae.transfer import load_axis
    from textlatent.vae.transfer_eval import SmolLMPerplexity, evaluate_transfer

    _run(lambda: require_data_dir(data_dir))
    if outputs is not None and (outputs.exists() or not outputs.parent.is_dir()):
        raise _fail(f"--outputs {outputs}: " + ("the file exists; give a new path" if outputs.exists()
                                                 else "its folder does not exist"))
    dev = _run(lambda: load_sst2(data_dir, "dev", "glue"))
    texts, labels = dev.texts[:limit], (dev.labels or [])[:limit]
    pipeline = _pipeline(model, no_repeat_ngram=no_repeat_ngram)
    axis = _run(lambda: load_axis(pipeline, "sentiment", latent_dim=pipeline.latent_dim))
    judge_model, judge_name = _judge(judge, pipeline)
    scorer = _run(lambda: SmolLMPerplexity(device=_State.settings().device)) if fluency else None
    degrees = degree or [axis.default_degree]
    result = _run(lambda: evaluate_transfer(pipeline, axis, texts, labels, judge=judge_model,
                                            encoder=_similarity_encoder(pipeline), degrees=degrees,
                                            fluency=scorer, fluency_limit=fluency_limit, baselines=baselines,
                                            progress=True, candidates=candidates, rerank=rerank,
                                            min_p_target=min_p_target, moves=moves,
                                            keep_outputs=outputs is not None))
    if outputs is not None:
        _write_outputs(outputs, texts, labels, result["by_degree"])
    main = next(r for r in result["by_degree"] if r["degree"] == float(degrees[0]))
    fitted_with = axis.info.get("no_repeat_ngram")  # the decoding the default degree was chosen under
    if fitted_with is not None and fitted_with != result["no_repeat_ngram"]:
        typer.echo(f"note: the default degree was chosen with no_repeat_ngram={fitted_with}; this run decodes with "
                   f"{result['no_repeat_ngram']}", err=True)
    fitted_rerank = (axis.info.get("candidates", 1), axis.info.get("rerank", "round-trip"))
    if not degree and fitted_rerank != (candidates, rerank):
        typer.echo(f"note: the default degree was chosen with {fitted_rerank[0]} candidate(s), {fitted_rerank[1]} "
                   f"reranking; this run uses {candidates}, {rerank}", err=True)
    summary = {"model": str(pipeline.path), "judge": judge_name, "data": "sst2/glue/dev.tsv",
               "axis_method": axis.info.get("method", "logistic"), "axis_no_repeat_ngram": fitted_with,
               "default_degree": axis.default_degree, "degree": main["degree"], "candidates": candidates,
               "rerank": rerank, "min_p_target": min_p_target if rerank == "content" else None,
               "moves": moves if rerank == "content" else None,
               "flip_rate": main["flip_rate"],
               "content_similarity": main["content_similarity"], "content_chrf": main["content_chrf"],
               "fluency": main.get("fluency"), **result}
    if as_json:
        typer.echo(json_out(summary))
        return
    typer.echo(f"{'degree':>7} {'flip':>6} {'sim':>6} {'chrF':>6} {'ppl':>8}  (judge: {judge_name}; "
               f"{summary['axis_method']} axis)")
    rows = [("source", result["sources"])] if result["sources"] else []
    rows += [(f"{r['degree']:g}", r) for r in result["by_degree"]]
    for name, r in rows:
        ppl = f"{r['fluency']:8.1f}" if "fluency" in r else f"{'-':>8}"
        typer.echo(f"{name:>7} {r['flip_rate']:6.3f} {r['content_similarity']:6.3f} {r['content_chrf']:6.1f} {ppl}")


def _write_outputs(path: Path, texts: list[str], labels: list[int], rows: list[dict[str, Any]]) -> None:
    """Every output of ``eval transfer`` as JSONL, written whole or not at all; the outputs leave
    ``rows``, whose JSON stays as it was."""
    from textlatent.collections import atomic_write_bytes
    from textlatent.vae.transfer_eval import _targets_opposite

    targets = _targets_opposite(labels)
    lines = [json_out({"degree": row["degree"], "source": source, "target": target, "output": output})
             for row in rows for source, target, output in zip(texts, targets, row.pop("outputs"), strict=True)]
    atomic_write_bytes(path, "".join(line + "\n" for line in lines).encode("utf-8"))
