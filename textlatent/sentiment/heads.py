"""Sentiment over the latent space: two heads, one interface.

* ``LinearSentiment``: logistic regression on frozen encoder embeddings. Seconds to train once
  the embeddings exist, a few kilobytes to store, and its weight vector *is* the sentiment
  axis of the embedding space (used to move sentences along it).
* ``FinetunedSentiment``: the encoder fine-tuned end to end with a classification head; the best
  quality. Since session 20 the classifier reads the encoder's own (mean-pooled) sentence embedding and
  starts from a linear head (:mod:`textlatent.sentiment.pooled`); older folders hold transformers'
  ``AutoModelForSequenceClassification`` (``[CLS]`` pooling) and still load.

Both predict a label and a calibrated probability: the logits are divided by a temperature
fitted on the dev split (Guo et al. 2017), which changes no label but makes ``score`` honest.
A model folder holds ``sentiment.json`` (kind, labels, temperature, provenance) plus, for the
fine-tuned head, a transformers checkpoint. The repository ships a linear head trained on
SST-2 for the bundled encoder, so ``/sentiment`` answers out of the box.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from textlatent.errors import InvalidInputError, NotFoundError
from textlatent.models import PRECISIONS
from textlatent.text import text_normalizer

log = logging.getLogger("textlatent.sentiment")

LABELS = ("negative", "positive")
CONFIG_NAME = "sentiment.json"
BUNDLED_HEAD = Path(__file__).parent.parent / "data" / "sentiment-linear"


@dataclass(frozen=True)
class Prediction:
    """``label`` and the calibrated probability of that label."""

    label: str
    score: float


class SentimentModel(Protocol):
    model_id: str

    def positive_proba(self, texts: Sequence[str], *, batch_size: int | None = None) -> np.ndarray: ...


def predictions(p_positive: np.ndarray) -> list[Prediction]:
    """Probabilities of the positive class → labelled predictions (ties go to positive)."""
    return [
        Prediction(LABELS[1], float(p)) if p >= 0.5 else Prediction(LABELS[0], float(1.0 - p)) for p in p_positive
    ]


def predict(model: SentimentModel, texts: Sequence[str], *, batch_size: int | None = None) -> list[Prediction]:
    return predictions(model.positive_proba(texts, batch_size=batch_size))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * x)), dtype=np.float64)


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """Temperature T minimising the NLL of ``sigmoid(logit / T)`` on held-out data.

    A one-dimensional convex problem in 1/T; scipy's bounded scalar minimiser solves it.
    """
    from scipy.optimize import minimize_scalar

    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)

    def nll(inv_t: float) -> float:
        s = z * inv_t
        # log(1 + exp(-s)) for y=1 and log(1 + exp(s)) for y=0, computed stably.
        return float(np.mean(np.logaddexp(0.0, -s) * y + np.logaddexp(0.0, s) * (1 - y)))

    result = minimize_scalar(nll, bounds=(1e-3, 100.0), method="bounded")
    return float(1.0 / result.x)


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    """ECE of the predicted label's probability, equal-width bins (Guo et al. 2017)."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels)
    conf = np.where(p >= 0.5, p, 1 - p)
    correct = (p >= 0.5).astype(int) == y
    edges = np.linspace(0.5, 1.0, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        mask = (conf > lo) & (conf <= hi) if lo > 0.5 else (conf >= lo) & (conf <= hi)
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - conf[mask].mean())
    return float(ece)


def model_name(folder: str | Path, config: dict[str, Any]) -> str:
    """The id a sentiment model answers with: its configured name, else its folder's name."""
    return str(config.get("name") or Path(folder).name)


def read_config(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / CONFIG_NAME
    if not path.is_file():
        raise NotFoundError(
            f"{folder} is not a sentiment model folder (no {CONFIG_NAME}); train one with "
            "`textlatent sentiment train --out DIR`",
            param="model",
        )
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"cannot read {path}: {exc}", param="model") from exc
    if not isinstance(config, dict):
        raise InvalidInputError(f"{path} is not a JSON object", param="model")
    if config.get("kind") not in ("linear", "finetune"):
        raise InvalidInputError(f"{path}: unknown sentiment model kind {config.get('kind')!r}", param="model")
    return dict(config)


def write_config(folder: str | Path, config: dict[str, Any]) -> None:
    path = Path(folder) / CONFIG_NAME
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


