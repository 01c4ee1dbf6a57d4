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


def _model(tmp_path: Path) -> Path:
    model = tmp_path / "model"
    model.mkdir(exist_ok=True)
    (model / "model.safetensors").write_bytes(b"weights")
    return model


def test_a_damaged_entry_is_encoded_again_and_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Cut, emptied or header-only files (a crash before the data reached the disk) were a traceback
    on every later run; they are a miss now."""
    monkeypatch.setattr(embcache, "MIN_TEXTS", 2)
    model = _model(tmp_path)
    ids, texts = ["a", "b", "c"], ["x", "y", "z"]
    vectors = np.arange(6, dtype=np.float32).reshape(3, 2)
    cache = tmp_path / "cache"
    embcache.cached_embeddings(_Enc(model), ids, texts, lambda t: vectors, cache_dir=cache)
    [entry] = cache.glob("*.npy")
    whole = entry.read_bytes()
    for damaged in (whole[: len(whole) // 2], b"", whole[:128]):
        entry.write_bytes(damaged)
        calls: list[int] = []

        def encode(t: object, calls: list[int] = calls) -> np.ndarray:
            calls.append(1)
            return vectors

        got = embcache.cached_embeddings(_Enc(model), ids, texts, encode, cache_dir=cache)
        assert calls == [1] and np.array_equal(got, vectors)
        assert np.array_equal(np.load(entry), vectors)  # rewritten whole


def test_an_unwritable_cache_still_returns_the_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embcache, "MIN_TEXTS", 2)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    vectors = np.ones((3, 2), np.float32)
    got = embcache.cached_embeddings(_Enc(_model(tmp_path)), ["a", "b", "c"], ["x", "y", "z"], lambda t: vectors,
                                     cache_dir=blocker / "sub")
    assert np.array_equal(got, vectors)


def test_threads_building_one_entry_never_see_a_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The temp file was named by process id only, so threads shared it: zero rows or a failed rename."""
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setattr(embcache, "MIN_TEXTS", 2)
    model = _model(tmp_path)
    texts = [f"t{i}" for i in range(1000)]
    vectors = np.ones((1000, 16), np.float32)
    for round_ in range(5):
        cache = tmp_path / f"c{round_}"
        def build(_: int, cache: Path = cache) -> np.ndarray:
            return embcache.cached_embeddings(_Enc(model), texts, texts, lambda t: vectors, cache_dir=cache)

        with ThreadPoolExecutor(6) as pool:
            results = list(pool.map(build, range(12)))
        assert all(np.array_equal(r, vectors) for r in results)
        assert not list(cache.glob("*.tmp"))


def test_fingerprints_keep_the_parts_apart() -> None:
    # Separator bytes inside an id or text must not let two different corpora share a key.
    assert embcache.texts_fingerprint(["a"], ["b\x01c\x00d"]) != embcache.texts_fingerprint(["a", "c"], ["b", "d"])
    assert embcache.texts_fingerprint(["ab"], ["c"]) != embcache.texts_fingerprint(["a"], ["bc"])
    assert embcache.texts_fingerprint(["a"], ["b"]) == embcache.texts_fingerprint(["a"], ["b"])


def test_the_model_fingerprint_sees_tokenizer_files_and_file_boundaries(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"weights")
    (model / "tokenizer.model").write_bytes(b"sentencepiece-1")
    before = embcache.model_fingerprint(model)
    (model / "tokenizer.model").write_bytes(b"sentencepiece-2")  # a SentencePiece tokenizer changed
    assert embcache.model_fingerprint(model) != before
    (model / "tokenizer.model").unlink()
    (model / "README.md").write_text("docs do not change what the model computes")
    only_weights = embcache.model_fingerprint(model)
    (model / "README.md").write_text("other docs")
    assert embcache.model_fingerprint(model) == only_weights
    # The same bytes split differently between a file name and its contents are another folder.
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "x.json").write_bytes(b"1.jsonzz")
    (b / "x.json1.json").write_bytes(b"zz")
    assert embcache.model_fingerprint(a) != embcache.model_fingerprint(b)
