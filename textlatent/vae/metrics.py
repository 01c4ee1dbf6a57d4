"""Estimators for a VAE's quality, each written against plain tensors so that it can be
checked on a model whose answer is known (see ``tests/vae/test_metrics.py``).

* importance-weighted NLL (Burda et al. 2016): −log (1/k Σ p(x, z_i) / q(z_i|x)), z_i ~ q;
  an upper bound on −log p(x) that tightens as k grows, and the figure the PTB anchors report.
* active units (Burda et al. 2016): dimensions whose posterior mean varies across inputs,
  Cov_x(E_q[z_d]) > 0.01.
* mutual information I(x; z) under q (He et al. 2019):
  E_x[E_q log q(z|x)] − E_q log q(z), the aggregate posterior q(z) estimated by the mixture
  of the posteriors of the evaluation set.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

LOG_2PI = math.log(2 * math.pi)


def gaussian_log_density(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; μ, diag σ²) summed over the last dimension (broadcasting)."""
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) / logvar.exp()).sum(dim=-1)


def iw_log_likelihood(
    log_px_given_z: Callable[[torch.Tensor], torch.Tensor],
    mu: torch.Tensor,
    logvar: torch.Tensor,
    k: int = 100,
    chunk: int = 100,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Importance-weighted estimate of log p(x) for each of ``B`` inputs → ``[B]``.

    ``log_px_given_z(z)`` takes ``z`` of shape ``[B, m, d]`` and returns log p(x_b | z_bm)
    as ``[B, m]``. Samples are drawn ``chunk`` at a time (memory), then combined with one
    log-sum-exp over all ``k``."""
    weights = []
    std = (0.5 * logvar).exp()
    for start in range(0, k, chunk):
        m = min(chunk, k - start)
        eps = torch.randn(mu.shape[0], m, mu.shape[1], device=mu.device, dtype=mu.dtype, generator=generator)
        z = mu.unsqueeze(1) + std.unsqueeze(1) * eps
        log_prior = gaussian_log_density(z, torch.zeros_like(z), torch.zeros_like(z))
        log_q = gaussian_log_density(z, mu.unsqueeze(1), logvar.unsqueeze(1))
        weights.append(log_px_given_z(z) + log_prior - log_q)
    return torch.logsumexp(torch.cat(weights, dim=1), dim=1) - math.log(k)


def active_units(mu: torch.Tensor, threshold: float = 0.01) -> tuple[int, torch.Tensor]:
    """Number of dimensions whose posterior mean's variance over inputs exceeds ``threshold``,
    and the per-dimension variances (``mu``: ``[N, d]``, all evaluation inputs)."""
    var = mu.double().var(dim=0, unbiased=True) if mu.shape[0] > 1 else torch.zeros(mu.shape[1])
    return int((var > threshold).sum()), var.float()


def mutual_information(
    mu: torch.Tensor, logvar: torch.Tensor, chunk: int = 128, generator: torch.Generator | None = None
) -> float:
    """I(x; z) under q for the ``N`` inputs whose posteriors are given (He et al. 2019).

    One z is drawn from each posterior; log q(z) is the log of the mixture of all ``N``
    posteriors at that z. The estimate lies in [0, log N]: it cannot see more information
    than it takes to tell ``N`` inputs apart."""
    mu, logvar = mu.double(), logvar.double()
    n, d = mu.shape
    neg_entropy = (-0.5 * d * LOG_2PI - 0.5 * (1 + logvar).sum(dim=-1)).mean()
    eps = torch.randn(mu.shape, dtype=mu.dtype, device=mu.device, generator=generator)
    z = mu + (0.5 * logvar).exp() * eps
    log_qz = []
    for start in range(0, n, chunk):
        zs = z[start:start + chunk].unsqueeze(1)  # [c, 1, d] against all N posteriors
        dens = gaussian_log_density(zs, mu.unsqueeze(0), logvar.unsqueeze(0))  # [c, N]
        log_qz.append(torch.logsumexp(dens, dim=1) - math.log(n))
    return float(neg_entropy - torch.cat(log_qz).mean())
