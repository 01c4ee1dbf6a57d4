"""The torch flat searcher (used on GPUs when FAISS is a CPU build) must agree with FAISS.

Run on the CPU here; the same code runs with device='cuda' on a GPU machine.
"""

from __future__ import annotations

import numpy as np
import pytest

from textlatent.collections import CollectionStore, Document
from textlatent.gpu_search import TorchFlatSearcher


@pytest.fixture()
def flat_collection(tmp_path):
    store = CollectionStore(tmp_path, device="cpu")
    coll, _ = store.create("flat", dim=16, model="random")
    rng = np.random.default_rng(7)
    vecs = rng.normal(size=(120, 16)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    coll.upsert([Document(id=f"d{i}", text=f"t{i}", metadata={"g": i % 4}) for i in range(120)], vecs)
    coll.delete(["d3", "d50"])  # ids no longer contiguous: the id map must be honoured
    coll.refresh()
    return coll, vecs


def test_torch_searcher_matches_faiss(flat_collection):
    coll, vecs = flat_collection
    searcher = TorchFlatSearcher(coll._index, "cpu")
    scores, keys = coll._index.search(vecs[:10], 7)
    t_scores, t_keys = searcher.search(vecs[:10], 7)
    np.testing.assert_array_equal(keys, t_keys)
    np.testing.assert_allclose(scores, t_scores, atol=1e-5)


def test_collection_search_through_torch_path_honours_filter(flat_collection):
    coll, vecs = flat_collection
    expected = [h.id for h in coll.search(vecs[5], k=5, filter={"g": 1})[0]]
    # Route the search through the torch searcher, as a CUDA machine without faiss-gpu would.
    coll._gpu_copy = (coll._index, TorchFlatSearcher(coll._index, "cpu"))
    coll.device = "cuda"
    got = [h.id for h in coll.search(vecs[5], k=5, filter={"g": 1})[0]]
    assert got == expected
    assert all(int(i[1:]) % 4 == 1 for i in got)
    assert "d5" in got and "d3" not in got


def test_torch_searcher_refuses_non_flat(tmp_path):
    store = CollectionStore(tmp_path, device="cpu")
    coll, _ = store.create("hnsw", index="HNSW8", dim=8, model="random")
    coll.upsert([Document(id="a", text="a")], np.ones((1, 8), dtype=np.float32))
    coll.refresh()
    with pytest.raises(TypeError):
        TorchFlatSearcher(coll._index, "cpu")
