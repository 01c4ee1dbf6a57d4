"""Option types shared by the command modules (kept apart from :mod:`textlatent.cli`, which imports
those modules at its end, so that each can use them without a circular import)."""

from __future__ import annotations

from typing import Annotated

import typer

OverwriteOption = Annotated[bool, typer.Option("--overwrite", help="Replace what --out already holds")]
