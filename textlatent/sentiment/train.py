"""Training and evaluation of the sentiment heads on SST-2 (train split; selection on dev).

Never the test split: Kim's labelled SST-2 test is only read by :func:`evaluate_sentiment`.
"""

from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from textlatent.errors import InvalidInputError
from textlatent.sentiment.heads import (
    BUNDLED_HEAD,
    LABELS,
    FinetunedSentiment,
    LinearSentiment,
    accuracy_f1,
    fit_linear_head,
    fit_temperature,
    linear_parameters,
    read_config,
    write_config,
)
from textlatent.training import Clock, budget_lr_factor, time_budget

EVAL_DATASETS = {"sst2-dev": ("dev", "glue"), "sst2-test": ("test", "kim")}


def _prepare_out(out: str | Path, *, create: bool = True) -> Path:
    path = Path(out).expanduser()
    if path.exists() and not path.is_dir():
        raise InvalidInputError(f"--out {path} exists and is not a folder", param="out")
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def train_linear(
    out: str | Path,
    data_dir: str | Path,
    *,
    model: str | None = None,
    device: str = "auto",
    batch_size: int = 64,
    seed: int = 0,
    name: str | None = None,
    backend: str = "auto",
    normalize: str | None = "treebank",
    threads: int | None = None,
) -> dict[str, Any]:
    """Logistic regression on frozen embeddings of SST-2 train; C and temperature chosen on dev.

    On a CPU the embeddings come from the onnxruntime export (same vectors to ~1e-6, faster).
    ``normalize`` names the text normaliser (``textlatent.text.NORMALIZERS``) applied before
    encoding, here and by the head whenever it scores text: SST-2 is Penn-Treebank tokenised,
    and MiniLM reads ordinary text better (+0.2 dev accuracy, docs/benchmarks.md).
    """
    from textlatent.cache import cached_embeddings
    from textlatent.eval.loaders import load_sst2
    from textlatent.models import resolve_device
    from textlatent.text import text_normalizer

    train = load_sst2(data_dir, "train", "glue")
    dev = load_sst2(data_dir, "dev", "glue")
    assert train.labels is not None and dev.labels is not None
    folder = _prepare_out(out, create=False)  # made at the first write: an interrupted encoding leaves nothing
    start = time.perf_counter()
    encoder: Any
    if backend == "onnx" or (backend == "auto" and resolve_device(device) == "cpu"):
        from textlatent.onnx_encoder import OnnxEncoder

        encoder = OnnxEncoder(model, threads=threads, batch_size=batch_size)
    else:
        from textlatent.encoder import Encoder

        encoder = Encoder(model, device=device, batch_size=batch_size, threads=threads)
    print(f"encoding {len(train):,} train and {len(dev):,} dev sentences with {encoder.model_id}", file=sys.stderr)
    def embed(texts: Any) -> np.ndarray:
        return np.asarray(encoder.encode(list(texts), show_progress=True))

    norm = text_normalizer(normalize)
    train_x = cached_embeddings(encoder, [str(i) for i in range(len(train))], [norm(t) for t in train.texts], embed)
    dev_x = cached_embeddings(encoder, [str(i) for i in range(len(dev))], [norm(t) for t in dev.texts], embed)
    fitted = fit_linear_head(train_x, np.asarray(train.labels), dev_x, np.asarray(dev.labels), seed=seed)
    config = {
        "kind": "linear",
        "name": name or folder.name,
        "labels": list(LABELS),
        "encoder": model,
        "dim": encoder.dim,
        "trained_on": "SST-2 GLUE train",
        "selected_on": "SST-2 GLUE dev",
        "normalize": normalize or "none",
        "seed": seed,
        "wall_seconds": round(time.perf_counter() - start, 1),
        **fitted,
    }
    folder.mkdir(parents=True, exist_ok=True)
    write_config(folder, config)
    head = LinearSentiment(folder, config, encoder)
    dev_metrics = accuracy_f1(head.proba_from_embeddings(dev_x), dev.labels)
    return {"out": str(folder), "kind": "linear", "C": config["C"], "temperature": config["temperature"],
            "dev": dev_metrics, "wall_seconds": config["wall_seconds"]}


