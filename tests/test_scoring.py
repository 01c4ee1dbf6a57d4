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


def test_precision_fast_follows_the_hardware_and_auto_the_server(monkeypatch) -> None:
    import textlatent.models as models
    from textlatent.sentiment.heads import scoring_precision

    monkeypatch.setattr(models, "native_bf16_cpu", lambda: True)
    assert scoring_precision("fast", "cpu") == "bf16"
    assert scoring_precision("auto", "cpu") == "fp32"  # the server's meaning: bf16 on cuda only
    assert scoring_precision("fast", "cpu", "onnx") == "fp32"  # onnxruntime computes in fp32 only
    assert scoring_precision("fp32", "cpu") == "fp32"
    monkeypatch.setattr(models, "native_bf16_cpu", lambda: False)
    assert scoring_precision("fast", "cpu") == "fp32"
    assert scoring_precision("bf16", "cpu", "torch") == "bf16"  # asked for: emulated, slower, but honoured
    monkeypatch.setattr(models, "resolve_device", lambda device: "cuda")
    assert scoring_precision("fast", "auto") == scoring_precision("auto", "auto") == "bf16"
    with pytest.raises(InvalidInputError, match="no bf16 path") as err:
        scoring_precision("bf16", "cpu", "onnx")
    assert err.value.param == "precision"
    with pytest.raises(InvalidInputError, match="precision must be one of auto, fast, fp32, bf16, int8"):
        scoring_precision("fp16", "cpu")
    with pytest.raises(InvalidInputError, match="int8 is for the CPU"):  # still on the monkeypatched cuda
        scoring_precision("int8", "auto")
    monkeypatch.setattr(models, "resolve_device", lambda device: "cpu")
    assert scoring_precision("int8", "auto") == scoring_precision("int8", "cpu", "onnx") == "int8"
    with pytest.raises(InvalidInputError, match="int8 runs on onnxruntime"):
        scoring_precision("int8", "cpu", "torch")


def test_bf16_scoring_gives_the_labels_and_nearly_the_scores_of_fp32() -> None:
    """bf16 autocast, against fp32 in the same torch encoder: probabilities within 0.01, labels equal."""
    from textlatent.encoder import Encoder
    from textlatent.sentiment import ParallelPredictor

    texts = ["a wonderful , moving film", "a dull , lifeless mess", "it 's not bad at all",
             "the plot is thin but the actors carry it"]
    probs = {}
    for precision in ("fp32", "bf16"):
        predictor = ParallelPredictor(None, workers=1, backend="torch", device="cpu", precision=precision)
        encoder = predictor.model.encoder
        assert predictor.precision == precision and isinstance(encoder, Encoder)
        assert encoder.autocast == (precision == "bf16")
        probs[precision] = predictor(texts)
    assert (probs["bf16"] >= 0.5).tolist() == (probs["fp32"] >= 0.5).tolist()
    assert np.abs(probs["bf16"] - probs["fp32"]).max() < 0.01
    assert np.abs(probs["bf16"] - probs["fp32"]).max() > 1e-5  # really another arithmetic


def test_a_run_resumes_only_in_the_arithmetic_it_began_with(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "in.csv", rows_of(12))
    out = tmp_path / "out.csv"
    with pytest.raises(Interrupt):
        score(src, out, interrupting_predictor(after_calls=1), precision="bf16")
    with pytest.raises(ConflictError, match="precision changed"):
        score(src, out, precision="fp32")
    report = score(src, out, precision="bf16")
    assert report.precision == "bf16" and report.as_dict()["precision"] == "bf16"
    assert report.skipped_resumed == 4 and len(read_csv(out)) == 12


def test_a_record_from_before_precision_was_recorded_resumes_as_fp32(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "in.csv", rows_of(12))
    out = tmp_path / "out.csv"
    with pytest.raises(Interrupt):
        score(src, out, interrupting_predictor(after_calls=1))
    record = out.with_name(out.name + ".progress.json")
    state = json.loads(record.read_text())
    del state["precision"]
    record.write_text(json.dumps(state))
    with pytest.raises(ConflictError, match="precision changed"):
        score(src, out, precision="bf16")
    assert score(src, out, precision="fp32").skipped_resumed == 4


def test_an_absent_text_column_is_a_usage_error(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "in.csv", rows_of(2))
    with pytest.raises(InvalidInputError, match="no column 'review'.*--text-column"):
        score(src, tmp_path / "out.csv", text_column="review")
    assert not (tmp_path / "out.csv").exists() and not (tmp_path / "out.csv.progress.json").exists()


# --------------------------------------------------------------------------- found by a review (session 11)


