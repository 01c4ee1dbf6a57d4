"""Estimators for a VAE's quality, each written against plain tensors so that it can be
checked on a model whose answer is known (see ``tests/vae/test_metrics.py``).

* importance-weighted NLL (Burda et al. 2016): −log (1/k Σ p(x, z_i) / q(z_i|x)), z_i ~ q;
  an upper bound on −log p(x) that tightens as k grows, and the figure the PTB anchors report.
* active units (Burda et al. 2016): dimensions whose posterior mean varies across inputs,
  Cov_x(E_q[z_d]) > 0.01.
* mutual information I(x; z) under q (He et al. 2019):
  E_x[E_q log q(z|x)] − E_q log q(z), the aggregate posterior q(z) estimated by the mixture
  of the posteriors of the evaluation set.
* refined posteriors (semi-amortised inference, Kim et al. 2018; the amortisation gap of
  Cremer et al. 2018): q(z|x) from the encoder, then gradient steps on each input's own
  ELBO with the model fixed. Any q is a valid importance-sampling proposal, so the
  IW-NLL under a refined q is still an upper bound on −log p(x) (in expectation). It is
  usually a tighter one when the encoder's q was off, but not always: the ELBO-optimal
  Gaussian is narrow, and importance sampling prefers proposals wider than the posterior.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

LOG_2PI = math.log(2 * math.pi)


def gaussian_log_density(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; μ, diag σ²) summed over the last dimension (broadcasting)."""
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) / logvar.exp()).sum(dim=-1)


def standard_log_prob(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) over the last dimension."""
    return -0.5 * (LOG_2PI + z.pow(2)).sum(dim=-1)


def gaussian_neg_entropy(logvar: torch.Tensor) -> torch.Tensor:
    """E_q log q(z) = −H(q) for q = N(μ, diag σ²), over the last dimension (μ plays no part)."""
    return -0.5 * (logvar.shape[-1] * (1 + LOG_2PI) + logvar.sum(dim=-1))


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, σ²) ‖ N(0, I)) per dimension, ``[B, d]``."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def iw_log_likelihood(
    log_px_given_z: Callable[[torch.Tensor], torch.Tensor],
    mu: torch.Tensor,
    logvar: torch.Tensor,
    k: int = 100,
    chunk: int = 100,
    generator: torch.Generator | None = None,
    log_prior: Callable[[torch.Tensor], torch.Tensor] = standard_log_prob,
) -> torch.Tensor:
    """Importance-weighted estimate of log p(x) for each of ``B`` inputs → ``[B]``.

    ``log_px_given_z(z)`` takes ``z`` of shape ``[B, m, d]`` and returns log p(x_b | z_bm)
    as ``[B, m]``; ``log_prior(z)`` is log p(z) over the last dimension (N(0, I) by default).
    Samples are drawn ``chunk`` at a time (memory), then combined with one log-sum-exp over all ``k``."""
    weights = []
    std = (0.5 * logvar).exp()
    for start in range(0, k, chunk):
        m = min(chunk, k - start)
        eps = torch.randn(mu.shape[0], m, mu.shape[1], device=mu.device, dtype=mu.dtype, generator=generator)
        z = mu.unsqueeze(1) + std.unsqueeze(1) * eps
        log_q = gaussian_log_density(z, mu.unsqueeze(1), logvar.unsqueeze(1))
        weights.append(log_px_given_z(z) + log_prior(z) - log_q)
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
    neg_entropy = gaussian_neg_entropy(logvar).mean()
    eps = torch.randn(mu.shape, dtype=mu.dtype, device=mu.device, generator=generator)
    z = mu + (0.5 * logvar).exp() * eps
    log_qz = []
    for start in range(0, n, chunk):
        zs = z[start:start + chunk].unsqueeze(1)  # [c, 1, d] against all N posteriors
        dens = gaussian_log_density(zs, mu.unsqueeze(0), logvar.unsqueeze(0))  # [c, N]
        log_qz.append(torch.logsumexp(dens, dim=1) - math.log(n))
    return float(neg_entropy - torch.cat(log_qz).mean())


def refine_gaussian_posterior(
    log_px_given_z: Callable[[torch.Tensor], torch.Tensor],
    mu: torch.Tensor,
    logvar: torch.Tensor,
    *,
    steps: int,
    lr: float = 0.05,
    generator: torch.Generator | None = None,
    logvar_range: tuple[float, float] = (-12.0, 8.0),
    log_prior: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Take ``steps`` Adam steps on each input's ELBO, log p(x|z) + log p(z) − log q(z|x) with
    one reparameterised z per step (the rate decaying to 0 on a cosine), starting from ``mu``,
    ``logvar`` ``[B, d]``. The KL is in closed form under N(0, I); under another prior
    (``log_prior``, log p(z) over the last dimension) it is q's entropy in closed form minus
    log p(z) at the step's z. Returns the refined ``mu``, ``logvar`` (detached; ``logvar`` kept in
    ``logvar_range``, the encoder's own clamp). ``log_px_given_z`` is as for
    :func:`iw_log_likelihood`. The inputs' ELBOs are independent, so their sum is optimised
    and Adam's per-coordinate scaling gives every input its own step sizes."""
    mu = mu.detach().clone().requires_grad_(True)
    logvar = logvar.detach().clone().requires_grad_(True)
    optimizer = torch.optim.Adam([mu, logvar], lr=lr)
    # The rate decays to 0 (cosine): single-sample gradients are noisy, and a constant rate would
    # leave the last iterate jittering around the optimum at the scale of ``lr``.
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(steps, 1))
    with torch.enable_grad():
        for _ in range(steps):
            eps = torch.randn(mu.shape, device=mu.device, dtype=mu.dtype, generator=generator)
            z = mu + (0.5 * logvar).exp() * eps
            if log_prior is None:
                kl = gaussian_kl(mu, logvar).sum(dim=-1)
            else:
                kl = gaussian_neg_entropy(logvar) - log_prior(z)
            loss = (kl - log_px_given_z(z.unsqueeze(1)).squeeze(1)).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            with torch.no_grad():
                logvar.clamp_(*logvar_range)
    return mu.detach(), logvar.detach()