@dataclass(frozen=True)
class StartingHead:
    """The linear head a mean-pooled fine-tune starts from."""

    folder: Path
    weights: np.ndarray
    bias: float


def starting_head(pooling: str, base: str | None, init_head: str | Path | None) -> StartingHead | None:
    """The linear head ``pooling`` ``mean`` starts from (``None`` for ``cls``), checked before any training:
    a linear head folder whose encoder is ``base`` (the bundled head when both are the bundled encoder)."""
    from textlatent.models import resolve_model_path
    from textlatent.sentiment.pooled import POOLINGS

    if pooling not in POOLINGS:
        raise InvalidInputError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}", param="pooling")
    if pooling == "cls":
        if init_head is not None:
            raise InvalidInputError("--init-head starts a mean-pooled classifier; --pooling cls starts from a fresh "
                                    "one", param="init_head")
        return None
    folder = BUNDLED_HEAD if init_head is None else Path(init_head).expanduser()
    config = read_config(folder)
    if config["kind"] != "linear":
        raise InvalidInputError(f"--init-head {folder} is a {config['kind']} head; give a linear one",
                                param="init_head")
    head_encoder, base_path = resolve_model_path(config.get("encoder")), resolve_model_path(base)
    if head_encoder.resolve() != base_path.resolve():
        hint = ("train one with `textlatent sentiment train --head linear --base BASE --out DIR` and pass "
                "--init-head DIR, or use --pooling cls" if init_head is None else "give a head of the same encoder")
        raise InvalidInputError(f"the linear head {folder} was trained on the encoder {head_encoder}, not on the "
                                f"base {base_path}: {hint}", param="init_head")
    weights, bias, _ = linear_parameters(folder, config, param="init_head")
    return StartingHead(folder, weights, bias)


