"""textlatent.documents: JSONL / CSV readers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from textlatent.documents import detect_format, read_documents
from textlatent.errors import InvalidInputError


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def test_jsonl_ids_title_and_metadata(tmp_path):
    f = write_jsonl(
        tmp_path / "docs.jsonl",
        [
            {"id": "a", "text": "alpha text", "title": "Alpha", "year": 2020, "metadata": {"src": "x", "year": 1}},
            {"id": 7, "text": "seven"},
            "",  # blank lines are skipped
            {"id": "c", "text": "", "title": "Only a title"},
            {"id": "d", "text": "dé ünïcode", "tags": ["t1"], "flag": True},
        ],
    )
    got = list(read_documents(f))
    assert [d.id for d in got] == ["a", "7", "c", "d"]
    a = got[0]
    assert a.text == "Alpha alpha text"  # MTEB convention: title + " " + text
    # extra fields → metadata, the title kept for display, "metadata" object merged over them
    assert a.metadata == {"title": "Alpha", "year": 1, "src": "x"}
    assert got[1].text == "seven" and got[1].metadata == {}
    assert got[2].text == "Only a title"
    assert got[3].metadata == {"tags": ["t1"], "flag": True}
    assert got[3].text == "dé ünïcode"


def test_beir_style_underscore_id(tmp_path):
    f = write_jsonl(tmp_path / "corpus.jsonl", [{"_id": "4983", "title": "T", "text": "body"}])
    (doc,) = read_documents(f)
    assert doc.id == "4983"
    assert doc.text == "T body"
    assert "_id" not in doc.metadata and doc.metadata == {"title": "T"}


def test_custom_fields_and_no_title(tmp_path):
    f = write_jsonl(tmp_path / "x.ndjson", [{"key": "k1", "body": "the body", "title": "Ignored title"}])
    (doc,) = read_documents(f, id_field="key", text_field="body", title_field=None)
    assert (doc.id, doc.text) == ("k1", "the body")
    assert doc.metadata == {"title": "Ignored title"}


def test_csv(tmp_path):
    f = tmp_path / "docs.csv"
    f.write_text('id,title,text,lang\n1,First,"hello, world",en\n2,,"multi\nline",fr\n', encoding="utf-8")
    got = list(read_documents(f))
    assert [d.id for d in got] == ["1", "2"]
    assert got[0].text == "First hello, world"
    assert got[0].metadata == {"title": "First", "lang": "en"}
    assert got[1].text == "multi\nline"
    assert got[1].metadata == {"title": "", "lang": "fr"}


def test_tsv(tmp_path):
    f = tmp_path / "docs.tsv"
    f.write_text("id\ttext\nx\ttab separated\n", encoding="utf-8")
    (doc,) = read_documents(f)
    assert (doc.id, doc.text) == ("x", "tab separated")


def test_bad_json_line_names_file_and_line(tmp_path):
    f = write_jsonl(tmp_path / "bad.jsonl", [{"id": "a", "text": "ok"}, "", '{"id": "b", "text": '])
    with pytest.raises(InvalidInputError) as info:
        list(read_documents(f))
    assert "bad.jsonl:3" in info.value.message
    assert "not valid JSON" in info.value.message


def test_non_object_line(tmp_path):
    f = write_jsonl(tmp_path / "arr.jsonl", [{"id": "a", "text": "ok"}, [1, 2]])
    with pytest.raises(InvalidInputError, match=r"arr\.jsonl:2: each line must be a JSON object"):
        list(read_documents(f))


@pytest.mark.parametrize(
    ("row", "match", "param"),
    [
        ({"id": "a", "title": "t"}, r"x\.jsonl:2: missing text field 'text'", "text_field"),
        ({"id": "a", "text": 5}, r"x\.jsonl:2: missing text field 'text'", "text_field"),
        ({"id": "a", "text": "   "}, r"x\.jsonl:2: document 'a' has empty text", "text_field"),
        ({"id": "a", "text": "", "title": " "}, r"x\.jsonl:2: document 'a' has empty text", "text_field"),
        ({"text": "no id"}, r"x\.jsonl:2: missing id field '_id'", "id_field"),
        ({"id": "", "text": "x"}, r"x\.jsonl:2: missing id field 'id'", "id_field"),
        ({"id": True, "text": "x"}, r"x\.jsonl:2: missing id field 'id'", "id_field"),
    ],
)
def test_bad_rows(tmp_path, row, match, param):
    f = write_jsonl(tmp_path / "x.jsonl", [{"id": "ok", "text": "fine"}, row])
    it = read_documents(f)
    assert next(it).id == "ok"  # rows before the bad one are fine
    with pytest.raises(InvalidInputError, match=match) as info:
        next(it)
    assert info.value.param == param


def test_csv_missing_text_column(tmp_path):
    f = tmp_path / "docs.csv"
    f.write_text("id,body\n1,hello\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match=r"docs\.csv:2: missing text field 'text'"):
        list(read_documents(f))


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(InvalidInputError, match="no such file"):
        list(read_documents(tmp_path / "absent.jsonl"))
    txt = tmp_path / "docs.txt"
    txt.write_text("hello\n")
    with pytest.raises(InvalidInputError) as info:
        list(read_documents(txt))
    assert info.value.param == "format"
    # an explicit format overrides the extension
    txt.write_text(json.dumps({"id": "1", "text": "t"}) + "\n")
    assert [d.id for d in read_documents(txt, fmt="jsonl")] == ["1"]
    with pytest.raises(InvalidInputError):
        detect_format(txt, "xml")
