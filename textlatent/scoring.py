"""Streaming sentiment scoring of CSV, JSONL and Parquet files: flat memory, bad rows marked, resumable.

Rows are read and written in chunks, so memory does not grow with the file. Each output row is
the input row plus ``label``, ``score`` (the calibrated probability of the label) and
``error`` (empty, or why the row could not be scored: missing, empty or non-text input).

Resuming: beside OUTPUT lives ``OUTPUT.progress.json`` recording how many input rows are done
and how many bytes of OUTPUT hold them (CSV and JSONL), or how many part files exist
(Parquet, written as ``OUTPUT.parts/`` and joined into OUTPUT at the end). A chunk is first
written and fsynced, then recorded; a re-run truncates OUTPUT back to the last recorded
chunk and skips the recorded input rows, so an interruption at any moment never duplicates
or loses a row. The record also names the input (path, size, mtime) and the text column: a
re-run against a changed input is refused rather than silently mixed.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from textlatent.documents import raise_csv_field_limit
from textlatent.errors import ConflictError, InvalidInputError, NotFoundError

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
OUTPUT_COLUMNS = ("label", "score", "error")


def file_format(path: Path, override: str | None = None) -> str:
    if override:
        if override not in set(FORMATS.values()):
            raise InvalidInputError(f"format must be csv, jsonl or parquet, got {override!r}", param="format")
        return override
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InvalidInputError(
            f"cannot tell the format of {path} from its extension; use .csv, .jsonl or .parquet (or --format)",
            param="input",
        )
    return fmt


def row_error(value: Any) -> str | None:
    """Why ``value`` cannot be scored, or None when it is usable text."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "missing text"
    if not isinstance(value, str):
        return f"not text ({type(value).__name__})"
    if not value.strip():
        return "empty text"
    return None


# --------------------------------------------------------------------------- readers


@dataclass
class Chunk:
    rows: list[dict[str, Any]]
    errors: list[str | None]  # a reader-level error (malformed line) per row, else None
    batch: Any = None  # the pyarrow RecordBatch for Parquet input


def csv_header(path: Path) -> list[str]:
    raise_csv_field_limit()
    with path.open("r", encoding="utf-8-sig", newline="") as fh:
        try:
            header = next(csv.reader(fh), [])
        except csv.Error as exc:
            raise InvalidInputError(f"{path.name}: cannot read the CSV header: {exc}", param="input") from None
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:
        raise InvalidInputError(f"{path.name} repeats column name(s) {repeated} in its header; each column needs "
                                "its own name (the repeated ones would overwrite each other)", param="input")
    return header


def _check_column(text_column: str, columns: Sequence[str], path: Path) -> None:
    """A text column absent from the header is a usage mistake, not a file of bad rows."""
    if columns and text_column not in columns:
        raise InvalidInputError(
            f"{path.name} has no column {text_column!r} (columns: {', '.join(columns)}); use --text-column",
            param="text_column",
        )


