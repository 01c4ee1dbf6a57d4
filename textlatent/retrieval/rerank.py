"""A cross-encoder reranker, trained here because no pretrained one can be installed.

Training (``train_reranker``): start from the bundled all-MiniLM-L6-v2 weights (a bi-encoder;
the scoring head is new), and learn ``P(relevant | query, passage)`` with binary
cross-entropy on a BEIR dataset's **train** qrels: every judged positive, plus hard negatives
drawn from the top of *our own* hybrid retriever (BM25 + dense, fused), i.e. the passages the
reranker will actually have to reorder. A slice of the train queries is held out to choose
how much to trust the reranker: the final score is ``beta * minmax(cross-encoder) + (1 - beta)
* minmax(first stage)`` on the reranked head, with ``beta`` picked by nDCG@10 on those held-out
train queries (beta = 0 would say the reranker does not help). The test split is never read.

The output folder is a sentence-transformers CrossEncoder plus ``textlatent_reranker.json``
(beta, how many candidates to rerank, what was done).
"""

from __future__ import annotations

import contextlib
import json
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from textlatent.errors import InvalidInputError, NotFoundError
from textlatent.models import resolve_device, resolve_model_path, set_offline_defaults
from textlatent.training import time_budget

CONFIG_FILE = "textlatent_reranker.json"
BETAS = (0.0, 0.25, 0.5, 0.75, 1.0)


def _minmax(x: np.ndarray) -> np.ndarray:
    if len(x) == 0:
        return x
    lo, hi = float(x.min()), float(x.max())
    return np.ones_like(x) if hi == lo else (x - lo) / (hi - lo)


def blend(ce: np.ndarray, first: np.ndarray, beta: float) -> np.ndarray:
    """``beta * minmax(ce) + (1 - beta) * minmax(first)``: the reranked order's scores."""
    return beta * _minmax(np.asarray(ce, dtype=np.float64)) + (1 - beta) * _minmax(np.asarray(first, dtype=np.float64))


