"""BM25 lexical search (``bm25s``), and a per-collection BM25 sidecar kept in step with writes.

Parameters follow BEIR's Elasticsearch baseline (k1=0.9, b=0.4, English stopwords and
Snowball stemming), the configuration behind its SciFact nDCG@10 of 0.665.

The sidecar design: SQLite is the source of truth and every write bumps the collection's
``generation``. The BM25 index for generation ``g`` lives in ``bm25-<g>/`` in the collection
folder. It is derived data, built lazily by the first BM25 query that finds no folder for the
committed generation, from one consistent read of SQLite (generation and texts in a single
read transaction), written to a temporary folder and published by an atomic rename; older
folders are then removed. So an upsert or delete can never leave BM25 serving a stale
corpus: a query always looks for the folder of the generation it just read. Rebuilding the
whole index took 3.1 s for SciFact's 5,183 abstracts on a busy 2-core machine; a write-heavy
collection pays that once per burst of queries after writes, not per write. (Incremental
updates would need a BM25 library with deletable postings; bm25s rebuilds.)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from textlatent.collections import _fsync_dir  # the store's directory fsync, one copy

if TYPE_CHECKING:
    from textlatent.collections import Collection

K1 = 0.9
B = 0.4
_DIR_RE = re.compile(r"^bm25-(\d+)$")


def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("english")


class BM25Index:
    """A BM25 index over ``ids``/``texts``; scores are BM25 (Lucene variant), higher is better."""

    def __init__(self, ids: Sequence[str], model: Any, keys: Sequence[int] | None = None) -> None:
        self.ids = list(ids)
        self.keys = np.asarray(keys if keys is not None else range(len(self.ids)), dtype=np.int64)
        self._model = model
        self._stem = _stemmer()

    @classmethod
    def build(
        cls,
        ids: Sequence[str],
        texts: Sequence[str],
        *,
        keys: Sequence[int] | None = None,
        k1: float = K1,
        b: float = B,
        show_progress: bool = False,
    ) -> BM25Index:
        import bm25s

        model = bm25s.BM25(k1=k1, b=b, method="lucene")
        tokens = None
        if texts:
            tokens = bm25s.tokenize(list(texts), stopwords="en", stemmer=_stemmer(), show_progress=show_progress)
        if tokens is None or not tokens.vocab:  # no text, or no searchable word in any of it ("!!!", "the")
            return cls(ids, None, keys)
        model.index(tokens, show_progress=show_progress)
        return cls(ids, model, keys)

    def __len__(self) -> int:
        return len(self.ids)

    def _query_tokens(self, queries: Sequence[str]) -> list[list[str]]:
        import bm25s

        return bm25s.tokenize(  # type: ignore[return-value]
            list(queries), stopwords="en", stemmer=self._stem, return_ids=False, show_progress=False
        )

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every document for ``query`` (0 where no query term occurs)."""
        if self._model is None or not self.ids:
            return np.zeros(len(self.ids), dtype=np.float32)
        tokens = [t for t in self._query_tokens([query])[0] if t in self._model.vocab_dict]
        if not tokens:
            return np.zeros(len(self.ids), dtype=np.float32)
        return np.asarray(self._model.get_scores(tokens), dtype=np.float32)

    def search(self, query: str, k: int, *, allowed_keys: np.ndarray | None = None) -> list[tuple[int, float]]:
        """Top ``k`` ``(position, score)`` pairs, best first; documents sharing no term are left out.

        ``allowed_keys`` restricts the search to documents with those keys (a metadata filter).
        """
        scores = self.scores(query)
        if allowed_keys is not None:
            scores = np.where(np.isin(self.keys, allowed_keys), scores, 0.0)
        positive = int(np.count_nonzero(scores > 0))
        k = min(k, positive)
        if k <= 0:
            return []
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(i), float(scores[i])) for i in top]

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        if self._model is not None:
            self._model.save(str(folder), show_progress=False)
        (folder / "ids.json").write_text(json.dumps({"ids": self.ids, "keys": self.keys.tolist(),
                                                     "model": self._model is not None}))

    @classmethod
    def load(cls, folder: Path) -> BM25Index:
        import bm25s

        meta = json.loads((folder / "ids.json").read_text())
        has_model = meta.get("model", bool(meta["ids"]))  # folders from before the key: a model iff ids
        model = bm25s.BM25.load(str(folder), show_progress=False) if has_model else None
        return cls(meta["ids"], model, meta["keys"])


# --------------------------------------------------------------------------- collection sidecar

_cache: dict[str, tuple[int, BM25Index]] = {}  # collection folder → (generation, index)
_cache_lock = threading.Lock()
_build_locks: dict[str, threading.Lock] = {}


def collection_bm25(coll: Collection) -> BM25Index:
    """The BM25 index of ``coll`` at its committed generation, built and published if missing."""
    folder_key = f"{coll.path.resolve()}:{coll.config.uid}"  # a re-created collection starts afresh
    generation = coll.generation()
    with _cache_lock:
        hit = _cache.get(folder_key)
        lock = _build_locks.setdefault(folder_key, threading.Lock())
    if hit is not None and hit[0] == generation:
        return hit[1]
    with lock:  # one build per process and collection; other threads wait for it
        generation = coll.generation()
        with _cache_lock:
            hit = _cache.get(folder_key)
        if hit is not None and hit[0] == generation:
            return hit[1]
        target = coll.path / f"bm25-{generation:012d}"
        index: BM25Index | None = None
        if target.is_dir():
            try:
                index = BM25Index.load(target)
            except (OSError, ValueError, KeyError):
                index = None  # a damaged folder: rebuild below
        if index is None:
            generation, keys, ids, texts = coll.snapshot_texts()
            index = BM25Index.build(ids, texts, keys=keys)
            target = coll.path / f"bm25-{generation:012d}"
            tmp = Path(tempfile.mkdtemp(prefix=".bm25-tmp-", dir=coll.path))
            try:
                index.save(tmp)
                try:
                    os.rename(tmp, target)  # atomic; fails if another process published first
                    _fsync_dir(coll.path)
                except OSError:
                    pass  # the same generation's index, built from the same committed rows
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        _remove_older(coll.path, generation)
        with _cache_lock:
            _cache[folder_key] = (generation, index)
        return index


def _remove_older(folder: Path, generation: int) -> None:
    for path in folder.iterdir():
        m = _DIR_RE.match(path.name)
        if m and int(m.group(1)) < generation:
            shutil.rmtree(path, ignore_errors=True)
