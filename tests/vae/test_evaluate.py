"""Refined posteriors on the tiny VAE: the model is left as it was found."""

from __future__ import annotations

import torch

from tests.vae.helpers import tiny_corpus
from textlatent.vae.data import cached_embeddings
from textlatent.vae.evaluate import refined_posteriors
from textlatent.vae.train import EmbeddingSource


def test_refinement_leaves_the_model_untouched(tiny_pipeline):
    model, vocab = tiny_pipeline.model, tiny_pipeline.vocab
    texts = tiny_corpus()[:12]
    source = EmbeddingSource(texts, cached_embeddings(tiny_pipeline.encoder, texts))
    ids = [vocab.encode(t) for t in texts]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    try:
        mu, logvar = refined_posteriors(model, source, ids, "cpu", steps=5, lr=0.05)
        assert model.training  # the mode it was in comes back
    finally:
        model.eval()
    assert mu.shape == logvar.shape == (12, model.config.latent_dim)
    assert torch.isfinite(mu).all() and torch.isfinite(logvar).all()
    assert all(p.requires_grad and p.grad is None for p in model.parameters())  # no gradient reached it
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    again, _ = refined_posteriors(model, source, ids, "cpu", steps=5, lr=0.05)
    assert torch.equal(mu, again)  # seeded: the same sentences give the same posteriors
