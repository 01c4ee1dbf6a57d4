"""Fine-tuning the sentence encoder with sentence-transformers' trainer.

Two recipes, both selecting on a dev split and never reading a test split:

* ``finetune_sts``: CoSENT (or AnglE / cosine) loss on STS-B train pairs, model selection by
  Spearman on STS-B dev.
* ``finetune_retrieval``: MultipleNegativesRanking loss on a BEIR dataset's train qrels with
  hard negatives mined by the starting model; a fixed budget with no model selection
  (BEIR SciFact has no dev split, and the test split is only for ``eval beir``).

The output folder is a plain sentence-transformers model: ``Encoder(DIR)``, ``--model DIR``
and ``TEXTLATENT_MODEL=DIR`` load it.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from textlatent.errors import InvalidInputError
from textlatent.models import resolve_device, resolve_model_path, set_offline_defaults
from textlatent.text import join_title

LOSSES = ("cosent", "angle", "cosine")


@dataclass
class FinetuneResult:
    out: str
    base_model: str
    recipe: str
    train_examples: int
    steps: int
    epochs: float
    seconds: float
    device: str
    selection_metric: str
    selection_score: float | None
    seed: int
    loss_history: list[tuple[int, float]] = field(default_factory=list)  # (step, training loss)


def _seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _training_args(
    out: Path, *, epochs: float, batch_size: int, lr: float, seed: int, device: str, max_steps: int | None,
    metric: str | None, eval_steps: int | None, no_duplicates: bool = False,
) -> Any:
    """Trainer arguments; ``metric=None`` trains a fixed budget with no evaluation or checkpoints."""
    from sentence_transformers import SentenceTransformerTrainingArguments
    from sentence_transformers.training_args import BatchSamplers

    cuda = device.startswith("cuda")
    strategy = "no" if metric is None else "steps" if eval_steps else "epoch"
    return SentenceTransformerTrainingArguments(
        output_dir=str(out / "checkpoints"),
        num_train_epochs=epochs,
        max_steps=max_steps if max_steps else -1,
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=max(batch_size, 32),
        learning_rate=lr,
        warmup_ratio=0.1,
        weight_decay=0.01,
        seed=seed,
        data_seed=seed,
        bf16=cuda,
        use_cpu=not cuda,
        eval_strategy=strategy,
        save_strategy=strategy,
        eval_steps=eval_steps,
        save_steps=eval_steps or 500,  # unused unless strategy is "steps", where eval_steps is set
        save_total_limit=2,
        load_best_model_at_end=metric is not None,
        metric_for_best_model=metric,
        greater_is_better=True,
        logging_steps=1 if max_steps and max_steps <= 50 else 10,
        logging_first_step=True,
        report_to="none",
        disable_tqdm=False,
        dataloader_num_workers=0,
        batch_sampler=BatchSamplers.NO_DUPLICATES if no_duplicates else BatchSamplers.BATCH_SAMPLER,
    )


def _mining_cache(model: str | None) -> Path:
    """Where ``mine_hard_negatives`` keeps its query and corpus embeddings. sentence-transformers
    keys them by the model's *name*, so the folder carries our hash of the weights: a fine-tuned
    model saved under the same name can never be served the base model's vectors."""
    from textlatent.cache import cache_root, model_fingerprint

    return cache_root() / "mining" / model_fingerprint(resolve_model_path(model))


def _seed_mining_cache(folder: Path, st_model: Any, model: str | None, data: Any, corpus: list[str],
                       positives: list[str]) -> None:
    """Put the starting model's corpus embeddings, from textlatent's embedding cache (where
    ``eval beir`` left them), where ``mine_hard_negatives`` looks, so mining does not re-encode
    thousands of abstracts (about 10 minutes for SciFact on 2 cores).

    This follows sentence-transformers' file naming (sha256 of the model name, prompts and its
    de-duplicated corpus); should that scheme change, the file is simply not found and mining
    encodes as before. ``folder`` is keyed by our hash of the weights, so it cannot go stale."""
    import hashlib

    import numpy as np

    from textlatent.cache import cached_embeddings
    from textlatent.encoder import Encoder
    from textlatent.eval.tasks import encode_all

    st_corpus = list(dict.fromkeys(corpus + positives))  # what mine_hard_negatives embeds, in its order
    name = st_model.model_card_data.base_model or ""
    digest = hashlib.sha256(repr((name, None, None, st_corpus)).encode(), usedforsecurity=False).hexdigest()
    target = folder / f"corpus_embeddings_{digest}.npy"
    if target.is_file():
        return
    encoder = Encoder(model)
    ids, texts = data.corpus_texts()
    if any(not t.strip() for t in texts):
        return  # encode_all gives blanks a zero vector; leave those corpora to sentence-transformers
    emb = cached_embeddings(encoder, ids, texts, lambda t: encode_all(encoder, t, show_progress=True))
    row = {t: i for i, t in enumerate(texts)}
    if any(t not in row for t in st_corpus):
        return
    folder.mkdir(parents=True, exist_ok=True)
    np.save(target, emb[[row[t] for t in st_corpus]])


