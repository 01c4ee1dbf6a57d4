"""A disk cache for embeddings of fixed data sets (training corpora, benchmark corpora).

Encoding SST-2 train or the SciFact corpus costs minutes on a CPU; experiments that reuse
them should pay once. Entries live outside the repository (``TEXTLATENT_CACHE_DIR``, default
``~/.cache/textlatent``) and are keyed by the model's identity (path, weight file sizes and
times) and a hash of the exact texts, so a changed model or data set never hits a stale entry.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def cache_dir() -> Path:
    root = os.environ.get("TEXTLATENT_CACHE_DIR") or Path.home() / ".cache" / "textlatent"
    return Path(root)


def model_fingerprint(path: str | Path) -> str:
    """Identity of a model folder: its resolved path plus the size and mtime of every file in it."""
    root = Path(path).resolve()
    h = hashlib.sha256(str(root).encode())
    for f in sorted(root.rglob("*")):
        if f.is_file():
            st = f.stat()
            h.update(f"{f.relative_to(root)}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def texts_fingerprint(texts: Sequence[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()[:16]


def cached_embeddings(encoder: Any, texts: Sequence[str], *, show_progress: bool = False) -> np.ndarray:
    """``encoder.encode(texts)`` (normalised), read from or written to the cache."""
    key = f"{model_fingerprint(encoder.path)}-{texts_fingerprint(texts)}-{len(texts)}"
    path = cache_dir() / "embeddings" / f"{key}.npy"
    if path.is_file():
        vectors = np.load(path)
        if vectors.shape[0] == len(texts):
            return np.asarray(vectors, dtype=np.float32)
    vectors = encoder.encode(list(texts), show_progress=show_progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp.npy")
    np.save(tmp, vectors)
    tmp.replace(path)
    return np.asarray(vectors, dtype=np.float32)
