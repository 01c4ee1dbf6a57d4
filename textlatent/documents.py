"""Reading documents from JSONL and CSV files.

Field names default to what common corpora use: ``id`` (or BEIR's ``_id``), ``text`` and an
optional ``title`` that is put before the text as MTEB does for BEIR (``title + " " + text``).
Every other field (the title included) becomes metadata, merged with a ``metadata`` object
when the row has one.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from textlatent.collections import Document
from textlatent.errors import InvalidInputError
from textlatent.text import join_title

FORMATS = ("auto", "jsonl", "csv")


def raise_csv_field_limit() -> None:
    """The csv module refuses fields over 128 KiB by default; a long document is not a malformed file."""
    limit = sys.maxsize
    while True:
        try:
            csv.field_size_limit(limit)
            return
        except OverflowError:  # a C long narrower than Python's maxsize
            limit //= 2


def detect_format(path: Path, fmt: str = "auto") -> str:
    if fmt not in FORMATS:
        raise InvalidInputError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}", param="format")
    if fmt != "auto":
        return fmt
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix in (".csv", ".tsv"):
        return "csv"
    raise InvalidInputError(f"cannot tell the format of {path.name!r}; pass --format jsonl or csv", param="format")


def _rows(path: Path, fmt: str) -> Iterator[tuple[int, dict[str, Any]]]:
    if fmt == "jsonl":
        with open(path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InvalidInputError(f"{path.name}:{lineno}: not valid JSON ({exc.msg})") from exc
                if not isinstance(row, dict):
                    raise InvalidInputError(f"{path.name}:{lineno}: each line must be a JSON object")
                yield lineno, row
    else:
        raise_csv_field_limit()
        with open(path, encoding="utf-8-sig", newline="") as fh:  # -sig: a BOM is not part of a header
            delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
            reader = csv.DictReader(fh, delimiter=delimiter)
            for row in reader:
                yield reader.line_num, dict(row)


def read_documents(
    path: str | Path,
    *,
    fmt: str = "auto",
    id_field: str | None = None,
    text_field: str = "text",
    title_field: str | None = "title",
) -> Iterator[Document]:
    """Yield documents from a JSONL or CSV file, with ``file:line`` in every error."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"no such file: {path}", param="file")
    fmt = detect_format(path, fmt)
    for lineno, row in _rows(path, fmt):
        where = f"{path.name}:{lineno}"
        key = id_field or ("id" if "id" in row else "_id")
        doc_id = row.get(key)
        if isinstance(doc_id, int) and not isinstance(doc_id, bool):
            doc_id = str(doc_id)
        if not isinstance(doc_id, str) or not doc_id:
            raise InvalidInputError(f"{where}: missing id field {key!r}", param="id_field")
        text = row.get(text_field)
        if not isinstance(text, str):
            raise InvalidInputError(f"{where}: missing text field {text_field!r}", param="text_field")
        title = row.get(title_field) if title_field else None
        if isinstance(title, str):
            text = join_title(title, text)
        if not text.strip():
            raise InvalidInputError(f"{where}: document {doc_id!r} has empty text", param="text_field")
        given = row.get("metadata")
        metadata: dict[str, Any] = given if isinstance(given, dict) else {}
        skip = {key, text_field, "metadata"}  # the title stays in metadata, for display
        extra = {k: v for k, v in row.items() if k not in skip}
        yield Document(id=doc_id, text=text, metadata={**extra, **metadata})
