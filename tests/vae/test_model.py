"""The VAE module: the likelihood it trains on agrees with the distribution it decodes from."""

from __future__ import annotations

import math

import pytest
import torch

from textlatent.vae.data import Vocab
from textlatent.vae.model import TextVAE, VAEConfig, adaptive_cutoffs, sample_rows


@pytest.fixture
def model() -> TextVAE:
    torch.manual_seed(0)
    m = TextVAE(VAEConfig(vocab_size=40, embed_dim=12, latent_dim=4, word_dim=16, hidden_dim=24,
                          posterior_hidden=16, dropout=0.0, word_dropout=0.0, max_len=12))
    return m.eval()


def test_reconstruction_nll_equals_the_sum_of_next_word_log_probs(model):
    z = torch.randn(2, 4)
    targets = torch.tensor([[5, 9, 17, 2], [33, 2, 0, 0]])  # second row padded after <eos>
    nll = model.reconstruction_nll(z, targets, chunk_tokens=3)
    with torch.no_grad():
        features = model.decoder_features(z, targets)
        full = [model.log_probs(features[b]) for b in range(2)]  # full [T, V] distributions
    manual = []
    for b in range(2):
        logp = full[b]
        length = int((targets[b] != 0).sum())
        manual.append(-sum(float(logp[t, targets[b, t]]) for t in range(length)))
    torch.testing.assert_close(nll, torch.tensor(manual), atol=1e-4, rtol=0)
    # each row's distribution is normalised over the whole vocabulary
    torch.testing.assert_close(full[0].exp().sum(-1), torch.ones(4), atol=1e-5, rtol=0)


def test_padding_does_not_change_a_sentence_score(model):
    z = torch.randn(1, 4)
    alone = model.reconstruction_nll(z, torch.tensor([[7, 8, 2]]))
    padded = model.reconstruction_nll(z.repeat(2, 1), torch.tensor([[7, 8, 2, 0, 0], [7, 8, 9, 10, 2]]))
    torch.testing.assert_close(alone[0], padded[0])


def test_generation_strategies_return_token_lists(model):
    z = torch.randn(3, 4)
    for strategy in ("greedy", "sample", "beam"):
        out = model.generate(z, strategy=strategy, temperature=0.7, beam_size=3, max_len=6)
        assert len(out) == 3
        assert all(isinstance(ids, list) and len(ids) <= 6 for ids in out)
        assert all(0 < i < 40 and i not in (TextVAE.BOS, TextVAE.EOS) for ids in out for i in ids)
    assert model.generate(z) == model.generate(z)  # greedy is deterministic


def test_adaptive_cutoffs_fit_any_vocabulary():
    assert adaptive_cutoffs(10_004) == [1000, 4000]
    assert adaptive_cutoffs(2000) == [1000]
    assert adaptive_cutoffs(26) == [13]


def test_vocab_is_frequency_sorted_and_round_trips(tmp_path):
    vocab = Vocab.build(["b a a", "c a b <unk>"])
    assert vocab.itos == ["<pad>", "<bos>", "<eos>", "<unk>", "a", "b", "c"]
    assert vocab.encode("a c zzz") == [4, 6, 3, 2]
    assert vocab.decode([4, 6, 3, 2, 5]) == "a c <unk>"
    vocab.save(tmp_path / "v.txt")
    assert Vocab.load(tmp_path / "v.txt").itos == vocab.itos


def test_tied_weights_share_the_frequent_words_vectors_with_the_softmax_head():
    torch.manual_seed(0)
    kwargs = dict(vocab_size=40, embed_dim=12, latent_dim=4, word_dim=16, hidden_dim=24, posterior_hidden=16,
                  dropout=0.0, word_dropout=0.0, max_len=12)
    tied = TextVAE(VAEConfig(**kwargs, tie_weights=True))
    untied = TextVAE(VAEConfig(**kwargs))
    shortlist = tied.softmax.shortlist_size  # 20 for 40 words
    n_params = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n_params(untied) - n_params(tied) == shortlist * 16
    words = torch.tensor([[5, 30]])  # one frequent (head) word, one rare (tail) word
    torch.testing.assert_close(tied.word_vectors(words)[0, 0], tied.softmax.head.weight[5])
    torch.testing.assert_close(tied.word_vectors(words)[0, 1], tied.embedding.weight[30 - shortlist])
    # one parameter, two roles: the input side's gradient reaches the head's row
    tied.word_vectors(words)[0, 0].sum().backward()
    assert tied.softmax.head.weight.grad[5].abs().sum() > 0
    # and the likelihood stays an exact, normalised distribution
    z = torch.randn(1, 4)
    with torch.no_grad():
        features = tied.eval().decoder_features(z, torch.tensor([[7, 8, 2]]))
        torch.testing.assert_close(tied.log_probs(features[0]).exp().sum(-1), torch.ones(3), atol=1e-5, rtol=0)


