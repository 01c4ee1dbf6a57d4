"""Operations on a trained (tiny) VAE through the LatentModel interface, and their input checks."""

from __future__ import annotations

import numpy as np
import pytest

from textlatent.errors import InvalidInputError, NotFoundError
from textlatent.vae import ops


def test_pipeline_implements_the_latent_model_interface(tiny_pipeline):
    assert isinstance(tiny_pipeline, ops.LatentModel)
    mu, logvar = tiny_pipeline.encode(["the cat sees the house", "a dog buys fresh bread"])
    assert mu.shape == logvar.shape == (2, tiny_pipeline.latent_dim)
    assert mu.dtype == np.float32


@pytest.mark.parametrize("strategy", ["greedy", "sample", "beam"])
def test_decode_each_strategy(tiny_pipeline, strategy):
    z = np.zeros((2, tiny_pipeline.latent_dim), dtype=np.float32)
    texts = tiny_pipeline.decode(z, strategy=strategy, temperature=0.8, beam_size=3, seed=1)
    assert len(texts) == 2 and all(isinstance(t, str) and t for t in texts)
    if strategy != "sample":
        assert texts[0] == texts[1]  # same point, deterministic search: same sentence


def test_seeded_sampling_repeats(tiny_pipeline):
    a = ops.sample(tiny_pipeline, 4, seed=3, strategy="sample")
    b = ops.sample(tiny_pipeline, 4, seed=3, strategy="sample")
    assert a[1] == b[1] and np.array_equal(a[0], b[0])


def test_a_seeded_decode_gives_back_the_random_state(tiny_pipeline):
    import torch

    z = np.zeros((3, tiny_pipeline.latent_dim), dtype=np.float32)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = tiny_pipeline.decode(z, strategy="sample", seed=5)
    assert torch.equal(torch.get_rng_state(), state)  # a client's seed does not fix later unseeded samples
    assert tiny_pipeline.decode(z, strategy="sample", seed=5) == first
    tiny_pipeline.decode(z, strategy="sample")  # unseeded: draws from (and moves) the global stream
    assert not torch.equal(torch.get_rng_state(), state)


def test_interpolation_path_ends_at_the_inputs(tiny_pipeline):
    a, b = "the cat sees the house", "my sister sells some bonds"
    z, texts = ops.interpolate(tiny_pipeline, a, b, steps=4)
    mu, _ = tiny_pipeline.encode([a, b])
    assert len(texts) == 4 and z.shape == (4, tiny_pipeline.latent_dim)
    np.testing.assert_allclose(z[0], mu[0], atol=1e-6)
    np.testing.assert_allclose(z[-1], mu[1], atol=1e-6)
    assert texts[0] == tiny_pipeline.decode(mu[:1])[0]


def test_analogy_is_c_plus_b_minus_a(tiny_pipeline):
    a, b, c = "the cat sees the house", "the cat buys the house", "a dog sees a red car"
    z, text = ops.analogy(tiny_pipeline, a, b, c)
    mu, _ = tiny_pipeline.encode([a, b, c])
    np.testing.assert_allclose(z, mu[2] + mu[1] - mu[0], atol=1e-5)
    assert text == tiny_pipeline.decode(z[None, :])[0]


def test_bad_inputs_are_named(tiny_pipeline):
    d = tiny_pipeline.latent_dim
    with pytest.raises(InvalidInputError, match="latent size") as err:
        tiny_pipeline.decode(np.zeros((1, d + 1)))
    assert err.value.param == "z"
    with pytest.raises(InvalidInputError, match="NaN"):
        tiny_pipeline.decode(np.full((1, d), np.nan))
    with pytest.raises(InvalidInputError, match="strategy"):
        tiny_pipeline.decode(np.zeros((1, d)), strategy="nucleus")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="temperature"):
        tiny_pipeline.decode(np.zeros((1, d)), strategy="sample", temperature=0)
    with pytest.raises(InvalidInputError, match="steps"):
        ops.interpolate(tiny_pipeline, "a", "b", steps=1)
    with pytest.raises(InvalidInputError, match="steps"):
        ops.interpolate(tiny_pipeline, "a", "b", steps=ops.MAX_STEPS + 1)
    with pytest.raises(InvalidInputError, match="n must"):
        ops.sample(tiny_pipeline, 0)
    with pytest.raises(InvalidInputError, match="empty"):
        tiny_pipeline.encode(["fine", "  "])


def test_a_folder_that_is_not_a_vae(tmp_path):
    with pytest.raises(NotFoundError, match="not a trained VAE folder"):
        ops.VAEPipeline(tmp_path)


def test_pipeline_refuses_a_meaningless_no_repeat_ngram(tmp_path):
    from textlatent.vae.ops import VAEPipeline

    for bad in (1, -2, 2.0, True):
        with pytest.raises(InvalidInputError, match="no_repeat_ngram must be 0") as err:
            VAEPipeline(tmp_path, no_repeat_ngram=bad)
        assert err.value.param == "no_repeat_ngram"


def test_pipeline_decodes_without_repeated_trigrams_unless_asked(tiny_vae_dir, encoder):
    from textlatent.vae.ops import NO_REPEAT_NGRAM, VAEPipeline

    z = np.random.default_rng(0).normal(size=(16, VAEPipeline(tiny_vae_dir, encoder=encoder).latent_dim)) * 3
    blocked = VAEPipeline(tiny_vae_dir, encoder=encoder).decode(z.astype(np.float32))
    plain = VAEPipeline(tiny_vae_dir, encoder=encoder, no_repeat_ngram=0).decode(z.astype(np.float32))
    assert NO_REPEAT_NGRAM == 3
    for text in blocked:
        words = text.split()
        grams = [tuple(words[i:i + 3]) for i in range(len(words) - 2)]
        assert len(grams) == len(set(grams)), text
    assert blocked != plain  # the tiny model does loop when left alone


def test_each_decode_may_set_its_own_no_repeat_ngram(tiny_vae_dir, encoder):
    from textlatent.vae.ops import VAEPipeline

    blocking = VAEPipeline(tiny_vae_dir, encoder=encoder)
    plain = VAEPipeline(tiny_vae_dir, encoder=encoder, no_repeat_ngram=0)
    z = (np.random.default_rng(0).normal(size=(16, blocking.latent_dim)) * 3).astype(np.float32)
    assert blocking.decode(z, no_repeat_ngram=0) == plain.decode(z)  # off for this call only
    assert plain.decode(z, no_repeat_ngram=3) == blocking.decode(z)
    assert blocking.decode(z) != plain.decode(z) and blocking.no_repeat_ngram == 3  # the default is untouched
    for bad in (1, 11, -1, 2.5, True):
        with pytest.raises(InvalidInputError, match="no_repeat_ngram must be 0") as err:
            blocking.decode(z, no_repeat_ngram=bad)
        assert err.value.param == "no_repeat_ngram"