def _load_model(model: str | None, device: str) -> Any:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(resolve_model_path(model)), device=device, local_files_only=True)


def _train_and_save(trainer: Any, model: Any, out: Path, **fields: Any) -> FinetuneResult:
    """Train, save the model to ``out`` (not the checkpoints) and write what was done beside it."""
    import contextlib
    import shutil
    import sys

    start = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # the trainer prints its logs; stdout is for results
        trainer.train()
    result = FinetuneResult(out=str(out), steps=0, epochs=0.0, seconds=time.perf_counter() - start,
                            selection_score=None, **fields)
    model.save(str(out))
    shutil.rmtree(out / "checkpoints", ignore_errors=True)
    state = trainer.state
    result.steps = int(state.global_step)
    result.epochs = float(state.epoch or 0.0)
    result.selection_score = None if state.best_metric is None else float(state.best_metric)
    result.loss_history = [(int(e["step"]), float(e["loss"])) for e in state.log_history if "loss" in e]
    (out / "textlatent_finetune.json").write_text(json.dumps(asdict(result), indent=2))
    return result


def finetune_sts(
    out: str | Path,
    *,
    data_dir: str | Path = "../shared/data",
    model: str | None = None,
    loss: str = "cosent",
    epochs: float = 2.0,
    batch_size: int = 16,
    lr: float = 2e-5,
    seed: int = 42,
    device: str = "auto",
    max_steps: int | None = None,
    max_train: int | None = None,
) -> FinetuneResult:
    """Fine-tune on STS-B train, select the best epoch by Spearman on STS-B dev."""
    set_offline_defaults()
    if loss not in LOSSES:
        raise InvalidInputError(f"loss must be one of {', '.join(LOSSES)}", param="loss")
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer
    from sentence_transformers.evaluation import EmbeddingSimilarityEvaluator
    from sentence_transformers.sentence_transformer import losses

    from textlatent.eval.loaders import load_stsb

    out = Path(out)
    dev_name = resolve_device(device)
    _seed_everything(seed)
    train = load_stsb(Path(data_dir), "train")
    dev = load_stsb(Path(data_dir), "dev")
    n = min(len(train), max_train) if max_train else len(train)
    train_ds = Dataset.from_dict({
        "sentence1": train.sentences1[:n],
        "sentence2": train.sentences2[:n],
        "score": [s / 5.0 for s in train.scores[:n]],
    })
    st_model = _load_model(model, dev_name)
    loss_fn = {
        "cosent": losses.CoSENTLoss,
        "angle": losses.AnglELoss,
        "cosine": losses.CosineSimilarityLoss,
    }[loss](st_model)
    evaluator = EmbeddingSimilarityEvaluator(
        dev.sentences1, dev.sentences2, [s / 5.0 for s in dev.scores], name="sts-dev",
    )
    args = _training_args(
        out, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, device=dev_name, max_steps=max_steps,
        metric="eval_sts-dev_spearman_cosine", eval_steps=max_steps,
    )
    trainer = SentenceTransformerTrainer(
        model=st_model, args=args, train_dataset=train_ds, loss=loss_fn, evaluator=evaluator
    )
    return _train_and_save(
        trainer, st_model, out, base_model=str(model or "all-MiniLM-L6-v2"), recipe=f"sts/{loss}",
        train_examples=len(train_ds), device=dev_name, selection_metric="sts-dev spearman_cosine", seed=seed,
    )


