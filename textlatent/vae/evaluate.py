"""All the figures of a trained VAE on one text file, as the PTB anchors report them.

* ``rec``: reconstruction NLL per sentence, −E_q log p(x|z) (one z per sentence);
* ``kl``: KL(q(z|x) ‖ p(z)) per sentence, in closed form;
* ``nll``: −ELBO = rec + kl per sentence (the bound Bowman et al. 2016 report as NLL);
* ``iw_nll``: importance-weighted NLL per sentence with ``k`` samples (k = 100 by default);
* ``ppl``: perplexity per word from ``iw_nll``, ``<eos>`` counted (PTB convention);
  ``ppl_elbo`` the same from the ELBO;
* ``au``: active units (Cov_x E_q[z] > 0.01); ``mi``: I(x; z) under q (He et al. 2019).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import torch

from textlatent.vae.metrics import active_units, iw_log_likelihood, mutual_information
from textlatent.vae.ops import VAEPipeline
from textlatent.vae.train import EmbeddingSource, evaluate_elbo, length_batches, pad_batch


@torch.no_grad()
def evaluate_pipeline(
    pipeline: VAEPipeline, texts: Sequence[str], *, k: int = 100, seed: int = 0, sentences_per_batch: int = 10,
    progress: bool = False,
) -> dict[str, Any]:
    """Every figure above for ``texts`` (sentences, one per item)."""
    from tqdm.auto import tqdm

    from textlatent.vae.data import cached_embeddings

    torch.manual_seed(seed)
    t0 = time.time()
    model, device = pipeline.model, pipeline.device
    ids = [pipeline.vocab.encode(s) for s in texts]
    emb = cached_embeddings(pipeline.encoder, texts, show_progress=progress)
    source = EmbeddingSource(texts, emb)
    elbo = evaluate_elbo(model, source, ids, device)
    au, au_var = active_units(elbo["mu"])
    generator = torch.Generator().manual_seed(seed)
    mi = mutual_information(elbo["mu"], elbo["logvar"], generator=generator)
    iw_total = 0.0
    if k > 0:
        batches = list(length_batches([len(s) for s in ids], sentences_per_batch, None))
        for idx in tqdm(batches, desc=f"iw-nll k={k}", disable=not progress, mininterval=5):
            targets = pad_batch([ids[i] for i in idx], device)
            mu, logvar = model.encode(source(idx, device))

            def log_px_given_z(z: torch.Tensor, targets: torch.Tensor = targets) -> torch.Tensor:
                b, m, d = z.shape
                rep = targets.repeat_interleave(m, dim=0)
                return -model.reconstruction_nll(z.reshape(b * m, d), rep).view(b, m)

            iw_total += -float(iw_log_likelihood(log_px_given_z, mu.float(), logvar.float(), k=k,
                                                 chunk=min(k, 100), generator=generator).sum())
    n, tokens = len(ids), sum(len(s) for s in ids)
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
    }
    return result