def _csv_chunks(path: Path, chunk_size: int, skip: int) -> Iterator[Chunk]:
    raise_csv_field_limit()
    with path.open("r", encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None:
            return
        rows: list[dict[str, Any]] = []
        errors: list[str | None] = []
        for i, row in enumerate(_csv_rows(reader, path)):
            if i < skip:
                continue
            extra = row.pop(None, None)  # type: ignore[call-overload]
            errors.append(f"malformed row: {len(extra)} more field(s) than the header" if extra else None)
            rows.append(row)
            if len(rows) == chunk_size:
                yield Chunk(rows, errors)
                rows, errors = [], []
        if rows:
            yield Chunk(rows, errors)


def _csv_rows(reader: csv.DictReader[str], path: Path) -> Iterator[dict[str, Any]]:
    """The rows of ``reader``; a file the csv module cannot parse is a clear error, not a traceback."""
    try:
        yield from reader
    except csv.Error as exc:
        raise InvalidInputError(f"{path.name}, line {reader.line_num}: not readable as CSV ({exc})",
                                param="input") from None


def _jsonl_chunks(path: Path, chunk_size: int, skip: int) -> Iterator[Chunk]:
    rows: list[dict[str, Any]] = []
    errors: list[str | None] = []
    with path.open("r", encoding="utf-8-sig") as fh:
        n = 0
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue  # blank lines are not rows
            n += 1
            if n <= skip:
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                rows.append({"line": number})
                errors.append(f"invalid JSON on line {number}: {exc.msg}")
            else:
                if isinstance(obj, dict):
                    rows.append(obj)
                    errors.append(None)
                else:
                    rows.append({"line": number})
                    errors.append(f"line {number} is JSON but not an object")
            if len(rows) == chunk_size:
                yield Chunk(rows, errors)
                rows, errors = [], []
    if rows:
        yield Chunk(rows, errors)


def _parquet_chunks(path: Path, chunk_size: int, skip: int) -> Iterator[Chunk]:

    reader = _parquet_file(path)
    seen = 0
    for batch in reader.iter_batches(batch_size=chunk_size):
        if seen + batch.num_rows <= skip:
            seen += batch.num_rows
            continue
        if seen < skip:
            batch = batch.slice(skip - seen)
        seen += batch.num_rows
        yield Chunk(batch.to_pylist(), [None] * batch.num_rows, batch)


def _parquet_file(path: Path) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, ValueError) as exc:
        raise InvalidInputError(f"{path.name} is not a readable Parquet file ({exc})", param="input") from None


def count_rows(path: Path, fmt: str) -> int | None:
    """Row count when it is free (Parquet metadata); None for text formats."""
    if fmt == "parquet":
        return int(_parquet_file(path).metadata.num_rows)
    return None


def _jsonl_keys(path: Path, limit: int = 100) -> list[str]:
    """The keys of the first ``limit`` JSON objects of a JSONL file (its de-facto columns), in order."""
    keys: dict[str, None] = {}
    seen = 0
    with path.open("r", encoding="utf-8-sig") as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                keys.update(dict.fromkeys(obj))
                seen += 1
                if seen == limit:
                    break
    return list(keys)


# --------------------------------------------------------------------------- progress record


def _progress_path(output: Path) -> Path:
    return output.with_name(output.name + ".progress.json")


def _parts_dir(output: Path) -> Path:
    return output.with_name(output.name + ".parts")


def _input_identity(path: Path, text_column: str, model_id: str, prefix: str, precision: str) -> dict[str, Any]:
    st = path.stat()
    return {"input": str(path.resolve()), "input_size": st.st_size, "input_mtime_ns": st.st_mtime_ns,
            "text_column": text_column, "model": model_id, "prefix": prefix, "precision": precision}


# Records written before "precision" existed were scored in fp32 (onnxruntime, or torch on a CPU).
# keys added after records were first written: their value then
_IDENTITY_DEFAULTS = {"prefix": "", "precision": "fp32"}


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        json.dump(data, fh)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)


def _check_output_matches_record(out: Path, fmt: str, state: dict[str, Any]) -> None:
    """A progress record is only trusted while OUTPUT (or its parts) still holds what it records:
    resuming onto a deleted or shortened OUTPUT would write rows after a gap of NUL bytes, or
    report "complete" with no file."""
    if fmt == "parquet":
        joined = state.get("complete") or state.get("joined")
        if joined:
            ok = out.is_file()
        else:
            have = {p.name for p in _parts_dir(out).glob("part-*.parquet")}
            ok = all(f"part-{i:08d}.parquet" in have for i in range(int(state["parts"])))
    else:
        need = int(state["output_bytes"])
        ok = (out.is_file() and out.stat().st_size >= need) if need or state.get("complete") else True
    if not ok:
        raise ConflictError(f"{out} no longer holds what its progress record ({_progress_path(out).name}) says was "
                            "written (deleted or truncated since?); pass --overwrite to score again from the start",
                            param="output")


# --------------------------------------------------------------------------- writers


