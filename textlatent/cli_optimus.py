"""``textlatent vae train-optimus`` and ``vae eval-optimus``: the SmolLM2-decoder VAE.

Argument parsing and printing only; the work is in :mod:`textlatent.vae.optimus_train`. The
trained folder also works with every other ``vae`` command (``eval``, ``sample``,
``reconstruct``, ``interpolate``, ``analogy``) and behind the ``/latent`` routes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

import typer

from textlatent.cli_options import OverwriteOption, finite_option, json_out
from textlatent.cli_vae import vae_app
from textlatent.vae.limits import MAX_SEED


def _run_cli(fn):  # type: ignore[no-untyped-def]
    from textlatent.cli import _run

    return _run(fn)


@vae_app.command("train-optimus")
def train_optimus_cmd(
    train: Annotated[list[Path], typer.Option("--train", help="Training text, one sentence per line, or a GLUE "
                                                               "SST-2 .tsv (its sentence column); repeatable")],
    valid: Annotated[Path, typer.Option("--valid", help="Validation text (selection), one per line")],
    out: Annotated[Path, typer.Option("--out", help="Folder to write the model to")],
    max_steps: Annotated[int, typer.Option(min=1, help="Optimizer steps (the LR and KL schedules span them)")] = 300,
    time_budget: Annotated[float | None, finite_option(min=1.0, help="Stop after this many seconds")] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 16,
    lr: Annotated[float, finite_option(min=0.0)] = 1e-3,
    latent_dim: Annotated[int, typer.Option(min=1, max=1024)] = 32,
    prefix_len: Annotated[int, typer.Option(min=1, max=64, help="Prefix vectors made from z")] = 4,
    free_bits: Annotated[float, finite_option(min=0.0, help="Free bits λ per latent dimension, in nats")] = 0.25,
    kl_cycles: Annotated[int, typer.Option(min=0, help="Cyclical KL annealing cycles (0: β=1 throughout)")] = 2,
    eval_every: Annotated[int, typer.Option(min=1, help="Steps between validations")] = 100,
    valid_sentences: Annotated[int, typer.Option(min=1, help="Seeded random valid subset used for selection")] = 200,
    max_train_tokens: Annotated[int, typer.Option(min=2, help="Truncate training sentences to N subwords")] = 48,
    init_posterior: Annotated[Path | None, typer.Option(help="GRU VAE folder whose posterior head starts this "
                                                             "one (same latent size)")] = None,
    select: Annotated[Literal["elbo", "rec"], typer.Option(
        help="Held-out figure that picks the saved head: -ELBO, or reconstruction NLL (for a model that "
             "reconstructs and edits sentences, where free bits let the KL grow at no training cost)")] = "elbo",
    seed: Annotated[int, typer.Option(min=0, max=MAX_SEED)] = 0,
    overwrite: OverwriteOption = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the history as JSON")] = False,
) -> None:
    """Train a VAE with the frozen SmolLM2-135M-Instruct as decoder (z as prefix embeddings)."""
    from textlatent.cli import _check_lr, _check_out, _fail, _replacing, _State
    from textlatent.vae.data import read_sentences
    from textlatent.vae.optimus_train import OptimusTrainConfig, train_optimus

    settings = _State.settings()
    _check_lr(lr)
    if init_posterior is not None:  # checked before --out is touched and before minutes of loading
        if not (init_posterior / "model.pt").is_file():
            raise _fail(f"--init-posterior {init_posterior} is not a trained GRU VAE folder (no model.pt)")
        try:
            gru = json.loads((init_posterior / "config.json").read_text())["model"]
            gru_latent = int(gru["latent_dim"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise _fail(f"--init-posterior {init_posterior}: config.json is not readable ({exc})") from None
        if gru_latent != latent_dim:
            raise _fail(f"--init-posterior {init_posterior} has latent size {gru_latent}, but --latent-dim is "
                        f"{latent_dim}; they must be the same")
    _check_out(out, overwrite=overwrite, model=str(init_posterior) if init_posterior else None,
               encoder=settings.model)
    config = OptimusTrainConfig(
        max_steps=max_steps, time_budget_s=time_budget, batch_size=batch_size, lr=lr, free_bits=free_bits,
        kl_cycles=kl_cycles, eval_every=eval_every, valid_sentences=valid_sentences,
        max_train_tokens=max_train_tokens, init_posterior=str(init_posterior) if init_posterior else None,
        select=select,
        seed=seed, device=settings.device, threads=settings.threads, encoder_model=settings.model,
        model={"latent_dim": latent_dim, "prefix_len": prefix_len})
    train_texts = [s for path in train for s in _run_cli(lambda path=path: _read_training_text(path))]
    valid_texts = _run_cli(lambda: read_sentences(valid))
    with _replacing(out, overwrite):
        result = _run_cli(lambda: train_optimus(train_texts, valid_texts, out, config))
    if as_json:
        typer.echo(json_out(result))
    else:
        best = next(r for r in result["history"] if r["step"] == result["step"])  # the step train_optimus kept
        typer.echo(f"saved {out} (step {best['step']}, kept by valid {select}: -ELBO {best['valid_elbo_nll']:.2f}, "
                   f"reconstruction {best['valid_rec']:.2f}, KL {best['valid_kl']:.2f}, AU {best['valid_au']})")


def _read_training_text(path: Path) -> list[str]:
    """Sentences of a one-per-line file, or the ``sentence`` column of a GLUE SST-2 ``.tsv``."""
    from textlatent.vae.data import read_sentences

    if path.suffix == ".tsv":
        from textlatent.eval.loaders import read_sst2_glue

        return [t for t in read_sst2_glue(path).texts if t]
    return read_sentences(path)


@vae_app.command("eval-optimus")
def eval_optimus_cmd(
    data: Annotated[Path, typer.Option("--data", help="Text to evaluate, one sentence per line")],
    model: Annotated[Path, typer.Option("--model", help="Trained Optimus folder")],
    k: Annotated[int, typer.Option(min=0, help="Importance samples for iw_nll (0 skips it)")] = 10,
    subset: Annotated[int | None, typer.Option(min=1, help="Score N sentences drawn at random (seeded), the "
                                                        "same ones `vae eval --subset N` draws")] = None,
    lm_baseline: Annotated[bool, typer.Option("--lm-baseline", help="Also score the text under the bare LM")] = False,
    z_check: Annotated[bool, typer.Option("--z-check", help="Also rec at z=μ(x), another μ, z=0")] = False,
    seed: Annotated[int, typer.Option(min=0, max=MAX_SEED)] = 0,
) -> None:
    """`vae eval` for an Optimus folder, with the bare-LM baseline; prints one JSON object."""
    from textlatent.cli import _State
    from textlatent.vae.data import read_sentences
    from textlatent.vae.optimus import OptimusPipeline
    from textlatent.vae.optimus_train import evaluate_optimus
    from textlatent.vae.optimus_train import subset as pick

    settings = _State.settings()  # applies --threads
    texts = pick(_run_cli(lambda: read_sentences(data)), subset, seed)  # a bad --data before the LM loads
    pipeline = _run_cli(lambda: OptimusPipeline(model, device=settings.device))
    result = _run_cli(lambda: evaluate_optimus(pipeline, texts, k=k, seed=seed, lm_baseline=lm_baseline,
                                               z_check=z_check, progress=True))
    result.update(model=str(model), data=str(data), subset=subset)
    typer.echo(json_out(result))
