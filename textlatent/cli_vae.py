"""``textlatent vae …``: train, evaluate and use a text VAE.

Argument parsing and printing only; the work is in :mod:`textlatent.vae`. torch and the
encoder load inside each command so that ``textlatent --help`` stays instant.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast

import typer

from textlatent.cli_options import OverwriteOption, finite_option, json_out
from textlatent.vae.limits import MAX_NO_REPEAT_NGRAM, MAX_SEED

if TYPE_CHECKING:
    from textlatent.vae.ops import Strategy

vae_app = typer.Typer(help="A text VAE: a latent sentence space to sample, interpolate and do analogies in.",
                      no_args_is_help=True)

ModelOpt = Annotated[
    Path | None, typer.Option("--model", help="Trained VAE folder \\[env TEXTLATENT_VAE_MODEL]", show_default=False)
]
StrategyOpt = Annotated[Literal["greedy", "sample", "beam"], typer.Option(help="How to decode")]
TemperatureOpt = Annotated[float, finite_option(help="Softmax temperature for --strategy sample")]
SeedOpt = Annotated[int | None, typer.Option(min=0, max=MAX_SEED, show_default=False,
                                             help="Seed for --strategy sample: the same seed, the same sentences")]
NoRepeatOpt = Annotated[int | None, typer.Option(
    "--no-repeat-ngram", min=0, max=MAX_NO_REPEAT_NGRAM, show_default=False,
    help=f"N from 2 to {MAX_NO_REPEAT_NGRAM}: no N-gram occurs twice in a sentence; 0: repeats allowed \\[default: "
         "the model's own: 3 for the GRU decoder (greedy and sampled decodes), 0 for SmolLM2]")]


def _run(fn: Any) -> Any:
    from textlatent.cli import _run as run

    return run(fn)


def _pipeline(model: Path | None, *, standard_prior: bool = False, no_repeat_ngram: int | None = None) -> Any:
    """The latent model of ``--model`` (or the setting); ``no_repeat_ngram`` replaces its decoding default."""
    from textlatent.cli import _fail, _State
    from textlatent.vae.ops import check_no_repeat_ngram

    if no_repeat_ngram is not None:  # refused before the model loads
        _run(lambda: check_no_repeat_ngram(no_repeat_ngram))

    settings = _State.settings()  # applies --threads
    path = model or settings.vae_model
    if path is None:
        raise _fail("no VAE model: pass --model DIR or set TEXTLATENT_VAE_MODEL (train one with `textlatent vae "
                    "train`)")
    from textlatent.vae.service import load_latent_model

    pipeline = _run(lambda: load_latent_model(path, device=settings.device,  # GRU or Optimus folder
                                              standard_prior=standard_prior))
    if no_repeat_ngram is not None:
        pipeline.no_repeat_ngram = no_repeat_ngram
    return pipeline


def _gru_folder(model: Path | None, what: str) -> Path | None:
    """The model folder a command will use (``--model`` or the setting), refused early when it is an
    Optimus (SmolLM2) VAE and ``what`` works on the GRU VAE only: said before SmolLM2 loads."""
    from textlatent.cli import _fail, _State
    from textlatent.vae.optimus import is_optimus_folder

    folder = model or _State.settings().vae_model
    if folder is not None and is_optimus_folder(folder):
        raise _fail(f"{what} is for the GRU decoder; this model is an Optimus (SmolLM2) VAE")
    return folder


def _holding(folder: Path | None) -> contextlib.AbstractContextManager[None]:
    """The run lock of a model folder a command writes into (prior.json, axes.json), to be taken
    before the model loads: a training run rewriting the folder refuses the command, and the other
    way round. ``None`` (no model named): nothing to hold; loading will say so."""
    if folder is None:
        return contextlib.nullcontext()
    from textlatent.cli import _output_lock

    return _output_lock(Path(folder), "the model folder")


def _writable(folder: Path) -> None:
    """A clear message now if ``folder`` cannot take a new file (read-only, another owner)."""
    import tempfile

    from textlatent.cli import _fail

    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".textlatent-probe-")
    except OSError as exc:
        raise _fail(f"cannot write into {str(folder)!r} ({exc.strerror or exc})") from None
    import os

    os.close(fd)
    Path(probe).unlink()


def _strategy(name: str) -> Strategy:
    """The name as the library's literal type; the library checks it and names the choices."""
    return cast("Strategy", name)