class _TextWriter:
    """Appends CSV or JSONL rows; ``offset`` is the byte length of complete, recorded output."""

    def __init__(self, output: Path, fmt: str, offset: int, header: list[str] | None) -> None:
        self.fmt = fmt
        self.fh = output.open("r+b" if output.exists() else "w+b")
        self.fh.truncate(offset)
        self.fh.seek(offset)
        self.header = header
        self.header_written = offset > 0

    def write(self, rows: list[dict[str, Any]]) -> int:
        import io

        buf = io.StringIO(newline="")
        if self.fmt == "csv":
            assert self.header is not None
            writer = csv.DictWriter(buf, fieldnames=self.header, extrasaction="ignore", lineterminator="\n")
            if not self.header_written:
                writer.writeheader()
                self.header_written = True
            writer.writerows(rows)
        else:
            for row in rows:
                buf.write(json.dumps(row, ensure_ascii=False, default=str))
                buf.write("\n")
        self.fh.write(buf.getvalue().encode("utf-8"))
        self.fh.flush()
        os.fsync(self.fh.fileno())
        return self.fh.tell()

    def close(self) -> None:
        self.fh.close()


class _ParquetWriter:
    """One Parquet file per chunk under ``OUTPUT.parts/``; :meth:`finish` joins them into OUTPUT."""

    def __init__(self, output: Path, parts_done: int) -> None:
        self.output = output
        self.dir = _parts_dir(output)
        self.dir.mkdir(exist_ok=True)
        for stale in self.dir.glob("part-*.parquet"):
            if int(stale.stem.split("-")[1]) >= parts_done:
                stale.unlink()  # written after the last record: its rows will be redone
        self.parts = parts_done

    def write(self, batch: Any, labels: list[str | None], scores: list[float | None],
              errors: list[str | None], names: Sequence[str]) -> int:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_batches([batch])
        for name, values, typ in zip(names, (labels, scores, errors), (pa.string(), pa.float64(), pa.string()),
                                     strict=True):
            table = table.append_column(name, pa.array(values, type=typ))
        path = self.dir / f"part-{self.parts:08d}.parquet"
        tmp = path.with_suffix(".tmp")
        pq.write_table(table, tmp)
        with tmp.open("rb") as fh:
            os.fsync(fh.fileno())
        tmp.replace(path)
        self.parts += 1
        return self.parts

    def join(self, empty_schema: Any) -> None:
        """Join the parts into OUTPUT (atomically); no parts, an empty input: an empty table of
        ``empty_schema``. The parts stay until :meth:`cleanup`, after the join is recorded."""
        import pyarrow.parquet as pq

        parts = sorted(self.dir.glob("part-*.parquet"))
        tmp = self.output.with_name(self.output.name + ".tmp")
        writer = None
        for part in parts:
            table = pq.read_table(part)
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table)
        if writer is None:
            writer = pq.ParquetWriter(tmp, empty_schema)
        writer.close()
        with tmp.open("rb") as fh:
            os.fsync(fh.fileno())
        tmp.replace(self.output)

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def close(self) -> None:
        pass


def _output_schema(src: Path, names: Sequence[str]) -> Any:
    """The input's schema plus the three added columns: the schema of an empty Parquet output."""
    import pyarrow as pa

    schema = _parquet_file(src).schema_arrow
    for name, typ in zip(names, (pa.string(), pa.float64(), pa.string()), strict=True):
        schema = schema.append(pa.field(name, typ))
    return schema


# --------------------------------------------------------------------------- the scorer


@dataclass
class ScoreReport:
    input: str
    output: str
    rows: int = 0
    scored: int = 0
    errors: int = 0
    skipped_resumed: int = 0
    already_complete: bool = False
    seconds: float = 0.0
    model: str = ""
    precision: str = "fp32"
    error_examples: list[str] = field(default_factory=list)

    @property
    def rows_per_second(self) -> float:
        done_now = self.rows - self.skipped_resumed
        return done_now / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"input": self.input, "output": self.output, "rows": self.rows, "scored": self.scored,
                "errors": self.errors, "skipped_resumed": self.skipped_resumed,
                "already_complete": self.already_complete, "seconds": round(self.seconds, 2),
                "rows_per_second": round(self.rows_per_second, 1), "model": self.model, "precision": self.precision}


Predictor = Callable[[list[str]], Any]  # an array of p(positive), or an object whose .result() is one


@dataclass
class _Request:
    src: Path
    out: Path
    fmt: str
    header: list[str]
    names: list[str]
    read_chunks: Callable[[Path, int, int], Iterator[Chunk]]