def test_adaptive_div_sets_the_tail_clusters_rank_and_old_configs_keep_theirs():
    torch.manual_seed(0)
    kwargs = dict(vocab_size=40, embed_dim=12, latent_dim=4, word_dim=16, hidden_dim=24, posterior_hidden=16,
                  dropout=0.0, word_dropout=0.0, max_len=12)
    ranks = {div: [tail[0].out_features for tail in TextVAE(VAEConfig(**kwargs, adaptive_div=div)).softmax.tail]
             for div in (4.0, 2.0, 1.0)}
    assert ranks == {4.0: [4], 2.0: [8], 1.0: [16]}  # 40 words: one tail cluster, word_dim / div dimensions
    full = TextVAE(VAEConfig(**kwargs, adaptive_div=1.0)).eval()
    with torch.no_grad():
        features = full.decoder_features(torch.randn(1, 4), torch.tensor([[7, 30, 2]]))
        torch.testing.assert_close(full.log_probs(features[0]).exp().sum(-1), torch.ones(3), atol=1e-5, rtol=0)
    # a config saved before the option existed describes a model trained with div 4, whatever the default
    saved = {k: v for k, v in VAEConfig(**kwargs).to_dict().items() if k != "adaptive_div"}
    assert VAEConfig.from_dict(saved).adaptive_div == 4.0
    assert VAEConfig.from_dict({**saved, "adaptive_div": 1.0}).adaptive_div == 1.0


def test_weight_drop_masks_the_recurrent_weights_in_training_only():
    kwargs = dict(vocab_size=40, embed_dim=12, latent_dim=4, word_dim=16, hidden_dim=24, posterior_hidden=16,
                  dropout=0.0, word_dropout=0.0, max_len=12)
    torch.manual_seed(0)
    plain = TextVAE(VAEConfig(**kwargs))
    torch.manual_seed(0)
    dropped = TextVAE(VAEConfig(**kwargs, weight_drop=0.5))  # the same weights
    z, targets = torch.randn(2, 4), torch.tensor([[7, 30, 9, 2], [5, 6, 2, 0]])
    with torch.no_grad():  # evaluation: the full weights, so the same model as without the option
        expected = plain.eval().decoder_features(z, targets)
        torch.testing.assert_close(dropped.eval().decoder_features(z, targets), expected)
    dropped.train()
    a, b = dropped.decoder_features(z, targets), dropped.decoder_features(z, targets)
    assert not torch.allclose(a, b)  # a fresh mask per call
    assert not torch.allclose(a, plain.train().decoder_features(z, targets))
    a.sum().backward()  # the kept weights learn through the mask
    grad = dropped.gru.weight_hh_l0.grad
    assert grad is not None and 0 < (grad != 0).float().mean() < 1
    assert dropped.gru.weight_hh_l0.requires_grad and "weight_hh_l0" in dict(dropped.gru.named_parameters())


def _repetitive(model: TextVAE, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every step prefer word 7, then 8, 9, 10 … (<eos> last): plain greedy decoding loops on 7."""
    def log_probs(features: torch.Tensor) -> torch.Tensor:
        logits = torch.full((features.shape[0], 40), -10.0)
        logits[:, 4:] = -torch.arange(36, dtype=torch.float32) / 10
        logits[:, 7] = 5.0
        return torch.log_softmax(logits, dim=-1)

    monkeypatch.setattr(model, "log_probs", log_probs)


@pytest.mark.parametrize("n", [2, 3])
def test_no_repeat_ngram_blocks_repeated_ngrams_in_greedy_and_sampled_decodes(model, monkeypatch, n):
    _repetitive(model, monkeypatch)
    z = torch.randn(2, 4)
    plain = model.generate(z, max_len=10)
    assert plain == [[7] * 10, [7] * 10]  # the loop the option is there to break
    for strategy in ("greedy", "sample"):
        torch.manual_seed(1)
        out = model.generate(z, strategy=strategy, temperature=0.5, max_len=10, no_repeat_ngram=n)
        for ids in out:
            grams = [tuple(ids[i:i + n]) for i in range(len(ids) - n + 1)]
            assert len(grams) == len(set(grams)) and len(ids) == 10, ids
    assert model.generate(z, max_len=10, no_repeat_ngram=n)[0][: n - 1] == [7] * (n - 1)  # first choices kept


@pytest.mark.parametrize("n", [0, 2])
def test_a_row_that_finishes_early_leaves_the_others_unchanged(model, n):
    """Finished rows leave the decoding batch: each row of a batch decodes as it would alone."""
    z = torch.randn(24, 4) * 3
    batch = model.generate(z, no_repeat_ngram=n)
    lengths = {len(ids) for ids in batch}
    assert min(lengths) < 12 and len(lengths) > 2, lengths  # the batch really shrinks on the way
    assert batch == [model.generate(z[i:i + 1], no_repeat_ngram=n)[0] for i in range(len(z))]


def test_sampled_words_follow_the_tempered_softmax_and_never_a_blocked_word():
    torch.manual_seed(0)
    logits = torch.tensor([[0.0, 1.0, 2.0, -math.inf, 0.5, -math.inf]]).repeat(200_000, 1)
    for temperature in (0.5, 1.0):
        counts = torch.bincount(sample_rows(logits, temperature), minlength=6).double() / len(logits)
        expected = torch.softmax(logits[0] / temperature, dim=-1).double()
        assert counts[3] == 0 and counts[5] == 0  # −inf: blocked words and <pad>/<bos> are never drawn
        torch.testing.assert_close(counts, expected, atol=4e-3, rtol=0)  # ~4 standard errors at 200k draws
    torch.manual_seed(1)
    a = sample_rows(logits[:50], 0.7)
    torch.manual_seed(1)
    assert torch.equal(a, sample_rows(logits[:50], 0.7))  # the global seed decides the draws