def finetune_retrieval(
    out: str | Path,
    *,
    dataset: str = "scifact",
    data_dir: str | Path = "../shared/data",
    model: str | None = None,
    epochs: float = 1.0,
    batch_size: int = 16,
    lr: float = 2e-5,
    negatives: int = 1,
    range_max: int = 100,
    max_seq_length: int | None = None,
    seed: int = 42,
    device: str = "auto",
    max_steps: int | None = None,
    max_train: int | None = None,
    dev_fraction: float = 0.0,
) -> FinetuneResult:
    """MultipleNegativesRanking loss on ``dataset``'s train qrels, hard negatives mined by the
    starting model among its top ``range_max`` (any document judged relevant to the query is
    never taken as a negative, nor one scoring within 5 % of the positive). Pairs for which no
    such negative exists still train, with in-batch negatives only.

    ``dev_fraction`` > 0 holds that share of the train queries out of training and keeps the
    epoch with the best nDCG@10 on them (whole corpus; costs one corpus encoding per epoch).
    With 0, a fixed budget and no selection. The test split is read by ``eval beir`` only."""
    set_offline_defaults()
    from datasets import Dataset, DatasetDict
    from sentence_transformers import SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer import losses
    from sentence_transformers.util import mine_hard_negatives

    from textlatent.eval.loaders import load_beir

    out = Path(out)
    dev_name = resolve_device(device)
    _seed_everything(seed)
    data = load_beir(Path(data_dir), dataset, "train")

    def doc_text(doc_id: str) -> str:
        doc = data.corpus[doc_id]
        return join_title(doc.get("title"), doc.get("text"))

    if not 0.0 <= dev_fraction < 1.0:
        raise InvalidInputError("dev_fraction must be in [0, 1)", param="dev_fraction")
    judged = sorted(q for q in data.qrels if q in data.queries)
    dev_qids: set[str] = set()
    if dev_fraction > 0:
        shuffled = judged[:]
        random.Random(seed).shuffle(shuffled)
        dev_qids = set(shuffled[: max(1, round(dev_fraction * len(judged)))])
    anchors: list[str] = []
    positives: list[str] = []
    for qid, rels in sorted(data.qrels.items()):
        if qid in dev_qids:
            continue
        for doc_id, rel in sorted(rels.items()):
            if rel > 0 and doc_id in data.corpus and qid in data.queries:
                anchors.append(data.queries[qid])
                positives.append(doc_text(doc_id))
    if max_train:
        anchors, positives = anchors[:max_train], positives[:max_train]
    if not anchors:
        raise InvalidInputError(f"{dataset}: no train pairs found in qrels/train.tsv", param="dataset")
    st_model = _load_model(model, dev_name)
    if max_seq_length:
        st_model.max_seq_length = max_seq_length
    corpus_ids = sorted(data.corpus)
    corpus_texts = [doc_text(d) for d in corpus_ids]
    relevant_texts = {
        data.queries[qid]: {doc_text(d) for d, r in rels.items() if r > 0 and d in data.corpus}
        for qid, rels in data.qrels.items() if qid in data.queries
    }
    pairs = Dataset.from_dict({"anchor": anchors, "positive": positives})
    mining_cache = _mining_cache(model)
    _seed_mining_cache(mining_cache, st_model, model, data, corpus_texts, positives)
    mined = mine_hard_negatives(
        pairs, st_model, corpus=corpus_texts, range_max=range_max, num_negatives=negatives, relative_margin=0.05,
        sampling_strategy="top", output_format="n-tuple", batch_size=64, use_faiss=False,
        cache_folder=str(mining_cache),
    )
    neg_cols = [c for c in mined.column_names if c.startswith("negative")]
    mined = mined.filter(
        lambda row: not any(row[c] in relevant_texts.get(row["anchor"], ()) for c in neg_cols)
    )
    # A pair for which no negative passed the margin is the hard kind (the base model ranks
    # 30+ documents close to its positive); dropping it would drop 17 % of SciFact's train pairs.
    # It trains with in-batch negatives only, as a second dataset under the same loss.
    with_negative = set(zip(mined["anchor"], mined["positive"], strict=True))
    leftover = [(a, p) for a, p in zip(anchors, positives, strict=True) if (a, p) not in with_negative]
    loss = losses.MultipleNegativesRankingLoss(st_model)
    train_data: Any = mined
    loss_fn: Any = loss
    if len(leftover) < batch_size:
        leftover = []  # too few for one batch of in-batch negatives: these few are dropped
    if leftover:
        train_data = DatasetDict({
            "hard": mined,
            "pairs": Dataset.from_dict({"anchor": [a for a, _ in leftover], "positive": [p for _, p in leftover]}),
        })
        loss_fn = {"hard": loss, "pairs": loss}
    evaluator = None
    if dev_qids:
        from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

        evaluator = InformationRetrievalEvaluator(
            queries={q: data.queries[q] for q in sorted(dev_qids)},
            corpus=dict(zip(corpus_ids, corpus_texts, strict=True)),
            relevant_docs={q: {d for d, r in data.qrels[q].items() if r > 0} for q in sorted(dev_qids)},
            name="dev", ndcg_at_k=[10], mrr_at_k=[10], accuracy_at_k=[10], precision_recall_at_k=[100],
            map_at_k=[100], batch_size=64, write_csv=False,
        )
    metric = "eval_dev_cosine_ndcg@10" if evaluator is not None else None
    args = _training_args(
        out, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, device=dev_name, max_steps=max_steps,
        metric=metric, eval_steps=max_steps if metric else None, no_duplicates=True,
    )
    trainer = SentenceTransformerTrainer(
        model=st_model, args=args, train_dataset=train_data, loss=loss_fn, evaluator=evaluator,
    )
    selection = f"nDCG@10 on {len(dev_qids)} held-out train queries" if dev_qids else "none (fixed budget)"
    return _train_and_save(
        trainer, st_model, out, base_model=str(model or "all-MiniLM-L6-v2"), recipe=f"retrieval/{dataset}/mnrl",
        train_examples=len(mined) + len(leftover), device=dev_name, selection_metric=selection, seed=seed,
    )
