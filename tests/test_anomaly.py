"""Anomaly scorers on tiny synthetic data whose answer is known, and AUROC on toy cases."""

from __future__ import annotations

import numpy as np
import pytest

from textlatent.anomaly import (
    KnnScorer,
    MahalanobisScorer,
    UnigramBackground,
    auroc,
    check_method,
    collection_outliers,
)
from textlatent.errors import InvalidInputError


def cluster_with_outlier(n: int = 60, d: int = 16, seed: int = 0) -> np.ndarray:
    """``n`` unit vectors tightly around one direction, then one vector far from it (the last row)."""
    rng = np.random.default_rng(seed)
    centre = np.zeros(d)
    centre[0] = 1.0
    pts = centre + 0.05 * rng.standard_normal((n, d))
    far = np.zeros(d)
    far[1] = 1.0
    x = np.vstack([pts, far])
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("aggregate", ["mean", "kth"])
def test_knn_leave_one_out_ranks_the_planted_outlier_first(aggregate):
    x = cluster_with_outlier()
    scores = KnnScorer(k=5, aggregate=aggregate).fit(x).score_reference()
    assert scores.shape == (len(x),)
    assert int(np.argmax(scores)) == len(x) - 1
    assert scores[-1] > 0.5 > scores[:-1].max()  # orthogonal-ish vs. a tight cluster


def test_knn_leave_one_out_excludes_only_the_point_itself():
    x = cluster_with_outlier()
    x = np.vstack([x, x[-1:]])  # the outlier stored twice: each copy has the other as its neighbour
    scores = KnnScorer(k=1).fit(x).score_reference()
    assert scores[-1] == pytest.approx(0.0, abs=1e-5) and scores[-2] == pytest.approx(0.0, abs=1e-5)
    # scoring new vectors against the reference does not leave anything out
    new = KnnScorer(k=1).fit(x[:-2]).score(x[-1:])
    assert new[0] > 0.5


def test_knn_leave_one_out_in_blocks_gives_the_same_scores(monkeypatch):
    """Scored in row blocks (bounded memory on large collections at large k): same figures as at once."""
    import textlatent.anomaly as anomaly

    x = np.vstack([cluster_with_outlier(), cluster_with_outlier()[:-1] * -1])
    whole = KnnScorer(k=3).fit(x).score_reference()
    monkeypatch.setattr(anomaly, "REFERENCE_BLOCK_CELLS", 9)  # blocks of 2 rows at k=3 (4 entries a row)
    blocked = KnnScorer(k=3).fit(x).score_reference()
    np.testing.assert_allclose(blocked, whole, atol=1e-6)


def test_knn_needs_enough_reference_points():
    with pytest.raises(InvalidInputError, match="k=5"):
        KnnScorer(k=5).fit(np.eye(4, dtype=np.float32))
    with pytest.raises(InvalidInputError, match="documents"):
        KnnScorer(k=4).fit(np.eye(4, dtype=np.float32)).score_reference()
    for bad in (0, -1, 1001, True, 2.5):
        with pytest.raises(InvalidInputError):
            KnnScorer(k=bad)
    with pytest.raises(InvalidInputError):
        KnnScorer(aggregate="median")


def test_mahalanobis_flags_a_point_off_the_data_manifold():
    rng = np.random.default_rng(1)
    # Correlated 2-D data: the outlier is close in Euclidean terms but across the correlation.
    t = rng.standard_normal(500)
    x = np.stack([t, t + 0.05 * rng.standard_normal(500)], axis=1)
    outlier = np.array([[1.0, -1.0]])
    far_but_typical = np.array([[2.5, 2.5]])
    for shrinkage in ("ledoit-wolf", "empirical"):
        scorer = MahalanobisScorer(shrinkage).fit(x)
        s_out, s_typ = scorer.score(outlier)[0], scorer.score(far_but_typical)[0]
        assert s_out > 10 * s_typ, (shrinkage, s_out, s_typ)


