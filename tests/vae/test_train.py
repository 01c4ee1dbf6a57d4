"""Training on a tiny corpus on the CPU: the KL stays above zero and reconstruction improves."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from tests.vae.helpers import TINY_MODEL, split_corpus, train_tiny
from textlatent.errors import InvalidInputError
from textlatent.vae.ops import VAEPipeline
from textlatent.vae.train import TrainConfig, pad_batch, train_vae


def test_tiny_training_learns_and_does_not_collapse(tiny_vae_dir):
    history = json.loads((tiny_vae_dir / "history.json").read_text())
    steps = history[-1]["step"]
    assert steps >= 200  # "a few hundred steps"
    first, last = history[0], history[-1]
    assert last["train_rec"] < 0.5 * first["train_rec"]  # reconstruction improves...
    assert last["valid_rec"] < first["valid_rec"]  # ...on held-out sentences too
    assert last["valid_kl"] > 0.2  # the posterior is not the prior
    assert last["valid_au"] >= 1
    for name in ("config.json", "vocab.txt", "model.pt", "checkpoint.pt"):
        assert (tiny_vae_dir / name).is_file()


def test_the_decoder_reads_z(tiny_pipeline):
    """A sentence is likelier under its own posterior mean than under other sentences' ones."""
    train, _ = split_corpus()
    model, vocab = tiny_pipeline.model, tiny_pipeline.vocab
    mu, _ = tiny_pipeline.encode(train)
    targets = pad_batch([vocab.encode(s) for s in train], "cpu")
    z = torch.from_numpy(mu)
    shuffled = z[torch.randperm(len(train), generator=torch.Generator().manual_seed(0))]
    with torch.no_grad():
        own = float(model.reconstruction_nll(z, targets).mean())
        other = float(model.reconstruction_nll(shuffled, targets).mean())
    assert own < other - 0.5
    outs = tiny_pipeline.decode(mu[:20])
    assert len(set(outs)) >= 3  # different points decode to different sentences


def test_resume_continues_where_the_checkpoint_left(tmp_path, encoder):
    cache = tmp_path / "cache"
    first = train_tiny(tmp_path / "a", encoder, cache, epochs=1)
    resumed = train_tiny(tmp_path / "a", encoder, cache, epochs=2, resume=True)
    assert [r["epoch"] for r in resumed["history"]] == [1, 2]
    assert resumed["history"][0] == first["history"][0]  # the first epoch is kept, not redone
    assert resumed["history"][1]["step"] == 2 * resumed["history"][0]["step"]
    with pytest.raises(InvalidInputError, match="resume"):
        train_tiny(tmp_path / "b", encoder, cache, epochs=1, resume=True)
    with pytest.raises(InvalidInputError, match="other model settings"):
        train_tiny(tmp_path / "a", encoder, cache, epochs=3, resume=True, model={**TINY_MODEL, "hidden_dim": 32})


def test_resume_refusal_comes_before_the_embedding_pass(tmp_path, encoder):
    """A resume with other model options is refused before any text is embedded (on PTB that pass is
    11 minutes when the cache is cold), and leaves the run's files as they were."""
    train_tiny(tmp_path / "a", encoder, tmp_path / "cache", epochs=1)
    files = {p.name: p.read_bytes() for p in (tmp_path / "a").iterdir()}

    class CountingEncoder:
        def __init__(self, inner):
            self.inner, self.calls = inner, 0

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def encode(self, *args, **kwargs):
            self.calls += 1
            return self.inner.encode(*args, **kwargs)

    counting = CountingEncoder(encoder)
    with pytest.raises(InvalidInputError, match=r"dropout 0.0 -> 0.3"):  # an empty cache: any embedding would show
        train_tiny(tmp_path / "a", counting, tmp_path / "cold-cache", epochs=2, resume=True,
                   model={**TINY_MODEL, "dropout": 0.3})
    assert counting.calls == 0
    assert {p.name: p.read_bytes() for p in (tmp_path / "a").iterdir()} == files


def test_seeded_training_is_deterministic(tmp_path, encoder):
    a = train_tiny(tmp_path / "a", encoder, tmp_path / "cache", epochs=1)
    b = train_tiny(tmp_path / "b", encoder, tmp_path / "cache", epochs=1)
    assert a["history"][0]["valid_rec"] == b["history"][0]["valid_rec"]
    sa = torch.load(tmp_path / "a" / "model.pt")
    sb = torch.load(tmp_path / "b" / "model.pt")
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_train_encoder_fine_tunes_minilm_on_a_tiny_case(tmp_path, encoder):
    """The unfrozen option: MiniLM's weights change and the fine-tuned copy is saved with the VAE."""
    own = copy.copy(encoder)
    own.model = copy.deepcopy(encoder.model)  # the session encoder's weights must stay untouched
    before = next(own.model.parameters()).detach().clone()
    train, valid = split_corpus()
    config = TrainConfig(epochs=1, batch_size=16, device="cpu", train_encoder=True, max_train_sentences=32,
                         model=dict(TINY_MODEL))
    train_vae(train, valid[:8], tmp_path / "ft", config, encoder=own, progress=False)
    assert not torch.equal(before, next(own.model.parameters()).detach())
    assert (tmp_path / "ft" / "encoder" / "modules.json").is_file()
    pipeline = VAEPipeline(tmp_path / "ft", device="cpu")
    mu, logvar = pipeline.encode(["the cat sees the house"])
    assert mu.shape == logvar.shape == (1, TINY_MODEL["latent_dim"])