def check_score_request(input_path: str | Path, output_path: str | Path, *, text_column: str = "text",
                        prefix: str = "", input_format: str | None = None, chunk_size: int = 2048) -> _Request:
    """Everything about a scoring run a user can get wrong, checked before any model, worker, OUTPUT
    or progress record is touched (``textlatent score`` calls it before it starts its workers)."""
    src = Path(input_path).expanduser()
    out = Path(output_path).expanduser()
    if not src.is_file():
        raise NotFoundError(f"input file {src} does not exist", param="input")
    fmt = file_format(src, input_format)
    out_fmt = file_format(out)
    if out_fmt != fmt:
        raise InvalidInputError(f"OUTPUT must have the input's format ({fmt}); got {out.name}", param="output")
    if not out.parent.is_dir():
        raise NotFoundError(f"the folder of OUTPUT, {out.parent}, does not exist", param="output")
    if out.resolve() == src.resolve():
        raise InvalidInputError("OUTPUT must not be the input file", param="output")
    if chunk_size < 1:
        raise InvalidInputError("chunk size must be at least 1", param="chunk_size")
    names = [prefix + c for c in OUTPUT_COLUMNS]
    header: list[str] = []
    read_chunks: Callable[[Path, int, int], Iterator[Chunk]]
    if fmt == "csv":
        header = columns = csv_header(src)
        read_chunks = _csv_chunks
    elif fmt == "jsonl":
        columns = _jsonl_keys(src)  # JSONL has no header: the keys of its first objects stand in for one
        read_chunks = _jsonl_chunks
    else:
        columns = list(_parquet_file(src).schema_arrow.names)
        read_chunks = _parquet_chunks
    _check_column(text_column, columns, src)
    clash = [n for n in names if n in columns]
    if clash:
        raise InvalidInputError(f"the input already has column(s) {clash}; choose another --prefix", param="prefix")
    return _Request(src, out, fmt, header, names, read_chunks)


