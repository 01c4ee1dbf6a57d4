"""The encoder exported to ONNX and run by onnxruntime: a faster CPU path for batch scoring.

On 2-core CPUs onnxruntime runs the MiniLM graph somewhat faster per core than eager torch
(see ``docs/benchmarks.md``), and a one-thread session per worker process scales across
cores where one two-thread torch process does not. The export is made once per model
(``torch.onnx.export``) and cached under the textlatent cache folder; vectors match the
torch encoder to ~1e-6 cosine. ``int8=True`` runs a dynamically quantised twin
(:func:`quantize_onnx`): on a CPU with AVX512-VNNI 2.2x the scoring rows/s of fp32, but not lossless
(vectors at cosine ~0.99 of fp32's; the bundled head lost 1.3 points of SST-2 dev accuracy at
batch 32, and a row's result depends on the rows batched with it), so ``score`` uses it only when
asked (``--precision int8``).

Only models whose sentence-transformers pipeline is Transformer → mean or CLS pooling
(→ Normalize) are supported; others raise ``InvalidInputError`` and callers fall back to torch.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from textlatent.errors import InvalidInputError

log = logging.getLogger("textlatent.onnx")

_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def _pooling_mode(path: Path) -> str:
    modules = json.loads((path / "modules.json").read_text()) if (path / "modules.json").is_file() else []
    pooling = [m for m in modules if m.get("type", "").endswith("Pooling")]
    if len(pooling) != 1:
        raise InvalidInputError(f"{path}: ONNX backend needs exactly one Pooling module", param="backend")
    config = json.loads((path / pooling[0]["path"] / "config.json").read_text())
    if config.get("pooling_mode_mean_tokens"):
        return "mean"
    if config.get("pooling_mode_cls_token"):
        return "cls"
    raise InvalidInputError(f"{path}: ONNX backend supports mean or CLS pooling only", param="backend")


def _max_seq_length(path: Path) -> int:
    cfg = path / "sentence_bert_config.json"
    if cfg.is_file():
        return int(json.loads(cfg.read_text()).get("max_seq_length", 256))
    return 256


def export_onnx(model_path: str | Path) -> Path:
    """Export the transformer of a sentence-transformers folder to ONNX (cached); return the file."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from textlatent.cache import cache_root, model_fingerprint

    src = Path(model_path)
    target = cache_root() / "onnx" / model_fingerprint(src) / "model.onnx"
    if target.is_file():
        return target
    tokenizer = AutoTokenizer.from_pretrained(str(src), local_files_only=True)
    model = AutoModel.from_pretrained(str(src), local_files_only=True).eval()
    names = [n for n in _INPUTS if n in tokenizer.model_input_names]

    class Hidden(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *args: Any) -> Any:
            return self.inner(**dict(zip(names, args, strict=True))).last_hidden_state

    sample = tokenizer(["an example", "a second, longer example"], padding=True, return_tensors="pt")
    axes = {n: {0: "batch", 1: "tokens"} for n in [*names, "last_hidden_state"]}
    import warnings

    def write(tmp: Path) -> None:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer chatter about shapes that the dynamic axes cover
            torch.onnx.export(Hidden(model), tuple(sample[n] for n in names), str(tmp), input_names=names,
                              output_names=["last_hidden_state"], dynamic_axes=axes, opset_version=17, dynamo=False)

    return _write_cached(target, write, "exporting")


def _write_cached(target: Path, write: Callable[[Path], None], what: str) -> Path:
    """Build the cache file ``target`` through ``write(tmp)``: a temp file of its own beside it
    (processes building at once never share one), fsynced, then renamed into place; a failed
    build leaves nothing behind. In an unwritable cache the file goes into a private temporary
    folder for this process, removed when it exits. Returns where the file is."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f"{target.stem}.", suffix=".tmp.onnx", dir=target.parent)
    except OSError as exc:
        log.warning("cannot write the ONNX cache under %s (%s); %s into a temporary folder", target.parent, exc, what)
        folder = tempfile.mkdtemp(prefix="textlatent-onnx-")
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        target = Path(folder) / target.name
        fd, tmp_name = tempfile.mkstemp(prefix=f"{target.stem}.", suffix=".tmp.onnx", dir=folder)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with tmp.open("rb") as fh:
            os.fsync(fh.fileno())
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


class _Drop(logging.Filter):
    """Drops log records whose message contains ``text``."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


