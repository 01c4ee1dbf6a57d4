"""The text VAE: q(z|x) from a sentence embedding, p(x|z) an autoregressive GRU.

Why this shape:

* The posterior reads the MiniLM sentence embedding (the same space as
  :class:`textlatent.Encoder`), so the VAE's latent space sits on top of the embedding
  space every other part of textlatent uses. With the encoder frozen its embeddings are
  computed once and cached, which is what makes training on two CPU cores affordable.
* The decoder is a GRU that sees z at every step (concatenated to each input word) and
  starts from a hidden state made from z: a decoder that can only read z at the start is
  the one that learns to ignore it (posterior collapse).
* The output is an adaptive softmax (Grave et al. 2017) over the frequency-sorted vocabulary:
  an exact, normalised distribution (so NLL and perplexity are true figures), at about a
  sixth of the cost of the full 10k-way softmax, which on two CPU cores is what decides
  how many epochs fit in the training budget and whether the k=100 importance-weighted
  NLL can be computed at all.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from textlatent.vae.metrics import gaussian_kl, gaussian_neg_entropy, standard_log_prob
from textlatent.vae.prior import MixturePrior


@dataclass
class VAEConfig:
    vocab_size: int
    embed_dim: int = 384  # size of the sentence embedding the posterior reads (MiniLM: 384)
    latent_dim: int = 32
    word_dim: int = 256
    hidden_dim: int = 256  # 512 is ~1 nat better on PTB but ~2x slower per epoch (docs/benchmarks.md)
    posterior_hidden: int = 512
    dropout: float = 0.5  # on word embeddings and GRU outputs (as the Sentence-VAE GRU reproduction)
    word_dropout: float = 0.0  # decoder inputs replaced by <unk> while training (Bowman et al. 2016); 0.25 was
    # no better on PTB once dropout is 0.5 and free bits keep z in use (docs/benchmarks.md)
    tie_weights: bool = False  # frequent words' input embeddings = their head vectors (no gain on PTB: docs)
    adaptive_div: float = 4.0  # the adaptive softmax's tail clusters score words from word_dim / div^i dimensions
    # (i = 1, 2: 64 and 16 at the default); 1 gives every cluster the full word_dim
    weight_drop: float = 0.0  # DropConnect on the GRU's hidden-to-hidden weights while training (Merity et al. 2018)
    max_len: int = 60  # longest sentence decoded, <eos> included

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VAEConfig:
        names = {f.name for f in fields(cls)}
        data = {"adaptive_div": 4.0, **data}  # models saved before the option existed were trained with 4
        return cls(**{k: v for k, v in data.items() if k in names})


class PosteriorHead:
    """q(z|x) from a sentence embedding: standardise it, then an MLP to μ and log σ².

    Shared by every decoder (the GRU's :class:`TextVAE`, the SmolLM2 prefix decoder), so one
    posterior, with the same parameter names, can start or serve any of them. The module
    using it defines ``posterior``, ``embed_mean`` and ``embed_std``."""

    posterior: nn.Module
    embed_mean: torch.Tensor
    embed_std: torch.Tensor

    @torch.no_grad()
    def set_input_stats(self, embeddings: torch.Tensor) -> None:
        """Per-component mean and standard deviation of the training embeddings ``[N, embed_dim]``."""
        self.embed_mean.copy_(embeddings.float().mean(dim=0))
        self.embed_std.copy_(embeddings.float().std(dim=0).clamp_min(1e-4))

    def encode(self, embeddings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Sentence embeddings ``[B, embed_dim]`` → μ, log σ² ``[B, latent_dim]``."""
        x = (embeddings - self.embed_mean) / self.embed_std
        mu, logvar = self.posterior(x).chunk(2, dim=-1)
        return mu, logvar.clamp(-12.0, 8.0)


class TextVAE(PosteriorHead, nn.Module):
    """Posterior head over sentence embeddings plus a z-conditioned GRU language model.

    Token ids follow :class:`textlatent.vae.data.Vocab`: 0 pad, 1 bos, 2 eos, 3 unk.
    """

    PAD, BOS, EOS, UNK = 0, 1, 2, 3
    embed_mean: torch.Tensor
    embed_std: torch.Tensor
    # p(z): None is N(0, I), the prior of training; a fitted mixture (textlatent.vae.prior) replaces it
    # after training. Not a module: model.pt is the same either way.
    prior: MixturePrior | None = None

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        self.config = c = config
        self.posterior = nn.Sequential(
            nn.Linear(c.embed_dim, c.posterior_hidden), nn.Tanh(), nn.Linear(c.posterior_hidden, 2 * c.latent_dim)
        )
        # MiniLM vectors are unit-norm and share a common direction: sentences differ by ~0.01 per
        # component. Standardising each component with training-set statistics (set by
        # `set_input_stats`) puts those differences at unit scale, so the posterior separates
        # sentences from the first step instead of after its weights grow a hundredfold.
        self.register_buffer("embed_mean", torch.zeros(c.embed_dim))
        self.register_buffer("embed_std", torch.ones(c.embed_dim))
        # Weight tying (Press & Wolf 2017; Inan et al. 2017), adapted to the adaptive softmax: the
        # head scores the `shortlist` most frequent words with one word_dim vector each, and those
        # vectors double as the words' input embeddings; only the rarer words, scored through the
        # low-rank tail clusters, keep an input table of their own. (Modules are created in the
        # same order as before the option existed, so a seed still gives the same untied model.)
        cutoffs = adaptive_cutoffs(c.vocab_size)
        self.tied = cutoffs[0] if c.tie_weights else 0
        self.embedding = nn.Embedding(c.vocab_size - self.tied, c.word_dim,
                                      padding_idx=None if self.tied else self.PAD)
        self.z_to_hidden = nn.Linear(c.latent_dim, c.hidden_dim)
        self.gru = nn.GRU(c.word_dim + c.latent_dim, c.hidden_dim, batch_first=True)
        self.to_word = nn.Linear(c.hidden_dim + c.latent_dim, c.word_dim)
        self.softmax = nn.AdaptiveLogSoftmaxWithLoss(c.word_dim, c.vocab_size, cutoffs,
                                                     div_value=c.adaptive_div)
        self.drop = nn.Dropout(c.dropout)
        nn.init.normal_(self.embedding.weight, std=0.05)
        if not self.tied:
            with torch.no_grad():
                self.embedding.weight[self.PAD].zero_()

    def word_vectors(self, words: torch.Tensor) -> torch.Tensor:
        """Input embeddings of token ids (tied to the softmax head for frequent words if configured)."""
        if not self.tied:
            return self.embedding(words)
        table = torch.cat([self.softmax.head.weight[: self.tied], self.embedding.weight])
        return F.embedding(words, table)

    # ------------------------------------------------------------------ posterior

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, k: int | None = None) -> torch.Tensor:
        """One z per row (``k`` None) or ``[B, k, d]`` samples."""
        std = (0.5 * logvar).exp()
        if k is None:
            return mu + std * torch.randn_like(std)
        return mu.unsqueeze(1) + std.unsqueeze(1) * torch.randn(mu.shape[0], k, mu.shape[1], device=mu.device,
                                                                  dtype=mu.dtype)

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) over the last dimension of ``z``: N(0, I), or the fitted prior when there is one."""
        return standard_log_prob(z) if self.prior is None else self.prior.log_prob(z)

    def kl(self, mu: torch.Tensor, logvar: torch.Tensor, z: torch.Tensor | None = None, samples: int = 16,
           generator: torch.Generator | None = None) -> torch.Tensor:
        """KL(q(z|x) ‖ p(z)) per row, ``[B]``. In closed form under N(0, I); under a fitted prior, the
        Gaussian's entropy in closed form and E_q log p(z) from the draws ``z`` (``[B, d]`` or
        ``[B, m, d]``) or, when none are given, from ``samples`` fresh ones."""
        if self.prior is None:
            return gaussian_kl(mu, logvar).sum(dim=-1)
        if z is None:
            std = (0.5 * logvar).exp()
            eps = torch.randn(mu.shape[0], samples, mu.shape[1], device=mu.device, dtype=mu.dtype,
                              generator=generator)
            z = mu.unsqueeze(1) + std.unsqueeze(1) * eps
        elif z.ndim == 2:
            z = z.unsqueeze(1)
        return gaussian_neg_entropy(logvar) - self.prior.log_prob(z).mean(dim=1)

    # ------------------------------------------------------------------ decoder

    def _init_hidden(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.z_to_hidden(z)).unsqueeze(0)

    def _step_inputs(self, words: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        emb = self.drop(self.word_vectors(words))
        return torch.cat([emb, z.unsqueeze(1).expand(-1, words.shape[1], -1)], dim=-1)

    def _features(self, out: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """GRU outputs → the word-space vectors the tied softmax scores."""
        out = self.drop(out)
        return self.to_word(torch.cat([out, z.unsqueeze(1).expand(-1, out.shape[1], -1)], dim=-1))

    def log_probs(self, features: torch.Tensor) -> torch.Tensor:
        """Full next-word log-distribution ``[N, V]`` for features ``[N, word_dim]`` (generation)."""
        return self.softmax.log_prob(features.float())

    def decoder_features(self, z: torch.Tensor, targets: torch.Tensor, word_dropout: float = 0.0) -> torch.Tensor:
        """Teacher-forced features ``[B, T, word_dim]`` for ``targets`` ``[B, T]`` (ending in <eos>, padded)."""
        inputs = torch.cat([torch.full_like(targets[:, :1], self.BOS), targets[:, :-1]], dim=1)
        if word_dropout > 0:
            drop = (torch.rand(inputs.shape, device=inputs.device) < word_dropout) & (inputs != self.PAD)
            drop[:, 0] = False  # keep <bos>: it tells the decoder a sentence starts
            inputs = inputs.masked_fill(drop, self.UNK)
        out, _ = self._run_gru(self._step_inputs(inputs, z), self._init_hidden(z))
        return self._features(out, z)

    def _run_gru(self, inputs: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The GRU, with its recurrent weights dropped out (one mask per batch, as AWD-LSTM's
        WeightDrop) while training if ``weight_drop`` is set; the plain GRU otherwise."""
        p = self.config.weight_drop
        if not (self.training and p > 0):
            return self.gru(inputs, hidden)
        dropped = {"weight_hh_l0": F.dropout(self.gru.get_parameter("weight_hh_l0"), p, training=True)}
        return torch.func.functional_call(self.gru, dropped, (inputs, hidden))

    def reconstruction_nll(
        self, z: torch.Tensor, targets: torch.Tensor, word_dropout: float = 0.0, chunk_tokens: int = 8192
    ) -> torch.Tensor:
        """−log p(x|z) summed over each sentence's tokens, ``<eos>`` included → ``[B]``.

        Only real (unpadded) tokens are scored, in chunks, so that scoring many z samples
        at once (importance-weighted NLL) stays within memory."""
        features = self.decoder_features(z, targets, word_dropout)
        mask = targets != self.PAD
        flat_features = features[mask].float()
        flat_targets = targets[mask]
        logp = torch.cat([self.softmax(flat_features[i:i + chunk_tokens], flat_targets[i:i + chunk_tokens]).output
                          for i in range(0, flat_targets.shape[0], chunk_tokens)])
        per_token = torch.zeros(targets.shape, dtype=logp.dtype, device=logp.device)
        per_token[mask] = -logp
        return per_token.sum(dim=1)

    # ------------------------------------------------------------------ generation

    @torch.no_grad()
    def generate(
        self, z: torch.Tensor, *, strategy: str = "greedy", temperature: float = 1.0, beam_size: int = 5,
        max_len: int | None = None, no_repeat_ngram: int = 0,
    ) -> list[list[int]]:
        """Token ids (without ``<eos>``) for each row of ``z``.

        ``no_repeat_ngram`` n ≥ 2 (greedy and sample): a word that would complete an n-gram the
        sentence already holds is never chosen, as transformers' ``no_repeat_ngram_size``."""
        max_len = max_len or self.config.max_len
        if strategy == "beam":
            return [self._beam(z[i:i + 1], beam_size, max_len) for i in range(z.shape[0])]
        B = z.shape[0]
        words = torch.full((B, 1), self.BOS, dtype=torch.long, device=z.device)
        hidden = self._init_hidden(z)
        result: list[list[int]] = [[] for _ in range(B)]
        live = list(range(B))  # rows still decoding: a finished row leaves the batch, so it costs nothing more
        for _ in range(max_len):
            out, hidden = self.gru(self._step_inputs(words, z), hidden)
            logits = self.log_probs(self._features(out, z)[:, -1])
            logits[:, [self.PAD, self.BOS]] = -math.inf
            seqs = [result[i] for i in live]  # the same lists: appends below reach ``result``
            if no_repeat_ngram >= 2:
                block_repeated_ngrams(logits, seqs, no_repeat_ngram)
            nxt = sample_rows(logits, temperature) if strategy == "sample" else logits.argmax(dim=-1)
            going = []  # one device sync per step, for the appends and the shrink
            for j, word in enumerate(nxt.tolist()):
                if word != self.EOS:
                    seqs[j].append(word)
                    going.append(j)
            if not going:
                break
            if len(going) < len(live):
                keep = torch.tensor(going, device=z.device)
                live = [live[j] for j in going]
                z, hidden, nxt = z[keep], hidden[:, keep], nxt[keep]
            words = nxt.unsqueeze(1)
        return result

    def _beam(self, z: torch.Tensor, beam_size: int, max_len: int) -> list[int]:
        """Beam search for one z, scores length-normalised so short sentences are not favoured unduly."""
        hidden = self._init_hidden(z)
        beams: list[tuple[float, list[int], torch.Tensor]] = [(0.0, [], hidden)]
        finished: list[tuple[float, list[int]]] = []
        for _ in range(max_len):
            words = torch.tensor([[b[1][-1] if b[1] else self.BOS] for b in beams], device=z.device)
            zs = z.expand(len(beams), -1)
            out, new_hidden = self.gru(self._step_inputs(words, zs), torch.cat([b[2] for b in beams], dim=1))
            logp = self.log_probs(self._features(out, zs)[:, -1])
            logp[:, [self.PAD, self.BOS]] = -math.inf
            top, idx = logp.topk(beam_size, dim=-1)
            candidates = []
            for b, (score, seq, _) in enumerate(beams):
                for s, w in zip(top[b].tolist(), idx[b].tolist(), strict=True):
                    candidates.append((score + s, seq + [w], b))
            candidates.sort(key=lambda c: c[0], reverse=True)
            beams = []
            for score, seq, b in candidates:
                if seq[-1] == self.EOS:
                    finished.append((score / len(seq), seq[:-1]))
                else:
                    beams.append((score, seq, new_hidden[:, b:b + 1]))
                if len(beams) == beam_size:
                    break
            if not beams or len(finished) >= beam_size:
                break
        if not finished:
            finished = [(s / max(len(q), 1), q) for s, q, _ in beams]
        return max(finished, key=lambda f: f[0])[1]


