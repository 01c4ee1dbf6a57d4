"""textlatent.collections: the FAISS + SQLite store, driven directly with random unit vectors."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

from textlatent.collections import CollectionStore, Document
from textlatent.errors import ConflictError, InvalidInputError, NotFoundError

DIM = 16
REPO_ROOT = Path(__file__).resolve().parents[1]


def unit(n: int, seed: int = 0, dim: int = DIM) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def docs(n: int, prefix: str = "d", start: int = 0) -> list[Document]:
    return [Document(id=f"{prefix}{i}", text=f"text {prefix}{i}", metadata={"i": i}) for i in range(start, start + n)]


def top_ids(coll, vec, k: int = 1, **kw) -> list[str]:
    return [h.id for h in coll.search(vec, k=k, **kw)[0]]


def tree(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*")}


@pytest.fixture
def store(tmp_path: Path) -> CollectionStore:
    return CollectionStore(tmp_path / "indexes")


@pytest.fixture
def coll(store):
    c, created = store.create("c1", dim=DIM, model="m")
    assert created
    return c


# --------------------------------------------------------------------------- create / names


def test_create_writes_layout_and_info(store):
    c, created = store.create("my_coll-1", dim=DIM, model="m")
    assert created
    folder = store.root / "my_coll-1"
    assert (folder / "collection.json").is_file()
    assert (folder / "docs.sqlite").is_file()
    assert len(list(folder.glob("index-*.faiss"))) == 1
    info = c.info()
    assert info["name"] == "my_coll-1"
    assert (info["index"], info["dim"], info["model"], info["count"]) == ("Flat", DIM, "m", 0)
    assert info["trained"] is True
    assert store.names() == ["my_coll-1"]
    assert store.exists("my_coll-1")
    assert [i["name"] for i in store.list()] == ["my_coll-1"]
    # no temporary folders left behind
    assert not [p for p in store.root.iterdir() if p.name.startswith(".tmp-")]


def test_create_is_idempotent_and_conflicts_on_other_settings(store):
    c1, created1 = store.create("c", dim=DIM, model="m")
    c1.upsert(docs(3), unit(3))
    c2, created2 = store.create("c", dim=DIM, model="m")
    assert (created1, created2) == (True, False)
    assert c2.count() == 3  # existing collection kept as it was
    with pytest.raises(ConflictError) as info:
        store.create("c", index="HNSW16", dim=DIM, model="m")
    assert info.value.status_code == 409
    with pytest.raises(ConflictError):
        store.create("c", dim=DIM, model="other-model")
    assert store.get("c").config.index == "Flat"


@pytest.mark.parametrize("name", ["../x", "a/b", "", ".hidden", "x" * 65, "a b", "bad.name", "-lead", "naïve",
                                  "abc\n", "..", "/abs", None, 5])
def test_invalid_names_rejected_without_touching_disk(tmp_path, name):
    root = tmp_path / "indexes"
    store = CollectionStore(root)
    before = tree(tmp_path)
    with pytest.raises(InvalidInputError) as info:
        store.create(name, dim=DIM, model="m")
    assert info.value.param == "name"
    for call in (store.get, store.exists, store.delete):
        with pytest.raises(InvalidInputError):
            call(name)
    assert tree(tmp_path) == before
    assert store.names() == []


def test_longest_name_accepted(store):
    _, created = store.create("x" * 64, dim=DIM, model="m")
    assert created and store.names() == ["x" * 64]


@pytest.mark.parametrize("factory", ["Bogus", "IVF4,PQ5", "PQ0", "", "   ", "IVF4,Flat,Flat", 7])
def test_invalid_factory_string(store, factory):
    with pytest.raises(InvalidInputError) as info:
        store.create("c", index=factory, dim=DIM, model="m")
    assert info.value.param == "index"
    assert store.names() == []
    assert not store.root.exists()  # refused before any lock or folder is made (the store folder included)


@pytest.mark.parametrize("factory", ["HNSW0", "HNSW1", "IVF0,Flat", "PQ4x0", "IVF0,PQ4", "HNSW0,SQ8",
                                     "IVF4_HNSW1,Flat", "NSG32",
                                     # outside the supported families: these crash (RR0) or fail at training
                                     # (PCA, OPQ) or on every filtered search (RFlat, plain PQ) after a commit
                                     "RR0,Flat", "PCA512,Flat", "OPQ0,PQ16", "HNSW32,RFlat", "Flat,RFlat",
                                     "PQ16", "PQ16x4fs", "LSH", "IDMap,Flat", "IVF4,Flat,Flat"])
def test_factory_strings_that_cannot_work_are_rejected_at_create(store, factory):
    # These parse, but FAISS aborts/segfaults (HNSW0, HNSW1, PQ..x0, IVF0,PQ) or fails on every add
    # or search (IVF0, NSG) once documents arrive, after the SQLite commit: refuse them up front.
    with pytest.raises(InvalidInputError) as info:
        store.create("c", index=factory, dim=DIM, model="m")
    assert info.value.param == "index"
    assert store.names() == []


@pytest.mark.parametrize("factory", ["Flat", "SQ8", "HNSW8", "HNSW8,SQ8", "HNSW8,PQ4x4", "IVF2,Flat", "IVF2,SQ4",
                                     "IVF2,PQ4x4", "IVF2,PQ4x4fs", "IVF2_HNSW4,Flat"])
def test_every_supported_factory_family_trains_and_answers_filtered_searches(store, factory):
    coll, _ = store.create("c", index=factory, dim=DIM, model="m")
    assert coll.config.train_threshold <= 1000
    vecs = unit(1000, seed=3)
    group = [Document(id=f"d{i}", text="t", metadata={"g": i % 10}) for i in range(1000)]
    assert coll.upsert(group, vecs) == 1000
    assert coll.info()["trained"]
    hits = coll.search(vecs[7], k=5, filter={"g": 3})[0]
    assert hits and all(int(h.id[1:]) % 10 == 3 for h in hits)


# --------------------------------------------------------------------------- writes and reads


def test_upsert_count_get_and_replace(coll):
    vecs = unit(5)
    assert coll.upsert(docs(5), vecs) == 5
    assert coll.count() == 5
    d = coll.get("d2")
    assert (d.id, d.text, d.metadata) == ("d2", "text d2", {"i": 2})
    np.testing.assert_array_equal(coll.get_vector("d2"), vecs[2])

    new_vec = unit(1, seed=99)
    assert coll.upsert([Document(id="d2", text="replaced", metadata={"v": 2})], new_vec) == 1
    assert coll.count() == 5
    d = coll.get("d2")
    assert (d.text, d.metadata) == ("replaced", {"v": 2})
    np.testing.assert_array_equal(coll.get_vector("d2"), new_vec[0])
    hits = coll.search(new_vec, k=5)[0]
    assert hits[0].id == "d2" and hits[0].text == "replaced"
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    # the old vector no longer finds d2 as a perfect match
    old_hits = {h.id: h.score for h in coll.search(vecs[2], k=5)[0]}
    assert old_hits.get("d2", -1.0) < 0.999
    assert len(old_hits) == 5  # no duplicate or ghost entry for d2


def test_upsert_accepts_mappings_and_dedupes_batch_keeping_last(coll):
    v = unit(3)
    n = coll.upsert([{"id": "a", "text": "first"}, {"id": "b", "text": "bee"}, {"id": "a", "text": "second"}], v)
    assert n == 2 and coll.count() == 2
    assert coll.get("a").text == "second"
    np.testing.assert_array_equal(coll.get_vector("a"), v[2])
    assert top_ids(coll, v[2]) == ["a"]


@pytest.mark.parametrize(
    ("documents", "param"),
    [
        ([], "documents"),
        ([{"id": "", "text": "x"}], "documents[0].id"),
        ([{"id": "a" * 513, "text": "x"}], "documents[0].id"),
        ([{"id": 3, "text": "x"}], "documents[0].id"),
        ([{"id": "a", "text": "  "}], "documents[0].text"),
        ([{"id": "a", "text": "x", "metadata": [1]}], "documents[0].metadata"),
        ([{"id": "a", "text": "x", "metadata": {"f": float("nan")}}], "documents[0].metadata"),
        ([{"id": "a", "text": "x", "metadata": {"f": object()}}], "documents[0].metadata"),
        (["not a doc"], "documents[0]"),
    ],
)
def test_upsert_bad_documents(coll, documents, param):
    with pytest.raises(InvalidInputError) as info:
        coll.upsert(documents, unit(max(len(documents), 1)))
    assert info.value.param == param
    assert coll.count() == 0


def test_upsert_vector_count_mismatch(coll):
    with pytest.raises(InvalidInputError) as info:
        coll.upsert(docs(3), unit(2))
    assert info.value.param == "vectors"
    assert coll.count() == 0


@pytest.mark.parametrize("bad", ["dim", "nan", "inf", "text"])
def test_bad_vectors_rejected(coll, bad):
    coll.upsert(docs(3), unit(3))
    vec = {"dim": unit(1, dim=DIM + 1), "nan": np.full((1, DIM), np.nan, dtype=np.float32),
           "inf": np.full((1, DIM), np.inf, dtype=np.float32), "text": [["a"] * DIM]}[bad]
    with pytest.raises(InvalidInputError):
        coll.search(vec, k=1)
    with pytest.raises(InvalidInputError):
        coll.upsert([Document(id="new", text="t")], vec)
    assert coll.count() == 3
    with pytest.raises(NotFoundError):
        coll.get("new")


def test_wrong_dimension_message(coll):
    with pytest.raises(InvalidInputError) as info:
        coll.search(unit(1, dim=8), k=1)
    assert "8" in info.value.message and str(DIM) in info.value.message


def test_get_missing(coll):
    with pytest.raises(NotFoundError):
        coll.get("nope")
    with pytest.raises(NotFoundError):
        coll.get_vector("nope")


def test_delete_existing_and_missing(coll):
    vecs = unit(5)
    coll.upsert(docs(5), vecs)
    assert coll.delete(["d1", "d3", "missing"]) == 2
    assert coll.count() == 3
    assert coll.delete(["missing"]) == 0
    assert coll.delete("d0") == 1  # a single id as a string
    assert coll.count() == 2
    for gone in ("d0", "d1", "d3"):
        with pytest.raises(NotFoundError):
            coll.get(gone)
    hits = coll.search(vecs[1], k=10)[0]
    assert {h.id for h in hits} == {"d2", "d4"}


def test_search_order_and_scores(coll):
    vecs = unit(20, seed=1)
    coll.upsert(docs(20), vecs)
    for i in (0, 7, 19):
        hits = coll.search(vecs[i], k=5)[0]
        assert hits[0].id == f"d{i}"
        assert hits[0].score == pytest.approx(1.0, abs=1e-5)
        assert hits[0].text == f"text d{i}" and hits[0].metadata == {"i": i}
        scores = [h.score for h in hits]
        assert scores == sorted(scores, reverse=True)
        expected = np.argsort(-(vecs @ vecs[i]))[:5]
        assert [h.id for h in hits] == [f"d{j}" for j in expected]
    # several queries at once
    many = coll.search(vecs[[3, 4]], k=1)
    assert [r[0].id for r in many] == ["d3", "d4"]


def test_k_larger_than_count_and_empty_collection(coll):
    assert coll.search(unit(1), k=5) == [[]]
    coll.upsert(docs(3), unit(3))
    assert len(coll.search(unit(1, seed=5), k=100)[0]) == 3


@pytest.mark.parametrize("k", [0, -1, 1.5, True, "3"])
def test_bad_k(coll, k):
    coll.upsert(docs(2), unit(2))
    with pytest.raises(InvalidInputError) as info:
        coll.search(unit(1), k=k)
    assert info.value.param == "k"


# --------------------------------------------------------------------------- metadata filters


@pytest.fixture
def filtered(coll):
    meta = [
        {"lang": "en", "year": 2020, "flag": True, "code": "1", "opt": None},
        {"lang": "en", "year": 2021, "flag": False, "code": 1},
        {"lang": "fr", "year": 2020, "flag": 1, "code": 1.0, "opt": "x"},
        {"lang": "de", "year": 2020.0, "flag": True, "opt": None},
        {"lang": "en", "nested": {"a": 1}},
    ]
    vecs = unit(len(meta), seed=3)
    coll.upsert([Document(id=f"m{i}", text=f"t{i}", metadata=m) for i, m in enumerate(meta)], vecs)
    return coll, vecs


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        ({"lang": "en"}, {"m0", "m1", "m4"}),
        ({"lang": "en", "year": 2020}, {"m0"}),
        ({"year": 2020}, {"m0", "m2", "m3"}),  # 2020.0 equals 2020
        ({"year": 2020.0}, {"m0", "m2", "m3"}),
        ({"flag": True}, {"m0", "m3"}),  # True does not match the integer 1
        ({"flag": False}, {"m1"}),
        ({"flag": 1}, {"m2"}),  # and 1 does not match True
        ({"code": "1"}, {"m0"}),  # a string does not match numbers
        ({"code": 1}, {"m1", "m2"}),
        ({"opt": None}, {"m0", "m3"}),  # explicit null only, not a missing field
        ({"opt": "x"}, {"m2"}),
        ({"lang": "xx"}, set()),
        ({"missing_field": "en"}, set()),
        ({}, {"m0", "m1", "m2", "m3", "m4"}),
        (None, {"m0", "m1", "m2", "m3", "m4"}),
    ],
)
def test_metadata_filter(filtered, flt, expected):
    coll, vecs = filtered
    hits = coll.search(vecs[4], k=10, filter=flt)[0]
    assert {h.id for h in hits} == expected
    for h in hits:
        for key, value in (flt or {}).items():
            assert h.metadata[key] == value
            assert isinstance(h.metadata[key], bool) == isinstance(value, bool)


def test_filter_keeps_ranking_and_limits_k(filtered):
    coll, vecs = filtered
    hits = coll.search(vecs[3], k=2, filter={"year": 2020})[0]
    assert [h.id for h in hits][0] == "m3"
    assert len(hits) == 2


@pytest.mark.parametrize("flt", [{"a": [1]}, {"a": {"b": 1}}, {"": 1}, {'q"uote': 1}, [("a", 1)], "lang=en",
                                 # these reached SQLite and failed there (a 500 through the API)
                                 {"n": 10**20}, {"n": -(2**63) - 1}, {"\x00": 1}, {"k": "\ud800"}, {"\ud800": 1},
                                 {"x": float("nan")}, {"x": float("inf")}])
def test_bad_filters(filtered, flt):
    coll, vecs = filtered
    with pytest.raises(InvalidInputError):
        coll.search(vecs[0], k=3, filter=flt)


# --------------------------------------------------------------------------- persistence


def test_restart_finds_documents(tmp_path):
    root = tmp_path / "indexes"
    vecs = unit(10, seed=4)
    c, _ = CollectionStore(root).create("persist", dim=DIM, model="m")
    c.upsert(docs(10), vecs)
    c.delete(["d9"])
    c.close()

    store2 = CollectionStore(root)
    assert store2.names() == ["persist"]
    c2 = store2.get("persist")
    assert c2.count() == 9
    assert c2.get("d4").text == "text d4"
    assert top_ids(c2, vecs[4]) == ["d4"]
    assert "d9" not in top_ids(c2, vecs[9], k=9)
    info = c2.info()
    assert (info["dim"], info["model"], info["count"]) == (DIM, "m", 9)


def test_ivf_collection_trains_at_threshold(store):
    c, _ = store.create("ivf", index="IVF4,Flat", dim=DIM, model="m")
    assert c.config.train_threshold == 156
    vecs = unit(200, seed=5)

    c.upsert(docs(150), vecs[:150])
    info = c.info()
    assert info["trained"] is False and info["count"] == 150
    for i in (0, 77, 149):  # exact (flat) search meanwhile
        hits = c.search(vecs[i], k=3)[0]
        assert hits[0].id == f"d{i}" and hits[0].score == pytest.approx(1.0, abs=1e-5)

    c.upsert(docs(50, start=150), vecs[150:])
    info = c.info()
    assert info["trained"] is True and info["count"] == 200
    for i in range(0, 200, 7):
        hits = c.search(vecs[i], k=3)[0]
        assert hits[0].id == f"d{i}" and hits[0].score == pytest.approx(1.0, abs=1e-5)

    assert c.delete(["d0", "d160"]) == 2
    assert c.count() == 198
    assert c.info()["trained"] is True
    assert "d0" not in top_ids(c, vecs[0], k=5)
    assert "d160" not in top_ids(c, vecs[160], k=5)
    assert top_ids(c, vecs[161]) == ["d161"]
    # filters work on the trained IVF index too
    assert top_ids(c, vecs[10], k=3, filter={"i": 11}) == ["d11"]

    reopened = CollectionStore(store.root).get("ivf")
    assert reopened.info()["trained"] is True
    assert top_ids(reopened, vecs[42]) == ["d42"]


def test_hnsw_collection_supports_delete(store):
    c, _ = store.create("hnsw", index="HNSW16", dim=DIM, model="m")
    vecs = unit(60, seed=6)
    c.upsert(docs(60), vecs)
    gen_before = c._db_generation()
    assert c.delete(["d3", "d30"]) == 2
    assert c._db_generation() == gen_before + 1
    assert c.count() == 58
    assert "d3" not in top_ids(c, vecs[3], k=10)
    for i in (0, 29, 31, 59):
        assert top_ids(c, vecs[i]) == [f"d{i}"]
    assert top_ids(c, vecs[5], k=3, filter={"i": 6}) == ["d6"]
    # still works after a restart (the rebuilt index was persisted)
    reopened = CollectionStore(store.root).get("hnsw")
    assert reopened.count() == 58
    assert top_ids(reopened, vecs[31]) == ["d31"]
    assert "d30" not in top_ids(reopened, vecs[30], k=10)


def test_crash_after_commit_missing_index_file_is_rebuilt(tmp_path):
    root = tmp_path / "indexes"
    vecs = unit(12, seed=7)
    c, _ = CollectionStore(root).create("crash", dim=DIM, model="m")
    c.upsert(docs(12), vecs)
    files = list((root / "crash").glob("index-*.faiss"))
    assert len(files) == 1
    files[0].unlink()  # as if the process died between the SQLite commit and the rename

    fresh = CollectionStore(root).get("crash")
    assert fresh.count() == 12
    for i in range(12):
        assert top_ids(fresh, vecs[i]) == [f"d{i}"]
    assert (root / "crash" / files[0].name).is_file()  # repaired on disk


def test_crash_with_sqlite_generation_ahead_is_rebuilt(tmp_path):
    root = tmp_path / "indexes"
    vecs = unit(8, seed=8)
    c, _ = CollectionStore(root).create("ahead", dim=DIM, model="m")
    c.upsert(docs(8), vecs)
    gen = c._db_generation()
    c.close()
    with sqlite3.connect(root / "ahead" / "docs.sqlite") as conn:
        conn.execute("UPDATE state SET value=? WHERE name='generation'", (gen + 1,))

    fresh = CollectionStore(root).get("ahead")
    assert [top_ids(fresh, vecs[i]) for i in range(8)] == [[f"d{i}"] for i in range(8)]
    names = sorted(p.name for p in (root / "ahead").glob("index-*.faiss"))
    assert names == [f"index-{gen + 1:012d}.faiss"]


def test_crash_between_commit_and_index_write(tmp_path, monkeypatch):
    root = tmp_path / "indexes"
    vecs = unit(6, seed=9)
    c, _ = CollectionStore(root).create("mid", dim=DIM, model="m")
    c.upsert(docs(3), vecs[:3])

    def die(*_a, **_k):
        raise SystemExit("simulated crash after the SQLite commit")

    monkeypatch.setattr(type(c), "_persist", die)
    with pytest.raises(SystemExit):
        c.upsert(docs(3, start=3), vecs[3:])
    monkeypatch.undo()

    # a fresh process-like view: the committed documents are all searchable
    fresh = CollectionStore(root).get("mid")
    assert fresh.count() == 6
    assert [top_ids(fresh, vecs[i]) for i in range(6)] == [[f"d{i}"] for i in range(6)]
    # and the object that "crashed" repairs itself too
    assert [top_ids(c, vecs[i]) for i in range(6)] == [[f"d{i}"] for i in range(6)]


def test_delete_collection(store):
    c, _ = store.create("gone", dim=DIM, model="m")
    c.upsert(docs(2), unit(2))
    store.create("kept", dim=DIM, model="m")
    store.delete("gone")
    assert not (store.root / "gone").exists()
    assert not [p for p in store.root.iterdir() if p.name.startswith(".trash-")]
    assert store.names() == ["kept"]
    assert not store.exists("gone")
    with pytest.raises(NotFoundError):
        store.get("gone")
    with pytest.raises(NotFoundError):
        store.delete("gone")
    for call in (c.count, lambda: c.search(unit(1), k=1), lambda: c.upsert(docs(1), unit(1))):
        with pytest.raises(NotFoundError):
            call()
    # the name can be used again
    again, created = store.create("gone", dim=DIM, model="m")
    assert created and again.count() == 0


# --------------------------------------------------------------------------- concurrency


def test_readers_and_a_writer_in_threads(coll):
    batches, per_batch = 25, 8
    vecs = unit(batches * per_batch, seed=10)
    coll.upsert(docs(per_batch), vecs[:per_batch])
    errors: list[BaseException] = []
    stop = threading.Event()
    searches = [0]

    def reader(seed: int) -> None:
        rng = np.random.default_rng(seed)
        try:
            while not stop.is_set():
                i = int(rng.integers(0, per_batch))
                hits = coll.search(vecs[i], k=3)[0]
                assert hits and hits[0].id == f"d{i}", hits
                searches[0] += 1
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def writer() -> None:
        try:
            for b in range(1, batches):
                sl = slice(b * per_batch, (b + 1) * per_batch)
                coll.upsert(docs(per_batch, start=b * per_batch), vecs[sl])
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    readers = [threading.Thread(target=reader, args=(s,)) for s in range(4)]
    w = threading.Thread(target=writer)
    for t in readers:
        t.start()
    w.start()
    w.join(timeout=120)
    stop.set()
    for t in readers:
        t.join(timeout=30)
    assert not errors, errors
    assert not w.is_alive()
    assert searches[0] > 0
    assert coll.count() == batches * per_batch
    # the published index holds every document
    for i in range(0, batches * per_batch, 5):
        assert top_ids(coll, vecs[i]) == [f"d{i}"]
    fresh = CollectionStore(coll.path.parent).get(coll.name)
    assert all(top_ids(fresh, vecs[i]) == [f"d{i}"] for i in range(batches * per_batch))


def test_slow_reader_cannot_roll_back_the_live_index(coll):
    """Regression: a reader that loaded an older index file while the writer published newer
    generations used to swap its stale index in; the next write cloned it and silently lost the
    documents written in between (SQLite had them, search never found them again).

    The interleaving is forced: a reader thread starts loading generation 2 right after the
    writer wrote that file and is held there until the writer, two writes later, is about to clone
    the live index."""
    vecs = unit(4, seed=12)
    coll.upsert([Document("a", "a")], vecs[0:1])
    orig_persist, orig_load, orig_next = coll._persist, coll._load_index_file, coll._next_index
    paused, go = threading.Event(), threading.Event()
    state = {"start_reader": True, "release_reader": False, "thread": None}

    def slow_load(generation):
        index = orig_load(generation)
        if threading.current_thread() is state["thread"]:
            paused.set()
            go.wait(10)
        return index

    def persist(index, generation):
        orig_persist(index, generation)
        if state["start_reader"]:
            state["start_reader"] = False
            state["thread"] = threading.Thread(target=coll.refresh)
            state["thread"].start()
            assert paused.wait(10)

    def next_index(removed):
        if state["release_reader"]:
            go.set()
            state["thread"].join(10)
        return orig_next(removed)

    coll._load_index_file, coll._persist, coll._next_index = slow_load, persist, next_index
    coll.upsert([Document("b", "b")], vecs[1:2])  # reader starts loading this generation
    coll.upsert([Document("c", "c")], vecs[2:3])
    state["release_reader"] = True
    coll.upsert([Document("d", "d")], vecs[3:4])  # reader finishes just before this write clones
    assert not state["thread"].is_alive()

    fresh = CollectionStore(coll.path.parent).get(coll.name)
    assert fresh.count() == 4
    assert [top_ids(fresh, vecs[i]) for i in range(4)] == [["a"], ["b"], ["c"], ["d"]]
    assert [top_ids(coll, vecs[i]) for i in range(4)] == [["a"], ["b"], ["c"], ["d"]]


def test_other_process_writes_are_seen(coll):
    vecs = unit(10, seed=11)
    coll.upsert(docs(5), vecs[:5])
    assert coll.count() == 5
    assert top_ids(coll, vecs[7], k=10).count("d7") == 0

    script = textwrap.dedent(
        f"""
        import numpy as np
        from textlatent.collections import CollectionStore, Document
        vecs = np.asarray({vecs[5:].tolist()!r}, dtype=np.float32)
        c = CollectionStore({str(coll.path.parent)!r}).get({coll.name!r})
        c.upsert([Document(id=f"d{{i}}", text=f"from child {{i}}") for i in range(5, 10)], vecs)
        c.delete(["d0"])
        print(c.count())
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         cwd=REPO_ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "9"

    # the same Collection object, untouched since, sees the other process's writes
    assert coll.count() == 9
    assert top_ids(coll, vecs[7]) == ["d7"]
    assert coll.search(vecs[7], k=1)[0][0].text == "from child 7"
    assert "d0" not in top_ids(coll, vecs[0], k=10)
    coll.refresh()
    assert coll._generation == coll._db_generation()
    assert coll.info()["count"] == 9


def test_collection_json_is_what_was_created(store):
    store.create("cfg", index="HNSW16", dim=DIM, model="m")
    cfg = json.loads((store.root / "cfg" / "collection.json").read_text())
    assert cfg["index"] == "HNSW16" and cfg["dim"] == DIM and cfg["model"] == "m"
    assert cfg["train_threshold"] == 0
