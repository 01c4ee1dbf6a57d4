"""Every compression codec on toy vectors: byte sizes, round trips, fidelity order, the benchmark row."""

from __future__ import annotations

import numpy as np
import pytest

from textlatent.compression import (
    PCA,
    Binary,
    Float32,
    Int8,
    ProductQuantizer,
    RetrievalData,
    StsPairs,
    Truncate,
    codecs,
    evaluate_codec,
    evaluate_compression,
    plot,
)
from textlatent.errors import InvalidInputError

D = 64


@pytest.fixture(scope="module")
def vectors() -> np.ndarray:
    rng = np.random.default_rng(0)
    # low-rank structure plus noise, like sentence embeddings: PCA has something to find
    x = rng.standard_normal((600, 8)) @ rng.standard_normal((8, D)) + 0.3 * rng.standard_normal((600, D))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize(("codec", "size"), [
    (Float32(), 4 * D), (PCA(16), 4 * 16), (Truncate(16), 4 * 16), (Int8(), D), (Binary(), D // 8),
    (Binary(rescore_depth=10), D // 8), (ProductQuantizer(8), 8), (ProductQuantizer(16), 16),
])
def test_each_codec_round_trips_with_the_expected_size(codec, size, vectors):
    codec.fit(vectors)
    codes = codec.encode(vectors[:50])
    assert codec.bytes_per_vector(codes) == size
    assert codes.shape[0] == 50
    back = codec.decode(codes)
    assert back.shape[0] == 50 and np.isfinite(back).all()
    scores = codec.query_scores(vectors[:5], codes)
    assert scores.shape == (5, 50)
    pairs = codec.pair_scores(codes[:10], codes[:10])
    # a stored vector compared with itself is (one of) the most similar
    assert np.allclose(pairs, pairs.max(), atol=1e-4) or (pairs > 0.99).all()


def _fidelity(codec, vectors) -> float:
    """Mean cosine between each vector and what its code decodes to (full-dimension codecs)."""
    codec.fit(vectors)
    back = codec.decode(codec.encode(vectors))[:, : vectors.shape[1]].astype(np.float64)
    back /= np.linalg.norm(back, axis=1, keepdims=True)
    return float(np.einsum("ij,ij->i", back, vectors.astype(np.float64)).mean())


def test_fidelity_order_float32_int8_binary(vectors):
    f32, i8, b1 = _fidelity(Float32(), vectors), _fidelity(Int8(), vectors), _fidelity(Binary(), vectors)
    assert f32 == pytest.approx(1.0, abs=1e-6)
    assert f32 >= i8 > b1
    assert i8 > 0.999  # 256 levels over each dimension's range
    assert 0.5 < b1 < 0.95  # one bit per dimension keeps the direction roughly
    assert _fidelity(ProductQuantizer(16), vectors) > _fidelity(ProductQuantizer(4), vectors)


def test_pca_beats_truncation_on_rotated_low_rank_data(vectors):
    # the structure is spread over all dimensions, so the first d coordinates miss most of it
    rng = np.random.default_rng(1)
    q = vectors[:40] + 0.05 * rng.standard_normal((40, D)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)

    def top1(codec):
        codec.fit(vectors)
        return float((codec.query_scores(q, codec.encode(vectors)).argmax(axis=1) == np.arange(40)).mean())

    assert top1(Float32()) == 1.0
    assert top1(PCA(8)) > top1(Truncate(8))


def test_binary_rescoring_fixes_hamming_ties(vectors):
    codec = Binary(rescore_depth=20)
    codes = codec.encode(vectors)
    q = vectors[:30]
    rescored = codec.query_scores(q, codes)
    assert np.isinf(rescored).sum(axis=1).tolist() == [len(vectors) - 20] * 30
    assert (rescored.argmax(axis=1) == np.arange(30)).all()


def test_codec_settings_are_checked(vectors):
    with pytest.raises(InvalidInputError):
        ProductQuantizer(7).fit(vectors)  # 7 does not divide 64
    with pytest.raises(InvalidInputError):
        ProductQuantizer(8).fit(vectors[:100])  # fewer than 256 training vectors
    with pytest.raises(InvalidInputError):
        PCA(100).fit(vectors)
    with pytest.raises(InvalidInputError):
        codecs(dims=[0])
    with pytest.raises(InvalidInputError):
        codecs(dims=[384], full_dim=384)
    names = [c.name for c in codecs(dims=[8], pq=[4], full_dim=D)]
    assert names == ["float32", "pca(d=8)", "truncate(d=8)", "int8", "binary(hamming)", "binary(rescore@100)",
                     "pq(m=4)"]


def test_benchmark_rows_on_a_toy_retrieval_and_sts_task(vectors, tmp_path):
    rng = np.random.default_rng(2)
    doc_ids = [f"d{i}" for i in range(len(vectors))]
    queries = vectors[:20] + 0.02 * rng.standard_normal((20, D)).astype(np.float32)
    qrels = {f"q{i}": {f"d{i}": 1} for i in range(20)}
    retrieval = RetrievalData(doc_ids, vectors, list(qrels), queries, qrels)
    b = vectors[:200] + 0.3 * rng.standard_normal((200, D)).astype(np.float32)
    gold = np.einsum("ij,ij->i", vectors[:200], b / np.linalg.norm(b, axis=1, keepdims=True)).tolist()
    sts = StsPairs(vectors, vectors[:200], b, gold)
    row = evaluate_codec(Float32(), retrieval, sts)
    assert row["method"] == "float32" and row["bytes_per_vector"] == 4 * D
    assert row["ndcg@10"] == pytest.approx(1.0) and row["spearman"] == pytest.approx(100.0)
    rows = evaluate_compression(retrieval, sts, dims=[16], pq=[8])
    by_name = {(r["method"], r["setting"]): r for r in rows}
    assert by_name[("binary", "hamming")]["bytes_per_vector"] == 8
    assert by_name[("int8", None)]["ndcg@10"] >= by_name[("binary", "hamming")]["ndcg@10"]
    assert by_name[("int8", None)]["spearman"] > by_name[("binary", "hamming")]["spearman"]
    png = tmp_path / "plot.png"
    plot(rows, str(png), title="toy")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(InvalidInputError):
        evaluate_compression(None, None)
