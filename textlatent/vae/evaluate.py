"""All the figures of a trained VAE on one text file, as the PTB anchors report them.

* ``rec``: reconstruction NLL per sentence, −E_q log p(x|z) (one z per sentence);
* ``kl``: KL(q(z|x) ‖ p(z)) per sentence: in closed form under N(0, I); under a fitted prior
  (``prior.json``, :mod:`textlatent.vae.prior`) q's entropy in closed form and E_q log p(z) from 16 draws;
* ``nll``: −ELBO = rec + kl per sentence (the bound Bowman et al. 2016 report as NLL);
* ``iw_nll``: importance-weighted NLL per sentence with ``k`` samples (k = 100 by default);
* ``ppl``: perplexity per word from ``iw_nll``, ``<eos>`` counted (PTB convention);
  ``ppl_elbo`` the same from the ELBO;
* ``au``: active units (Cov_x E_q[z] > 0.01); ``mi``: I(x; z) under q (He et al. 2019).

With ``refine_steps`` > 0 every figure is computed under refined posteriors (see
:func:`textlatent.vae.metrics.refine_gaussian_posterior`): the encoder's q(z|x), then that
many Adam steps on each sentence's own ELBO with the model fixed. The result says so
(``posterior``) and keeps the encoder's own −ELBO, reconstruction and KL under ``amortized``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from textlatent.vae.metrics import active_units, iw_log_likelihood, mutual_information, refine_gaussian_posterior
from textlatent.vae.model import TextVAE
from textlatent.vae.ops import VAEPipeline
from textlatent.vae.train import EmbeddingSource, evaluate_elbo, length_batches, pad_batch


def _log_px_given_z(model: TextVAE, targets: torch.Tensor):  # type: ignore[no-untyped-def]
    """log p(x_b | z_bm) for ``z`` ``[B, m, d]`` → ``[B, m]``, the form the estimators take."""

    def log_px_given_z(z: torch.Tensor) -> torch.Tensor:
        b, m, d = z.shape
        return -model.reconstruction_nll(z.reshape(b * m, d), targets.repeat_interleave(m, dim=0)).view(b, m)

    return log_px_given_z


def refined_posteriors(
    model: TextVAE, source: EmbeddingSource, ids: Sequence[Sequence[int]], device: str, *, steps: int,
    lr: float, seed: int = 0, batch_size: int = 64, progress: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """μ, log σ² ``[N, d]`` for every sentence: the encoder's, refined by ``steps`` Adam steps
    (rate ``lr``) on each sentence's ELBO, with the model in evaluation mode and fixed."""
    from tqdm.auto import tqdm

    was_training = model.training
    model.eval()
    n, d = len(ids), model.config.latent_dim
    mu_all, logvar_all = torch.zeros(n, d), torch.zeros(n, d)
    # Its own stream, never the one the estimators draw from afterwards: were the refinement's
    # noise the evaluation's samples, q could fit those very samples and the bound would cheat.
    stream = int(np.random.SeedSequence([seed, 0x5EF1]).generate_state(1, dtype=np.uint64)[0] >> 1)
    generator = torch.Generator(device=device).manual_seed(stream)
    was = [p.requires_grad for p in model.parameters()]
    model.requires_grad_(False)  # gradients for μ and log σ² only
    batches = list(length_batches([len(s) for s in ids], batch_size, None))
    try:
        # cuDNN's GRU backward refuses to run in evaluation mode; the native kernel computes the same GRU.
        with torch.backends.cudnn.flags(enabled=False):
            for idx in tqdm(batches, desc=f"refine q(z|x), {steps} steps", disable=not progress, mininterval=5):
                targets = pad_batch([ids[i] for i in idx], device)
                mu, logvar = model.encode(source(idx, device))
                mu, logvar = refine_gaussian_posterior(_log_px_given_z(model, targets), mu.float(), logvar.float(),
                                                       steps=steps, lr=lr, generator=generator,
                                                       log_prior=None if model.prior is None else model.log_prior)
                mu_all[idx], logvar_all[idx] = mu.cpu(), logvar.cpu()
    finally:
        for p, r in zip(model.parameters(), was, strict=True):
            p.requires_grad_(r)
        model.train(was_training)
    return mu_all, logvar_all


@torch.no_grad()
def evaluate_pipeline(
    pipeline: VAEPipeline, texts: Sequence[str], *, k: int = 100, seed: int = 0, sentences_per_batch: int = 10,
    progress: bool = False, refine_steps: int = 0, refine_lr: float = 0.05,
) -> dict[str, Any]:
    """Every figure above for ``texts`` (sentences, one per item); under refined posteriors
    when ``refine_steps`` > 0."""
    from tqdm.auto import tqdm

    from textlatent.vae.data import cached_embeddings

    torch.manual_seed(seed)
    t0 = time.time()
    model, device = pipeline.model, pipeline.device
    ids = [pipeline.vocab.encode(s) for s in texts]
    emb = cached_embeddings(pipeline.encoder, texts, show_progress=progress)
    source = EmbeddingSource(texts, emb)
    elbo = amortized = evaluate_elbo(model, source, ids, device)  # `elbo`: under the posteriors reported
    refined: dict[str, Any] = {"posterior": {"refine_steps": 0}}
    if refine_steps > 0:
        posteriors = refined_posteriors(model, source, ids, device, steps=refine_steps, lr=refine_lr, seed=seed,
                                        progress=progress)
        elbo = evaluate_elbo(model, source, ids, device, posteriors=posteriors)
        refined = {
            "posterior": {"refine_steps": refine_steps, "refine_lr": refine_lr},
            "amortized": {key: amortized[name] for key, name in
                          (("rec", "rec"), ("kl", "kl"), ("nll", "elbo_nll"), ("ppl_elbo", "ppl_elbo"))},
        }
    n, tokens = len(ids), sum(len(s) for s in ids)
    mu_all, logvar_all = elbo["mu"], elbo["logvar"]
    au, au_var = active_units(mu_all)
    generator = torch.Generator().manual_seed(seed)
    mi = mutual_information(mu_all, logvar_all, generator=generator)
    # The samples are drawn where the decoder runs. On the CPU the one generator continues (the
    # figures published so far were drawn so); a GPU needs a generator of its own device.
    if torch.device(device).type != "cpu":
        generator = torch.Generator(device=device).manual_seed(seed)
    iw_total = 0.0
    if k > 0:
        batches = list(length_batches([len(s) for s in ids], sentences_per_batch, None))
        for idx in tqdm(batches, desc=f"iw-nll k={k}", disable=not progress, mininterval=5):
            targets = pad_batch([ids[i] for i in idx], device)
            mu, logvar = mu_all[idx].to(device), logvar_all[idx].to(device)
            iw_total += -float(iw_log_likelihood(_log_px_given_z(model, targets), mu, logvar, k=k,
                                                 chunk=min(k, 100), generator=generator,
                                                 log_prior=model.log_prior).sum())
    result = {
        "sentences": n,
        "tokens": tokens,
        "rec": elbo["rec"],
        "kl": elbo["kl"],
        "nll": elbo["elbo_nll"],
        "ppl_elbo": elbo["ppl_elbo"],
        "iw_nll": iw_total / n if k > 0 else None,
        "ppl": math.exp(iw_total / tokens) if k > 0 else None,
        "iw_samples": k,
        "au": au,
        "au_variances": [round(float(v), 4) for v in au_var],
        "mi": mi,
        "seconds": round(time.time() - t0, 1),
        "prior": ({"kind": "standard"} if model.prior is None else
                  {"kind": "gaussian-mixture", "components": model.prior.components}),
        **refined,
    }
    return result
