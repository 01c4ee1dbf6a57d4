"""Text for the VAE: the word vocabulary, token ids, and cached sentence embeddings.

The decoder works on whitespace tokens (the PTB convention: Mikolov's files are already
tokenised, lower-cased and closed over a 10k vocabulary with ``<unk>``), with ``<eos>``
appended to every sentence and counted in the likelihood. The encoder side is the bundled
MiniLM; when it is frozen its embeddings never change, so they are computed once per corpus
file and cached under ``~/.cache/textlatent`` keyed by model and content hash.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from textlatent.errors import InvalidInputError

if TYPE_CHECKING:
    from textlatent.encoder import Encoder

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIALS = (PAD, BOS, EOS, UNK)


class Vocab:
    """Word ↔ id over the training text. Ids 0-3 are ``<pad> <bos> <eos> <unk>``."""

    def __init__(self, words: Sequence[str]) -> None:
        self.itos: list[str] = list(words)
        if tuple(self.itos[:4]) != SPECIALS:
            raise InvalidInputError(f"a vocabulary must start with {SPECIALS}", param="vocab")
        self.stoi = {w: i for i, w in enumerate(self.itos)}
        self.pad, self.bos, self.eos, self.unk = 0, 1, 2, 3

    @classmethod
    def build(cls, sentences: Iterable[str], *, min_count: int = 1, max_size: int | None = None) -> Vocab:
        """Words of the training text by frequency (ties alphabetical, so builds are reproducible)."""
        counts = Counter(w for s in sentences for w in tokenize(s))
        for special in SPECIALS:
            counts.pop(special, None)
        words = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        if max_size is not None:
            words = words[: max(0, max_size - len(SPECIALS))]
        return cls([*SPECIALS, *words])

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, sentence: str) -> list[int]:
        """Token ids of ``sentence`` followed by ``<eos>`` (no ``<bos>``: the decoder adds it)."""
        return [self.stoi.get(w, self.unk) for w in tokenize(sentence)] + [self.eos]

    def decode(self, ids: Iterable[int]) -> str:
        """Words up to the first ``<eos>``; padding and ``<bos>`` are dropped."""
        words = []
        for i in ids:
            if i == self.eos:
                break
            if i in (self.pad, self.bos):
                continue
            words.append(self.itos[i])
        return " ".join(words)

    def save(self, path: Path) -> None:
        path.write_text("\n".join(self.itos) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Vocab:
        return cls(path.read_text(encoding="utf-8").splitlines())


def tokenize(sentence: str) -> list[str]:
    return sentence.split()


def read_sentences(path: str | Path) -> list[str]:
    """One sentence per line, blank lines skipped (PTB layout); a clear error when absent or empty."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"{path} is not a file", param="data")
    sentences = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not sentences:
        raise InvalidInputError(f"{path} holds no sentences", param="data")
    return sentences


def cached_embeddings(encoder: Encoder, texts: Sequence[str], *, show_progress: bool = False) -> np.ndarray:
    """MiniLM embeddings of ``texts`` (L2-normalised, as :meth:`Encoder.encode` gives them), through
    the project's embedding cache (:mod:`textlatent.cache`: keyed by model content and texts)."""
    from textlatent.cache import cached_embeddings as cached

    def embed(items: Sequence[str]) -> np.ndarray:
        return np.asarray(encoder.encode(list(items), show_progress=show_progress))

    return cached(encoder, [str(i) for i in range(len(texts))], texts, embed)