def score_file(
    input_path: str | Path,
    output_path: str | Path,
    predictor: Predictor,
    *,
    model_id: str,
    precision: str = "fp32",
    text_column: str = "text",
    chunk_size: int = 2048,
    prefix: str = "",
    overwrite: bool = False,
    input_format: str | None = None,
    in_flight: int = 1,
    show_progress: bool = True,
) -> ScoreReport:
    """Score ``text_column`` of every row of ``input_path`` into ``output_path``.

    ``predictor(texts)`` returns p(positive) per text, or a Future of it: up to ``in_flight``
    chunks are then scored concurrently (by worker processes) while results are written in order.
    ``precision`` names the predictor's arithmetic: a run is resumed only in the one it began with.
    """
    import time

    from tqdm import tqdm

    # Everything a user can get wrong is checked before OUTPUT or its record is touched.
    req = check_score_request(input_path, output_path, text_column=text_column, prefix=prefix,
                              input_format=input_format, chunk_size=chunk_size)
    src, out, fmt, header, names, read_chunks = req.src, req.out, req.fmt, req.header, req.names, req.read_chunks
    identity = _input_identity(src, text_column, model_id, prefix, precision)
    progress_file = _progress_path(out)
    report = ScoreReport(str(src), str(out), model=model_id, precision=precision)

    state: dict[str, Any] | None = None
    if progress_file.is_file() and not overwrite:
        state = json.loads(progress_file.read_text(encoding="utf-8"))
        mismatch = [k for k in identity if state.get(k, _IDENTITY_DEFAULTS.get(k)) != identity[k]]
        if mismatch:
            raise ConflictError(
                f"{out} was started from a different run ({', '.join(mismatch)} changed); "
                "pass --overwrite to start again",
                param="output",
            )
        _check_output_matches_record(out, fmt, state)
        if state.get("complete"):
            report.already_complete = True
            report.rows = report.skipped_resumed = int(state["rows_done"])
            return report
    elif (out.exists() or _parts_dir(out).exists()) and not overwrite:
        raise ConflictError(f"{out} exists and was not written by an interrupted score run; "
                            "pass --overwrite to replace it", param="output")
    if state is None:
        for stale in (out, progress_file):
            stale.unlink(missing_ok=True)
        shutil.rmtree(_parts_dir(out), ignore_errors=True)
        state = {**identity, "rows_done": 0, "output_bytes": 0, "parts": 0, "complete": False}
        _write_json_atomic(progress_file, state)

    skip = int(state["rows_done"])
    report.skipped_resumed = skip
    chunks = read_chunks(src, chunk_size, skip)

    writer: _TextWriter | _ParquetWriter | None = None
    total = count_rows(src, fmt)
    bar = tqdm(total=total, initial=skip if total else 0, unit="rows", disable=not show_progress, file=sys.stderr,
               desc="scoring", dynamic_ncols=True)
    start = time.perf_counter()
    pending: list[tuple[Chunk, list[int], Any]] = []

    submitted = skip

    def submit(chunk: Chunk) -> None:
        nonlocal submitted
        texts, positions = [], []
        for i, row in enumerate(chunk.rows):
            if fmt == "jsonl" and chunk.errors[i] is None:  # no header: any row may hold one of our keys
                clash = [n for n in names if n in row]
                if clash:
                    raise InvalidInputError(f"{src.name}: row {submitted + i + 1} already has key(s) {clash}; "
                                            "choose another --prefix (and --overwrite)", param="prefix")
            if chunk.errors[i] is None:
                problem = row_error(row.get(text_column)) if text_column in row else "missing text"
                chunk.errors[i] = problem
                if problem is None:
                    texts.append(row[text_column])
                    positions.append(i)
        pending.append((chunk, positions, predictor(texts) if texts else np.zeros(0)))
        submitted += len(chunk.rows)

    def drain_one() -> None:
        nonlocal writer, state
        assert state is not None
        chunk, positions, result = pending.pop(0)
        probs = result.result() if hasattr(result, "result") else result  # a Future, or a Future-like join
        labels: list[str | None] = [None] * len(chunk.rows)
        scores: list[float | None] = [None] * len(chunk.rows)
        for i, p in zip(positions, probs, strict=True):
            positive = bool(p >= 0.5)
            labels[i] = "positive" if positive else "negative"
            scores[i] = round(float(p if positive else 1.0 - p), 6)
        for e in chunk.errors:
            if e is not None:
                report.errors += 1
                if len(report.error_examples) < 5:
                    report.error_examples.append(e)
        if writer is None:
            if fmt == "parquet":
                writer = _ParquetWriter(out, int(state["parts"]))
            else:
                writer = _TextWriter(out, fmt, int(state["output_bytes"]), header + names)
        if isinstance(writer, _ParquetWriter):
            state["parts"] = writer.write(chunk.batch, labels, scores, chunk.errors, names)
        else:
            rows = [{**row, names[0]: labels[i], names[1]: scores[i], names[2]: chunk.errors[i]}
                    for i, row in enumerate(chunk.rows)]
            state["output_bytes"] = writer.write(rows)
        state["rows_done"] = int(state["rows_done"]) + len(chunk.rows)
        _write_json_atomic(progress_file, state)
        report.rows += len(chunk.rows)
        report.scored += len(positions)
        bar.update(len(chunk.rows))

    try:
        for chunk in chunks:
            submit(chunk)
            while len(pending) >= max(1, in_flight):
                drain_one()
        while pending:
            drain_one()
        if fmt == "parquet":
            if writer is None:
                writer = _ParquetWriter(out, int(state["parts"]))
            assert isinstance(writer, _ParquetWriter)
            if not state.get("joined"):  # a re-run after a kill during the cleanup must not join again
                writer.join(_output_schema(src, names))
                state["joined"] = True
                _write_json_atomic(progress_file, state)
            writer.cleanup()
        elif writer is None:  # an empty input still yields an output file (a CSV header)
            writer = _TextWriter(out, fmt, 0, header + names)
            if fmt == "csv" and header:
                writer.write([])
        state["complete"] = True
        _write_json_atomic(progress_file, state)
    finally:
        bar.close()
        if writer is not None:
            writer.close()
        report.seconds = time.perf_counter() - start
    report.rows += skip
    return report