# --------------------------------------------------------------------------- linear head


class LinearSentiment:
    """``p(positive | x) = sigmoid((w·e(n(x)) + b) / T)``: e the encoder's normalised embedding, n the
    head's text normaliser (config ``normalize``; identity for heads saved without one)."""

    def __init__(self, folder: str | Path, config: dict[str, Any], encoder: Any) -> None:
        self.folder = Path(folder)
        self.config = config
        self.encoder = encoder
        self.weights, self.bias, self.temperature = linear_parameters(self.folder, config)
        self.model_id = model_name(self.folder, config)
        # Heads saved before normalisation existed have no key: they read text as given.
        self.normalize = text_normalizer(config.get("normalize"))
        if self.weights.shape != (encoder.dim,):
            raise InvalidInputError(
                f"sentiment head {self.folder} expects {self.weights.shape[0]}-dimensional embeddings but the "
                f"encoder {encoder.model_id} gives {encoder.dim}",
                param="model",
            )

    @property
    def axis(self) -> np.ndarray:
        """Unit vector in embedding space pointing from negative towards positive."""
        return self.weights / np.linalg.norm(self.weights)

    def logits(self, embeddings: np.ndarray) -> np.ndarray:
        return np.asarray(embeddings @ self.weights + self.bias, dtype=np.float64)

    def proba_from_embeddings(self, embeddings: np.ndarray) -> np.ndarray:
        return _sigmoid(self.logits(embeddings) / self.temperature)

    def positive_proba(self, texts: Sequence[str], *, batch_size: int | None = None) -> np.ndarray:
        if not len(texts):
            return np.zeros(0)
        return self.proba_from_embeddings(self.encoder.encode([self.normalize(t) for t in texts],
                                                              batch_size=batch_size))


def linear_parameters(folder: Path, config: dict[str, Any], *, param: str = "model") -> tuple[np.ndarray, float, float]:
    """A linear head's weights, bias and temperature from its ``sentiment.json``, or a clear error."""
    try:
        return (np.asarray(config["weights"], dtype=np.float32).reshape(-1), float(config["bias"]),
                float(config.get("temperature", 1.0)))
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInputError(f"sentiment head {folder}: {CONFIG_NAME} lacks a readable "
                                f"{exc.args[0] if isinstance(exc, KeyError) else 'weights/bias'!r} "
                                f"({type(exc).__name__})", param=param) from exc


def fit_linear_head(
    train_x: np.ndarray,
    train_y: np.ndarray,
    dev_x: np.ndarray,
    dev_y: np.ndarray,
    *,
    cs: Sequence[float] = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0),
    seed: int = 0,
) -> dict[str, Any]:
    """Logistic regression on standardised features, C chosen on dev, then a temperature fitted on dev.

    Standardising the embedding dimensions first lets one C suit every dimension (0.3-0.4
    points of SST-2 dev accuracy over raw features). The scaler is folded into the weights,
    so the stored head is still one linear map of the raw normalised embedding.
    """
    from sklearn.linear_model import LogisticRegression

    train_x = np.asarray(train_x, dtype=np.float64)
    mean = train_x.mean(axis=0)
    scale = train_x.std(axis=0)
    # MiniLM has a few dimensions that are constant up to ~1e-33; dividing by that would give
    # weights of 1e32. Such dimensions are left unscaled (as StandardScaler does for exact zeros).
    scale = np.where(scale < 1e-6 * np.median(scale), 1.0, scale)
    train_s, dev_s = (train_x - mean) / scale, (np.asarray(dev_x, dtype=np.float64) - mean) / scale
    best: dict[str, Any] | None = None
    trials = []
    for c in cs:
        clf = LogisticRegression(C=c, max_iter=3000, random_state=seed)
        clf.fit(train_s, train_y)
        acc = float((clf.predict(dev_s) == dev_y).mean())
        trials.append({"C": c, "dev_accuracy": acc})
        if best is None or acc > best["dev_accuracy"]:
            best = {"C": c, "dev_accuracy": acc, "clf": clf}
    assert best is not None
    clf = best.pop("clf")
    weights = clf.coef_[0].astype(np.float64) / scale
    bias = float(clf.intercept_[0] - weights @ mean)
    temperature = fit_temperature(dev_x @ weights + bias, dev_y)
    return {
        "weights": weights.tolist(),
        "bias": bias,
        "temperature": temperature,
        "C": best["C"],
        "dev_accuracy": best["dev_accuracy"],
        "trials": trials,
    }


