"""Option types shared by the command modules (kept apart from :mod:`textlatent.cli`, which imports
those modules at its end, so that each can use them without a circular import)."""

from __future__ import annotations

import json
import math
from typing import Annotated, Any

import typer

OverwriteOption = Annotated[bool, typer.Option(
    "--overwrite", help="Replace the model --out already holds, whole: set aside, deleted once the run succeeds, "
    "put back if it fails")]


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def json_out(payload: Any, **kwargs: Any) -> str:
    """``--json`` output: strict JSON, a NaN or infinite figure (a Spearman over constant scores) as null."""
    return json.dumps(_finite(payload), allow_nan=False, **kwargs)


def finite(value: Any) -> Any:
    """Typer callback for float options: click's ranges let ``nan`` and ``inf`` through (``nan`` then
    switches a time budget off or poisons a loss; ``inf`` overflows an epoch count)."""
    for v in value if isinstance(value, list) else [value]:
        if isinstance(v, float) and not math.isfinite(v):
            raise typer.BadParameter(f"must be a finite number, got {v}")
    return value


def finite_option(*param_decls: str, **kwargs: Any) -> Any:
    """``typer.Option`` for a float: a finite number, or a usage error."""
    return typer.Option(*param_decls, callback=finite, **kwargs)


def _at_least(text: str, minimum: int) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
    return value


def positive_int(text: str) -> int:
    """``argparse`` type for the benchmark scripts' counts (rows, repeats, steps, sizes): an integer ≥ 1."""
    return _at_least(text, 1)


def non_negative_int(text: str) -> int:
    """``argparse`` type for the scripts' seeds and offsets: an integer ≥ 0."""
    return _at_least(text, 0)