def quantize_onnx(exported: Path) -> Path:
    """The int8 twin of an export (cached beside it, named after the onnxruntime version that made
    it): onnxruntime's dynamic quantisation of every MatMul, weights int8 per output channel,
    activations uint8 per batch tensor at run time. On CPUs with AVX512-VNNI 2.2x the rows/s of
    fp32 when scoring; vectors at cosine ~0.99 of fp32's (docs/benchmarks.md)."""
    import onnx
    import onnxruntime
    from onnxruntime.quantization import QuantType, quantize_dynamic

    target = exported.with_name(f"model.int8-ort{onnxruntime.__version__}.onnx")
    if target.is_file():
        return target

    def write(tmp: Path) -> None:
        root = logging.getLogger()
        handlers = list(root.handlers)
        advice = _Drop("pre-processing before quantization")  # its advice to run a tool we do not need
        root.addFilter(advice)
        try:
            # The model itself, not its path: onnxruntime then infers shapes in a temporary folder of
            # its own, not in a fixed "model-inferred.onnx" beside the export (which processes
            # quantising at once would share, and which a read-only cache cannot take).
            quantize_dynamic(onnx.load(str(exported)), str(tmp), weight_type=QuantType.QInt8, per_channel=True,
                             op_types_to_quantize=["MatMul"])
        finally:
            root.removeFilter(advice)
            for handler in root.handlers[:]:  # logging.warning() on an unconfigured root adds a handler
                if handler not in handlers:
                    root.removeHandler(handler)

    return _write_cached(target, write, "quantising")


class OnnxEncoder:
    """Same contract as :class:`textlatent.encoder.Encoder` for ``encode``, on onnxruntime
    (``int8``: the dynamically quantised model of :func:`quantize_onnx`)."""

    def __init__(self, model: str | Path | None = None, *, threads: int | None = None, batch_size: int = 64,
                 int8: bool = False) -> None:
        import onnxruntime as ort
        from transformers import AutoTokenizer

        from textlatent.models import model_id_for, resolve_model_path, set_offline_defaults

        set_offline_defaults()
        spec = None if model is None else str(model)
        self.path = resolve_model_path(spec)
        self.model_id = model_id_for(spec)
        self.batch_size = batch_size
        self.pooling = _pooling_mode(self.path)
        self.max_seq_length = _max_seq_length(self.path)
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.path), local_files_only=True)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or 0
        options.inter_op_num_threads = 1
        # Idle threads that spin for work steal the CPU from everything else on a shared machine.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.int8 = int8
        for attempt in range(3):
            exported = export_onnx(self.path)
            built: Path | None = None
            try:
                built = quantize_onnx(exported) if int8 else exported
                self.session = ort.InferenceSession(str(built), options, providers=["CPUExecutionProvider"])
                break
            except Exception as exc:  # a damaged cached file (onnx's or onnxruntime's own error types)
                if attempt == 2:
                    raise
                # the file that did not load; if quantising failed, the export it read
                stale = built if built is not None else exported
                log.warning("cached ONNX file %s does not load (%s); building it again", stale, exc)
                stale.unlink(missing_ok=True)
        self._inputs = [i.name for i in self.session.get_inputs()]
        self.dim = int(self.session.get_outputs()[0].shape[-1])

    def encode(self, texts: Sequence[str], *, normalize: bool = True, batch_size: int | None = None,
               show_progress: bool = False) -> np.ndarray:
        size = batch_size or self.batch_size
        items = list(texts)
        out = np.empty((len(items), self.dim), dtype=np.float32)
        from tqdm import tqdm

        from textlatent.encoder import longest_first, token_lengths

        order = longest_first(token_lengths(self.tokenizer, items, self.max_seq_length))

        starts = range(0, len(items), size)
        for start in tqdm(starts, desc="encoding", unit="batch", disable=not show_progress, file=sys.stderr):
            idx = order[start : start + size]
            enc = self.tokenizer([items[i] for i in idx], padding=True, truncation=True,
                                 max_length=self.max_seq_length, return_tensors="np")
            hidden = self.session.run(None, {n: enc[n].astype(np.int64) for n in self._inputs})[0]
            if self.pooling == "cls":
                pooled = hidden[:, 0]
            else:
                mask = enc["attention_mask"][..., None].astype(np.float32)
                pooled = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
            out[idx] = pooled
        if normalize:
            out /= np.clip(np.linalg.norm(out, axis=1, keepdims=True), 1e-12, None)
        return out