def _texts(texts: list[str] | None) -> list[str]:
    items = texts or ["-"]
    if items == ["-"]:
        items = _run(lambda: [line.strip() for line in sys.stdin if line.strip()])
    return items


@vae_app.command("train")
def train_cmd(
    train: Annotated[Path, typer.Option("--train", help="Training text, one sentence per line")],
    valid: Annotated[Path, typer.Option("--valid", help="Validation text (epoch selection), one per line")],
    out: Annotated[Path, typer.Option("--out", help="Folder to write the model and checkpoints to")],
    epochs: Annotated[int, typer.Option(min=1, help="10 fits the 45-minute CPU budget (docs/benchmarks.md)")] = 10,
    batch_size: Annotated[int, typer.Option(min=1)] = 64,
    lr: Annotated[float, finite_option(min=0.0)] = 2e-3,
    latent_dim: Annotated[int, typer.Option(min=1, max=1024)] = 32,
    hidden_dim: Annotated[int, typer.Option(min=8)] = 256,
    word_dim: Annotated[int, typer.Option(min=8)] = 256,
    free_bits: Annotated[float, finite_option(min=0.0, help="Free bits λ per latent dimension, in nats")] = 0.17,
    kl_cycles: Annotated[int, typer.Option(min=0, help="Cyclical KL annealing cycles (0: β=1 throughout)")] = 4,
    word_dropout: Annotated[float, finite_option(min=0.0, max=1.0,
                                                help="Decoder inputs replaced by <unk> while training")] = 0.0,
    dropout: Annotated[float, finite_option(min=0.0, max=0.9,
                                           help="Dropout on the decoder's word embeddings and GRU outputs")] = 0.5,
    tie_weights: Annotated[bool, typer.Option(help="Share the frequent words' input embeddings with the "
                                                  "softmax head (Press & Wolf 2017; fewer parameters)")] = False,
    adaptive_div: Annotated[float, finite_option(min=1.0, help="The adaptive softmax's rarer-word clusters "
                                                     "score from word_dim / div and word_dim / div² dimensions; "
                                                     "1 gives them the full word_dim")] = 4.0,
    weight_drop: Annotated[float, finite_option(min=0.0, max=0.9, help="DropConnect on the GRU's recurrent "
                                                   "weights while training (AWD-LSTM's WeightDrop)")] = 0.0,
    select: Annotated[Literal["elbo", "rec"], typer.Option(
        help="The held-out figure that picks the saved epoch: elbo (the likelihood bound) or rec (reconstruction "
             "alone, for models that reconstruct and edit sentences, e.g. style transfer)")] = "elbo",
    ema: Annotated[float, finite_option(min=0.0, max=0.99999, help="Decay of an exponential moving average of "
                                            "the weights (0: off; e.g. 0.999). Each epoch the averaged weights "
                                            "are validated beside the trained ones and the better is kept")] = 0.0,
    seed: Annotated[int, typer.Option(min=0, max=MAX_SEED)] = 0,
    train_encoder: Annotated[bool, typer.Option("--train-encoder", help="Fine-tune MiniLM too (slow)")] = False,
    max_train_sentences: Annotated[int | None, typer.Option(min=1, help="Use only the first N")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from OUT/checkpoint.pt")] = False,
    overwrite: OverwriteOption = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the history as JSON")] = False,
) -> None:
    """Train on TRAIN, keep the epoch with the best ELBO on VALID; a checkpoint each epoch."""
    from textlatent.cli import _check_lr, _check_out, _replacing, _State
    from textlatent.vae.data import read_sentences
    from textlatent.vae.train import TrainConfig, train_vae

    settings = _State.settings()
    _check_lr(lr)
    if not resume:  # a model in --out is continued with --resume or replaced with --overwrite, never by accident
        _check_out(out, overwrite=overwrite, encoder=settings.model)
    config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, free_bits=free_bits, kl_cycles=kl_cycles,
                         seed=seed, device=settings.device, threads=settings.threads, train_encoder=train_encoder,
                         encoder_model=settings.model, max_train_sentences=max_train_sentences, select=select,
                         ema=ema, model={"latent_dim": latent_dim, "hidden_dim": hidden_dim, "word_dim": word_dim,
                                "word_dropout": word_dropout, "dropout": dropout, "tie_weights": tie_weights,
                                "adaptive_div": adaptive_div, "weight_drop": weight_drop})
    train_texts = _run(lambda: read_sentences(train))
    valid_texts = _run(lambda: read_sentences(valid))
    with _replacing(out, overwrite and not resume):  # --resume continues the folder in place
        result = _run(lambda: train_vae(train_texts, valid_texts, out, config, resume=resume))
    if as_json:
        typer.echo(json_out(result))
    else:
        r = result  # the figures of the weights train_vae kept (the averaged ones with --ema, when better)
        weights = " (averaged weights)" if r["weights"] == "ema" else ""
        typer.echo(f"saved {out} (epoch {r['epoch']}{weights}, kept by valid {select}: "
                   f"-ELBO {r['best_valid_elbo_nll']:.2f}, reconstruction {r['best_valid_rec']:.2f}, "
                   f"KL {r['best_valid_kl']:.2f}, AU {r['best_valid_au']})")


