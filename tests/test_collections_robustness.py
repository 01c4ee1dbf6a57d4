"""Failure paths of the collection store: locks, replaced folders, busy writers, bad Unicode."""

from __future__ import annotations

import numpy as np
import pytest
from filelock import FileLock

from textlatent.collections import CollectionStore, Document
from textlatent.errors import BusyError, InvalidInputError, NotFoundError

DIM = 16


def unit(n: int, seed: int = 0, dim: int = DIM) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture
def store(tmp_path):
    return CollectionStore(tmp_path / "indexes", device="cpu")


def test_write_locks_are_released_when_refresh_fails(store, monkeypatch):
    coll, _ = store.create("c", dim=DIM, model="m")

    def broken_refresh():
        raise OSError("disk went away")

    monkeypatch.setattr(coll, "refresh", broken_refresh)
    with pytest.raises(OSError):
        coll.upsert([Document(id="a", text="a")], unit(1))
    assert not coll._write_mutex.locked()
    assert not coll._file_lock.is_locked
    monkeypatch.undo()
    assert coll.upsert([Document(id="a", text="a")], unit(1)) == 1  # no hang, no leftover lock


def test_collection_replaced_by_another_process_is_reopened(tmp_path):
    root = tmp_path / "indexes"
    mine, theirs = CollectionStore(root, device="cpu"), CollectionStore(root, device="cpu")
    old, _ = mine.create("c", dim=DIM, model="m")
    old.upsert([Document(id="old", text="old doc")], unit(1, seed=1))
    theirs.delete("c")
    new, _ = theirs.create("c", dim=DIM, model="m")
    new.upsert([Document(id="new", text="new doc")], unit(1, seed=2))

    with pytest.raises(NotFoundError):  # the stale object must not write into the replaced folder
        old.upsert([Document(id="lost", text="lost")], unit(1, seed=3))
    fresh = mine.get("c")
    assert fresh is not old
    assert fresh.count() == 1 and fresh.get("new").text == "new doc"
    assert [h.id for h in fresh.search(unit(1, seed=2), k=5)[0]] == ["new"]


def test_busy_writer_gives_busy_error_not_a_hang(store):
    coll, _ = store.create("c", dim=DIM, model="m")
    coll._file_lock.timeout = 0.2
    other = FileLock(str(coll.path / ".write.lock"))  # another "process" holding the write lock
    with other, pytest.raises(BusyError) as info:
        coll.upsert([Document(id="a", text="a")], unit(1))
    assert info.value.status_code == 503
    assert not coll._write_mutex.locked()
    assert coll.count() == 0
    assert coll.upsert([Document(id="a", text="a")], unit(1)) == 1


@pytest.mark.parametrize(
    "doc",
    [
        {"id": "a", "text": "fine", "metadata": {"bad": "\ud800"}},
        {"id": "a", "text": "lone \udfff surrogate"},
        {"id": "\ud800", "text": "fine"},
    ],
)
def test_lone_surrogates_are_invalid_input(store, doc):
    coll, _ = store.create("c", dim=DIM, model="m")
    with pytest.raises(InvalidInputError):
        coll.upsert([doc], unit(1))
    assert coll.count() == 0


def test_pq_factory_is_checked_at_the_real_dimension(store):
    # PQ48 needs a dimension divisible by 48: valid for 384, which the old probe at 64 refused.
    coll, created = store.create("pq", index="IVF4,PQ48", dim=384, model="m")
    assert created and coll.config.train_threshold == 39 * 256
    with pytest.raises(InvalidInputError):
        store.create("pq2", index="PQ7", dim=384, model="m")  # 384 is not divisible by 7


def test_torch_searcher_refuses_ivf_indexes(store):
    from textlatent.gpu_search import TorchFlatSearcher

    coll, _ = store.create("ivf", index="IVF2,Flat", dim=DIM, model="m")
    coll.upsert([Document(id=str(i), text="t") for i in range(100)], unit(100))
    coll.refresh()
    assert coll.info()["trained"]
    with pytest.raises(TypeError):
        TorchFlatSearcher(coll._index, "cpu")


def test_connection_pool_stays_small_under_many_threads(store):
    import concurrent.futures

    coll, _ = store.create("c", dim=DIM, model="m")
    coll.upsert([Document(id=str(i), text="t", metadata={"g": i % 2}) for i in range(50)], unit(50))
    queries = unit(64, seed=5)
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(lambda q: coll.search(q, k=3, filter={"g": 1}), queries))
    assert all(len(r[0]) == 3 for r in results)
    assert len(coll._pool) <= 4


def test_delete_collection_closes_and_refuses_later_use(store):
    coll, _ = store.create("c", dim=DIM, model="m")
    coll.upsert([Document(id="a", text="a")], unit(1))
    store.delete("c")
    assert coll._pool == []
    with pytest.raises(NotFoundError):
        coll.count()
    assert not (store.root / "c").exists()


def test_a_collection_of_a_model_this_server_does_not_load_names_the_right_field(service):
    """Built by a server of another model: adding text names `documents`, searching by text `query`."""
    service.store.create("other", dim=384, model="some-other-model")
    with pytest.raises(InvalidInputError, match="serve that model to add text") as info:
        service.add_documents("other", [{"id": "a", "text": "hello"}])
    assert info.value.param == "documents"
    with pytest.raises(InvalidInputError, match="search it by vector") as info:
        service.search("other", query="hello", k=1)
    assert info.value.param == "query"
    assert service.collection("other").count() == 0
