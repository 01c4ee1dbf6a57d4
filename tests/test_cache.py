"""The corpus-embedding cache: hit, miss on any change, small corpora left alone."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from textlatent import cache as embcache


class _Enc:
    def __init__(self, path: Path, model_id: str = "m") -> None:
        self.path, self.model_id = path, model_id


def test_cache_hits_and_misses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embcache, "MIN_TEXTS", 2)
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"weights-1")
    calls: list[int] = []

    def encode(texts: object) -> np.ndarray:
        calls.append(1)
        return np.arange(6, dtype=np.float32).reshape(3, 2)

    ids, texts = ["a", "b", "c"], ["x", "y", "z"]
    first = embcache.cached_embeddings(_Enc(model), ids, texts, encode)
    again = embcache.cached_embeddings(_Enc(model), ids, texts, encode)
    assert len(calls) == 1 and np.array_equal(first, again)
    embcache.cached_embeddings(_Enc(model), ids, ["x", "y", "changed"], encode)  # other texts
    assert len(calls) == 2
    (model / "model.safetensors").write_bytes(b"weights-2")  # other weights
    embcache.cached_embeddings(_Enc(model), ids, texts, encode)
    assert len(calls) == 3
    root = Path(os.environ["TEXTLATENT_CACHE_DIR"]) / "embeddings"
    assert len(list(root.glob("*.npy"))) == 3 and not list(root.glob("*.tmp*"))
    embcache.cached_embeddings(_Enc(model), ["a"], ["x"], lambda t: np.zeros((1, 2), np.float32))  # too small
    assert len(list(root.glob("*.npy"))) == 3
