"""Sentence encoder: text in, float32 vectors out.

A thin layer over sentence-transformers that adds what a service needs: input checks with
useful messages, offline loading of the bundled weights, a per-text truncation report and
token counts (for the OpenAI-style ``usage`` field).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from textlatent.errors import InvalidInputError
from textlatent.models import (
    model_id_for,
    resolve_device,
    resolve_model_path,
    resolve_precision,
    set_offline_defaults,
)

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


def _token_ids(items: Sequence[Any]) -> bool:
    """OpenAI's other input form: a list of token ids, or a list of such lists."""
    flat = [t for item in items for t in (item if isinstance(item, list) else [item])]
    return bool(flat) and all(isinstance(t, int) and not isinstance(t, bool) for t in flat)


def validate_texts(texts: Any, *, param: str = "input") -> list[str]:
    """Return ``texts`` as a list of non-blank strings, or raise naming the first bad item."""
    single = isinstance(texts, str)
    if single:
        texts = [texts]
    if not isinstance(texts, Sequence) or isinstance(texts, bytes):
        raise InvalidInputError(f"{param} must be a string or a list of strings", param=param)
    if len(texts) == 0:
        raise InvalidInputError(f"{param} is empty: give at least one text", param=param)
    for i, text in enumerate(texts):
        where = param if single else f"{param}[{i}]"
        if not isinstance(text, str):
            if _token_ids(texts):
                raise InvalidInputError(f"{param} holds token ids; send the text itself (token arrays are not "
                                        "supported)", param=param)
            raise InvalidInputError(f"{where} is {type(text).__name__}, not a string", param=where)
        if not text.strip():
            raise InvalidInputError(f"{where} is empty or blank", param=where)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            message = f"{where} is not valid Unicode (lone surrogate at {exc.start})"
            raise InvalidInputError(message, param=where) from exc
    return list(texts)


def token_lengths(tokenizer: Any, texts: Sequence[str], max_length: int | None = None) -> np.ndarray:
    """Tokens of each text, special tokens included (at most ``max_length`` when given). For a
    tokenizer that is not a transformers one (a static-embedding model's, say): characters."""
    from transformers import PreTrainedTokenizerBase

    if not isinstance(tokenizer, PreTrainedTokenizerBase):
        return np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    if not len(texts):
        return np.zeros(0, dtype=np.int64)
    ids = tokenizer(list(texts), add_special_tokens=True, truncation=max_length is not None, max_length=max_length,
                    return_attention_mask=False, return_token_type_ids=False, verbose=False)["input_ids"]
    return np.fromiter((len(i) for i in ids), dtype=np.int64, count=len(texts))


def longest_first(lengths: np.ndarray) -> np.ndarray:
    """Indices from the longest to the shortest, ties in input order: consecutive slices of this
    order make batches whose texts pad little."""
    return np.argsort(-np.asarray(lengths), kind="stable")


@dataclass(frozen=True)
class EncodeResult:
    embeddings: np.ndarray  # float32 [n, d]
    token_counts: np.ndarray  # int64 [n]: tokens the model read for each text (after truncation)
    truncated: np.ndarray  # bool [n]: the text was longer than the model's limit and was cut


