"""Evaluation on public benchmarks, run the way the MTEB leaderboard runs them.

``loaders`` reads folders laid out like ``../shared/data`` (BEIR, STS-B, SST-2, PTB);
``metrics`` wraps pytrec_eval and scipy; ``tasks`` embeds and scores.
"""

from __future__ import annotations

from textlatent.eval.loaders import (
    BeirDataset,
    LabelledTexts,
    StsData,
    beir_datasets,
    beir_splits,
    load_beir,
    load_ptb,
    load_sst2,
    load_stsb,
    read_beir,
    read_beir_corpus,
    read_beir_queries,
    read_ptb,
    read_qrels,
    read_sst2_glue,
    read_sst2_kim,
    read_stsb,
    require_data_dir,
)
from textlatent.eval.metrics import ndcg_at_k, pearson, recall_at_k, retrieval_metrics, spearman
from textlatent.eval.tasks import dense_run, encode_all, evaluate_beir, evaluate_sts, exact_search

__all__ = [
    "BeirDataset",
    "LabelledTexts",
    "StsData",
    "beir_datasets",
    "beir_splits",
    "dense_run",
    "encode_all",
    "evaluate_beir",
    "evaluate_sts",
    "exact_search",
    "load_beir",
    "load_ptb",
    "load_sst2",
    "load_stsb",
    "ndcg_at_k",
    "pearson",
    "read_beir",
    "read_beir_corpus",
    "read_beir_queries",
    "read_ptb",
    "read_qrels",
    "read_sst2_glue",
    "read_sst2_kim",
    "read_stsb",
    "recall_at_k",
    "require_data_dir",
    "retrieval_metrics",
    "spearman",
]
