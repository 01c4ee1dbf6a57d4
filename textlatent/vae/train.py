"""Training the text VAE, with the standard remedies against posterior collapse.

* word dropout on decoder inputs (Bowman et al. 2016): the decoder cannot lean on the
  previous words alone, so it has reason to read z. An option (``model["word_dropout"]``),
  off by default: on PTB it gained nothing once dropout was 0.5 (docs/benchmarks.md);
* cyclical KL annealing (Fu et al. 2019): β rises from 0 to 1 over the first half of each
  of ``kl_cycles`` cycles and stays at 1 for the second half; each restart lets the
  posterior pick up information the decoder then learns to use;
* free bits per dimension (Kingma et al. 2016): the KL of each latent dimension, averaged
  over the batch, is charged as max(λ, KL_d), so a dimension carrying under λ nats costs
  nothing and is not pushed back to the prior.

With the encoder frozen (the default) the MiniLM embeddings are computed once and cached,
and only the posterior head and the decoder train. ``train_encoder=True`` fine-tunes the
MiniLM too (slow on a CPU: every step runs the transformer).
"""

from __future__ import annotations

import json
import logging
import math
import random
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from textlatent.errors import InvalidInputError
from textlatent.vae.data import Vocab, cached_embeddings
from textlatent.vae.limits import MAX_SEED
from textlatent.vae.model import TextVAE, VAEConfig, gaussian_kl

log = logging.getLogger("textlatent.vae")


@dataclass
class TrainConfig:
    epochs: int = 10  # inside the 45-minute budget on a fresh 2-core machine, embeddings included (docs/benchmarks.md)
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.01
    clip: float = 5.0
    kl_cycles: int = 4
    kl_rise: float = 0.5  # fraction of each cycle over which β rises 0 → 1
    free_bits: float = 0.17  # nats per latent dimension (λ); 0 turns free bits off. 32 × 0.17 = 5.4 nats of KL
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    train_encoder: bool = False
    encoder_lr: float = 2e-5
    encoder_model: str | None = None  # None: the bundled all-MiniLM-L6-v2
    max_train_sentences: int | None = None
    eval_batch_size: int = 256
    select: str = "elbo"  # the held-out figure that picks the saved epoch: "elbo" (−ELBO) or "rec" (reconstruction)
    # Decay of an exponential moving average of the VAE's weights (0: off). With it on, each epoch the
    # averaged weights are validated beside the trained ones and the better of the two is the epoch's
    # candidate for the saved model.
    ema: float = 0.0
    model: dict[str, Any] = field(default_factory=dict)  # VAEConfig overrides


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def beta_at(step: int, total_steps: int, cycles: int = 4, rise: float = 0.5) -> float:
    """Cyclical annealing weight (Fu et al. 2019) at ``step`` of ``total_steps``."""
    if cycles <= 0:
        return 1.0
    period = total_steps / cycles
    tau = (step % period) / period if period > 0 else 1.0
    return min(1.0, tau / rise) if rise > 0 else 1.0


def kl_term(kl_per_dim: torch.Tensor, free_bits: float) -> torch.Tensor:
    """Batch KL as charged in the loss: Σ_d max(λ, mean_batch KL_d)."""
    per_dim = kl_per_dim.mean(dim=0)
    if free_bits > 0:
        per_dim = torch.clamp(per_dim, min=free_bits)
    return per_dim.sum()


def pad_batch(ids: Sequence[Sequence[int]], device: str | torch.device = "cpu") -> torch.Tensor:
    longest = max(len(s) for s in ids)
    out = torch.zeros(len(ids), longest, dtype=torch.long)
    for i, s in enumerate(ids):
        out[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    return out.to(device)


def length_batches(lengths: Sequence[int], batch_size: int, rng: random.Random | None) -> Iterator[list[int]]:
    """Index batches of similar length (little padding), in random order when ``rng`` is given.

    Sentences are shuffled, cut into pools of 50 batches, each pool sorted by length and
    batched: random enough for SGD, while a batch's sentences differ little in length."""
    order = list(range(len(lengths)))
    if rng is not None:
        rng.shuffle(order)
    pool = batch_size * 50
    batches: list[list[int]] = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start:start + pool], key=lambda i: lengths[i])
        batches.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
    if rng is not None:
        rng.shuffle(batches)
    yield from batches