def train_finetuned(
    out: str | Path,
    data_dir: str | Path,
    *,
    base: str | None = None,
    epochs: float = 3.0,
    max_steps: int = -1,
    max_minutes: float | None = None,
    batch_size: int = 32,
    learning_rate: float = 8e-5,
    max_length: int = 66,
    eval_steps: int = 500,
    warmup_ratio: float = 0.06,
    weight_decay: float = 0.01,
    seed: int = 42,
    device: str = "auto",
    train_limit: int | None = None,
    name: str | None = None,
    group_by_length: bool = True,
    normalize: str | None = "treebank",
    precision: str = "auto",
    pooling: str = "mean",
    init_head: str | Path | None = None,
) -> dict[str, Any]:
    """Fine-tune the encoder with a classification head on SST-2 train; keep the best dev checkpoint.

    ``pooling`` ``mean`` (the default) classifies from the encoder's own sentence embedding and starts
    from a linear head (:mod:`textlatent.sentiment.pooled`): ``init_head``, a linear head folder for the
    same encoder, by default the bundled one when the base is the bundled encoder. ``cls`` is transformers'
    ``AutoModelForSequenceClassification`` from a fresh classifier (the head of sessions 1-19).

    ``max_minutes`` stops training at a wall-clock budget (then evaluates and keeps the best
    checkpoint so far), which is how the CPU default stays inside its time limit.
    ``group_by_length`` batches phrases of similar length together (transformers'
    ``LengthGroupedSampler``): GLUE's train rows are mostly short phrases (median 10 tokens, a few
    of 66), so random batches are ~2.9x padding and length-grouped ones ~1.05x, which is how many
    more steps a CPU budget reaches (docs/benchmarks.md). ``normalize`` is the text normaliser
    applied to everything the head reads, in training and whenever it scores, as for the linear head.
    ``precision`` is the training arithmetic as :func:`~textlatent.models.resolve_precision` reads it:
    the default ``auto`` is bf16 autocast (weights and optimiser state stay fp32) on cuda and fp32 on a
    CPU; ``fast`` is bf16 wherever the hardware computes it natively (cuda, AVX512-BF16 or AMX CPUs);
    or ``fp32``, ``bf16``. On an AVX512-BF16 CPU a bf16 step took ~0.82x the fp32 time, and the CLI's default
    run with ``fast`` ended its 3 epochs in 21 minutes at dev 88.65 (docs/benchmarks.md): faster, but no
    better a head than fp32's, so a CPU trains in fp32 unless asked.
    """
    import torch
    from datasets import Dataset
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    from textlatent.eval.loaders import load_sst2
    from textlatent.models import resolve_device, resolve_model_path, resolve_precision
    from textlatent.text import text_normalizer

    norm = text_normalizer(normalize)
    dev_type = resolve_device(device)
    arithmetic = resolve_precision(precision, dev_type)  # a bad value is refused before --out is made
    start_head = starting_head(pooling, base, init_head)  # so is a missing or mismatched linear head
    train = load_sst2(data_dir, "train", "glue")
    dev = load_sst2(data_dir, "dev", "glue")
    assert train.labels is not None and dev.labels is not None
    folder = _prepare_out(out)
    start = time.perf_counter()
    set_seed(seed)
    base_path = resolve_model_path(base)
    tokenizer = AutoTokenizer.from_pretrained(str(base_path), local_files_only=True)
    from textlatent.sentiment.pooled import MeanPoolClassifier

    model: Any
    if start_head is None:
        model = AutoModelForSequenceClassification.from_pretrained(
            str(base_path), num_labels=2, id2label=dict(enumerate(LABELS)),
            label2id={label: i for i, label in enumerate(LABELS)}, local_files_only=True,
        )
    else:
        model = MeanPoolClassifier.from_encoder(base_path)
        model.start_from_linear_head(start_head.weights, start_head.bias)

    def dataset(texts: list[str], labels: list[int]) -> Any:
        ds = Dataset.from_dict({"text": [norm(t) for t in texts], "label": labels})
        return ds.map(lambda b: tokenizer(b["text"], truncation=True, max_length=max_length), batched=True,
                      remove_columns=["text"])

    train_texts, train_labels = train.texts, train.labels
    if train_limit:
        train_texts, train_labels = train_texts[:train_limit], train_labels[:train_limit]
    train_ds, dev_ds = dataset(train_texts, train_labels), dataset(dev.texts, dev.labels)

    def metrics(pred: Any) -> dict[str, float]:
        logits, labels = pred
        return {"accuracy": float((np.argmax(logits, axis=1) == labels).mean())}

    clock = Clock()
    budget = time_budget(max_minutes, clock)
    args = TrainingArguments(
        output_dir=str(folder / "checkpoints"),
        num_train_epochs=epochs,
        max_steps=max_steps,
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=128,
        learning_rate=learning_rate,
        weight_decay=weight_decay,
        eval_strategy="steps",
        eval_steps=eval_steps,
        save_strategy="steps",
        save_steps=eval_steps,
        save_total_limit=2,
        load_best_model_at_end=True,
        metric_for_best_model="accuracy",
        greater_is_better=True,
        logging_steps=max(1, min(50, eval_steps // 5)),
        bf16=arithmetic == "bf16",
        use_cpu=not dev_type.startswith("cuda"),
        seed=seed,
        data_seed=seed,
        train_sampling_strategy="group_by_length" if group_by_length else "random",
        report_to=[],
        dataloader_num_workers=0,
        disable_tqdm=False,
    )

    class BudgetTrainer(Trainer):  # type: ignore[misc]
        """The Trainer with :func:`budget_lr_factor` as its schedule."""

        def create_scheduler(self, num_training_steps: int, optimizer: Any = None) -> Any:
            if self.lr_scheduler is None:
                budget_s = None if max_minutes is None else max_minutes * 60
                opt: Any = optimizer if optimizer is not None else self.optimizer
                self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(
                    opt,
                    lambda step: budget_lr_factor(step, elapsed=clock.elapsed(), budget_s=budget_s,
                                                  total_steps=num_training_steps, warmup_ratio=warmup_ratio))
                self._created_lr_scheduler = True
            return self.lr_scheduler

    trainer = BudgetTrainer(
        model=model, args=args, train_dataset=train_ds, eval_dataset=dev_ds,
        data_collator=DataCollatorWithPadding(tokenizer), compute_metrics=metrics, callbacks=[budget],
    )
    with contextlib.redirect_stdout(sys.stderr):  # the trainer prints its logs; stdout is for results
        train_output = trainer.train()
        # dev evaluations inside train_runtime (the final evaluate() below is not)
        eval_seconds = sum(float(e.get("eval_runtime", 0.0)) for e in trainer.state.log_history)
        best_dev = trainer.evaluate()
    if start_head is None:
        trainer.save_model(str(folder))
    else:
        best = trainer.model  # the best checkpoint's weights: the trainer loaded them back into it
        assert isinstance(best, MeanPoolClassifier)
        best.save(folder)
    tokenizer.save_pretrained(str(folder))
    import shutil

    shutil.rmtree(folder / "checkpoints", ignore_errors=True)  # the kept weights are saved above
    config: dict[str, Any] = {
        "kind": "finetune",
        "name": name or folder.name,
        "labels": list(LABELS),
        "base": base,
        "pooling": pooling,
        "init_head": None if start_head is None else str(start_head.folder),
        "max_length": max_length,
        "temperature": 1.0,
        "trained_on": "SST-2 GLUE train" + (f" (first {train_limit})" if train_limit else ""),
        "selected_on": "SST-2 GLUE dev",
        "seed": seed,
        "epochs": epochs,
        "max_steps": max_steps,
        "steps": int(trainer.state.global_step),
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "stopped_by_time_budget": bool(budget.stopped_early),
        "learning_rate": learning_rate,
        "batch_size": batch_size,
        "group_by_length": group_by_length,
        "normalize": normalize or "none",
        "train_seconds": round(float(train_output.metrics.get("train_runtime", float("nan"))), 1),
        "eval_seconds": round(eval_seconds, 1),
        "device": dev_type,
        "precision": arithmetic,
        "torch_threads": torch.get_num_threads(),
    }
    write_config(folder, config)
    head = FinetunedSentiment(folder, config, device=dev_type)
    margins = head.logit_margin(dev.texts)
    config["temperature"] = fit_temperature(margins, np.asarray(dev.labels))
    head.temperature = config["temperature"]
    dev_metrics = accuracy_f1(head.positive_proba(dev.texts), dev.labels)
    # the saved head as it scores (fp32 on a CPU); under bf16 training the trainer's own evaluation,
    # which chose the checkpoint, ran in bf16 and can differ by a sentence or two
    config["dev_accuracy"] = float(dev_metrics["accuracy"])
    config["dev_accuracy_at_selection"] = float(best_dev.get("eval_accuracy", float("nan")))
    config["wall_seconds"] = round(time.perf_counter() - start, 1)
    write_config(folder, config)
    losses = [float(e["loss"]) for e in trainer.state.log_history if "loss" in e]
    return {"out": str(folder), "kind": "finetune", "steps": config["steps"], "losses": losses,
            "train_seconds": config["train_seconds"], "eval_seconds": config["eval_seconds"],
            "temperature": config["temperature"],
            "stopped_by_time_budget": config["stopped_by_time_budget"], "precision": arithmetic,
            "dev": dev_metrics,
            "wall_seconds": config["wall_seconds"]}


def evaluate_sentiment(model: Any, data_dir: str | Path, dataset: str = "sst2-dev",
                       batch_size: int | None = None) -> dict[str, Any]:
    """Accuracy, F1 and calibration error on SST-2 dev (GLUE) or test (Kim's labelled 1,821)."""
    from textlatent.eval.loaders import load_sst2

    if dataset not in EVAL_DATASETS:
        raise InvalidInputError(f"dataset must be one of {', '.join(EVAL_DATASETS)}, got {dataset!r}",
                                param="dataset")
    split, source = EVAL_DATASETS[dataset]
    data = load_sst2(data_dir, split, source)
    assert data.labels is not None
    start = time.perf_counter()
    probs = model.positive_proba(data.texts, batch_size=batch_size)
    seconds = time.perf_counter() - start
    return {"model": model.model_id, "dataset": dataset, "n": len(data), **accuracy_f1(probs, data.labels),
            "sentences_per_second": round(len(data) / seconds, 1)}