def test_mahalanobis_ranks_the_planted_outlier_first_with_fewer_points_than_dimensions():
    x = cluster_with_outlier(n=20, d=64)  # n < d: only a shrunk covariance is invertible
    scores = MahalanobisScorer().fit(x).score(x)
    assert int(np.argmax(scores)) == len(x) - 1
    with pytest.raises(InvalidInputError, match="singular"):
        MahalanobisScorer("empirical").fit(x)
    with pytest.raises(InvalidInputError):
        MahalanobisScorer("oas")


@pytest.mark.parametrize(("in_domain", "ood", "expected"), [
    ([0.0, 1.0, 2.0], [3.0, 4.0], 1.0),  # every OOD score above every in-domain one
    ([3.0, 4.0], [0.0, 1.0, 2.0], 0.0),  # the scorer has it backwards
    ([0.0, 2.0], [1.0, 3.0], 0.75),  # 3 of the 4 (ood, in) pairs ordered right
    ([1.0, 1.0], [1.0], 0.5),  # ties count half
])
def test_auroc_on_toy_cases(in_domain, ood, expected):
    assert auroc(in_domain, ood) == pytest.approx(expected)


def test_unigram_background_gives_unknown_words_the_unseen_mass():
    from textlatent.vae.data import Vocab

    vocab = Vocab.build(["a a b c"])  # <pad> <bos> <eos> <unk> a b c
    bg = UnigramBackground(vocab).fit(["a a b c", "a"])
    # tokens: a a b c <eos> a <eos> = 7; words seen once: b, c -> p(<unk>) = 2 / (7 + 2)
    p_unk = 2 / 9
    known = {"pad": 0.5, "bos": 0.5, "eos": 2.5, "a": 3.5, "b": 1.5, "c": 1.5}  # counts + 1/2, total 10
    p = {w: c / 10 * (1 - p_unk) for w, c in known.items()}
    got = bg.nll_per_token(["a", "b zzz"])
    assert got[0] == pytest.approx(-(np.log(p["a"]) + np.log(p["eos"])) / 2)
    assert got[1] == pytest.approx(-(np.log(p["b"]) + np.log(p_unk) + np.log(p["eos"])) / 3)
    assert np.exp(bg.log_probs).sum() == pytest.approx(1.0)
    with pytest.raises(RuntimeError):
        UnigramBackground(vocab).nll_per_token(["a"])


def test_auroc_refuses_empty_or_nan():
    with pytest.raises(InvalidInputError):
        auroc([], [1.0])
    with pytest.raises(InvalidInputError):
        auroc([0.0, float("nan")], [1.0])


def test_method_names_are_checked():
    assert check_method("knn") == "knn"
    with pytest.raises(InvalidInputError, match="method"):
        check_method("isolation-forest")


def test_collection_outliers_with_real_embeddings(service):
    texts = [f"The film was {w} and the acting {v}." for w in ("wonderful", "boring", "moving", "dull", "funny")
             for v in ("superb", "weak", "fine")]
    docs = [{"id": f"r{i}", "text": t, "metadata": {}} for i, t in enumerate(texts)]
    docs.append({"id": "odd", "text": "Mitochondrial DNA polymerase gamma mutations cause ataxia.", "metadata": {}})
    service.create_collection("reviews")
    service.add_documents("reviews", docs)
    coll = service.collection("reviews")
    for method in ("knn", "mahalanobis"):
        result = collection_outliers(coll, method=method, k=3, n=4)
        assert result["count"] == len(docs) and len(result["results"]) == 4
        top = result["results"][0]
        assert (top.id, top.rank) == ("odd", 1), (method, result)
        assert top.text.startswith("Mitochondrial")
        assert [o.score for o in result["results"]] == sorted((o.score for o in result["results"]), reverse=True)
    with pytest.raises(InvalidInputError, match="needs at least 17 documents"):
        collection_outliers(coll, method="knn", k=16)
    with pytest.raises(InvalidInputError, match="TEXTLATENT_VAE_MODEL"):
        collection_outliers(coll, method="elbo")
    with pytest.raises(InvalidInputError, match="n must"):
        collection_outliers(coll, n=0)
    service.create_collection("empty")
    with pytest.raises(InvalidInputError, match="empty"):
        collection_outliers(service.collection("empty"))