# --------------------------------------------------------------------------- fine-tuned head


class FinetunedSentiment:
    """A fine-tuned sequence classifier (mean-pooled or ``[CLS]``); ``p(positive) = softmax(logits / T)[1]``."""

    def __init__(self, folder: str | Path, config: dict[str, Any], *, device: str = "auto", batch_size: int = 64,
                 max_length: int = 128, precision: str = "auto") -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from textlatent.models import resolve_device, resolve_precision

        self.folder = Path(folder)
        self.config = config
        self.model_id = model_name(self.folder, config)
        self.temperature = float(config.get("temperature", 1.0))
        self.device = resolve_device(device)
        self.batch_size = batch_size
        self.max_length = int(config.get("max_length", max_length))
        # Heads saved before normalisation existed have no key: they read text as given.
        self.normalize = text_normalizer(config.get("normalize"))
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(self.folder), local_files_only=True)
            self.pooling = str(config.get("pooling", "cls"))  # folders saved before session 20 have no key
            if self.pooling == "mean":
                from textlatent.sentiment.pooled import MeanPoolClassifier

                self.model = MeanPoolClassifier.load(self.folder)
            elif self.pooling == "cls":
                self.model = AutoModelForSequenceClassification.from_pretrained(str(self.folder),
                                                                                local_files_only=True)
            else:
                raise ValueError(f"unknown pooling {self.pooling!r} in {CONFIG_NAME}")
        except (OSError, ValueError, KeyError) as exc:  # weights or tokenizer files missing or damaged
            raise InvalidInputError(f"{str(self.folder)!r} is not a readable fine-tuned sentiment folder "
                                    f"({type(exc).__name__}: {str(exc)[:200]})", param="model") from exc
        self.model.to(self.device).eval()
        self.precision = resolve_precision(precision, self.device)  # auto: bf16 autocast on cuda only
        self._autocast = self.precision == "bf16"
        self._device_type = "cuda" if self.device.startswith("cuda") else "cpu"
        self._torch = torch

    def logit_margin(self, texts: Sequence[str], *, batch_size: int | None = None) -> np.ndarray:
        """logit(positive) − logit(negative) per text, batched in order of token count."""
        from textlatent.encoder import longest_first, token_lengths

        torch = self._torch
        size = batch_size or self.batch_size
        normalized = [self.normalize(t) for t in texts]
        order = longest_first(token_lengths(self.tokenizer, normalized, self.max_length))
        out = np.empty(len(texts), dtype=np.float64)
        with torch.inference_mode(), torch.autocast(self._device_type, dtype=torch.bfloat16, enabled=self._autocast):
            for start in range(0, len(texts), size):
                idx = order[start : start + size]
                enc = self.tokenizer(
                    [normalized[i] for i in idx], padding=True, truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                ).to(self.device)
                logits = self.model(**enc).logits.float()
                out[idx] = (logits[:, 1] - logits[:, 0]).cpu().numpy()
        return out

    def positive_proba(self, texts: Sequence[str], *, batch_size: int | None = None) -> np.ndarray:
        if not len(texts):
            return np.zeros(0)
        return _sigmoid(self.logit_margin(list(texts), batch_size=batch_size) / self.temperature)


# --------------------------------------------------------------------------- loading


SCORE_BATCH_SIZE = 32  # `score`'s batch: int8 scores depend on how rows are batched, so eval uses it too


def _check_int8(path: Path, config: dict[str, Any], precision: str) -> None:
    if config["kind"] == "finetune" and precision == "int8":
        raise InvalidInputError(f"{path} is a fine-tuned classifier: --precision int8 is for linear heads (their "
                                "encoder quantised for onnxruntime); use fast, fp32 or bf16", param="precision")


