"""The estimators on cases whose answer is known in closed form."""

from __future__ import annotations

import math

import pytest
import torch

from textlatent.vae.metrics import (
    active_units,
    gaussian_log_density,
    iw_log_likelihood,
    mutual_information,
    refine_gaussian_posterior,
)
from textlatent.vae.model import gaussian_kl
from textlatent.vae.train import beta_at, kl_term


def _linear_gaussian(x: torch.Tensor, s2: float):
    """p(z) = N(0, I), p(x|z) = N(z, s2 I): then p(x) = N(0, (1 + s2) I) and the exact
    posterior is N(x / (1 + s2), s2 / (1 + s2) I)."""

    def log_px_given_z(z: torch.Tensor) -> torch.Tensor:
        return gaussian_log_density(x.unsqueeze(1), z, torch.full_like(z, math.log(s2)))

    exact = gaussian_log_density(x, torch.zeros_like(x), torch.full_like(x, math.log(1 + s2)))
    return log_px_given_z, exact


def test_iw_estimate_is_exact_with_the_true_posterior():
    x = torch.randn(6, 3, generator=torch.Generator().manual_seed(0)) * 2
    s2 = 0.5
    log_px_given_z, exact = _linear_gaussian(x, s2)
    mu = x / (1 + s2)
    logvar = torch.full_like(x, math.log(s2 / (1 + s2)))
    # Every importance weight equals p(x) when q is the exact posterior: no variance at all, any k.
    for k in (1, 7, 100):
        est = iw_log_likelihood(log_px_given_z, mu.double(), logvar.double(), k=k, chunk=30)
        torch.testing.assert_close(est, exact.double(), atol=1e-6, rtol=0)


def test_iw_estimate_tightens_towards_the_truth_with_more_samples():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(200, 2, generator=gen, dtype=torch.float64)
    s2 = 0.3
    log_px_given_z, exact = _linear_gaussian(x, s2)
    mu = torch.zeros_like(x)  # q = the prior: a poor proposal
    logvar = torch.zeros_like(x)
    gap_1 = (exact - iw_log_likelihood(log_px_given_z, mu, logvar, k=1, generator=gen)).mean()
    gap_k = (exact - iw_log_likelihood(log_px_given_z, mu, logvar, k=2000, chunk=500, generator=gen)).mean()
    assert gap_1 > 0.3  # the one-sample bound is loose (it is the ELBO)...
    assert -0.02 < gap_k < 0.1 * gap_1  # ...and k samples close most of it (a bound only in expectation)


def test_refinement_moves_a_poor_posterior_to_the_exact_one_and_tightens_the_bound():
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(50, 3, generator=gen, dtype=torch.float64) * 2
    s2 = 0.4
    log_px_given_z, exact = _linear_gaussian(x, s2)
    mu0, logvar0 = torch.zeros_like(x), torch.zeros_like(x)  # start from the prior, a poor q
    mu, logvar = refine_gaussian_posterior(log_px_given_z, mu0, logvar0, steps=400, lr=0.05, generator=gen)
    # One z per step makes the gradients noisy: each coordinate lands near, not on, the optimum.
    assert float((mu - x / (1 + s2)).abs().mean()) < 0.05
    assert float((logvar - math.log(s2 / (1 + s2))).abs().mean()) < 0.1
    assert not mu.requires_grad and not logvar.requires_grad
    gap_before = (exact - iw_log_likelihood(log_px_given_z, mu0, logvar0, k=10, generator=gen)).mean()
    gap_after = (exact - iw_log_likelihood(log_px_given_z, mu, logvar, k=10, generator=gen)).mean()
    assert gap_before > 1.0
    assert abs(gap_after) < 0.05  # near the exact posterior, the weights barely vary
    # No steps: the posterior comes back unchanged; the clamp keeps log σ² where the encoder keeps it.
    same_mu, same_logvar = refine_gaussian_posterior(log_px_given_z, mu0, logvar0, steps=0)
    assert torch.equal(same_mu, mu0) and torch.equal(same_logvar, logvar0)
    _, clamped = refine_gaussian_posterior(log_px_given_z, mu0, logvar0, steps=5, lr=5.0, logvar_range=(-1.0, 0.5))
    assert float(clamped.min()) >= -1.0 and float(clamped.max()) <= 0.5


def test_active_units_counts_dimensions_whose_mean_varies():
    gen = torch.Generator().manual_seed(0)
    mu = torch.randn(1000, 6, generator=gen) * torch.tensor([1.0, 0.5, 0.2, 0.05, 0.01, 0.0])
    au, var = active_units(mu)
    assert au == 3  # variances ~1, 0.25, 0.04 pass 0.01; 0.0025, 1e-4, 0 do not
    assert var.shape == (6,)
    assert active_units(torch.zeros(1, 4))[0] == 0


def test_mutual_information_of_a_gaussian_channel():
    """x ~ N(0, 1), q(z|x) = N(a x, s²): I(x; z) = ½ log(1 + a²/s²) per dimension."""
    gen = torch.Generator().manual_seed(0)
    a, s2, n, d = 1.0, 0.5, 3000, 2
    x = torch.randn(n, d, generator=gen)
    mi = mutual_information(a * x, torch.full((n, d), math.log(s2)), generator=gen)
    assert mi == pytest.approx(d * 0.5 * math.log(1 + a * a / s2), abs=0.08)


def test_mutual_information_bounds():
    gen = torch.Generator().manual_seed(0)
    n = 500
    same = mutual_information(torch.zeros(n, 4), torch.zeros(n, 4), generator=gen)
    assert abs(same) < 0.05  # z says nothing about x when every posterior is the same
    far = mutual_information(torch.arange(n, dtype=torch.float32)[:, None] * 100.0 * torch.ones(n, 3),
                             torch.full((n, 3), -4.0), generator=gen)
    assert far == pytest.approx(math.log(n), abs=0.1)  # each z names its x: the log N ceiling (±MC noise)


def test_gaussian_kl_matches_torch_distributions():
    gen = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(5, 4, generator=gen), torch.randn(5, 4, generator=gen)
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    torch.testing.assert_close(gaussian_kl(mu, logvar), torch.distributions.kl_divergence(q, p))


def test_cyclical_beta_schedule():
    total, cycles = 400, 4  # 100 steps per cycle, β rises over the first 50
    assert beta_at(0, total, cycles) == 0.0
    assert beta_at(25, total, cycles) == pytest.approx(0.5)
    assert beta_at(50, total, cycles) == 1.0
    assert beta_at(99, total, cycles) == 1.0
    assert beta_at(100, total, cycles) == 0.0  # next cycle restarts
    assert beta_at(399, total, cycles) == 1.0
    assert beta_at(7, total, 0) == 1.0  # no annealing


def test_free_bits_charge_at_least_lambda_per_dimension():
    kl = torch.tensor([[0.0, 1.0, 0.1], [0.2, 3.0, 0.1]])  # batch means: 0.1, 2.0, 0.1
    assert float(kl_term(kl, 0.0)) == pytest.approx(2.2)
    assert float(kl_term(kl, 0.5)) == pytest.approx(0.5 + 2.0 + 0.5)
    grad_kl = kl.clone().requires_grad_(True)
    kl_term(grad_kl, 0.5).backward()
    assert grad_kl.grad is not None
    assert grad_kl.grad[:, 0].abs().sum() == 0  # under the threshold: not pushed towards the prior
    assert grad_kl.grad[:, 1].abs().sum() > 0
