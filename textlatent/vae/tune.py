"""Re-fit a trained VAE's encoder to its final decoder: the amortisation gap, closed once for all.

The posterior q(z|x) and the decoder p(x|z) are trained together, and at the end the posterior
lags behind the decoder (He et al. 2019, "lagging inference networks"): refining each sentence's
q by gradient steps on its own ELBO (``vae eval --refine-steps``) lowers the PTB −ELBO by
~2.5 nats. This step trains the posterior head alone, the decoder frozen and run as at evaluation
(no dropout), on the training sentences' ELBO (β = 1, the training's free bits): one amortised
q that is closer to each sentence's best, at no cost per query. The generative model p(x) is
unchanged, so what changes is the bound: a better q gives a tighter ELBO and better importance
samples, and the encodings every route serves match the decoder they are decoded by.

The result is a new model folder (the source is never written); the epoch with the best
held-out −ELBO (every epoch scored on the same z draws) is kept, and the starting weights when no
epoch beats them. A fitted prior or a transfer axis of the source is not carried over: both were
fitted to the old encoder's z; fit them again on the new folder.
"""

from __future__ import annotations

import json
import logging
import math
import random
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from textlatent.errors import InvalidInputError
from textlatent.vae.model import gaussian_kl
from textlatent.vae.ops import VAEPipeline
from textlatent.vae.train import EmbeddingSource, evaluate_elbo, kl_term, length_batches, pad_batch, seed_everything

log = logging.getLogger("textlatent.vae")