def load_sentiment_model(
    folder: str | Path | None = None,
    *,
    encoder_factory: Any = None,
    device: str = "auto",
    batch_size: int = 64,
    precision: str = "auto",
) -> LinearSentiment | FinetunedSentiment:
    """Open a sentiment model folder; ``None`` → the head bundled for the bundled encoder.

    ``encoder_factory(spec)`` returns an encoder for a linear head's ``encoder`` entry
    (``None`` means the bundled encoder); the default builds a fresh :class:`Encoder`.
    ``precision`` as :func:`textlatent.models.resolve_precision` reads it, or ``int8`` (a linear
    head's encoder quantised for onnxruntime, :func:`scoring_precision`).
    """
    path = BUNDLED_HEAD if folder is None else Path(folder).expanduser()
    if not path.exists():
        raise NotFoundError(f"sentiment model folder {path} does not exist", param="model")
    config = read_config(path)
    _check_int8(path, config, precision)
    if config["kind"] == "finetune":
        return FinetunedSentiment(path, config, device=device, batch_size=batch_size, precision=precision)
    spec = config.get("encoder")
    if encoder_factory is None and precision == "int8":
        from textlatent.onnx_encoder import OnnxEncoder

        def encoder_factory(s: str | None) -> Any:
            return OnnxEncoder(s, batch_size=batch_size, int8=True)

    elif encoder_factory is None:
        from textlatent.encoder import Encoder

        def encoder_factory(s: str | None) -> Any:
            return Encoder(s, device=device, batch_size=batch_size, precision=precision)

    return LinearSentiment(path, config, encoder_factory(spec))


def accuracy_f1(p_positive: np.ndarray, labels: Sequence[int]) -> dict[str, float]:
    """Accuracy and binary F1 (positive class), from scikit-learn."""
    from sklearn.metrics import accuracy_score, f1_score

    y = np.asarray(labels)
    pred = (np.asarray(p_positive) >= 0.5).astype(int)
    return {
        "accuracy": float(accuracy_score(y, pred)),
        "f1": float(f1_score(y, pred)),
        "ece": expected_calibration_error(np.asarray(p_positive), y),
    }



# --------------------------------------------------------------------------- parallel prediction

_WORKER_MODEL: Any = None


def _check_backend(backend: str) -> None:
    if backend not in ("auto", "onnx", "torch"):
        raise InvalidInputError(f"backend must be auto, onnx or torch, got {backend!r}", param="backend")


SCORING_PRECISIONS = (*PRECISIONS, "int8")


def scoring_precision(precision: str, device: str, backend: str = "auto") -> str:
    """The arithmetic batch scoring runs in, ``fp32``, ``bf16`` or ``int8``: ``precision`` as
    :func:`textlatent.models.resolve_precision` reads it (``fast``, the default of ``score``: bf16
    where the hardware computes it natively), or ``int8``: a linear head's encoder quantised for
    onnxruntime on a CPU (the fastest on VNNI CPUs, and not lossless: docs/benchmarks.md).
    onnxruntime has no bf16 path: ``--backend onnx`` means fp32, and asking it for bf16 is an error."""
    from textlatent.models import resolve_device, resolve_precision

    _check_backend(backend)
    if precision == "int8":
        if backend == "torch":
            raise InvalidInputError("--precision int8 runs on onnxruntime; drop --backend torch", param="precision")
        if resolve_device(device) != "cpu":
            raise InvalidInputError("--precision int8 is for the CPU (onnxruntime); on a GPU use fast or bf16",
                                    param="precision")
        return "int8"
    if precision not in PRECISIONS:
        raise InvalidInputError(f"precision must be one of {', '.join(SCORING_PRECISIONS)}, got {precision!r}",
                                param="precision")
    arithmetic = resolve_precision(precision, resolve_device(device))
    if backend == "onnx" and arithmetic == "bf16":
        if precision == "bf16":
            raise InvalidInputError("onnxruntime has no bf16 path: use --precision bf16 with --backend torch "
                                    "(or auto), or --precision fp32 with --backend onnx", param="precision")
        return "fp32"
    return arithmetic


def open_for_scoring(folder: str | Path | None, *, backend: str = "auto", threads: int | None = None,
                     batch_size: int = SCORE_BATCH_SIZE, device: str = "auto",
                     precision: str = "fast") -> LinearSentiment | FinetunedSentiment:
    """A model tuned for throughput (see :func:`scoring_precision`): on a CPU, bf16 autocast in
    torch where the CPU computes bf16 natively, else a linear head's encoder on onnxruntime."""
    arithmetic = scoring_precision(precision, device, backend)
    if threads:
        import torch

        torch.set_num_threads(threads)
    factory = None
    if _on_onnx(backend, device, arithmetic):
        from textlatent.onnx_encoder import OnnxEncoder

        def factory(spec: str | None) -> Any:
            return OnnxEncoder(spec, threads=threads, batch_size=batch_size, int8=arithmetic == "int8")

    return load_sentiment_model(folder, encoder_factory=factory, device=device, batch_size=batch_size,
                                precision=arithmetic)


