"""Streaming batch scoring: formats, bad rows, interruption and resume, refusals."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from textlatent.errors import ConflictError, InvalidInputError, NotFoundError
from textlatent.scoring import score_file

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


def fake_predictor(texts: list[str]) -> np.ndarray:
    """p(positive) = 0.9 when the text says 'good', else 0.2: deterministic, instant."""
    return np.array([0.9 if "good" in t else 0.2 for t in texts])


class Interrupt(Exception):
    pass


def interrupting_predictor(after_calls: int):
    calls = {"n": 0}

    def predict(texts: list[str]) -> np.ndarray:
        calls["n"] += 1
        if calls["n"] > after_calls:
            raise Interrupt
        return fake_predictor(texts)

    return predict


def rows_of(n: int) -> list[dict[str, str]]:
    return [{"id": str(i), "text": f"row {i} is {'good' if i % 3 == 0 else 'bad'}"} for i in range(n)]


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["id", "text"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def score(src: Path, out: Path, predictor=fake_predictor, **kw):
    kw.setdefault("chunk_size", 4)
    return score_file(src, out, predictor, model_id="fake", show_progress=False, **kw)


def test_csv_scores_every_row_and_keeps_the_input_columns(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "in.csv", rows_of(10))
    report = score(src, tmp_path / "out.csv")
    out = read_csv(tmp_path / "out.csv")
    assert report.rows == 10 and report.scored == 10 and report.errors == 0
    assert [r["id"] for r in out] == [str(i) for i in range(10)]
    assert list(out[0]) == ["id", "text", "label", "score", "error"]
    assert out[0]["label"] == "positive" and float(out[0]["score"]) == pytest.approx(0.9)
    assert out[1]["label"] == "negative" and float(out[1]["score"]) == pytest.approx(0.8)


def test_bad_rows_are_marked_not_fatal(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text('id,text\n1,good film\n2,\n3,"   "\n4\n5,good,extra\n6,"multi\nline good"\n', encoding="utf-8")
    report = score(src, tmp_path / "out.csv")
    out = read_csv(tmp_path / "out.csv")
    errors = {r["id"]: r["error"] for r in out}
    assert errors["1"] == "" and errors["6"] == ""
    assert errors["2"] == "empty text" and errors["3"] == "empty text" and errors["4"] == "missing text"
    assert "more field" in errors["5"]
    assert out[1]["label"] == "" and out[1]["score"] == ""
    assert report.rows == 6 and report.scored == 2 and report.errors == 4


def test_jsonl_bad_lines_and_non_text_values(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    lines = [json.dumps({"id": 1, "text": "good"}), json.dumps({"id": 2, "text": 42}), "{not json",
             json.dumps([1, 2]), "", json.dumps({"id": 5}), json.dumps({"id": 6, "text": None, "meta": {"a": 1}})]
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = score(src, tmp_path / "out.jsonl")
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(out) == 6 and report.rows == 6  # the blank line is not a row
    assert out[0]["label"] == "positive" and out[0]["error"] is None
    assert out[1]["error"] == "not text (int)"
    assert out[2]["error"].startswith("invalid JSON on line 3") and out[2]["line"] == 3
    assert out[3]["error"] == "line 4 is JSON but not an object"
    assert out[4]["error"] == "missing text" and out[5]["error"] == "missing text"
    assert out[5]["meta"] == {"a": 1}


def test_parquet_keeps_types_and_marks_nulls(tmp_path: Path) -> None:
    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({"id": pa.array(range(9), pa.int64()),
                             "text": [None if i == 4 else f"{'good' if i % 2 else 'meh'} {i}" for i in range(9)]}),
                   src, row_group_size=3)
    report = score(src, tmp_path / "out.parquet")
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.schema.field("id").type == pa.int64() and table.schema.field("score").type == pa.float64()
    assert table.column("id").to_pylist() == list(range(9))
    assert table.column("error").to_pylist()[4] == "missing text"
    assert table.column("label").to_pylist()[1] == "positive"
    assert report.scored == 8 and not (tmp_path / "out.parquet.parts").exists()


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_interrupted_run_resumes_without_duplicates_or_gaps(tmp_path: Path, fmt: str) -> None:
    rows = rows_of(23)
    src = tmp_path / f"in.{fmt}"
    if fmt == "csv":
        write_csv(src, rows)
    elif fmt == "jsonl":
        src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    else:
        pq.write_table(pa.Table.from_pylist(rows), src, row_group_size=5)
    out = tmp_path / f"out.{fmt}"
    with pytest.raises(Interrupt):
        score(src, out, interrupting_predictor(after_calls=3))
    if fmt != "parquet":
        with out.open("ab") as fh:  # a chunk half-written when the power went: must not survive
            fh.write(b'{"id": "half' if fmt == "jsonl" else b"999,half a ro")
    report = score(src, out)
    assert report.skipped_resumed == 12 and report.rows == 23
    if fmt == "csv":
        ids = [r["id"] for r in read_csv(out)]
    elif fmt == "jsonl":
        ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    else:
        ids = pq.read_table(out).column("id").to_pylist()
    assert ids == [str(i) for i in range(23)]
    again = score(src, out)
    assert again.already_complete and again.rows == 23


def test_refusals_change_nothing(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "in.csv", rows_of(3))
    existing = tmp_path / "existing.csv"
    existing.write_text("precious data\n")
    with pytest.raises(ConflictError, match="--overwrite"):
        score(src, existing)
    assert existing.read_text() == "precious data\n"
    report = score(src, existing, overwrite=True)
    assert report.rows == 3 and len(read_csv(existing)) == 3
    with pytest.raises(NotFoundError):
        score(tmp_path / "missing.csv", tmp_path / "o.csv")
    with pytest.raises(InvalidInputError, match="format"):
        score(src, tmp_path / "out.parquet")
    with pytest.raises(InvalidInputError, match="extension"):
        score(src, tmp_path / "out.txt")
    with pytest.raises(InvalidInputError, match="must not be the input"):
        score(src, src)
    clash = tmp_path / "clash.csv"
    clash.write_text("text,label\ngood,1\n")
    with pytest.raises(InvalidInputError, match="--prefix"):
        score(clash, tmp_path / "clash-out.csv")
    assert score(clash, tmp_path / "clash-out2.csv", prefix="pred_").scored == 1


def test_changed_input_is_not_resumed_silently(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "in.csv", rows_of(12))
    out = tmp_path / "out.csv"
    with pytest.raises(Interrupt):
        score(src, out, interrupting_predictor(after_calls=1))
    write_csv(src, rows_of(13))
    with pytest.raises(ConflictError, match="input"):
        score(src, out)


def test_real_bundled_head_in_process_and_in_worker_processes(tmp_path: Path) -> None:
    from textlatent.sentiment import ParallelPredictor

    src = write_csv(tmp_path / "in.csv", [{"id": "1", "text": "a wonderful , moving film"},
                                          {"id": "2", "text": "a dull , lifeless mess"}, {"id": "3", "text": ""}])
    results = []
    for workers in (1, 2):
        predictor = ParallelPredictor(None, workers=workers)
        try:
            score(src, tmp_path / f"out{workers}.csv", predictor, in_flight=2 * workers)
        finally:
            predictor.close()
        results.append(read_csv(tmp_path / f"out{workers}.csv"))
    for out in results:
        assert [r["label"] for r in out] == ["positive", "negative", ""]
        assert out[2]["error"] == "empty text"
    assert [float(r["score"]) for r in results[0][:2]] == pytest.approx([float(r["score"]) for r in results[1][:2]])


def test_an_absent_text_column_is_a_usage_error(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "in.csv", rows_of(2))
    with pytest.raises(InvalidInputError, match="no column 'review'.*--text-column"):
        score(src, tmp_path / "out.csv", text_column="review")
    assert not (tmp_path / "out.csv").exists() and not (tmp_path / "out.csv.progress.json").exists()