def test_a_kill_while_the_parquet_parts_are_removed_loses_no_row(tmp_path: Path, monkeypatch) -> None:
    """The join is recorded before the parts are deleted: a re-run only finishes the cleanup (it used
    to join the parts left and replace the complete OUTPUT with fewer rows)."""
    import textlatent.scoring as scoring

    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({"id": list(range(10)), "text": ["good"] * 10}), src, row_group_size=4)
    out = tmp_path / "out.parquet"
    real = scoring.shutil.rmtree

    def killed_midway(path, ignore_errors=False):
        parts = sorted(Path(path).glob("part-*.parquet"))
        if parts:
            parts[0].unlink()
            raise KeyboardInterrupt
        return real(path, ignore_errors=ignore_errors)

    monkeypatch.setattr(scoring.shutil, "rmtree", killed_midway)
    with pytest.raises(KeyboardInterrupt):
        score(src, out)
    monkeypatch.setattr(scoring.shutil, "rmtree", real)
    again = score(src, out)
    assert again.rows == 10
    assert pq.read_table(out).column("id").to_pylist() == list(range(10))
    assert not (tmp_path / "out.parquet.parts").exists()


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_changed_prefix_is_not_resumed_into_the_same_output(tmp_path: Path, fmt: str) -> None:
    src = tmp_path / f"in.{fmt}"
    if fmt == "csv":
        write_csv(src, rows_of(10))
    else:
        src.write_text("".join(json.dumps(r) + "\n" for r in rows_of(10)), encoding="utf-8")
    out = tmp_path / f"out.{fmt}"
    with pytest.raises(Interrupt):
        score(src, out, interrupting_predictor(1))
    with pytest.raises(ConflictError, match="prefix"):
        score(src, out, prefix="p_")
    assert score(src, out).rows == 10  # the same prefix resumes


@pytest.mark.parametrize("damage", ["deleted", "truncated"])
def test_an_output_deleted_or_cut_since_the_record_is_refused_not_resumed(tmp_path: Path, damage: str) -> None:
    src = write_csv(tmp_path / "in.csv", rows_of(10))
    out = tmp_path / "out.csv"
    with pytest.raises(Interrupt):
        score(src, out, interrupting_predictor(2))
    if damage == "deleted":
        out.unlink()
    else:
        out.write_bytes(out.read_bytes()[:10])
    with pytest.raises(ConflictError, match="no longer holds"):
        score(src, out)
    done = tmp_path / "done.csv"
    score(src, done)
    done.unlink()
    with pytest.raises(ConflictError, match="no longer holds"):  # not "already complete" with no file
        score(src, done)
    assert score(src, done, overwrite=True).rows == 10 and len(read_csv(done)) == 10


def test_jsonl_keys_that_clash_with_the_added_columns_need_a_prefix(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"text": "good", "label": "gold-neg", "error": "keep"}) + "\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match="prefix"):
        score(src, tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists()
    score(src, tmp_path / "out.jsonl", prefix="p_")
    row = json.loads((tmp_path / "out.jsonl").read_text(encoding="utf-8"))
    assert row["label"] == "gold-neg" and row["error"] == "keep" and row["p_label"] == "positive"
    later = tmp_path / "later.jsonl"  # a clash past the first rows is caught when the row is reached
    later.write_text("".join(json.dumps({"text": "good"}) + "\n" for _ in range(120))
                     + json.dumps({"text": "good", "score": 3}) + "\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match="row 121"):
        score(later, tmp_path / "later.out.jsonl", chunk_size=50)
    wrong = tmp_path / "wrong.jsonl"
    wrong.write_text(json.dumps({"review": "good"}) + "\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match="no column 'text'"):
        score(wrong, tmp_path / "wrong.out.jsonl")


def test_csv_inputs_the_csv_module_used_to_refuse_or_mangle(tmp_path: Path) -> None:
    long = tmp_path / "long.csv"
    long.write_text("id,text\n1," + "good " * 40000 + "\n2,bad\n", encoding="utf-8")  # a 200 kB field
    assert score(long, tmp_path / "long.out.csv").scored == 2
    dup = tmp_path / "dup.csv"
    dup.write_text("id,text,text\n1,good,bad\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match="repeats column name"):
        score(dup, tmp_path / "dup.out.csv")
    with pytest.raises(NotFoundError, match="folder of OUTPUT"):
        score(long, tmp_path / "no-such-folder" / "o.csv")


def test_an_empty_parquet_input_gives_an_empty_output_with_the_added_columns(tmp_path: Path) -> None:
    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({"id": pa.array([], pa.int64()), "text": pa.array([], pa.string())}), src)
    out = tmp_path / "out.parquet"
    assert score(src, out).rows == 0
    table = pq.read_table(out)
    assert table.num_rows == 0 and table.column_names == ["id", "text", "label", "score", "error"]
    assert score(src, out).already_complete