def _on_onnx(backend: str, device: str, arithmetic: str) -> bool:
    """Whether a linear head's encoder runs on onnxruntime: asked for, or fp32/int8 on a CPU."""
    from textlatent.models import resolve_device

    return backend == "onnx" or (backend == "auto" and resolve_device(device) == "cpu"
                                 and arithmetic in ("fp32", "int8"))


def _build_onnx_files(config: dict[str, Any], backend: str, device: str, arithmetic: str) -> None:
    """Export (and quantise) a linear head's encoder for onnxruntime now, in one process, if the
    workers will run it there: workers starting together would each build the same cache files."""
    from textlatent.models import resolve_model_path

    if config["kind"] == "finetune" or not _on_onnx(backend, device, arithmetic):
        return
    from textlatent.onnx_encoder import export_onnx, quantize_onnx

    try:
        exported = export_onnx(resolve_model_path(config.get("encoder")))
        if arithmetic == "int8":
            quantize_onnx(exported)
    except Exception:  # noqa: BLE001 (a model the workers cannot run: they say why, or fall back)
        log.debug("building the ONNX files before the workers failed", exc_info=True)


def _init_worker(folder: str | None, backend: str, batch_size: int, device: str, precision: str) -> None:
    global _WORKER_MODEL
    _WORKER_MODEL = open_for_scoring(folder, backend=backend, threads=1, batch_size=batch_size, device=device,
                                     precision=precision)


def _worker_predict(texts: list[str]) -> np.ndarray:
    return _WORKER_MODEL.positive_proba(texts)


class _Joined:
    """The concatenated results of several futures, in order, behind one ``result()``."""

    def __init__(self, parts: list[Any]) -> None:
        self.parts = parts

    def result(self) -> np.ndarray:
        return np.concatenate([p.result() for p in self.parts]) if self.parts else np.zeros(0)


class ParallelPredictor:
    """p(positive) for chunks of texts, on ``workers`` one-thread processes (or in this process).

    On a CPU, several one-thread inference processes outrun one multi-thread process: the
    small matrices of a short-sentence batch do not split well across threads.
    """

    def __init__(self, folder: str | Path | None, *, workers: int = 1, backend: str = "auto",
                 batch_size: int = SCORE_BATCH_SIZE, device: str = "auto", precision: str = "fast") -> None:
        self.workers = workers
        self.pool: Any = None
        self.model: Any = None
        spec = None if folder is None else str(folder)
        # resolved once, here: fails fast in this process, and every worker computes alike
        self.precision = scoring_precision(precision, device, backend)
        if workers > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor
            from concurrent.futures.process import BrokenProcessPool

            folder_path = BUNDLED_HEAD if spec is None else Path(spec)
            config = read_config(folder_path)
            _check_int8(folder_path, config, self.precision)  # said here, not in a worker's traceback
            self.model_id = model_name(folder_path, config)
            _build_onnx_files(config, backend, device, self.precision)  # once, before the workers start
            self.pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_init_worker,
                                            initargs=(spec, backend, batch_size, device, self.precision))
            # Start every worker now so a model that fails to load fails here, not mid-file.
            try:
                list(self.pool.map(_worker_predict, [["warm-up"]] * workers))
            except BrokenProcessPool as exc:
                self.pool.shutdown(cancel_futures=True)
                raise InvalidInputError(f"the scoring workers could not load the model {str(folder_path)!r} "
                                        "(their error is printed above); try --workers 1 to see it in this "
                                        "process", param="model") from exc
        else:
            self.model = open_for_scoring(spec, backend=backend, batch_size=batch_size, device=device,
                                          precision=self.precision)
            self.model_id = self.model.model_id

    def __call__(self, texts: list[str]) -> Any:
        """p(positive) of ``texts``: an array, or with worker processes a Future of one.

        The texts are split into one slice per worker, so a single chunk already keeps every
        core busy (a file smaller than one chunk would otherwise run on one worker).
        """
        if self.pool is None:
            return self.model.positive_proba(texts)
        size = -(-len(texts) // self.workers)
        parts = [self.pool.submit(_worker_predict, texts[i : i + size]) for i in range(0, len(texts), size)]
        return _Joined(parts)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