def sample_rows(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """One word per row of ``logits`` ``[B, V]``, drawn from softmax(logits / temperature), by inverse
    CDF: a float64 running sum and one uniform per row. ``torch.multinomial`` draws the same
    distribution but took 7x as long on CPU for 500 rows of a 19.6k vocabulary (240 ms a step).
    A word of probability 0 (logit −inf) is never drawn: its step in the running sum is empty."""
    cdf = F.softmax(logits / max(temperature, 1e-4), dim=-1).double().cumsum_(dim=-1)
    u = torch.rand(cdf.shape[0], 1, dtype=cdf.dtype, device=cdf.device) * cdf[:, -1:]
    return torch.searchsorted(cdf, u, right=True).squeeze(1).clamp_(max=cdf.shape[1] - 1)


def block_repeated_ngrams(logits: torch.Tensor, sequences: list[list[int]], n: int) -> None:
    """Set to −inf, in place, each row's words that would repeat one of its n-grams (``sequences``
    are the rows still decoding, plain lists, so a GPU batch syncs once per step, not once per row)."""
    for i, seq in enumerate(sequences):
        if len(seq) < n - 1:
            continue
        prefix = seq[len(seq) - n + 1:]
        banned = [seq[j + n - 1] for j in range(len(seq) - n + 1) if seq[j:j + n - 1] == prefix]
        if banned:
            logits[i, banned] = -math.inf


def adaptive_cutoffs(vocab_size: int) -> list[int]:
    """Cluster bounds of the adaptive softmax: the ~1000 most frequent words in the head
    (ids are frequency-sorted by :meth:`Vocab.build`), then 1000-4000, then the rest."""
    cutoffs = [c for c in (1000, 4000) if c < vocab_size - 1]
    return cutoffs or [max(1, vocab_size // 2)]
