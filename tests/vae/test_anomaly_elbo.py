"""ELBO anomaly scores from the tiny VAE (trained once per session in tests/vae/conftest.py)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.vae.helpers import tiny_corpus
from textlatent.anomaly import ElboScorer, auroc
from textlatent.errors import InvalidInputError


def test_elbo_scores_in_domain_text_below_foreign_text(tiny_pipeline):
    in_domain = tiny_corpus()[:20]
    foreign = ["quantum chromodynamics predicts gluon confinement", "ribosomes translate messenger rna",
               "the senate passed the appropriations bill yesterday"]
    scorer = ElboScorer(tiny_pipeline)
    a, b = scorer.score_texts(in_domain), scorer.score_texts(foreign)
    assert a.shape == (20,) and np.isfinite(a).all()
    assert auroc(a, b) == 1.0
    # deterministic: the same text gets the same score
    np.testing.assert_allclose(scorer.score_texts(in_domain[:3]), a[:3], rtol=1e-6)
    # per sentence = per token x tokens (<eos> counted)
    per_sentence = ElboScorer(tiny_pipeline, per="sentence").score_texts(in_domain[:3])
    tokens = np.array([len(s.split()) + 1 for s in in_domain[:3]])
    np.testing.assert_allclose(per_sentence / tokens, a[:3], rtol=1e-5)


def test_elbo_bad_inputs(tiny_pipeline):
    with pytest.raises(InvalidInputError):
        ElboScorer(tiny_pipeline, per="word")
    with pytest.raises(InvalidInputError):
        ElboScorer(tiny_pipeline).score_texts(["fine", "  "])
    with pytest.raises(InvalidInputError, match="likelihood"):
        ElboScorer(object())  # type: ignore[arg-type]


def test_elbo_scores_without_the_cache_leave_no_file(tiny_pipeline, tmp_path, monkeypatch):
    import textlatent.cache

    monkeypatch.setattr(textlatent.cache, "MIN_TEXTS", 1)  # small sets would skip the cache anyway
    texts = tiny_corpus()[:5]
    monkeypatch.setenv("TEXTLATENT_CACHE_DIR", str(tmp_path / "uncached"))
    uncached = ElboScorer(tiny_pipeline).score_texts(texts, cache=False)
    assert not (tmp_path / "uncached").exists() or not any((tmp_path / "uncached").rglob("*.npy"))
    monkeypatch.setenv("TEXTLATENT_CACHE_DIR", str(tmp_path / "cached"))
    cached = ElboScorer(tiny_pipeline).score_texts(texts)
    assert len(list((tmp_path / "cached").rglob("*.npy"))) == 1  # the control: the default does cache
    np.testing.assert_allclose(uncached, cached, rtol=1e-5)