class Encoder:
    """Loads a sentence-transformers model once and encodes batches of text.

    ``model`` is ``None`` (the bundled all-MiniLM-L6-v2) or a model folder. ``device`` is
    'auto' (cuda when present), 'cpu' or 'cuda[:n]'. ``threads`` sets torch's CPU threads.
    """

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        device: str = "auto",
        threads: int | None = None,
        batch_size: int = 64,
        precision: str = "auto",
    ) -> None:
        set_offline_defaults()
        import torch
        from sentence_transformers import SentenceTransformer

        if threads:
            torch.set_num_threads(threads)
        spec = None if model is None else str(model)
        self.path = resolve_model_path(spec)
        self.model_id = model_id_for(spec)
        self.device = resolve_device(device)
        self.batch_size = batch_size
        # auto: bf16 autocast on GPUs (faster, vectors within ~1e-2 of fp32), exact fp32 on the CPU
        self.precision = resolve_precision(precision, self.device)
        self.autocast = self.precision == "bf16"
        try:
            self.model: SentenceTransformer = SentenceTransformer(
                str(self.path), device=self.device, local_files_only=True
            )
        except (ValueError, OSError, KeyError) as exc:  # a folder of another kind (a VAE, a sentiment head, ...)
            raise InvalidInputError(f"{str(self.path)!r} could not be loaded as a sentence-transformers model "
                                    f"({type(exc).__name__}: {str(exc)[:200]})", param="model") from exc
        self.model.eval()
        # Models that end in a Normalize module (all-MiniLM-L6-v2 does) would ignore
        # normalize=False; drop it and normalise in encode() instead, which gives the same
        # vectors by default and the raw pooled ones when asked.
        if len(self.model) and type(self.model[-1]).__name__ == "Normalize":
            del self.model[len(self.model) - 1]
        # The tokenizer of a fast (Rust) tokenizer is not safe to call from two threads at once.
        self._lock = threading.Lock()

    @property
    def dim(self) -> int:
        getter = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        dim = getter()
        assert dim is not None
        return int(dim)

    @property
    def max_seq_length(self) -> int:
        limit = self.model.max_seq_length
        assert limit is not None, "a sentence-transformers model always has a max_seq_length"
        return int(limit)

    def token_counts(self, texts: Sequence[str]) -> np.ndarray:
        """Token count of each text, special tokens included, before any truncation."""
        with self._lock:
            return token_lengths(self.model.tokenizer, texts)

    def encode(
        self,
        texts: str | Sequence[str],
        *,
        normalize: bool = True,
        batch_size: int | None = None,
        show_progress: bool = False,
    ) -> np.ndarray:
        """Embed ``texts`` → float32 ``[n, d]``, L2-normalised unless ``normalize=False``.

        Texts longer than :attr:`max_seq_length` tokens are truncated; use
        :meth:`encode_with_info` to learn which.
        """
        return self._encode(validate_texts(texts), normalize, batch_size, show_progress)

    def _encode(self, items: list[str], normalize: bool, batch_size: int | None, show_progress: bool,
                lengths: np.ndarray | None = None) -> np.ndarray:
        """Encode texts already checked by :func:`validate_texts` (``lengths``: their token counts, if known).

        sentence-transformers' ``encode`` batches texts in order of characters; here each batch is
        a slice of the texts in order of tokens, encoded by its own ``encode`` call, so a batch
        pads less (on SST-2 phrases, a quarter of the token slots were padding) and everything
        else (prompts, truncation, ``truncate_dim``) stays sentence-transformers'. Same vectors.
        """
        import contextlib

        import torch
        from tqdm import tqdm

        device_type = "cuda" if self.device.startswith("cuda") else "cpu"
        autocast = (
            torch.autocast(device_type, dtype=torch.bfloat16) if self.autocast else contextlib.nullcontext()
        )
        size = batch_size or self.batch_size
        out = np.empty((len(items), self.dim), dtype=np.float32)
        with self._lock, autocast:
            if lengths is None:
                lengths = token_lengths(self.model.tokenizer, items, self.max_seq_length)
            order = longest_first(np.minimum(lengths, self.max_seq_length))
            for start in tqdm(range(0, len(items), size), desc="encoding", unit="batch", disable=not show_progress):
                idx = order[start : start + size]
                out[idx] = self.model.encode([items[i] for i in idx], batch_size=len(idx),
                                             normalize_embeddings=normalize, convert_to_numpy=True,
                                             show_progress_bar=False)
        return out

    def encode_with_info(
        self,
        texts: str | Sequence[str],
        *,
        normalize: bool = True,
        batch_size: int | None = None,
        show_progress: bool = False,
    ) -> EncodeResult:
        items = validate_texts(texts)
        counts = self.token_counts(items)
        limit = self.max_seq_length
        embeddings = self._encode(items, normalize, batch_size, show_progress, lengths=counts)
        return EncodeResult(
            embeddings=embeddings,
            token_counts=np.minimum(counts, limit),
            truncated=counts > limit,
        )


def check_dimensions(dimensions: int, dim: int) -> None:
    """``dimensions`` must keep between 1 and all ``dim`` components."""
    if not 1 <= dimensions <= dim:
        raise InvalidInputError(f"dimensions must be between 1 and {dim}, got {dimensions}", param="dimensions")


def truncate_dimensions(embeddings: np.ndarray, dimensions: int) -> np.ndarray:
    """Keep the first ``dimensions`` components and re-normalise (Matryoshka-style truncation)."""
    check_dimensions(dimensions, embeddings.shape[1])
    cut = np.ascontiguousarray(embeddings[:, :dimensions], dtype=np.float32)
    norms = np.linalg.norm(cut, axis=1, keepdims=True)
    return cut / np.maximum(norms, 1e-12)
