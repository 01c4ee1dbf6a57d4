"""A disk cache of corpus embeddings, so that every experiment encodes a corpus once.

Encoding SciFact's 5,183 abstracts costs minutes on a small CPU; BM25, fusion, reranker
training and evaluation all need the same vectors. The key is the model's identity (its id
and a hash of its weight files) plus a hash of the exact texts, so a changed model, corpus
or text convention can never be served stale vectors. Files live under
``~/.cache/textlatent/embeddings`` (``TEXTLATENT_CACHE_DIR`` moves the root), never in the repo.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("textlatent.cache")

MIN_TEXTS = 1000  # below this, encoding is cheaper than a cache file (and tests leave no files behind)
# np.load parses each file's header with ast.literal_eval, and CPython 3.11 before 3.11.8 can raise a spurious
# "SystemError: AST constructor recursion depth mismatch" when threads build ASTs at once (cpython gh-106905;
# seen in this project's threaded cache test). Loads are short next to encoding, so they take turns.
_LOAD_LOCK = threading.Lock()


def cache_root() -> Path:
    """``$TEXTLATENT_CACHE_DIR`` or ``~/.cache/textlatent``."""
    return Path(os.environ.get("TEXTLATENT_CACHE_DIR") or Path.home() / ".cache" / "textlatent")


# Files that decide what a model folder computes: weights, configs, tokenizer files (WordPiece and
# BPE vocabularies are .txt/.json; SentencePiece models are .model/.spm), and custom code.
_MODEL_SUFFIXES = {".safetensors", ".bin", ".json", ".txt", ".model", ".spm", ".vocab", ".tiktoken", ".py"}


def _update_part(digest: Any, data: bytes) -> None:
    """Feed one length-prefixed part, so no two sequences of parts hash the same bytes."""
    digest.update(len(data).to_bytes(8, "little"))
    digest.update(data)


def model_fingerprint(model_path: str | Path) -> str:
    """Hash of a model folder's weight, config and tokenizer files (names, sizes and contents)."""
    digest = hashlib.sha256(b"textlatent-model-v2")
    root = Path(model_path)
    for path in sorted(root.rglob("*")):
        if any(part.startswith(".textlatent-") for part in path.relative_to(root).parts):
            continue  # what `--overwrite` set aside or kept from a failed run: not this model
        if path.is_file() and path.suffix in _MODEL_SUFFIXES:
            _update_part(digest, str(path.relative_to(root).as_posix()).encode("utf-8", "surrogatepass"))
            digest.update(path.stat().st_size.to_bytes(8, "little"))
            with path.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()[:16]


def texts_fingerprint(ids: Sequence[str], texts: Sequence[str]) -> str:
    """Hash of the (id, text) pairs in order; every part is length-prefixed."""
    digest = hashlib.sha256(b"textlatent-texts-v2")
    for i, t in zip(ids, texts, strict=True):
        _update_part(digest, i.encode("utf-8", "surrogatepass"))
        _update_part(digest, t.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:16]


def cached_embeddings(
    encoder: Any,
    ids: Sequence[str],
    texts: Sequence[str],
    encode: Callable[[Sequence[str]], np.ndarray],
    *,
    cache_dir: str | Path | None = None,
) -> np.ndarray:
    """``encode(texts)``, read from the cache when this model has already embedded these texts.

    ``encoder`` supplies the identity (``model_id`` and ``path``); ``encode`` does the work, so
    callers keep their own batching and progress bars. Writes are atomic (temp file + rename).
    Fewer than ``MIN_TEXTS`` texts are encoded without touching the cache.
    """
    if len(texts) < MIN_TEXTS:
        return np.ascontiguousarray(encode(texts), dtype=np.float32)
    root = Path(cache_dir) if cache_dir else cache_root() / "embeddings"
    model_id = str(getattr(encoder, "model_id", type(encoder).__name__))
    model_path = getattr(encoder, "path", None)
    model_key = model_fingerprint(model_path) if model_path else "nopath"
    path = root / f"{model_id}-{model_key}-{texts_fingerprint(ids, texts)}.npy"
    if path.is_file():
        try:
            with _LOAD_LOCK:
                emb = np.load(path)
        except (OSError, ValueError, EOFError):  # damaged (a crash before the data reached the disk): rebuild
            log.warning("embedding cache entry %s is unreadable; encoding again", path.name)
            emb = None
        if emb is not None and emb.ndim == 2 and emb.shape[0] == len(texts):
            return np.ascontiguousarray(emb, dtype=np.float32)
    emb = np.ascontiguousarray(encode(texts), dtype=np.float32)
    write_atomic(path, lambda fh: np.save(fh, emb))
    return emb


def write_atomic(path: Path, write: Callable[[Any], None]) -> bool:
    """Write ``path`` through ``write(file)`` into a temp file of its own (unique per call, so threads
    and processes building the same entry never share one), fsync it, then rename it into place.

    A cache is an optimisation: if the folder cannot be written (read-only, full disk), the temp
    file is removed, a warning is logged and ``False`` returned, and the caller goes on uncached."""
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        return True
    except OSError as exc:
        log.warning("could not write the cache entry %s (%s); going on without caching it", path, exc)
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        return False
