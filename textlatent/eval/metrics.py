"""Metrics from maintained libraries: pytrec_eval (trec_eval) for retrieval, scipy for correlation.

Wrapping rather than re-deriving keeps our figures comparable with BEIR and MTEB, which
compute theirs the same way. The libraries are imported inside the functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from textlatent.errors import InvalidInputError

Qrels = Mapping[str, Mapping[str, int]]
Run = Mapping[str, Mapping[str, float]]


def retrieval_metrics(
    qrels: Qrels,
    run: Run,
    *,
    ndcg_at: Iterable[int] = (10,),
    recall_at: Iterable[int] = (100,),
) -> dict[str, float]:
    """Mean nDCG@k and Recall@k over the judged queries, computed by pytrec_eval.

    Returns keys ``ndcg@k`` and ``recall@k`` (fractions in [0, 1]). Queries in ``qrels`` that the
    run does not answer count as 0, so a retriever cannot gain by skipping hard queries; in the
    MTEB protocol every query is answered, and the figures match MTEB's.
    """
    import pytrec_eval

    ndcg_ks = sorted(set(ndcg_at))
    recall_ks = sorted(set(recall_at))
    if not qrels:
        raise InvalidInputError("qrels are empty: nothing to evaluate", param="qrels")
    if any(k < 1 for k in ndcg_ks + recall_ks):
        raise InvalidInputError("cut-offs must be >= 1", param="k")
    measures: set[str] = set()
    if ndcg_ks:
        measures.add("ndcg_cut." + ",".join(map(str, ndcg_ks)))
    if recall_ks:
        measures.add("recall." + ",".join(map(str, recall_ks)))
    qrels_int = {q: {d: int(r) for d, r in docs.items()} for q, docs in qrels.items()}
    run_float = {q: {d: float(s) for d, s in docs.items()} for q, docs in run.items() if q in qrels_int and docs}
    per_query = pytrec_eval.RelevanceEvaluator(qrels_int, measures).evaluate(run_float) if run_float else {}
    out: dict[str, float] = {}
    n = len(qrels_int)
    for k in ndcg_ks:
        out[f"ndcg@{k}"] = sum(per_query.get(q, {}).get(f"ndcg_cut_{k}", 0.0) for q in qrels_int) / n
    for k in recall_ks:
        out[f"recall@{k}"] = sum(per_query.get(q, {}).get(f"recall_{k}", 0.0) for q in qrels_int) / n
    return out


def ndcg_at_k(qrels: Qrels, run: Run, k: int = 10) -> float:
    """Mean nDCG@k (pytrec_eval's ``ndcg_cut``: linear gains, log2 discounts)."""
    return retrieval_metrics(qrels, run, ndcg_at=(k,), recall_at=())[f"ndcg@{k}"]


def recall_at_k(qrels: Qrels, run: Run, k: int = 100) -> float:
    """Mean Recall@k: share of each query's relevant documents found in its top k."""
    return retrieval_metrics(qrels, run, ndcg_at=(), recall_at=(k,))[f"recall@{k}"]


def _check_pairs(predicted: Sequence[float], gold: Sequence[float]) -> None:
    if len(predicted) != len(gold):
        raise InvalidInputError(f"{len(predicted)} predictions for {len(gold)} gold scores", param="scores")
    if len(gold) < 2:
        raise InvalidInputError("a correlation needs at least two pairs", param="scores")


def spearman(predicted: Sequence[float], gold: Sequence[float]) -> float:
    """Spearman rank correlation (scipy), in [-1, 1]; NaN when either side is constant."""
    import warnings

    from scipy.stats import spearmanr

    _check_pairs(predicted, gold)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConstantInputWarning: the NaN says it already
        return float(spearmanr(predicted, gold).statistic)


def pearson(predicted: Sequence[float], gold: Sequence[float]) -> float:
    """Pearson correlation (scipy), in [-1, 1]; NaN when either side is constant."""
    import warnings

    from scipy.stats import pearsonr

    _check_pairs(predicted, gold)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConstantInputWarning: the NaN says it already
        return float(pearsonr(predicted, gold).statistic)