@vae_app.command("eval")
def eval_cmd(
    data: Annotated[Path, typer.Option("--data", help="Text to evaluate, one sentence per line")],
    model: ModelOpt = None,
    k: Annotated[int, typer.Option(min=0, help="Importance samples for iw_nll (0 skips it)")] = 100,
    subset: Annotated[int | None, typer.Option(min=1, help="Score only N sentences drawn at random (seeded): "
                                                        "a quick estimate, not the benchmark figure")] = None,
    seed: Annotated[int, typer.Option(min=0, max=MAX_SEED)] = 0,
    refine_steps: Annotated[int, typer.Option(
        min=0, max=1000, help="Refine each sentence's q(z|x) by this many Adam steps on its own ELBO, the model "
        "fixed, and compute every figure under the refined posteriors (semi-amortised inference; the IW-NLL "
        "stays an upper bound on -log p(x), usually a tighter one). 0: the encoder's q, as the anchors report")] = 0,
    refine_lr: Annotated[float, finite_option(help="Adam's step size for --refine-steps")] = 0.05,
    standard_prior: Annotated[bool, typer.Option(
        "--standard-prior", help="Evaluate under N(0, I), the prior of training, even when the model has a "
        "fitted prior (prior.json, `vae fit-prior`)")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
) -> None:
    """NLL (−ELBO), IW-NLL, KL, perplexity, active units and mutual information on DATA, under the
    model's prior (the fitted one when it has one)."""
    from textlatent.cli import _fail
    from textlatent.vae.data import read_sentences
    from textlatent.vae.evaluate import evaluate_pipeline

    if not refine_lr > 0:
        raise _fail(f"--refine-lr must be above 0, got {refine_lr}")
    texts = _run(lambda: read_sentences(data))  # a bad --data is said before the model loads
    if refine_steps:
        _gru_folder(model, "--refine-steps")
    pipeline = _pipeline(model, standard_prior=standard_prior)
    optimus = getattr(pipeline, "kind", None) == "optimus"
    if subset is not None and subset >= len(texts):
        subset = None  # every sentence is scored: the full figure, and reported as such
    if subset is not None:
        import random

        texts = [texts[i] for i in sorted(random.Random(seed).sample(range(len(texts)), subset))]
    if optimus:  # the SmolLM2-decoder VAE: subword NLL, per-word PPL
        from textlatent.vae.optimus_train import evaluate_optimus

        result = _run(lambda: evaluate_optimus(pipeline, texts, k=k, seed=seed, progress=True))  # bar on stderr
    else:
        result = _run(lambda: evaluate_pipeline(pipeline, texts, k=k, seed=seed, progress=True,
                                                refine_steps=refine_steps, refine_lr=refine_lr))
    result["model"], result["data"], result["subset"] = str(pipeline.path), str(data), subset
    if as_json:
        typer.echo(json_out(result))
        return
    for key in ("sentences", "nll", "iw_nll", "rec", "kl", "ppl", "ppl_elbo", "au", "mi", "seconds"):
        value = result[key]
        typer.echo(f"{key:>10}: {value:.3f}" if isinstance(value, float) else f"{key:>10}: {value}")
    prior = result.get("prior")
    if isinstance(prior, dict) and prior.get("kind") == "gaussian-mixture":
        typer.echo(f"{'prior':>10}: fitted, a Gaussian mixture of {prior['components']} (prior.json); "
                   "--standard-prior for N(0, I)")
    if refine_steps:
        typer.echo(f"{'posterior':>10}: refined, {refine_steps} Adam steps of {refine_lr:g} per sentence "
                   f"(the encoder's own -ELBO: {result['amortized']['nll']:.3f})")


@vae_app.command("tune-posterior")
def tune_posterior_cmd(
    train: Annotated[Path, typer.Option("--train", help="The model's training text, one sentence per line")],
    valid: Annotated[Path, typer.Option("--valid", help="Held-out text that picks the epoch kept")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the tuned model (the source is not written)")],
    model: ModelOpt = None,
    epochs: Annotated[int, typer.Option(min=1, max=100)] = 2,
    lr: Annotated[float, finite_option(min=0.0, help="Adam's step size for the posterior head")] = 1e-3,
    free_bits: Annotated[float | None, finite_option(
        min=0.0, show_default="the model's training setting", help="Free bits λ per latent dimension")] = None,
    seed: Annotated[int, typer.Option(min=0, max=MAX_SEED)] = 0,
    overwrite: OverwriteOption = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
) -> None:
    """Re-train the encoder's posterior head on TRAIN with the decoder fixed (closing the gap
    between q(z|x) and the final decoder) and save the result to OUT; the epoch with the best
    valid -ELBO is kept, or the starting weights when none beats them."""
    from textlatent.cli import _check_lr, _check_out, _fail, _replacing, _State
    from textlatent.vae.data import read_sentences
    from textlatent.vae.tune import tune_posterior

    _check_lr(lr)
    settings = _State.settings()
    folder = _gru_folder(model, "tune-posterior")
    if folder is None:
        raise _fail("no VAE model: pass --model DIR or set TEXTLATENT_VAE_MODEL")
    _check_out(out, overwrite=overwrite, model=str(folder), encoder=settings.model)
    train_texts = _run(lambda: read_sentences(train))
    valid_texts = _run(lambda: read_sentences(valid))
    pipeline = _pipeline(folder, standard_prior=True)
    with _replacing(out, overwrite):
        result = _run(lambda: tune_posterior(pipeline, train_texts, valid_texts, out, epochs=epochs, lr=lr,
                                             free_bits=free_bits, seed=seed, progress=True))
    if as_json:
        typer.echo(json_out(result))
        return
    kept = f"epoch {result['epoch']}" if result["epoch"] else "the starting weights (no epoch beat them)"
    typer.echo(f"saved {out} ({kept}): valid -ELBO {result['start_valid_elbo_nll']:.2f} -> "
               f"{result['best_valid_elbo_nll']:.2f}")


@vae_app.command("fit-prior")
def fit_prior_cmd(
    train: Annotated[Path, typer.Option("--train", help="The model's training text, one sentence per line")],
    model: ModelOpt = None,
    valid: Annotated[Path | None, typer.Option(
        "--valid", help="Held-out text that chooses among the candidates (and N(0, I)) by ELBO")] = None,
    components: Annotated[list[int] | None, typer.Option(
        "--components", min=1, max=256, show_default="1",
        help="Mixture size to fit; repeat it to try several (needs --valid)")] = None,
    draws: Annotated[int, typer.Option(min=1, max=100, help="Draws z ~ q(z|x) per training sentence")] = 2,
    seed: Annotated[int, typer.Option(min=0, max=MAX_SEED)] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
) -> None:
    """Fit the prior p(z) to where the encoder puts TRAIN (a full-covariance Gaussian mixture) and
    save it as MODEL/prior.json: every figure, sample and route then uses it instead of N(0, I)."""
    from textlatent.cli import _fail
    from textlatent.vae.data import read_sentences
    from textlatent.vae.prior import PRIOR_FILE, check_components, fit_prior

    sizes = _run(lambda: check_components(components or [1]))
    if valid is None and len(sizes) > 1:
        raise _fail("choosing among several --components needs --valid (held-out sentences)")
    train_texts = _run(lambda: read_sentences(train))  # bad files are said before the model loads
    valid_texts = _run(lambda: read_sentences(valid)) if valid is not None else None
    with _holding(_gru_folder(model, "fit-prior")):  # not while a training run rewrites the folder
        pipeline = _pipeline(model, standard_prior=True)  # fitted to the posteriors alone; N(0, I) is a candidate
        _writable(pipeline.path)  # before the encoding and EM work, not after
        target = pipeline.path / PRIOR_FILE
        prior, report = _run(lambda: fit_prior(pipeline, train_texts, valid_texts, sizes, draws=draws, seed=seed,
                                               progress=True))
        if prior is not None:
            prior.meta["train"] = str(train)
            _run(lambda: prior.save(pipeline.path))
            report["saved"] = str(target)
        else:  # N(0, I) did best on valid: the folder says so by having no prior.json
            report["saved"] = None
            report["removed"] = target.is_file()
            _run(lambda: target.unlink(missing_ok=True))
    if as_json:
        typer.echo(json_out(report))
        return
    for c in report["candidates"]:
        gain = c["valid_elbo_gain"]
        typer.echo(f"{c['components']:>4} components: " + (f"valid ELBO {gain:+.3f} nats per sentence"
                                                           if gain is not None else "fitted"))
    if prior is None:
        removed = " (the old prior.json removed)" if report["removed"] else ""
        typer.echo(f"N(0, I) fits valid best; no prior saved{removed}")
    else:
        gain = report["valid_elbo_gain"]
        typer.echo(f"saved {target}: {prior.components} component(s)"
                   + (f", valid -ELBO lower by {gain:.3f} nats per sentence" if gain is not None else ""))


@vae_app.command("sample")
def sample_cmd(
    model: ModelOpt = None,
    n: Annotated[int, typer.Option("-n", min=1, max=1000, help="Sentences to draw from the prior")] = 5,
    strategy: StrategyOpt = "greedy",
    temperature: TemperatureOpt = 1.0,
    seed: Annotated[int | None, typer.Option(min=0, max=MAX_SEED, show_default=False,
                                             help="Seed for z and for --strategy sample")] = None,
    no_repeat_ngram: NoRepeatOpt = None,
) -> None:
    """Decode z drawn from the model's prior (N(0, I), or its fitted prior): one sentence per line."""
    from textlatent.vae.ops import sample

    pipeline = _pipeline(model, no_repeat_ngram=no_repeat_ngram)
    _, texts = _run(lambda: sample(pipeline, n, seed=seed, strategy=_strategy(strategy), temperature=temperature))
    for text in texts:
        typer.echo(text)


@vae_app.command("reconstruct")
def reconstruct_cmd(
    texts: Annotated[list[str] | None, typer.Argument(help="Sentences; none or '-' reads stdin")] = None,
    model: ModelOpt = None,
    strategy: StrategyOpt = "greedy",
    temperature: TemperatureOpt = 1.0,
    seed: SeedOpt = None,
    no_repeat_ngram: NoRepeatOpt = None,
) -> None:
    """decode(μ(x)) for each sentence: input and reconstruction, tab-separated."""
    from textlatent.vae.ops import reconstruct

    pipeline = _pipeline(model, no_repeat_ngram=no_repeat_ngram)
    items = _texts(texts)
    outputs = _run(lambda: reconstruct(pipeline, items, strategy=_strategy(strategy), temperature=temperature,
                                       seed=seed))
    for src, out in zip(items, outputs, strict=True):
        typer.echo(f"{src}\t{out}")


@vae_app.command("interpolate")
def interpolate_cmd(
    a: Annotated[str, typer.Argument(help="First sentence")],
    b: Annotated[str, typer.Argument(help="Last sentence")],
    model: ModelOpt = None,
    steps: Annotated[int, typer.Option(help="Points on the path, both ends included (2-50)")] = 5,
    strategy: StrategyOpt = "greedy",
    temperature: TemperatureOpt = 1.0,
    seed: SeedOpt = None,
    no_repeat_ngram: NoRepeatOpt = None,
) -> None:
    """Sentences along the straight line from μ(A) to μ(B)."""
    from textlatent.vae.ops import interpolate

    pipeline = _pipeline(model, no_repeat_ngram=no_repeat_ngram)
    _, texts = _run(lambda: interpolate(pipeline, a, b, steps, strategy=_strategy(strategy), temperature=temperature,
                                        seed=seed))
    for i, text in enumerate(texts):
        typer.echo(f"{i}\t{text}")


@vae_app.command("analogy")
def analogy_cmd(
    a: Annotated[str, typer.Argument()],
    b: Annotated[str, typer.Argument()],
    c: Annotated[str, typer.Argument()],
    model: ModelOpt = None,
    strategy: StrategyOpt = "greedy",
    temperature: TemperatureOpt = 1.0,
    seed: SeedOpt = None,
    no_repeat_ngram: NoRepeatOpt = None,
) -> None:
    """A is to B as C is to …: decode(μ(C) + μ(B) − μ(A))."""
    from textlatent.vae.ops import analogy

    pipeline = _pipeline(model, no_repeat_ngram=no_repeat_ngram)
    _, text = _run(lambda: analogy(pipeline, a, b, c, strategy=_strategy(strategy), temperature=temperature,
                                   seed=seed))
    typer.echo(text)
