"""Named, persistent vector collections: a FAISS index plus a SQLite document store.

Layout of ``<root>/<name>/``::

    collection.json        what the collection is (index factory string, dim, model), written once
    docs.sqlite            source of truth: id, text, metadata JSON and the vector of every document,
                           plus the write generation
    index-<gen>.faiss      the FAISS index for that generation (derived; rebuilt from SQLite if lost)

Why this shape:

* SQLite commits are atomic, so each write is decided by one commit. The FAISS index is
  written afterwards to a temporary file, fsync'd and renamed to a name that carries the
  generation. A process that finds no index file for the committed generation (a crash
  between the commit and the rename) rebuilds the index from the vectors kept in SQLite, so
  a crash at any point leaves either the old or the new state, never a mix.
* Keeping the vectors in SQLite also lets an ``IVF…``/``…PQ…`` index be trained
  automatically once enough of them exist; until then an exact flat index serves searches.
* Writers take a file lock (one writer across processes) and build a new index object
  (copy-on-write), then swap it in: readers never lock and never see a half-updated index.
  Readers in other processes notice a newer generation in SQLite and reload.
* Every upsert gives the document a fresh integer key (SQLite AUTOINCREMENT, never reused),
  so a reader holding an older index can at worst miss a document, never show the wrong text.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock, Timeout

from textlatent.errors import BusyError, ConflictError, InvalidInputError, NotFoundError

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
MAX_ID_LENGTH = 512
_CONFIG_FILE = "collection.json"
_DB_FILE = "docs.sqlite"
_LOCK_FILE = ".write.lock"
_INDEX_RE = re.compile(r"^index-(\d+)\.faiss$")
_SQL_CHUNK = 500  # stay far below SQLite's bound-parameter limit
_TRAIN_SAMPLE = 100_000
_LOCK_TIMEOUT_S = 120.0
_POOL_SIZE = 4  # idle SQLite connections kept per collection

Scalar = str | int | float | bool | None


def validate_name(name: Any) -> str:
    """A collection name is a plain identifier: letters, digits, '_' and '-', 1-64 chars.

    Checked before any path is built from it, so '../x', 'a/b' or '' never reach the disk.
    """
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise InvalidInputError(
            f"collection name {name!r} is not a plain identifier: use 1-64 letters, digits, '_' or '-', "
            "starting with a letter or digit",
            param="name",
        )
    return name


@dataclass(frozen=True)
class Document:
    id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SearchHit:
    id: str
    score: float
    text: str
    metadata: dict[str, Any]


@dataclass(frozen=True)
class CollectionConfig:
    name: str
    index: str
    dim: int
    model: str
    train_threshold: int
    created_at: float
    format_version: int = 1
    uid: str = ""  # changes when a collection of the same name is deleted and created again


# --------------------------------------------------------------------------- small helpers


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see either the old file or the whole new one."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def train_threshold_for(factory: str, dim: int) -> int:
    """How many vectors a factory string wants before its index is trained.

    FAISS warns below 39 training points per centroid; we wait for that many for the
    largest k-means in the string (IVF lists, or 2^nbits PQ centroids). Indexes that need
    training but no k-means (SQ…) get a modest 1,000.
    """
    import faiss

    probe = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    if probe.is_trained:
        return 0
    centroids = 0
    for m in re.finditer(r"IVF(\d+)", factory):
        centroids = max(centroids, int(m.group(1)))
    for m in re.finditer(r"PQ(\d+)(?:x(\d+))?", factory):
        centroids = max(centroids, 2 ** int(m.group(2) or 8))
    return 39 * centroids if centroids else 1000


def _new_index(factory: str, dim: int) -> Any:
    """Build an empty index from ``factory``; give it string-free int64 ids if it lacks them."""
    import faiss

    index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    if _ivf_of(index) is None and not isinstance(index, faiss.IndexIDMap | faiss.IndexIDMap2):
        index = faiss.IndexIDMap2(index)
    return index


# The factory strings a collection accepts: a coarse structure (none, HNSW, IVF with an optional
# HNSW quantizer) and a code (Flat, scalar or product quantisation). Each family was checked to
# train, take incremental adds and answer *filtered* searches (docs/benchmarks.md). Others FAISS
# parses fail later, after documents are committed: pre-transforms (PCA, OPQ, RR) can fail or crash
# at training time, refinement (RFlat) and plain PQ indexes refuse the search parameters that carry
# a filter, and LSH has no inner-product metric.
_CODE = r"(?:Flat|SQ(?:4|6|8|fp16))"
_PQ = r"PQ\d+(?:x\d+)?"
_SUPPORTED_FACTORY_RE = re.compile(
    rf"{_CODE}|HNSW\d+(?:,(?:{_CODE}|{_PQ}))?|IVF\d+(?:_HNSW\d+)?,(?:{_CODE}|{_PQ}(?:fs)?)")
_SUPPORTED_FACTORY_HELP = ("Flat, SQ8 (or SQ4, SQ6, SQfp16), HNSW32 (or HNSW32,SQ8 / HNSW32,PQ16), IVF256,Flat, "
                           "IVF256,SQ8, IVF256,PQ16 (or PQ16x4fs) and IVF256_HNSW32,Flat, with your own numbers")

# Values FAISS parses in a factory string but then aborts or crashes the process on (HNSW0/1,
# 0-bit codes such as PQ4x0, IVF0 with a trained quantizer) or fails on every search (IVF0).
_FACTORY_PARAM_RE = re.compile(r"(HNSW|IVF|x)(\d+)")
_FACTORY_PARAM_MINIMUM = {"HNSW": 2, "IVF": 1, "x": 1}


def _smoke_test(index: Any, dim: int) -> None:
    """Add and search two vectors on a throw-away, ready-to-use index, so that a factory which
    cannot take incremental adds (NSG…) is refused at create, not after the first commit."""
    vecs = np.random.default_rng(0).standard_normal((2, dim)).astype(np.float32)
    index.add_with_ids(vecs, np.arange(2, dtype=np.int64))
    index.search(vecs[:1], 1, params=_search_params(index, 1, None))


def _ivf_of(index: Any) -> Any:
    import faiss

    try:
        return faiss.extract_index_ivf(index)
    except (RuntimeError, TypeError):
        return None


def _staging_index(dim: int) -> Any:
    """Exact index used until a trainable index has seen enough vectors to be trained."""
    import faiss

    return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))


def faiss_gpu_count() -> int:
    import faiss

    get = getattr(faiss, "get_num_gpus", None)
    return int(get()) if get is not None else 0


def _search_params(index: Any, k: int, selector: Any) -> Any:
    import faiss

    ivf = _ivf_of(index)
    if ivf is not None:
        # nprobe: a fair share of the lists; exhaustive for small ones.
        nprobe = min(ivf.nlist, max(16, ivf.nlist // 8))
        return faiss.SearchParametersIVF(sel=selector, nprobe=nprobe)  # type: ignore[call-arg]
    inner = faiss.downcast_index(index.index) if hasattr(index, "index") else index
    if isinstance(inner, faiss.IndexHNSW):
        return faiss.SearchParametersHNSW(sel=selector, efSearch=max(64, 2 * k))  # type: ignore[attr-defined]
    return faiss.SearchParameters(sel=selector) if selector is not None else None  # type: ignore[call-arg]


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_scalar_filter(filter: Mapping[str, Any] | None) -> dict[str, Scalar]:
    if filter is None:
        return {}
    if not isinstance(filter, Mapping):
        raise InvalidInputError("filter must be an object of metadata field → value", param="filter")
    out: dict[str, Scalar] = {}
    for key, value in filter.items():
        if not isinstance(key, str) or not key or '"' in key or "\x00" in key or not _utf8(key):
            raise InvalidInputError(f"filter key {key!r} must be a non-empty string without '\"', NUL or lone "
                                    "surrogates", param="filter")
        if value is not None and not isinstance(value, str | int | float | bool):
            raise InvalidInputError(
                f"filter value for {key!r} must be a string, number, boolean or null (equality only)",
                param=f"filter.{key}",
            )
        problem = None
        if isinstance(value, str) and not _utf8(value):
            problem = "is not valid text (a lone surrogate)"
        elif isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
            problem = "is outside the 64-bit integer range metadata is stored in"
        elif isinstance(value, float) and not math.isfinite(value):
            problem = "must be a finite number"
        if problem:
            raise InvalidInputError(f"filter value for {key!r} {problem}", param=f"filter.{key}")
        out[key] = value
    return out


def _filter_sql(filter: Mapping[str, Scalar]) -> tuple[str, list[Any]]:
    """SQL condition for exact, type-aware equality on metadata fields."""
    clauses: list[str] = []
    params: list[Any] = []
    for key, value in filter.items():
        path = f'$."{key}"'
        if isinstance(value, bool):
            clauses.append("json_type(metadata, ?) = ?")
            params += [path, "true" if value else "false"]
        elif value is None:
            clauses.append("json_type(metadata, ?) = 'null'")
            params.append(path)
        elif isinstance(value, int | float):
            clauses.append("json_type(metadata, ?) IN ('integer', 'real') AND json_extract(metadata, ?) = ?")
            params += [path, path, value]
        else:
            clauses.append("json_type(metadata, ?) = 'text' AND json_extract(metadata, ?) = ?")
            params += [path, path, value]
    return " AND ".join(clauses) or "1", params


def _chunks(items: Sequence[Any], size: int = _SQL_CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def validate_documents(documents: Iterable[Any], *, label: str | None = None) -> list[Document]:
    """Check ids, texts and metadata; duplicate ids in one batch keep the last one.

    Messages and params name the i-th document ``documents[i]``, or ``label`` when given (a caller
    that checks one document at a time, e.g. ingest: "document 'a.txt'")."""
    docs: dict[str, Document] = {}
    for i, doc in enumerate(documents):
        at = label or f"documents[{i}]"
        if isinstance(doc, Mapping):
            doc = Document(id=doc.get("id"), text=doc.get("text"), metadata=doc.get("metadata") or {})  # type: ignore[arg-type]
        if not isinstance(doc, Document):
            raise InvalidInputError(f"{at} must be an object with id and text", param=at)
        if not isinstance(doc.id, str) or not doc.id or len(doc.id) > MAX_ID_LENGTH:
            raise InvalidInputError(
                f"{at}.id must be a non-empty string of at most {MAX_ID_LENGTH} characters", param=f"{at}.id",
            )
        if not isinstance(doc.text, str) or not doc.text.strip():
            raise InvalidInputError(f"{at}.text must be a non-blank string", param=f"{at}.text")
        if not isinstance(doc.metadata, dict):
            raise InvalidInputError(f"{at}.metadata must be an object", param=f"{at}.metadata")
        try:
            json.dumps(doc.metadata, allow_nan=False, ensure_ascii=False).encode("utf-8")
        except (TypeError, ValueError) as exc:  # UnicodeEncodeError (lone surrogates) is a ValueError
            raise InvalidInputError(f"{at}.metadata is not JSON-serialisable as UTF-8: {exc}",
                                    param=f"{at}.metadata") from exc
        for field_name, value in (("id", doc.id), ("text", doc.text)):
            if not _utf8(value):
                raise InvalidInputError(f"{at}.{field_name} is not valid Unicode (a lone surrogate)",
                                        param=f"{at}.{field_name}")
        docs.pop(doc.id, None)
        docs[doc.id] = doc
    if not docs:
        raise InvalidInputError("documents is empty: give at least one document", param="documents")
    return list(docs.values())


def check_vectors(vectors: Any, dim: int, *, param: str = "vector") -> np.ndarray:
    """float32 C-contiguous ``[n, dim]`` with finite values, or a clear error."""
    try:
        arr = np.asarray(vectors, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{param} must be numbers", param=param) from exc
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != dim:
        got = arr.shape[-1] if arr.ndim else 0
        raise InvalidInputError(f"{param} has dimension {got}, this collection expects {dim}", param=param)
    if not np.isfinite(arr).all():
        raise InvalidInputError(f"{param} contains NaN or infinite values", param=param)
    return np.ascontiguousarray(arr)


# --------------------------------------------------------------------------- the collection


class Collection:
    """One collection on disk. Obtain it from :class:`CollectionStore`, not directly."""

    def __init__(self, path: Path, config: CollectionConfig, *, device: str = "cpu") -> None:
        self.path = path
        self.device = device
        self._gpu_copy: tuple[Any, Any] | None = None  # (cpu index, its GPU clone)
        self.config = config
        self.name = config.name
        self._pool: list[sqlite3.Connection] = []  # idle connections, reused by any thread
        self._pool_lock = threading.Lock()
        self._gpu_search_lock = threading.Lock()  # FAISS GPU indexes are not thread-safe
        self._write_mutex = threading.Lock()
        self._file_lock = FileLock(str(path / _LOCK_FILE), timeout=_LOCK_TIMEOUT_S)
        self._index: Any = None
        self._generation = -1
        self._deleted = False
        self._load_lock = threading.Lock()
        self._publish_lock = threading.Lock()

    # ---- SQLite

    @staticmethod
    def init_db(db_path: Path) -> None:
        conn = sqlite3.connect(db_path)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(
                """
                CREATE TABLE docs (
                    key INTEGER PRIMARY KEY AUTOINCREMENT,
                    id TEXT NOT NULL UNIQUE,
                    text TEXT NOT NULL,
                    metadata TEXT NOT NULL,
                    vector BLOB NOT NULL
                );
                CREATE TABLE state (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
                INSERT INTO state VALUES ('generation', 0);
                """
            )
            conn.commit()
        finally:
            conn.close()

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        """A connection from a small pool: a server's thread pool must not hold one open per
        thread and collection (file descriptors run out), and SQLite connections may move
        between threads as long as one thread uses them at a time."""
        self._ensure_alive()
        with self._pool_lock:
            conn = self._pool.pop() if self._pool else None
        if conn is None:
            conn = sqlite3.connect(
                self.path / _DB_FILE, timeout=_LOCK_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA synchronous=FULL")
        try:
            yield conn
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            with self._pool_lock:
                keep = len(self._pool) < _POOL_SIZE and not self._deleted
                if keep:
                    self._pool.append(conn)
            if not keep:
                conn.close()

    def _db_generation(self, conn: sqlite3.Connection | None = None) -> int:
        if conn is None:
            with self._db() as own:
                return self._db_generation(own)
        return int(conn.execute("SELECT value FROM state WHERE name='generation'").fetchone()[0])

    def _ensure_alive(self) -> None:
        if self._deleted:
            raise NotFoundError(f"collection {self.name!r} has been deleted", param="name")

    def _ensure_on_disk(self) -> None:
        """Under the write lock: the folder is still this collection (another process may have
        deleted it, or deleted and created it again, while we waited for the lock)."""
        try:
            uid = json.loads((self.path / _CONFIG_FILE).read_text()).get("uid", "")
        except FileNotFoundError:
            uid = None
        if uid != self.config.uid:
            self._deleted = True
            raise NotFoundError(f"collection {self.name!r} has been deleted", param="name")

    # ---- index lifecycle

    def _index_path(self, generation: int) -> Path:
        return self.path / f"index-{generation:012d}.faiss"

    def _all_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        with self._db() as conn:
            rows = conn.execute("SELECT key, vector FROM docs ORDER BY key").fetchall()
        keys = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        if not rows:
            return keys, np.zeros((0, self.config.dim), dtype=np.float32)
        vecs = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), self.config.dim)
        return keys, vecs

    def _build_index(self) -> Any:
        """Index of every stored vector: the configured one if trained (or trainable now)."""
        keys, vecs = self._all_vectors()
        threshold = self.config.train_threshold
        if threshold and len(keys) < threshold:
            index = _staging_index(self.config.dim)
        else:
            index = _new_index(self.config.index, self.config.dim)
            if not index.is_trained:
                sample = vecs
                if len(vecs) > _TRAIN_SAMPLE:
                    rng = np.random.default_rng(0)
                    sample = vecs[rng.choice(len(vecs), _TRAIN_SAMPLE, replace=False)]
                index.train(sample)
        if len(keys):
            index.add_with_ids(vecs, keys)
        return index

    def _uses_staging(self, index: Any) -> bool:
        """True while a trainable index waits for data and the exact staging index serves."""
        import faiss

        if not self.config.train_threshold or not isinstance(index, faiss.IndexIDMap2):
            return False
        return isinstance(faiss.downcast_index(index.index), faiss.IndexFlat)

    def _persist(self, index: Any, generation: int) -> None:
        import faiss

        data = faiss.serialize_index(index).tobytes()
        atomic_write_bytes(self._index_path(generation), data)
        for old in self.path.glob("index-*.faiss"):
            m = _INDEX_RE.match(old.name)
            if m and int(m.group(1)) != generation:
                old.unlink(missing_ok=True)

    def _load_index_file(self, generation: int) -> Any | None:
        import faiss

        path = self._index_path(generation)
        try:
            return faiss.read_index(str(path))
        except (RuntimeError, FileNotFoundError, OSError):
            return None

    def refresh(self) -> None:
        """Bring the in-memory index up to the committed generation (cheap when current)."""
        generation = self._db_generation()
        if generation == self._generation and self._index is not None:
            return
        with self._load_lock:  # one thread loads a given file; the others wait and reuse it
            generation = self._db_generation()
            if generation == self._generation and self._index is not None:
                return
            index = self._load_index_file(generation)
        if index is None:
            # No index for the committed generation: a writer is between its commit and its
            # rename, or died there. If nobody holds the write lock, repair it ourselves. The
            # load lock is not held here: a writer holding the file lock may need it.
            try:
                with self._file_lock.acquire(timeout=0 if self._index is not None else _LOCK_TIMEOUT_S):
                    generation = self._db_generation()
                    index = self._load_index_file(generation)
                    if index is None:
                        index = self._build_index()
                        self._persist(index, generation)
            except Timeout:
                if self._index is None:
                    raise BusyError(f"collection {self.name!r} is being written; try again shortly") from None
                return  # a live writer will publish it; keep serving the previous index
        self._publish(index, generation)

    def _publish(self, index: Any, generation: int) -> None:
        """Swap in ``index`` unless a newer generation is already live: a reader that loaded an
        older file while a writer published newer ones must not roll the live index back (the
        next write would clone it and lose the documents in between)."""
        with self._publish_lock:
            if self._index is None or generation >= self._generation:
                self._index, self._generation = index, generation

    def _searchable(self, index: Any) -> Any:
        """Where to search ``index``: a FAISS GPU clone, a torch GPU snapshot of a flat index
        (FAISS CPU build with a CUDA torch), or the CPU index itself. Cached per index object."""
        if self.device == "cpu":
            return index
        cached = self._gpu_copy
        if cached is not None and cached[0] is index:
            return cached[1]
        target = index
        if faiss_gpu_count() > 0:
            import faiss

            try:
                target = faiss.index_cpu_to_all_gpus(index)
            except (RuntimeError, AttributeError):
                target = index  # index types without a GPU version (HNSW) stay on the CPU
        else:
            import torch

            if torch.cuda.is_available():
                from textlatent.gpu_search import TorchFlatSearcher

                try:
                    target = TorchFlatSearcher(index, "cuda" if self.device == "auto" else self.device)
                except TypeError:
                    target = index  # not a flat index
        self._gpu_copy = (index, target)
        return target

    # ---- writes

    @contextmanager
    def _write(self) -> Iterator[None]:
        """One writer, across threads (mutex) and processes (file lock); both are released on
        every exit, including a failing refresh."""
        self._ensure_alive()
        with self._write_mutex:
            try:
                self._file_lock.acquire()
            except Timeout:
                raise BusyError(f"collection {self.name!r} is locked by another writer; try again shortly") from None
            try:
                self._ensure_alive()
                self._ensure_on_disk()
                self.refresh()
                yield
            finally:
                self._file_lock.release()

    def _commit(self, index: Any, generation: int) -> None:
        self._persist(index, generation)
        self._publish(index, generation)

    def _next_index(self, removed_keys: Sequence[int]) -> Any:
        """A private copy of the live index with ``removed_keys`` gone, for copy-on-write."""
        import faiss

        index = faiss.clone_index(self._index)
        if removed_keys:
            try:
                index.remove_ids(np.asarray(removed_keys, dtype=np.int64))  # type: ignore[arg-type]
            except RuntimeError:
                return None  # this index type cannot remove (HNSW): caller rebuilds from SQLite
        return index

    def upsert(self, documents: Iterable[Document | Mapping[str, Any]], vectors: Any) -> int:
        """Insert or replace documents (by id) with their vectors; returns how many were written."""
        raw = list(documents)
        docs = validate_documents(raw)
        vecs = check_vectors(vectors, self.config.dim, param="vectors")
        if len(vecs) != len(raw):
            raise InvalidInputError(f"{len(raw)} documents but {len(vecs)} vectors", param="vectors")
        if len(raw) != len(docs):
            # duplicate ids in the batch: keep the vector that goes with the last occurrence
            last = {(d["id"] if isinstance(d, Mapping) else d.id): i for i, d in enumerate(raw)}
            vecs = np.ascontiguousarray(vecs[[last[d.id] for d in docs]])
        ids = [d.id for d in docs]
        with self._write():
            with self._transaction() as (conn, generation):
                old_keys = self._delete_rows(conn, ids)
                conn.executemany(
                    "INSERT INTO docs (id, text, metadata, vector) VALUES (?, ?, ?, ?)",
                    (
                        (d.id, d.text, json.dumps(d.metadata, ensure_ascii=False), vecs[i].tobytes())
                        for i, d in enumerate(docs)
                    ),
                )
                key_of: dict[str, int] = {}
                for chunk in _chunks(ids):
                    marks = ",".join("?" * len(chunk))
                    key_of.update(conn.execute(f"SELECT id, key FROM docs WHERE id IN ({marks})", chunk).fetchall())
            index = self._next_index(old_keys)
            if index is None or (self._uses_staging(self._index) and self.count() >= self.config.train_threshold):
                index = self._build_index()  # first training, or an index that cannot remove
            else:
                index.add_with_ids(vecs, np.asarray([key_of[i] for i in ids], dtype=np.int64))
            self._commit(index, generation)
        return len(docs)

    def delete(self, ids: Sequence[str]) -> int:
        """Remove documents by id; returns how many existed."""
        if isinstance(ids, str):
            ids = [ids]
        ids = list(ids)
        with self._write():
            if not self._existing(ids):
                return 0  # nothing to delete: no new generation, no index rewrite
            with self._transaction() as (conn, generation):
                keys = self._delete_rows(conn, ids)
            index = self._next_index(keys)
            if index is None:
                index = self._build_index()
            self._commit(index, generation)
        return len(keys)

    def _existing(self, ids: Sequence[str]) -> int:
        found = 0
        with self._db() as conn:
            for chunk in _chunks(ids):
                marks = ",".join("?" * len(chunk))
                found += conn.execute(f"SELECT COUNT(*) FROM docs WHERE id IN ({marks})", chunk).fetchone()[0]
        return int(found)

    @contextmanager
    def _transaction(self) -> Iterator[tuple[sqlite3.Connection, int]]:
        """One write transaction that also bumps the generation; commits when the block ends,
        rolls back if it raises."""
        with self._db() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                generation = self._db_generation(conn) + 1
                yield conn, generation
                conn.execute("UPDATE state SET value=? WHERE name='generation'", (generation,))
                conn.execute("COMMIT")
            finally:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")

    @staticmethod
    def _delete_rows(conn: sqlite3.Connection, ids: Sequence[str]) -> list[int]:
        """Delete rows by id inside an open transaction; returns their integer keys."""
        keys: list[int] = []
        for chunk in _chunks(ids):
            marks = ",".join("?" * len(chunk))
            keys += [r[0] for r in conn.execute(f"SELECT key FROM docs WHERE id IN ({marks})", chunk)]
            conn.execute(f"DELETE FROM docs WHERE id IN ({marks})", chunk)
        return keys

    # ---- reads

    def count(self) -> int:
        with self._db() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM docs").fetchone()[0])

    def _row(self, columns: str, doc_id: str) -> tuple[Any, ...]:
        with self._db() as conn:
            row = conn.execute(f"SELECT {columns} FROM docs WHERE id=?", (doc_id,)).fetchone()
        if row is None:
            raise self.not_found(doc_id)
        return tuple(row)

    def not_found(self, doc_id: str) -> NotFoundError:
        return NotFoundError(f"document {doc_id!r} not found in collection {self.name!r}", param="id")

    def get(self, doc_id: str) -> Document:
        doc_id, text, metadata = self._row("id, text, metadata", doc_id)
        return Document(id=doc_id, text=text, metadata=json.loads(metadata))

    def get_vector(self, doc_id: str) -> np.ndarray:
        return np.frombuffer(self._row("vector", doc_id)[0], dtype=np.float32).copy()

    def info(self) -> dict[str, Any]:
        self.refresh()
        index = self._index
        return {
            **asdict(self.config),
            "count": self.count(),
            "trained": not self._uses_staging(index),
        }

    def search(
        self, vectors: Any, k: int = 10, filter: Mapping[str, Any] | None = None
    ) -> list[list[SearchHit]]:
        """Top-``k`` documents by inner product for each query vector, optionally filtered by
        exact equality on metadata fields."""
        import faiss

        queries = check_vectors(vectors, self.config.dim)
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise InvalidInputError(f"k must be a positive integer, got {k!r}", param="k")
        conditions = _check_scalar_filter(filter)
        self.refresh()
        index = self._index
        selector = allowed = None
        if conditions:
            where, params = _filter_sql(conditions)
            with self._db() as conn:
                allowed = np.fromiter(
                    (r[0] for r in conn.execute(f"SELECT key FROM docs WHERE {where}", params)), dtype=np.int64
                )
            if len(allowed) == 0:
                return [[] for _ in range(len(queries))]
            selector = faiss.IDSelectorBatch(allowed)
        k_eff = min(k, max(index.ntotal, 1))
        params = _search_params(index, k_eff, selector)
        target = self._searchable(index)
        try:
            if target is index:
                scores, keys = index.search(queries, k_eff, params=params)
            else:
                with self._gpu_search_lock:
                    if hasattr(target, "ntotal"):
                        scores, keys = target.search(queries, k_eff, params=params)
                    else:
                        scores, keys = target.search(queries, k_eff, allowed)
        except RuntimeError:
            if target is index:
                raise
            scores, keys = index.search(queries, k_eff, params=params)  # e.g. a selector the GPU lacks
        wanted = sorted({int(x) for x in keys.ravel() if x >= 0})
        rows: dict[int, tuple[str, str, str]] = {}
        with self._db() as conn:
            for chunk in _chunks(wanted):
                marks = ",".join("?" * len(chunk))
                for r in conn.execute(f"SELECT key, id, text, metadata FROM docs WHERE key IN ({marks})", chunk):
                    rows[r[0]] = (r[1], r[2], r[3])
        results: list[list[SearchHit]] = []
        for qs, qk in zip(scores, keys, strict=True):
            hits = []
            for s, key in zip(qs, qk, strict=True):
                row = rows.get(int(key))
                if key < 0 or row is None or not math.isfinite(float(s)):
                    continue  # padding, or a document deleted since this index was published
                hits.append(SearchHit(id=row[0], score=float(s), text=row[1], metadata=json.loads(row[2])))
            results.append(hits)
        return results

    # ---- reads for derived indexes (BM25) and hybrid retrieval

    def generation(self) -> int:
        """The committed write generation (bumped by every upsert and delete)."""
        return self._db_generation()

    def snapshot_texts(self) -> tuple[int, list[int], list[str], list[str]]:
        """``(generation, keys, ids, texts)`` from one read transaction, so a derived index is
        built from exactly the rows of the generation it is labelled with."""
        with self._db() as conn:
            conn.execute("BEGIN")
            generation = self._db_generation(conn)
            rows = conn.execute("SELECT key, id, text FROM docs ORDER BY key").fetchall()
            conn.execute("COMMIT")
        return generation, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]

    def snapshot_vectors(self, limit: int | None = None, *, seed: int = 0
                         ) -> tuple[int, int, list[str], list[str], np.ndarray]:
        """``(generation, total, ids, texts, vectors)`` from one read transaction, so all of it
        belongs to the generation it is labelled with (the explorer's map, the outlier ranking).

        With ``limit`` below the document count, a uniform sample of that many documents, the
        same for the same seed and generation, in key order: a view of the whole space rather
        than its oldest documents."""
        with self._db() as conn:
            conn.execute("BEGIN")
            try:
                generation = self._db_generation(conn)
                keys = [r[0] for r in conn.execute("SELECT key FROM docs ORDER BY key")]
                total = len(keys)
                if limit is not None and total > limit:
                    rng = np.random.default_rng(seed)
                    keys = sorted(int(k) for k in rng.choice(np.asarray(keys), limit, replace=False))
                rows: dict[int, tuple[str, str, bytes]] = {}
                for start in range(0, len(keys), 900):  # under SQLite's bound-parameter limit
                    chunk = keys[start:start + 900]
                    marks = ",".join("?" * len(chunk))
                    for r in conn.execute(f"SELECT key, id, text, vector FROM docs WHERE key IN ({marks})", chunk):
                        rows[r[0]] = (r[1], r[2], r[3])
            finally:
                conn.execute("COMMIT")
        ordered = [rows[k] for k in keys]
        dim = self.config.dim
        vectors = (np.frombuffer(b"".join(r[2] for r in ordered), dtype=np.float32).reshape(len(ordered), dim)
                   if ordered else np.zeros((0, dim), dtype=np.float32))
        return generation, total, [r[0] for r in ordered], [r[1] for r in ordered], vectors

    def keys_matching(self, filter: Mapping[str, Any] | None) -> np.ndarray | None:
        """Keys of the documents a metadata filter admits; ``None`` when there is no filter."""
        conditions = _check_scalar_filter(filter)
        if not conditions:
            return None
        where, params = _filter_sql(conditions)
        with self._db() as conn:
            return np.fromiter((r[0] for r in conn.execute(f"SELECT key FROM docs WHERE {where}", params)),
                               dtype=np.int64)

    def ids_matching(self, filter: Mapping[str, Any]) -> list[str]:
        """Ids of the documents a (non-empty) metadata filter admits."""
        where, params = _filter_sql(_check_scalar_filter(filter))
        with self._db() as conn:
            return [r[0] for r in conn.execute(f"SELECT id FROM docs WHERE {where}", params)]

    def hits_by_id(self, ids: Sequence[str]) -> dict[str, SearchHit]:
        """Stored text and metadata of ``ids`` (those still present), score 0."""
        out: dict[str, SearchHit] = {}
        with self._db() as conn:
            for chunk in _chunks(list(ids)):
                marks = ",".join("?" * len(chunk))
                for r in conn.execute(f"SELECT id, text, metadata FROM docs WHERE id IN ({marks})", chunk):
                    out[r[0]] = SearchHit(id=r[0], score=0.0, text=r[1], metadata=json.loads(r[2]))
        return out

    def close(self) -> None:
        """Close the idle pooled connections (busy ones close when returned, once deleted)."""
        with self._pool_lock:
            pool, self._pool = self._pool, []
        for conn in pool:
            conn.close()


# --------------------------------------------------------------------------- the store


class CollectionStore:
    """All collections under one root folder (``indexes/`` by default)."""

    def __init__(self, root: str | Path, *, device: str = "auto") -> None:
        """``device``: 'auto' searches on the GPU when the FAISS build has one, 'cpu' never."""
        self.root = Path(root)
        self.device = device
        # Made on the first create, not here: reading a mistyped --index-dir must not leave a folder behind.
        if self.root.exists() and not self.root.is_dir():
            raise InvalidInputError(f"index folder {str(self.root)!r} is a file, not a folder", param="index_dir")
        self._lock = threading.Lock()
        self._file_lock = FileLock(str(self.root / ".store.lock"), timeout=_LOCK_TIMEOUT_S)
        self._open: dict[str, Collection] = {}

    def _dir(self, name: str) -> Path:
        return self.root / validate_name(name)

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            p.name for p in self.root.iterdir() if NAME_PATTERN.fullmatch(p.name) and (p / _CONFIG_FILE).is_file()
        )

    def exists(self, name: str) -> bool:
        return (self._dir(name) / _CONFIG_FILE).is_file()

    def get(self, name: str) -> Collection:
        path = self._dir(name)
        with self._lock:
            return self._get_locked(name, path)

    def _get_locked(self, name: str, path: Path) -> Collection:
        """The open collection, reopened when its folder was replaced by another process
        (deleted and created again under the same name: a new ``uid``)."""
        try:
            config = CollectionConfig(**json.loads((path / _CONFIG_FILE).read_text()))
        except FileNotFoundError:
            stale = self._open.pop(name, None)
            if stale is not None:
                stale._deleted = True
                stale.close()
            raise NotFoundError(f"collection {name!r} does not exist", param="name") from None
        coll = self._open.get(name)
        if coll is not None and not coll._deleted and coll.config.uid == config.uid:
            return coll
        if coll is not None:
            coll._deleted = True
            coll.close()
        coll = Collection(path, config, device=self.device)
        self._open[name] = coll
        return coll

    def create(self, name: str, *, index: str = "Flat", dim: int, model: str) -> tuple[Collection, bool]:
        """Create a collection; returns ``(collection, created)``.

        Creating one that exists with the same settings is a no-op; with other settings, 409.
        The folder is assembled under a temporary name and renamed into place.
        """
        validate_name(name)
        if not isinstance(index, str) or not index.strip():
            raise InvalidInputError("index must be a FAISS index_factory string such as 'Flat'", param="index")
        index = index.strip()
        if not _SUPPORTED_FACTORY_RE.fullmatch(index):
            raise InvalidInputError(f"index {index!r} is not one of the FAISS index types a collection supports: "
                                    f"{_SUPPORTED_FACTORY_HELP}", param="index")
        for m in _FACTORY_PARAM_RE.finditer(index):
            if int(m.group(2)) < _FACTORY_PARAM_MINIMUM[m.group(1)]:
                raise InvalidInputError(
                    f"index {index!r}: {m.group(0)} is out of range ({m.group(1)} needs at least "
                    f"{_FACTORY_PARAM_MINIMUM[m.group(1)]}); try 'Flat', 'IVF256,Flat', 'HNSW32' or 'IVF256,PQ16'",
                    param="index",
                )
        try:
            threshold = train_threshold_for(index, dim)
            probe = _new_index(index, dim)
            if threshold == 0:
                _smoke_test(probe, dim)
        except RuntimeError as exc:
            where = re.search(r"\.cpp:\d+: (.*)", str(exc))
            first = where.group(1).strip() if where else (str(exc).strip().splitlines() or ["invalid"])[-1]
            raise InvalidInputError(
                f"index {index!r} is not a FAISS index_factory string this collection can use ({first}); "
                "try 'Flat', 'IVF256,Flat', 'HNSW32' or 'IVF256,PQ16'",
                param="index",
            ) from exc
        self.root.mkdir(parents=True, exist_ok=True)
        with self._lock, self._file_lock:
            path = self._dir(name)
            if (path / _CONFIG_FILE).is_file():
                existing = self._get_locked(name, path)
                if existing.config.index == index and existing.config.model == model:
                    return existing, False
                raise ConflictError(
                    f"collection {name!r} already exists with index {existing.config.index!r} and model "
                    f"{existing.config.model!r}; delete it first to change them",
                    param="name",
                )
            config = CollectionConfig(
                name=name, index=index, dim=dim, model=model, train_threshold=threshold, created_at=time.time(),
                uid=uuid.uuid4().hex,
            )
            tmp = self.root / f".tmp-{name}-{uuid.uuid4().hex}"
            tmp.mkdir()
            try:
                Collection.init_db(tmp / _DB_FILE)
                atomic_write_bytes(tmp / _CONFIG_FILE, json.dumps(asdict(config), indent=2).encode())
                coll = Collection(tmp, config)
                coll._commit(coll._build_index(), 0)
                coll.close()
                if path.exists():  # a stray empty or half-made folder from a crash; never a live one
                    shutil.rmtree(path)
                os.rename(tmp, path)
                _fsync_dir(self.root)
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)
            coll = Collection(path, config, device=self.device)
            self._open[name] = coll
            return coll, True

    def delete(self, name: str) -> None:
        """Remove a collection: renamed away atomically first, then its files are deleted."""
        path = self._dir(name)
        if not (path / _CONFIG_FILE).is_file():  # also when the store's folder itself is missing
            raise NotFoundError(f"collection {name!r} does not exist", param="name")
        with self._lock, self._file_lock:
            if not (path / _CONFIG_FILE).is_file():
                raise NotFoundError(f"collection {name!r} does not exist", param="name")
            coll = self._get_locked(name, path)
            trash = self.root / f".trash-{name}-{uuid.uuid4().hex}"
            with coll._write():  # wait for an in-flight writer (any process) to finish first
                os.rename(path, trash)
                _fsync_dir(self.root)
                coll._deleted = True
            self._open.pop(name, None)
            coll.close()
        shutil.rmtree(trash, ignore_errors=True)

    def list(self) -> list[dict[str, Any]]:
        out = []
        for name in self.names():
            try:
                out.append(self.get(name).info())
            except NotFoundError:
                continue  # deleted meanwhile
        return out
