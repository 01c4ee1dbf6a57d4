"""The fitted prior: its density, draws and fit on cases whose answer is known, the estimators
under it, and the ``vae fit-prior`` command on the tiny model."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tests.vae.helpers import split_corpus
from textlatent.errors import InvalidInputError
from textlatent.vae.metrics import gaussian_log_density, iw_log_likelihood, refine_gaussian_posterior
from textlatent.vae.model import gaussian_kl
from textlatent.vae.prior import PRIOR_FILE, MixturePrior, check_components, cross_entropy_gain, fit_mixture


def _random_mixture(k: int = 3, d: int = 4, seed: int = 0) -> MixturePrior:
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(k, d, d, generator=gen, dtype=torch.float64)
    cov = a @ a.transpose(1, 2) + 0.5 * torch.eye(d, dtype=torch.float64)
    weights = torch.rand(k, generator=gen, dtype=torch.float64) + 0.2
    return MixturePrior(weights / weights.sum(), 2 * torch.randn(k, d, generator=gen, dtype=torch.float64),
                        torch.linalg.cholesky(cov))


def _isotropic(mean: list[float], scale: float) -> MixturePrior:
    """One component N(mean, scale² I)."""
    d = len(mean)
    return MixturePrior(torch.ones(1, dtype=torch.float64), torch.tensor([mean], dtype=torch.float64),
                        scale * torch.eye(d, dtype=torch.float64).unsqueeze(0))


def test_log_density_is_the_mixture_of_gaussians():
    from scipy.stats import multivariate_normal

    prior = _random_mixture()
    z = torch.randn(7, 2, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    cov = prior.scale_tril @ prior.scale_tril.transpose(1, 2)
    dens = sum(float(prior.weights[k]) * multivariate_normal(prior.means[k].numpy(), cov[k].numpy()).pdf(
        z.reshape(-1, 4).numpy()) for k in range(3))
    np.testing.assert_allclose(prior.log_prob(z).numpy(), np.log(dens).reshape(7, 2), atol=1e-9)
    # One component with mean 0 and L = I is the standard normal, in whatever dtype z comes.
    std = _isotropic([0.0] * 4, 1.0)
    z32 = z.float()
    out = std.log_prob(z32)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, gaussian_log_density(z32, torch.zeros_like(z32), torch.zeros_like(z32)))
    with pytest.raises(ValueError, match="components"):
        prior.log_prob(torch.zeros(3, 5))


def test_draws_follow_the_mixture_and_repeat_with_the_seed():
    prior = _random_mixture(k=2, d=3, seed=4)
    draws = prior.sample(40_000, np.random.default_rng(0))
    assert draws.shape == (40_000, 3) and draws.dtype == np.float32
    w, m = prior.weights.numpy(), prior.means.numpy()
    cov = (prior.scale_tril @ prior.scale_tril.transpose(1, 2)).numpy()
    mean = (w[:, None] * m).sum(0)
    total = sum(w[k] * (cov[k] + np.outer(m[k] - mean, m[k] - mean)) for k in range(2))
    np.testing.assert_allclose(draws.mean(0), mean, atol=0.08)
    np.testing.assert_allclose(np.cov(draws.T), total, atol=0.25, rtol=0.05)
    assert np.array_equal(prior.sample(5, np.random.default_rng(3)), prior.sample(5, np.random.default_rng(3)))


def test_bad_parameters_are_refused():
    eye = torch.eye(2, dtype=torch.float64).unsqueeze(0)
    with pytest.raises(ValueError, match="sum to 1"):
        MixturePrior(torch.tensor([0.5], dtype=torch.float64), torch.zeros(1, 2), eye)
    with pytest.raises(ValueError, match="diagonal of at least"):
        MixturePrior(torch.ones(1), torch.zeros(1, 2), -eye)
    with pytest.raises(ValueError, match="shapes"):
        MixturePrior(torch.ones(1), torch.zeros(1, 3), eye)
    with pytest.raises(ValueError, match="non-finite"):
        MixturePrior(torch.ones(1), torch.tensor([[0.0, float("nan")]]), eye)
    with pytest.raises(ValueError, match="diagonal of at least"):  # near-singular: every density would be NaN
        MixturePrior(torch.ones(1), torch.zeros(1, 2), eye * 1e-320)
    for bad in ([], [0], [257], [1.5], [True]):
        with pytest.raises(InvalidInputError):
            check_components(bad)  # type: ignore[arg-type]
    assert check_components([4, 1, 4]) == [4, 1]


def test_the_fit_recovers_the_aggregate_posterior_and_its_gain():
    # Posteriors N(μ_x, σ² I) with μ_x ~ N(c, a² I): the aggregate is N(c, (a² + σ²) I) exactly.
    rng = np.random.default_rng(12345)  # not the fit's seed 0: its draws would repeat this noise
    n, d, a2, s2 = 20_000, 3, 0.25, 0.09
    c = np.array([1.0, -0.5, 0.0])
    mu = c + math.sqrt(a2) * rng.standard_normal((n, d))
    logvar = np.full((n, d), math.log(s2))
    prior = fit_mixture(mu, logvar, 1, draws=2, seed=0)
    np.testing.assert_allclose(prior.means[0].numpy(), c, atol=0.02)
    cov = (prior.scale_tril[0] @ prior.scale_tril[0].T).numpy()
    np.testing.assert_allclose(cov, (a2 + s2) * np.eye(d), atol=0.02)
    assert prior.meta["fitted_on"] == n and prior.meta["converged"]
    # The ELBO gain over N(0, I) is E_q[log p_ψ − log N(0, I)] = KL(aggregate ‖ N(0, I)) here.
    v = a2 + s2
    expected = 0.5 * (d * (v - 1 - math.log(v)) + float(c @ c))
    assert cross_entropy_gain(prior, mu[:3000], logvar[:3000], draws=20) == pytest.approx(expected, abs=0.05)
    with pytest.raises(InvalidInputError, match="too few"):
        fit_mixture(mu[:3], logvar[:3], 8)


def test_estimators_under_a_fitted_prior_are_exact_on_a_linear_gaussian_model():
    # p(z) = N(m, s_p² I), p(x|z) = N(z, s2 I): p(x) = N(m, (s_p² + s2) I) and the posterior is known.
    gen = torch.Generator().manual_seed(5)
    d, s2, sp = 3, 0.5, 1.7
    m = [0.8, -1.0, 0.3]
    prior = _isotropic(m, sp)
    mean = torch.tensor(m, dtype=torch.float64)
    x = mean + torch.randn(40, d, generator=gen, dtype=torch.float64) * 2

    def log_px_given_z(z: torch.Tensor) -> torch.Tensor:
        return gaussian_log_density(x.unsqueeze(1), z, torch.full_like(z, math.log(s2)))

    exact = gaussian_log_density(x, mean.expand_as(x), torch.full_like(x, math.log(sp**2 + s2)))
    post_mu = (sp**2 * x + s2 * mean) / (sp**2 + s2)
    post_logvar = torch.full_like(x, math.log(sp**2 * s2 / (sp**2 + s2)))
    est = iw_log_likelihood(log_px_given_z, post_mu, post_logvar, k=7, log_prior=prior.log_prob, generator=gen)
    torch.testing.assert_close(est, exact, atol=1e-6, rtol=0)  # every weight is p(x) under the exact posterior
    # Under N(0, I) instead the same posterior is no longer exact: the prior matters.
    plain = iw_log_likelihood(log_px_given_z, post_mu, post_logvar, k=7, generator=gen)
    assert float((plain - exact).abs().max()) > 0.1
    # Refinement under the fitted prior lands on the posterior of that prior.
    mu, logvar = refine_gaussian_posterior(log_px_given_z, torch.zeros_like(x), torch.zeros_like(x), steps=400,
                                           lr=0.05, generator=gen, log_prior=prior.log_prob)
    assert float((mu - post_mu).abs().mean()) < 0.06
    assert float((logvar - post_logvar).abs().mean()) < 0.1


def test_the_model_kl_is_closed_form_without_a_prior_and_estimated_with_one(tiny_pipeline):
    model = tiny_pipeline.model
    gen = torch.Generator().manual_seed(0)
    mu = torch.randn(5, 8, generator=gen)
    logvar = torch.randn(5, 8, generator=gen) * 0.3 - 1
    assert model.prior is None
    closed = gaussian_kl(mu, logvar).sum(-1)
    torch.testing.assert_close(model.kl(mu, logvar), closed)
    model.prior = _isotropic([0.0] * 8, 1.0)  # N(0, I) written as a mixture: the estimate must agree
    try:
        estimate = model.kl(mu.double(), logvar.double(), samples=20_000, generator=gen)
        torch.testing.assert_close(estimate, closed.double(), atol=0.1, rtol=0)
        model.prior = _isotropic([0.5] * 8, 1.3)  # KL to N(m, s² I) is known in closed form too
        s2 = 1.3**2
        exact = 0.5 * ((logvar.double().exp() + (mu.double() - 0.5).pow(2)) / s2 - 1 - logvar.double()
                       + math.log(s2)).sum(-1)
        estimate = model.kl(mu.double(), logvar.double(), samples=20_000, generator=gen)
        torch.testing.assert_close(estimate, exact, atol=0.1, rtol=0)
        assert float((exact - closed).abs().max()) > 0.5  # and differs from the KL to N(0, I)
        # Given draws are used as they are: the same draws, the same estimate.
        z = mu.unsqueeze(1) + (0.5 * logvar).exp().unsqueeze(1) * torch.randn(5, 3, 8, generator=gen)
        torch.testing.assert_close(model.kl(mu, logvar, z=z), model.kl(mu, logvar, z=z))
        torch.testing.assert_close(model.kl(mu, logvar, z=z[:, 0]), model.kl(mu, logvar, z=z[:, :1]))
    finally:
        model.prior = None


@pytest.fixture
def prior_run(tmp_path, encoder, monkeypatch, tiny_vae_dir):
    """The CLI on a copy of the tiny model (the session fixture is shared and must stay as it is)."""
    import textlatent.encoder
    from textlatent.cli import app

    monkeypatch.setattr(textlatent.encoder, "Encoder", lambda *a, **k: encoder)
    monkeypatch.setenv("TEXTLATENT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("TEXTLATENT_VAE_MODEL", raising=False)
    model = tmp_path / "model"
    shutil.copytree(tiny_vae_dir, model)
    train, valid = split_corpus()
    (tmp_path / "train.txt").write_text("\n".join(train) + "\n")
    (tmp_path / "valid.txt").write_text("\n".join(valid) + "\n")
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, ["--device", "cpu", "vae", *args])

    return invoke, model, tmp_path / "train.txt", tmp_path / "valid.txt"


def test_fit_prior_saves_a_prior_that_evaluation_and_sampling_use(prior_run, encoder):
    run, model, train, valid = prior_run
    r = run("fit-prior", "--model", str(model), "--train", str(train), "--components", "2", "--json")
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert report["chosen"] == 2 and report["saved"] == str(model / PRIOR_FILE)
    saved = json.loads((model / PRIOR_FILE).read_text())
    assert saved["components"] == 2 and saved["dim"] == 8 and saved["train"] == str(train)

    fitted = json.loads(run("eval", "--model", str(model), "--data", str(valid), "--k", "10", "--json").stdout)
    standard = json.loads(run("eval", "--model", str(model), "--data", str(valid), "--k", "10", "--standard-prior",
                              "--json").stdout)
    assert fitted["prior"] == {"kind": "gaussian-mixture", "components": 2}
    assert standard["prior"] == {"kind": "standard"}
    # Same encoder, same decoder: the reconstruction term is the same, the prior changes the KL.
    assert fitted["rec"] == pytest.approx(standard["rec"], abs=1e-6)
    assert fitted["kl"] != pytest.approx(standard["kl"], abs=1e-3)
    assert fitted["au"] == standard["au"]
    r = run("eval", "--model", str(model), "--data", str(valid), "--k", "0")
    assert r.exit_code == 0 and "a Gaussian mixture of 2" in r.stdout, r.output

    # Samples come from the fitted prior, and repeat with the seed.
    from textlatent.vae.ops import VAEPipeline, sample

    pipeline = VAEPipeline(model, device="cpu", encoder=encoder)
    z, _ = sample(pipeline, 4, seed=3)
    np.testing.assert_allclose(z, pipeline.model.prior.sample(4, np.random.default_rng(3)))
    plain = VAEPipeline(model, device="cpu", encoder=pipeline.encoder, standard_prior=True)
    z0, _ = sample(plain, 4, seed=3)
    np.testing.assert_allclose(z0, np.random.default_rng(3).standard_normal((4, 8)).astype(np.float32))
    a, b = run("sample", "--model", str(model), "-n", "3", "--seed", "5"), run("sample", "--model", str(model),
                                                                             "-n", "3", "--seed", "5")
    assert a.exit_code == 0 and a.stdout == b.stdout, a.output


def test_fit_prior_chooses_on_valid_including_the_standard_normal(prior_run):
    run, model, train, valid = prior_run
    r = run("fit-prior", "--model", str(model), "--train", str(train), "--valid", str(valid), "--components", "1",
            "--components", "3", "--json")
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    gains = {c["components"]: c["valid_elbo_gain"] for c in report["candidates"]}
    assert set(gains) == {1, 3}
    best = max(gains, key=lambda k: gains[k])
    if gains[best] > 0:  # the best candidate is saved, with the figures that chose it
        assert report["chosen"] == best and (model / PRIOR_FILE).is_file()
        assert json.loads((model / PRIOR_FILE).read_text())["valid_elbo_gain"] == pytest.approx(gains[best])
    else:  # N(0, I) scores 0: nothing is saved
        assert report["chosen"] == "standard" and not (model / PRIOR_FILE).exists()


def test_fit_prior_waits_for_no_training_run_on_its_folder(prior_run):
    """A training run writing the folder holds it: fit-prior is refused (it would fit the weights
    being replaced) and writes nothing; once the run ends it goes ahead."""
    from textlatent.cli import _replacing

    run, model, train, valid = prior_run

    def refused() -> None:
        r = run("fit-prior", "--model", str(model), "--train", str(train))
        assert r.exit_code == 2 and "being written by another textlatent run" in r.output, r.output
        assert "the model folder" in r.output and not (model / PRIOR_FILE).exists()

    with _replacing(model, overwrite=False):
        refused()
    with pytest.raises(RuntimeError), _replacing(model, overwrite=True):  # its files set aside: refused alike
        refused()
        raise RuntimeError("the training run fails, and the folder's files are put back")
    r = run("fit-prior", "--model", str(model), "--train", str(train))
    assert r.exit_code == 0 and (model / PRIOR_FILE).is_file(), r.output


def test_fit_prior_refuses_bad_input_before_loading_and_changes_nothing(prior_run, tmp_path):
    run, model, train, valid = prior_run
    cases = [
        (["--components", "0"], "--components"),
        (["--components", "1", "--components", "2"], "needs --valid"),
        (["--draws", "0"], "--draws"),
    ]
    for extra, message in cases:
        r = run("fit-prior", "--model", str(model), "--train", str(train), *extra)
        assert r.exit_code != 0 and message in r.output, r.output
    r = run("fit-prior", "--model", str(model), "--train", str(tmp_path / "missing.txt"))
    assert r.exit_code != 0 and "missing.txt is not a file" in r.output, r.output
    r = run("fit-prior", "--model", str(tmp_path / "nowhere"), "--train", str(train))
    assert r.exit_code != 0 and "not a trained VAE folder" in r.output, r.output
    assert not (model / PRIOR_FILE).exists()
    # A damaged or foreign prior.json is named, not a traceback, and never silently ignored.
    (model / PRIOR_FILE).write_text("{not json")
    r = run("eval", "--model", str(model), "--data", str(valid), "--k", "0")
    assert r.exit_code != 0 and "prior.json" in r.output and "not a readable prior" in r.output, r.output
    _isotropic([0.0] * 5, 1.0).save(model)
    r = run("sample", "--model", str(model), "-n", "1")
    assert r.exit_code != 0 and "over 5 dimensions" in r.output, r.output
    r = run("eval", "--model", str(model), "--data", str(valid), "--k", "0", "--standard-prior")
    assert r.exit_code == 0, r.output  # N(0, I) asked for: the file is not read


def test_training_drops_what_was_fitted_to_old_weights(encoder, tmp_path):
    from tests.vae.helpers import train_tiny

    out = tmp_path / "model"
    out.mkdir()
    _isotropic([0.0] * 8, 1.0).save(out)
    (out / "axes.json").write_text("{}")
    train_tiny(out, encoder, tmp_path / "cache", epochs=1)
    assert not (out / PRIOR_FILE).exists() and not (out / "axes.json").exists()


def test_tune_posterior_writes_a_new_folder_with_a_better_bound_and_leaves_the_source(prior_run):
    run, model, train, valid = prior_run
    before = {p.name: p.read_bytes() for p in model.iterdir() if p.is_file()}
    _isotropic([0.0] * 8, 1.0).save(model)  # the source's prior: fitted to the old encoder, not carried over
    out = model.parent / "tuned"
    r = run("tune-posterior", "--model", str(model), "--train", str(train), "--valid", str(valid), "--out", str(out),
            "--epochs", "3", "--lr", "3e-3", "--json")
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout)
    assert [h["epoch"] for h in result["history"]] == [1, 2, 3]
    # The kept weights are the best on valid, never worse than the start.
    assert result["best_valid_elbo_nll"] <= result["start_valid_elbo_nll"]
    assert result["best_valid_elbo_nll"] == min([result["start_valid_elbo_nll"],
                                                 *(h["valid_elbo_nll"] for h in result["history"])])
    assert {p.name for p in model.iterdir() if p.is_file()} == {*before, PRIOR_FILE}
    assert all((model / name).read_bytes() == data for name, data in before.items())  # the source untouched
    assert not (out / PRIOR_FILE).exists()
    config = json.loads((out / "config.json").read_text())
    assert config["posterior_tuning"]["source"] == str(model) and config["model"]["latent_dim"] == 8
    # Only the posterior head moved: the decoder of the tuned model is the source's, weight for weight.
    src, new = (torch.load(p / "model.pt", weights_only=True) for p in (model, out))
    changed = {k for k in src if not torch.equal(src[k], new[k])}
    assert all(k.startswith("posterior.") for k in changed)
    assert changed or result["epoch"] == 0
    tuned = json.loads(run("eval", "--model", str(out), "--data", str(valid), "--k", "0", "--json").stdout)
    assert tuned["nll"] == pytest.approx(result["best_valid_elbo_nll"], abs=1.0)  # one z per sentence: noisy

    # Refusals, before any work: the source as --out, a folder holding files, an Optimus-free bad option.
    for extra, message in ((["--out", str(model)], "model being trained from"),
                           (["--out", str(out)], "already holds files"),
                           (["--out", str(out.parent / "x"), "--lr", "0"], "lr"),
                           (["--out", str(out.parent / "x"), "--epochs", "0"], "--epochs")):
        r = run("tune-posterior", "--model", str(model), "--train", str(train), "--valid", str(valid), *extra)
        assert r.exit_code != 0 and message in r.output, r.output
    assert not (out.parent / "x").exists()


def test_the_reconstruction_term_does_not_depend_on_the_prior(tiny_pipeline):
    # The fitted prior's KL draws come from a stream of their own: over several batches, the
    # reconstruction draws (and so `rec`) are the same with and without it.
    from tests.vae.helpers import split_corpus
    from textlatent.vae.data import cached_embeddings
    from textlatent.vae.train import EmbeddingSource, evaluate_elbo

    train, _ = split_corpus()
    model = tiny_pipeline.model
    ids = [tiny_pipeline.vocab.encode(s) for s in train]
    source = EmbeddingSource(train, cached_embeddings(tiny_pipeline.encoder, train))
    figures = []
    for prior in (None, _isotropic([0.3] * 8, 1.2)):
        model.prior = prior
        try:
            torch.manual_seed(0)
            figures.append(evaluate_elbo(model, source, ids, "cpu", batch_size=16))  # 12 batches
        finally:
            model.prior = None
    assert figures[0]["rec"] == pytest.approx(figures[1]["rec"], abs=1e-9)
    assert figures[0]["kl"] != pytest.approx(figures[1]["kl"], abs=1e-2)


def test_a_prior_fitted_to_other_weights_is_refused(prior_run):
    run, model, train, valid = prior_run
    r = run("fit-prior", "--model", str(model), "--train", str(train))
    assert r.exit_code == 0, r.output
    saved = json.loads((model / PRIOR_FILE).read_text())
    assert len(saved["model_sha256"]) == 64
    assert (model / PRIOR_FILE).stat().st_mode & 0o044 == 0o044 & ~_umask()  # readable by a server's user
    state = torch.load(model / "model.pt", weights_only=True)
    state["posterior.0.bias"] = state["posterior.0.bias"] + 0.1  # the weights change (a retrain, a copy)
    torch.save(state, model / "model.pt")
    r = run("eval", "--model", str(model), "--data", str(valid), "--k", "0")
    assert r.exit_code != 0 and "fitted to other weights" in r.output, r.output


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_fit_prior_keeps_the_standard_normal_when_it_fits_valid_best(prior_run, monkeypatch):
    import textlatent.vae.prior as prior_module

    run, model, train, valid = prior_run
    _isotropic([0.0] * 8, 1.0).save(model)  # an earlier fit, now outdone by N(0, I)
    monkeypatch.setattr(prior_module, "cross_entropy_gain", lambda *a, **k: -0.25)
    r = run("fit-prior", "--model", str(model), "--train", str(train), "--valid", str(valid), "--components", "2")
    assert r.exit_code == 0, r.output
    assert "N(0, I) fits valid best" in r.output and "old prior.json removed" in r.output
    assert not (model / PRIOR_FILE).exists()
    monkeypatch.setattr(prior_module, "cross_entropy_gain", lambda prior, *a, **k: 0.1 * prior.components)
    r = run("fit-prior", "--model", str(model), "--train", str(train), "--valid", str(valid), "--components", "1",
            "--components", "3", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["chosen"] == 3, r.output  # the best gain wins
    assert json.loads((model / PRIOR_FILE).read_text())["components"] == 3


def test_fit_prior_and_tune_refuse_folders_they_cannot_use(prior_run, tmp_path, monkeypatch):
    run, model, train, valid = prior_run
    optimus = tmp_path / "optimus"
    optimus.mkdir()
    (optimus / "config.json").write_text('{"kind": "optimus"}')
    r = run("fit-prior", "--model", str(optimus), "--train", str(train))
    assert r.exit_code != 0 and "Optimus" in r.output, r.output
    r = run("tune-posterior", "--model", str(optimus), "--train", str(train), "--valid", str(valid),
            "--out", str(tmp_path / "t"))
    assert r.exit_code != 0 and "Optimus" in r.output, r.output
    r = run("tune-posterior", "--model", str(model), "--train", str(train), "--valid", str(valid),
            "--out", str(model / "tuned"))
    assert r.exit_code != 0 and "inside the model" in r.output, r.output
    assert not (model / "tuned").exists()
    # A folder that takes no new file (read-only, another owner): said before any work. (Tests run as
    # root here, which writes into read-only folders, so the refusal is simulated.)
    import tempfile

    def refuse(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    r = run("fit-prior", "--model", str(model), "--train", str(train))
    assert r.exit_code != 0 and "cannot write into" in r.output and "Permission denied" in r.output, r.output
    assert not (model / PRIOR_FILE).exists()


def test_elbo_outlier_scores_use_the_fitted_prior(tiny_pipeline):
    from textlatent.anomaly import ElboScorer

    texts = ["the cat sees the house", "a dog buys fresh bread", "my sister sells some bonds"]
    scorer = ElboScorer(tiny_pipeline, per="sentence")
    plain = scorer.score_texts(texts, cache=False)
    tiny_pipeline.model.prior = _isotropic([0.4] * 8, 1.5)
    try:
        fitted = scorer.score_texts(texts, cache=False)
        again = scorer.score_texts(texts[::-1], cache=False)[::-1]  # other batch partners, same scores
        # The score is rec + KL at the text's own z; the rec part is the same, so the difference is the
        # KL's: log N(z; 0, I) − log p_ψ(z) at that z, which the prior decides.
        assert np.abs(fitted - plain).min() > 1e-3
        np.testing.assert_allclose(fitted, again, rtol=0, atol=1e-6)
    finally:
        tiny_pipeline.model.prior = None
    np.testing.assert_allclose(scorer.score_texts(texts, cache=False), plain, rtol=0, atol=1e-6)


def test_tune_scores_every_epoch_on_the_same_draws(prior_run):
    # With a vanishing rate the weights do not move, so every epoch must score exactly as the start
    # did: the validation draws are the same each time (they were not, before: a fresh z per call).
    run, model, train, valid = prior_run
    out = model.parent / "still"
    r = run("tune-posterior", "--model", str(model), "--train", str(train), "--valid", str(valid), "--out", str(out),
            "--epochs", "2", "--lr", "1e-12", "--json")
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout)
    for h in result["history"]:
        assert h["valid_elbo_nll"] == pytest.approx(result["start_valid_elbo_nll"], abs=1e-6)