class EmbeddingSource:
    """Gives the sentence embeddings of a batch: from the cache (frozen encoder) or by
    running the trainable MiniLM (``train_encoder``)."""

    def __init__(self, texts: Sequence[str], cached: np.ndarray | None, st_model: Any = None) -> None:
        self.texts = list(texts)
        self.cached = None if cached is None else torch.from_numpy(cached)
        self.st_model = st_model

    def __call__(self, idx: Sequence[int], device: str) -> torch.Tensor:
        if self.cached is not None:
            return self.cached[list(idx)].to(device)
        return embed_with_module(self.st_model, [self.texts[i] for i in idx], device)


def embed_with_module(st_model: Any, texts: list[str], device: str) -> torch.Tensor:
    """Differentiable, L2-normalised embeddings from a SentenceTransformer (as Encoder gives them)."""
    prepare = getattr(st_model, "preprocess", None) or st_model.tokenize  # `tokenize` is deprecated in 5.x
    features = prepare(texts)
    features = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in features.items()}
    return F.normalize(st_model(features)["sentence_embedding"], dim=-1)


@torch.no_grad()
def evaluate_elbo(
    model: TextVAE, source: EmbeddingSource, ids: Sequence[Sequence[int]], device: str, batch_size: int = 256,
    posteriors: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> dict[str, Any]:
    """ELBO terms on a data set, with z drawn once per sentence: rec, KL, ELBO per sentence,
    perplexity per word from the ELBO (``<eos>`` counted), and the posterior means/log σ².
    ``posteriors`` (μ, log σ² ``[N, d]``, e.g. refined ones) replace the encoder's."""
    encoder = source.st_model  # a MiniLM being fine-tuned: evaluate it without its dropout too
    encoder_was_training = encoder is not None and encoder.training
    if encoder is not None:
        encoder.eval()
    try:
        return _evaluate_elbo(model, source, ids, device, batch_size, posteriors)
    finally:
        if encoder_was_training:
            encoder.train()


def _evaluate_elbo(
    model: TextVAE, source: EmbeddingSource, ids: Sequence[Sequence[int]], device: str, batch_size: int,
    posteriors: tuple[torch.Tensor, torch.Tensor] | None,
) -> dict[str, Any]:
    model.eval()
    rec_total = kl_total = 0.0
    mus, logvars = [], []
    # A fitted prior's KL is estimated from draws of its own stream: the reconstruction draws (the
    # global stream) are then the same whichever the prior, and so is the reconstruction term.
    kl_draws = torch.Generator(device=device).manual_seed(0x6B1) if model.prior is not None else None
    order = list(length_batches([len(s) for s in ids], batch_size, None))
    for idx in order:
        if posteriors is None:
            mu, logvar = model.encode(source(idx, device))
        else:
            mu, logvar = posteriors[0][idx].to(device), posteriors[1][idx].to(device)
        z = model.reparameterize(mu, logvar)
        rec_total += float(model.reconstruction_nll(z, pad_batch([ids[i] for i in idx], device)).sum())
        kl_total += float(model.kl(mu, logvar, generator=kl_draws).sum())
        mus.append((idx, mu.float().cpu()))
        logvars.append(logvar.float().cpu())
    n = len(ids)
    tokens = sum(len(s) for s in ids)
    mu_all = torch.zeros(n, model.config.latent_dim)
    logvar_all = torch.zeros(n, model.config.latent_dim)
    for (idx, mu), lv in zip(mus, logvars, strict=True):
        mu_all[idx] = mu
        logvar_all[idx] = lv
    return {
        "rec": rec_total / n,
        "kl": kl_total / n,
        "elbo_nll": (rec_total + kl_total) / n,
        "ppl_elbo": math.exp((rec_total + kl_total) / tokens),
        "mu": mu_all,
        "logvar": logvar_all,
    }


def _drop_fitted_files(out: Path) -> None:
    """Remove what was fitted to earlier weights of this folder (a prior, attribute axes): new
    weights place sentences elsewhere in z, and a stale fit would be used without an error."""
    from textlatent.vae.prior import PRIOR_FILE
    from textlatent.vae.transfer import AXES_FILE

    for name in (PRIOR_FILE, AXES_FILE):
        if (out / name).is_file():
            (out / name).unlink()
            log.warning("removed %s: it was fitted to the previous weights; fit it again", out / name)


def _autocast(device: str) -> Any:
    import contextlib

    if device.startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def check_select(select: str) -> None:
    """The held-out figure that picks the saved model: ``"elbo"`` (−ELBO) or ``"rec"`` (reconstruction)."""
    if select not in ("elbo", "rec"):
        raise InvalidInputError(f"select must be 'elbo' or 'rec', not {select!r}", param="select")


def check_ema(decay: float) -> None:
    """An EMA decay is 0 (off) or in (0, 1)."""
    if not (decay == 0.0 or 0.0 < decay < 1.0):
        raise InvalidInputError(f"ema must be 0 (off) or between 0 and 1, not {decay!r}", param="ema")


def _rng_state(device: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    return torch.get_rng_state(), torch.cuda.get_rng_state(device) if device.startswith("cuda") else None


def _set_rng_state(device: str, state: tuple[torch.Tensor, torch.Tensor | None]) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


def ema_model(model: TextVAE, decay: float) -> Any:
    """torch's :class:`~torch.optim.swa_utils.AveragedModel` keeping an EMA of ``model``'s weights."""
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def _check_resume_settings(out: Path, ckpt_path: Path, now: dict[str, Any], select: str = "elbo",
                           ema: float = 0.0) -> None:
    """Refuse a resume whose model options differ from the run's, naming each change.

    Options without weights (dropout, word dropout) would otherwise change silently; so would
    the selection figure, whose best-so-far the checkpoint carries, and the weight average, whose
    state it carries."""
    saved_meta = out / "config.json"
    if not saved_meta.is_file():
        return
    saved = json.loads(saved_meta.read_text())
    train = saved.get("train", {})
    before = {**saved.get("model", {}), "select": train.get("select", "elbo"), "ema": train.get("ema", 0.0)}
    now = {**now, "select": select, "ema": ema}
    changed = sorted(k for k, v in now.items() if k in before and before[k] != v)
    if changed:
        diff = ", ".join(f"{k} {before[k]} -> {now[k]}" for k in changed)
        raise InvalidInputError(f"{ckpt_path} was trained with other model settings ({diff}); resume with "
                                "the same options", param="resume")


def train_vae(
    train_texts: Sequence[str],
    valid_texts: Sequence[str],
    out_dir: str | Path,
    config: TrainConfig | None = None,
    *,
    resume: bool = False,
    encoder: Any = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train, validate each epoch, keep the epoch with the best valid ELBO in ``out_dir``
    (or the best valid reconstruction, with ``config.select == "rec"``).

    ``out_dir`` holds ``config.json``, ``vocab.txt``, ``model.pt`` (the selected weights),
    ``checkpoint.pt`` (the last epoch, for ``resume``) and ``history.json``. Returns the
    history. The test split is never read here: selection is on ``valid_texts`` only."""
    from tqdm.auto import tqdm

    from textlatent.encoder import Encoder
    from textlatent.models import resolve_device

    cfg = config or TrainConfig()
    check_select(cfg.select)
    check_ema(cfg.ema)
    if cfg.ema and cfg.train_encoder:
        raise InvalidInputError("--ema averages the VAE's weights only; it cannot be combined with "
                                "--train-encoder", param="ema")
    if not (isinstance(cfg.seed, int) and 0 <= cfg.seed <= MAX_SEED):
        raise InvalidInputError(f"seed must be between 0 and {MAX_SEED}, got {cfg.seed}", param="seed")
    out = Path(out_dir)
    ckpt_path = out / "checkpoint.pt"
    if resume and not ckpt_path.is_file():
        raise InvalidInputError(f"--resume given but {ckpt_path} does not exist", param="resume")
    if not train_texts or not valid_texts:
        raise InvalidInputError("training and validation text must both be non-empty", param="train")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    if cfg.max_train_sentences:
        train_texts = list(train_texts)[: cfg.max_train_sentences]

    vocab = Vocab.build(train_texts)
    train_ids = [vocab.encode(s) for s in train_texts]
    valid_ids = [vocab.encode(s) for s in valid_texts]

    if encoder is None:
        encoder = Encoder(cfg.encoder_model, device=device, threads=cfg.threads)
    model_cfg = VAEConfig.from_dict({**cfg.model, "vocab_size": len(vocab), "embed_dim": encoder.dim})
    if resume:  # before the (possibly long) embedding pass, so that a refusal is immediate
        _check_resume_settings(out, ckpt_path, model_cfg.to_dict(), cfg.select, cfg.ema)
    if cfg.train_encoder:
        st_model = encoder.model
        st_model.train()
        train_src = EmbeddingSource(train_texts, None, st_model)
        valid_src = EmbeddingSource(valid_texts, None, st_model)
    else:
        st_model = None
        train_src = EmbeddingSource(train_texts, cached_embeddings(encoder, train_texts, show_progress=progress))
        valid_src = EmbeddingSource(valid_texts, cached_embeddings(encoder, valid_texts, show_progress=progress))

    model = TextVAE(model_cfg).to(device)
    if train_src.cached is not None:
        model.set_input_stats(train_src.cached)
    else:  # fine-tuning the encoder: standardise with the starting encoder's view of (some of) the text
        model.set_input_stats(torch.from_numpy(encoder.encode(list(train_texts)[:2000])))
    params: list[dict[str, Any]] = [{"params": model.parameters(), "lr": cfg.lr}]
    if st_model is not None:
        params.append({"params": st_model.parameters(), "lr": cfg.encoder_lr})
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(train_ids) / cfg.batch_size)
    total_steps = steps_per_epoch * cfg.epochs
    # Cosine decay to a tenth over the run: large steps early, fine ones while the last cycle settles.
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(s, total_steps) / total_steps))
    )

    averaged = ema_model(model, cfg.ema) if cfg.ema else None
    history: list[dict[str, Any]] = []
    start_epoch, step, best = 0, 0, math.inf
    if resume:
        state = torch.load(ckpt_path, map_location=device, weights_only=False)
        try:
            model.load_state_dict(state["model"])
        except RuntimeError:
            raise InvalidInputError(f"{ckpt_path} was trained with other model settings (sizes or training "
                                    "text); resume with the same options", param="resume") from None
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if st_model is not None and "encoder" in state:
            st_model.load_state_dict(state["encoder"])
        if averaged is not None:
            averaged.load_state_dict(state["ema"])
        start_epoch, step, best, history = state["epoch"], state["step"], state["best"], state["history"]
        random.setstate(state["py_rng"])
        torch.set_rng_state(state["torch_rng"])
    out.mkdir(parents=True, exist_ok=True)  # at the first write: a refused run leaves no folder behind
    vocab.save(out / "vocab.txt")
    meta = {"model": model_cfg.to_dict(), "train": asdict(cfg), "encoder": str(encoder.path),
            "encoder_id": encoder.model_id, "trained_encoder": cfg.train_encoder}
    (out / "config.json").write_text(json.dumps(meta, indent=2))

    rng = random.Random(cfg.seed)
    for _ in range(start_epoch):  # replay the batch orders of epochs already done
        list(length_batches([len(s) for s in train_ids], cfg.batch_size, rng))
    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        t0, tokens, sums = time.time(), 0, {"rec": 0.0, "kl": 0.0, "n": 0}
        batches = list(length_batches([len(s) for s in train_ids], cfg.batch_size, rng))
        bar = tqdm(batches, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not progress, mininterval=5)
        for idx in bar:
            beta = beta_at(step, total_steps, cfg.kl_cycles, cfg.kl_rise)
            targets = pad_batch([train_ids[i] for i in idx], device)
            with _autocast(device):
                mu, logvar = model.encode(train_src(idx, device).float())
                z = model.reparameterize(mu, logvar)
                rec = model.reconstruction_nll(z, targets, model_cfg.word_dropout)
            kl_dims = gaussian_kl(mu.float(), logvar.float())
            loss = rec.mean() + beta * kl_term(kl_dims, cfg.free_bits)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for g in params for p in g["params"]] if st_model is not None
                                           else model.parameters(), cfg.clip)
            optimizer.step()
            scheduler.step()
            if averaged is not None:
                averaged.update_parameters(model)
            step += 1
            n_tok = int((targets != 0).sum())
            tokens += n_tok
            sums["rec"] += float(rec.detach().sum())
            sums["kl"] += float(kl_dims.detach().sum())
            sums["n"] += len(idx)
            bar.set_postfix(rec=f"{sums['rec'] / sums['n']:.1f}", kl=f"{sums['kl'] / sums['n']:.2f}",
                            beta=f"{beta:.2f}", tok_s=f"{tokens / (time.time() - t0):.0f}", refresh=False)
        train_time = time.time() - t0
        from textlatent.vae.metrics import active_units, mutual_information

        rng_before_valid = _rng_state(device)
        val = evaluate_elbo(model, valid_src, valid_ids, device, cfg.eval_batch_size)
        au, _ = active_units(val["mu"])
        mi = mutual_information(val["mu"], val["logvar"])
        record = {"epoch": epoch + 1, "step": step, "train_rec": sums["rec"] / sums["n"],
                  "train_kl": sums["kl"] / sums["n"], "train_seconds": round(train_time, 1),
                  "tokens_per_s": round(tokens / train_time, 1), "valid_rec": val["rec"], "valid_kl": val["kl"],
                  "valid_elbo_nll": val["elbo_nll"], "valid_ppl_elbo": val["ppl_elbo"], "valid_au": au,
                  "valid_mi": mi, "beta_end": beta_at(step - 1, total_steps, cfg.kl_cycles, cfg.kl_rise)}
        figure = val["elbo_nll"] if cfg.select == "elbo" else val["rec"]
        weights = model
        if averaged is not None:  # the averaged weights, validated beside the trained ones
            ema_net: TextVAE = averaged.module
            # the same z noise as the trained weights' validation, and the training's random stream untouched
            with torch.random.fork_rng(devices=[device] if device.startswith("cuda") else []):
                _set_rng_state(device, rng_before_valid)
                ema_val = evaluate_elbo(ema_net, valid_src, valid_ids, device, cfg.eval_batch_size)
                record["ema_valid_au"] = active_units(ema_val["mu"])[0]
                record["ema_valid_mi"] = mutual_information(ema_val["mu"], ema_val["logvar"])
            record["ema_valid_rec"], record["ema_valid_kl"] = ema_val["rec"], ema_val["kl"]
            record["ema_valid_elbo_nll"] = ema_val["elbo_nll"]
            ema_figure = ema_val["elbo_nll"] if cfg.select == "elbo" else ema_val["rec"]
            if ema_figure < figure:
                figure, weights = ema_figure, ema_net
            record["weights"] = "ema" if weights is not model else "trained"
        improved = figure < best
        if improved:
            best = figure
            _drop_fitted_files(out)  # first: a crash between the two leaves no stale fit beside new weights
            torch.save(weights.state_dict(), out / "model.pt")
            if st_model is not None:
                st_model.save(str(out / "encoder"))
        record["selected"] = improved
        history.append(record)
        log.info("epoch %d: %s", epoch + 1, json.dumps({k: round(v, 3) if isinstance(v, float) else v
                                                          for k, v in record.items()}))
        if progress:
            tqdm.write(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in record.items()}),
                       file=sys.stderr)  # stdout is for results (--json prints one object)
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "scheduler": scheduler.state_dict(), "epoch": epoch + 1, "step": step, "best": best,
                 "history": history, "py_rng": random.getstate(), "torch_rng": torch.get_rng_state()}
        if st_model is not None:
            state["encoder"] = st_model.state_dict()
        if averaged is not None:
            state["ema"] = averaged.state_dict()
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(ckpt_path)
        (out / "history.json").write_text(json.dumps(history, indent=2))
    kept = [r for r in history if r["selected"]][-1]
    prefix = "ema_" if kept.get("weights") == "ema" else ""
    return {"history": history, "select": cfg.select, "best_valid_elbo_nll": kept[f"{prefix}valid_elbo_nll"],
            "best_valid_rec": kept[f"{prefix}valid_rec"], "best_valid_kl": kept[f"{prefix}valid_kl"],
            "best_valid_au": kept[f"{prefix}valid_au"], "epoch": kept["epoch"],
            "weights": kept.get("weights", "trained")}