def tune_posterior(
    pipeline: VAEPipeline, train_texts: Sequence[str], valid_texts: Sequence[str], out: str | Path, *,
    epochs: int = 2, lr: float = 1e-3, free_bits: float | None = None, batch_size: int = 64, clip: float = 5.0,
    seed: int = 0, progress: bool = False,
) -> dict[str, Any]:
    """Train ``pipeline``'s posterior head on ``train_texts`` with everything else fixed and save
    the model with the best valid −ELBO (under N(0, I), the prior it was trained with) to ``out``.
    ``free_bits`` None uses the model's own training setting. Returns the history and figures."""
    from tqdm.auto import tqdm

    from textlatent.vae.data import cached_embeddings

    if not train_texts or not valid_texts:
        raise InvalidInputError("training and validation text must both be non-empty", param="train")
    if not (isinstance(epochs, int) and 1 <= epochs <= 100):
        raise InvalidInputError(f"epochs must be between 1 and 100, got {epochs}", param="epochs")
    if not (math.isfinite(lr) and lr > 0):
        raise InvalidInputError(f"lr must be above 0, got {lr}", param="lr")
    meta = json.loads((pipeline.path / "config.json").read_text())
    trained = meta.get("train") if isinstance(meta.get("train"), dict) else {}
    lam = float(trained.get("free_bits", 0.0)) if free_bits is None else free_bits
    if not (math.isfinite(lam) and lam >= 0):
        raise InvalidInputError(f"free_bits must be 0 or more, got {free_bits}", param="free_bits")
    model, vocab, device = pipeline.model, pipeline.vocab, pipeline.device
    if model.prior is not None:
        raise InvalidInputError("load the model with its standard prior: the posterior is tuned against the "
                                "prior it was trained with", param="model")
    seed_everything(seed)
    train_ids = [vocab.encode(s) for s in train_texts]
    valid_ids = [vocab.encode(s) for s in valid_texts]
    train_src = EmbeddingSource(train_texts, cached_embeddings(pipeline.encoder, train_texts, show_progress=progress))
    valid_src = EmbeddingSource(valid_texts, cached_embeddings(pipeline.encoder, valid_texts, show_progress=progress))

    out = Path(out)
    was = [p.requires_grad for p in model.parameters()]
    model.requires_grad_(False)
    model.posterior.requires_grad_(True)
    params = list(model.posterior.parameters())
    optimizer = torch.optim.Adam(params, lr=lr)
    start = {k: v.detach().clone() for k, v in model.state_dict().items()}
    history: list[dict[str, Any]] = []
    t_start = time.time()
    try:
        model.eval()  # the decoder as it runs at evaluation: no dropout

        def validate() -> dict[str, Any]:  # every epoch scored on the same z noise, so epochs compare fairly
            kind = torch.device(device).type
            with torch.random.fork_rng(devices=[] if kind == "cpu" else [device], device_type=kind):
                torch.manual_seed(seed)
                return evaluate_elbo(model, valid_src, valid_ids, device)

        base = validate()
        best, best_state = base["elbo_nll"], start
        log.info("start: valid -ELBO %.3f (rec %.3f, KL %.3f)", base["elbo_nll"], base["rec"], base["kl"])
        rng = random.Random(seed)
        # cuDNN's GRU backward refuses evaluation mode; the native kernel computes the same GRU.
        with torch.backends.cudnn.flags(enabled=False):
            for epoch in range(epochs):
                t0, sums = time.time(), {"rec": 0.0, "kl": 0.0, "n": 0}
                batches = list(length_batches([len(s) for s in train_ids], batch_size, rng))
                bar = tqdm(batches, desc=f"tune q(z|x) {epoch + 1}/{epochs}", disable=not progress, mininterval=5)
                for idx in bar:
                    targets = pad_batch([train_ids[i] for i in idx], device)
                    mu, logvar = model.encode(train_src(idx, device).float())
                    z = model.reparameterize(mu, logvar)
                    rec = model.reconstruction_nll(z, targets)
                    kl_dims = gaussian_kl(mu.float(), logvar.float())
                    loss = rec.mean() + kl_term(kl_dims, lam)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(params, clip)
                    optimizer.step()
                    sums["rec"] += float(rec.detach().sum())
                    sums["kl"] += float(kl_dims.detach().sum())
                    sums["n"] += len(idx)
                    bar.set_postfix(rec=f"{sums['rec'] / sums['n']:.1f}", kl=f"{sums['kl'] / sums['n']:.2f}",
                                    refresh=False)
                val = validate()
                improved = val["elbo_nll"] < best
                if improved:
                    best = val["elbo_nll"]
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                record = {"epoch": epoch + 1, "train_rec": sums["rec"] / sums["n"], "train_kl": sums["kl"] / sums["n"],
                          "valid_rec": val["rec"], "valid_kl": val["kl"], "valid_elbo_nll": val["elbo_nll"],
                          "seconds": round(time.time() - t0, 1), "selected": improved}
                history.append(record)
                line = json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in record.items()})
                log.info("epoch %d: %s", epoch + 1, line)
                if progress:
                    print(line, file=sys.stderr)
    finally:
        for p, r in zip(model.parameters(), was, strict=True):
            p.requires_grad_(r)
        model.load_state_dict(start)  # the caller's pipeline is left as it came
    result = {"start_valid_elbo_nll": base["elbo_nll"], "start_valid_kl": base["kl"], "best_valid_elbo_nll": best,
              "epoch": max((r["epoch"] for r in history if r["selected"]), default=0), "history": history,
              "free_bits": lam, "lr": lr, "seconds": round(time.time() - t_start, 1)}
    _save(pipeline, meta, best_state, out, result)
    return result


def _save(pipeline: VAEPipeline, meta: dict[str, Any], state: dict[str, torch.Tensor], out: Path,
          result: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy2(pipeline.path / "vocab.txt", out / "vocab.txt")
    if (pipeline.path / "history.json").is_file():
        shutil.copy2(pipeline.path / "history.json", out / "history.json")
    if meta.get("trained_encoder") and (pipeline.path / "encoder").is_dir():
        shutil.copytree(pipeline.path / "encoder", out / "encoder", dirs_exist_ok=True)
    torch.save(state, out / "model.pt")
    tuning = {k: v for k, v in result.items() if k != "history"}
    tuning["source"] = str(pipeline.path)
    (out / "config.json").write_text(json.dumps({**meta, "posterior_tuning": tuning}, indent=2))
    (out / "tune_history.json").write_text(json.dumps(result["history"], indent=2))