class Reranker:
    """A trained cross-encoder folder: ``rerank(query, [(id, text, first_stage_score)])``."""

    def __init__(self, path: str | Path, *, device: str = "auto", batch_size: int = 32) -> None:
        set_offline_defaults()
        from sentence_transformers.cross_encoder import CrossEncoder

        self.path = Path(path).expanduser()
        if not (self.path / "config.json").is_file():
            raise NotFoundError(f"reranker folder {str(self.path)!r} has no config.json; train one with "
                                "`textlatent rerank train`", param="rerank")
        try:
            meta = json.loads((self.path / CONFIG_FILE).read_text()) if (self.path / CONFIG_FILE).is_file() else {}
            self.beta = float(meta.get("beta", 1.0))
            self.top_n = int(meta.get("top_n", 10))
            architectures = json.loads((self.path / "config.json").read_text()).get("architectures") or []
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            raise InvalidInputError(f"{str(self.path)!r} is not a readable reranker folder ({type(exc).__name__}: "
                                    f"{str(exc)[:200]})", param="rerank") from exc
        # A bi-encoder folder would load with a randomly initialised classifier and rerank by noise.
        if not any(str(a).endswith("ForSequenceClassification") for a in architectures):
            raise InvalidInputError(f"{str(self.path)!r} is not a cross-encoder (its config.json names "
                                    f"{architectures or 'no architecture'}, not a *ForSequenceClassification "
                                    "model); train one with `textlatent rerank train`", param="rerank")
        self.name = self.path.name
        self.batch_size = batch_size
        try:
            self.model = CrossEncoder(str(self.path), device=resolve_device(device), local_files_only=True)
        except (ValueError, OSError, KeyError) as exc:
            raise InvalidInputError(f"{str(self.path)!r} could not be loaded as a cross-encoder "
                                    f"({type(exc).__name__}: {str(exc)[:200]})", param="rerank") from exc

    def scores(self, query: str, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros(0, dtype=np.float32)
        out = self.model.predict([(query, t) for t in texts], batch_size=self.batch_size, show_progress_bar=False)
        return np.asarray(out, dtype=np.float32).reshape(-1)

    def rerank(self, query: str, candidates: Sequence[tuple[str, str, float]]) -> list[tuple[str, float]]:
        """Candidates ``(id, text, first-stage score)`` → ``(id, blended score)``, best first."""
        if not candidates:
            return []
        ce = self.scores(query, [c[1] for c in candidates])
        final = blend(ce, np.array([c[2] for c in candidates]), self.beta)
        order = np.argsort(-final, kind="stable")
        return [(candidates[i][0], float(final[i])) for i in order]


# --------------------------------------------------------------------------- training


@dataclass
class RerankTrainResult:
    out: str
    dataset: str
    base_model: str
    train_queries: int
    heldout_queries: int
    train_pairs: int
    negatives_per_query: int
    steps: int
    epochs: float
    seconds: float
    device: str
    beta: float
    top_n: int
    heldout_ndcg10: dict[str, float] = field(default_factory=dict)  # first stage / blends, on held-out train queries
    seed: int = 0
    heldout_query_ids: list[str] = field(default_factory=list)  # so the choice of beta can be checked again


def _split(query_ids: Any, fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """``(held-out, training)`` train query ids: a seeded shuffle, so it can be redone exactly."""
    qids = sorted(query_ids)
    random.Random(seed).shuffle(qids)
    n_held = max(1, round(len(qids) * fraction))
    return sorted(qids[:n_held]), sorted(qids[n_held:])


def recalibrate(path: str | Path, *, data_dir: str | Path = "../shared/data", device: str = "auto",
                model: str | None = None) -> dict[str, Any]:
    """Choose beta again for the *current* first stage on the reranker's own held-out train queries.

    The blend weight depends on the first stage's scores; when the default fusion or the served
    encoder changes, the weight chosen at training time no longer fits. ``model`` is the first
    stage's encoder (the one a server is set to, ``TEXTLATENT_MODEL``; None: the bundled MiniLM).
    Updates ``textlatent_reranker.json``.
    """
    from textlatent.encoder import Encoder
    from textlatent.eval import load_beir

    path = Path(path)
    try:
        meta = json.loads((path / CONFIG_FILE).read_text())
        dataset, heldout = meta["dataset"], meta["heldout_queries"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InvalidInputError(f"{str(path)!r} is not a readable reranker folder ({CONFIG_FILE}: "
                                f"{type(exc).__name__}: {exc})", param="rerank") from exc
    data = load_beir(data_dir, dataset, "train")
    held = meta.get("heldout_query_ids") or _split(data.queries, heldout / len(data.queries),
                                                    meta.get("seed", 13))[0]
    if len(held) != heldout:
        raise InvalidInputError("cannot rebuild the held-out split of this reranker", param="rerank")
    reranker = Reranker(path, device=device)
    first = _first_stage(Encoder(model, device=resolve_device(device)), data, held, max(30, reranker.top_n))
    beta, report = select_beta(reranker.model, data, held, first, reranker.top_n)
    meta.update(beta=beta, heldout_ndcg10=report, heldout_query_ids=held,
                recalibrated={"beta_before": reranker.beta, "fusion": "default of this version",
                              "first_stage": model or "bundled all-MiniLM-L6-v2"})
    (path / CONFIG_FILE).write_text(json.dumps(meta, indent=2))
    return meta


def select_beta(
    model: Any, data: Any, query_ids: Sequence[str], first: dict[str, dict[str, float]], top_n: int
) -> tuple[float, dict[str, float]]:
    """The blend weight with the best nDCG@10 on ``query_ids`` (held-out *train* queries), given
    their first-stage runs; ``model`` is a CrossEncoder. Returns ``(beta, {"beta=b": nDCG@10})``."""
    from textlatent.eval.metrics import retrieval_metrics

    doc_ids, doc_texts = data.corpus_texts()
    text_of = dict(zip(doc_ids, doc_texts, strict=True))
    ce_scores: dict[str, np.ndarray] = {}
    for q in query_ids:
        head = list(first[q])[:top_n]
        pairs = [(data.queries[q], text_of[d]) for d in head]
        ce_scores[q] = np.asarray(model.predict(pairs, batch_size=32, show_progress_bar=False) if pairs else [],
                                  dtype=np.float32).reshape(-1)
    report: dict[str, float] = {}
    best_beta, best = 0.0, -1.0
    for beta in BETAS:
        run: dict[str, dict[str, float]] = {}
        for q in query_ids:
            order = list(first[q])
            head = order[:top_n]
            final = blend(ce_scores[q], np.array([first[q][d] for d in head]), beta)
            ranked = [head[i] for i in np.argsort(-final, kind="stable")] + order[top_n:]
            run[q] = {d: float(len(ranked) - r) for r, d in enumerate(ranked)}
        score = retrieval_metrics({q: data.qrels[q] for q in query_ids}, run, ndcg_at=(10,), recall_at=(100,))
        report[f"beta={beta}"] = round(score["ndcg@10"], 5)
        if score["ndcg@10"] > best + 1e-9:
            best_beta, best = beta, score["ndcg@10"]
    return best_beta, report


def _first_stage(encoder: Any, data: Any, query_ids: Sequence[str], top_k: int) -> dict[str, dict[str, float]]:
    """Our hybrid retriever (BM25 + dense, default fusion) on ``query_ids``: the candidates to learn on."""
    from textlatent.cache import cached_embeddings
    from textlatent.eval.tasks import bm25_run, dense_run, encode_all, fuse_runs
    from textlatent.retrieval.bm25 import BM25Index

    doc_ids, doc_texts = data.corpus_texts()
    corpus_emb = cached_embeddings(encoder, doc_ids, doc_texts,
                                   lambda ts: encode_all(encoder, ts, show_progress=True))
    texts = [data.queries[q] for q in query_ids]
    lexical = bm25_run(query_ids, texts, BM25Index.build(doc_ids, doc_texts), top_k=top_k)
    dense = dense_run(query_ids, encode_all(encoder, texts), doc_ids, corpus_emb, top_k=top_k)
    return fuse_runs(lexical, dense, top_k=top_k)


def train_reranker(
    out: str | Path,
    *,
    dataset: str = "scifact",
    data_dir: str | Path = "../shared/data",
    model: str | None = None,
    epochs: float = 1.0,
    negatives: int = 3,
    mine_top: int = 30,
    top_n: int = 10,
    heldout_fraction: float = 0.1,
    batch_size: int = 16,
    lr: float = 3e-5,
    max_length: int = 128,
    max_steps: int | None = None,
    max_minutes: float | None = None,
    device: str = "auto",
    seed: int = 13,
) -> RerankTrainResult:
    """Train a cross-encoder on ``dataset``'s train qrels and save it to ``out``."""
    set_offline_defaults()
    if not 0 < heldout_fraction < 0.5:
        raise InvalidInputError("heldout fraction must be in (0, 0.5)", param="heldout_fraction")
    if negatives < 1 or mine_top <= negatives:
        raise InvalidInputError("need 1 <= negatives < mine_top", param="negatives")
    from textlatent.encoder import Encoder
    from textlatent.eval import load_beir

    out = Path(out)
    data = load_beir(data_dir, dataset, "train")  # train qrels only: the test split is never read
    dev = resolve_device(device)
    rng = random.Random(seed)
    held, train_q = _split(data.queries, heldout_fraction, seed)
    qids = held + train_q

    encoder = Encoder(model, device=dev)
    candidates = _first_stage(encoder, data, qids, max(mine_top, top_n))
    doc_ids, doc_texts = data.corpus_texts()
    text_of = dict(zip(doc_ids, doc_texts, strict=True))

    rows: dict[str, list[Any]] = {"query": [], "passage": [], "label": []}
    for q in train_q:
        positives = [d for d, rel in data.qrels[q].items() if rel > 0 and d in text_of]
        pool = [d for d in list(candidates[q])[:mine_top] if d not in data.qrels[q]]
        for d in positives:
            rows["query"].append(data.queries[q]); rows["passage"].append(text_of[d]); rows["label"].append(1.0)  # noqa: E702
        for d in rng.sample(pool, min(negatives, len(pool))):
            rows["query"].append(data.queries[q]); rows["passage"].append(text_of[d]); rows["label"].append(0.0)  # noqa: E702

    import torch
    from datasets import Dataset
    from sentence_transformers.cross_encoder import (
        CrossEncoder,
        CrossEncoderTrainer,
        CrossEncoderTrainingArguments,
    )
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    base = resolve_model_path(model)
    ce = CrossEncoder(str(base), num_labels=1, max_length=max_length, device=dev, local_files_only=True)
    train_ds = Dataset.from_dict(rows).shuffle(seed=seed)
    pos = sum(rows["label"])
    loss = BinaryCrossEntropyLoss(ce, pos_weight=torch.tensor((len(rows["label"]) - pos) / max(pos, 1)))
    cuda = dev.startswith("cuda")
    args = CrossEncoderTrainingArguments(
        output_dir=str(out / "checkpoints"), num_train_epochs=epochs, max_steps=max_steps or -1,
        per_device_train_batch_size=batch_size, learning_rate=lr, warmup_ratio=0.1, weight_decay=0.01,
        seed=seed, data_seed=seed, bf16=cuda, use_cpu=not cuda, eval_strategy="no", save_strategy="no",
        logging_steps=10, logging_first_step=True, report_to="none", dataloader_num_workers=0,
    )
    trainer = CrossEncoderTrainer(model=ce, args=args, train_dataset=train_ds, loss=loss,
                                  callbacks=[time_budget(max_minutes, evaluate=False)] if max_minutes else None)
    start = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # the trainer prints logs; stdout is for results
        trainer.train()
    seconds = time.perf_counter() - start

    best_beta, report = select_beta(ce, data, held, {q: candidates[q] for q in held}, top_n)
    ce.save(str(out))
    import shutil

    shutil.rmtree(out / "checkpoints", ignore_errors=True)
    result = RerankTrainResult(
        out=str(out), dataset=dataset, base_model=str(base), train_queries=len(train_q), heldout_queries=len(held),
        train_pairs=len(rows["label"]), negatives_per_query=negatives, steps=int(trainer.state.global_step),
        epochs=float(trainer.state.epoch or 0.0), seconds=round(seconds, 1), device=dev, beta=best_beta,
        top_n=top_n, heldout_ndcg10=report, seed=seed, heldout_query_ids=held,
    )
    (out / CONFIG_FILE).write_text(json.dumps(asdict(result), indent=2))
    return result