def test_select_rec_keeps_the_epoch_with_the_best_held_out_reconstruction(tmp_path, encoder):
    """For reconstruction use (style transfer), the saved epoch is the best on valid reconstruction,
    whatever its KL; the figure cannot change on resume, and an unknown one is refused."""
    result = train_tiny(tmp_path / "a", encoder, tmp_path / "cache", epochs=3, select="rec", free_bits=2.0)
    recs = [r["valid_rec"] for r in result["history"]]
    assert [r["selected"] for r in result["history"]] == [rec == min(recs[:i + 1]) for i, rec in enumerate(recs)]
    assert result["best_valid_rec"] == min(recs) and result["select"] == "rec"
    assert json.loads((tmp_path / "a" / "config.json").read_text())["train"]["select"] == "rec"
    with pytest.raises(InvalidInputError, match="select rec -> elbo"):
        train_tiny(tmp_path / "a", encoder, tmp_path / "cache", epochs=4, resume=True, free_bits=2.0)
    with pytest.raises(InvalidInputError, match="select must be"):
        train_tiny(tmp_path / "b", encoder, tmp_path / "cache", epochs=1, select="kl")


def test_ema_validates_the_averaged_weights_beside_the_trained_ones(tmp_path, encoder):
    """--ema: the trained weights follow the same path as without it (same figures, same weights at the
    end), the averaged weights are validated on the same z noise, the better of the two is saved and
    reported, its state survives a resume, and a change of decay on resume is refused."""
    cache = tmp_path / "cache"
    plain = train_tiny(tmp_path / "plain", encoder, cache, epochs=3)
    ema = train_tiny(tmp_path / "ema", encoder, cache, epochs=3, ema=0.9)
    for p, e in zip(plain["history"], ema["history"], strict=True):
        assert e["valid_elbo_nll"] == p["valid_elbo_nll"] and e["train_rec"] == p["train_rec"]
        assert e["ema_valid_elbo_nll"] != e["valid_elbo_nll"]  # a different set of weights, validated
        better = "ema" if e["ema_valid_elbo_nll"] < e["valid_elbo_nll"] else "trained"
        assert e["weights"] == better
    last_plain = torch.load(tmp_path / "plain" / "checkpoint.pt", weights_only=False)["model"]
    last_ema_run = torch.load(tmp_path / "ema" / "checkpoint.pt", weights_only=False)["model"]
    assert all(torch.equal(last_plain[k], last_ema_run[k]) for k in last_plain)
    kept = [r for r in ema["history"] if r["selected"]][-1]
    prefix = "ema_" if kept["weights"] == "ema" else ""
    assert ema["best_valid_elbo_nll"] == kept[f"{prefix}valid_elbo_nll"] == min(
        min(r["valid_elbo_nll"], r["ema_valid_elbo_nll"]) for r in ema["history"])
    assert ema["weights"] == kept["weights"]
    saved = torch.load(tmp_path / "ema" / "model.pt")
    pipeline = VAEPipeline(tmp_path / "ema", device="cpu")  # the saved weights load as a plain VAE
    assert all(torch.equal(saved[k], v) for k, v in pipeline.model.state_dict().items())

    first = train_tiny(tmp_path / "r", encoder, cache, epochs=2, ema=0.9)
    resumed = train_tiny(tmp_path / "r", encoder, cache, epochs=3, resume=True, ema=0.9)
    assert resumed["history"][:2] == first["history"]
    state = torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=False)
    assert int(state["ema"]["n_averaged"]) == resumed["history"][2]["step"]  # averaged over all 3 epochs
    with pytest.raises(InvalidInputError, match="ema 0.9 -> 0.5"):
        train_tiny(tmp_path / "r", encoder, cache, epochs=4, resume=True, ema=0.5)
    with pytest.raises(InvalidInputError, match="ema must be"):
        train_tiny(tmp_path / "b", encoder, cache, epochs=1, ema=1.0)


def test_held_out_figures_of_a_fine_tuned_encoder_are_taken_without_its_dropout():
    """Validation must not see MiniLM's training-mode dropout (noisy, epoch selection by chance),
    and training must resume in training mode afterwards."""
    from textlatent.vae.model import TextVAE, VAEConfig
    from textlatent.vae.train import EmbeddingSource, evaluate_elbo

    class FakeEncoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = torch.nn.Linear(4, 6)
            self.modes: list[bool] = []

        def tokenize(self, texts):
            return {"x": torch.ones(len(texts), 4)}

        def forward(self, features):
            self.modes.append(self.training)
            return {"sentence_embedding": self.proj(features["x"])}

    fake = FakeEncoder().train()
    texts = ["a b", "b a c", "c"]
    vae = TextVAE(VAEConfig.from_dict({**TINY_MODEL, "vocab_size": 8, "embed_dim": 6}))
    out = evaluate_elbo(vae, EmbeddingSource(texts, None, fake), [[4, 5, 2], [5, 4, 6, 2], [6, 2]], "cpu")
    assert fake.modes and not any(fake.modes)  # every validation batch in eval mode
    assert fake.training  # and back to training mode afterwards
    assert out["mu"].shape == (3, TINY_MODEL["latent_dim"])
