"""Ingestion of long documents as chunks: sources, offsets, re-ingestion, the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from textlatent.errors import InvalidInputError
from textlatent.retrieval.ingest import ingest

LONG = " ".join(f"Paragraph sentence {i} mentions the harbour lighthouse and fishing boats." for i in range(60))


def _folder(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "guide.md").write_text("# Guide\n\n" + LONG, encoding="utf-8")
    (root / "sub" / "note.txt").write_text("Café notes: croissants are baked at dawn.", encoding="utf-8")
    (root / "empty.txt").write_text("   \n", encoding="utf-8")
    (root / "ignored.pdf").write_text("not text", encoding="utf-8")
    return root


def test_ingest_a_folder_with_offsets(service: Any, tmp_path: Path) -> None:
    src = _folder(tmp_path / "docs")
    service.create_collection("kb")
    result = ingest(service, "kb", src, max_tokens=64, overlap=16, show_progress=False)
    assert (result.documents, result.empty) == (3, 1)
    coll = service.collection("kb")
    assert coll.count() == result.chunks > 3
    guide = (src / "guide.md").read_text(encoding="utf-8")
    for i in range(result.chunks - 1):
        doc = coll.get(f"guide.md#{i}")
        m = doc.metadata
        assert m["parent_id"] == "guide.md" and m["source"] == "guide.md" and m["chunk"] == i
        assert guide[m["start"] : m["end"]] == doc.text
    note = coll.get("sub/note.txt#0")
    assert note.text.startswith("Café") and note.metadata["start"] == 0
    hit = service.search("kb", query="croissants", k=1, mode="hybrid")[0]
    assert hit.id == "sub/note.txt#0"


def test_reingesting_a_shorter_document_removes_stale_chunks(service: Any, tmp_path: Path) -> None:
    service.create_collection("kb")
    path = tmp_path / "docs.jsonl"
    path.write_text(json.dumps({"id": "d1", "title": "Harbour", "text": LONG, "lang": "en"}) + "\n")
    first = ingest(service, "kb", path, max_tokens=64, overlap=16, show_progress=False)
    assert first.chunks > 3
    assert service.collection("kb").get("d1#0").metadata["lang"] == "en"
    path.write_text(json.dumps({"id": "d1", "text": "Now a short text."}) + "\n")
    second = ingest(service, "kb", path, max_tokens=64, overlap=16, show_progress=False)
    assert second.chunks == 1 and second.stale_deleted == first.chunks - 1
    assert service.collection("kb").count() == 1
    assert [h.id for h in service.search("kb", query="lighthouse", k=5, mode="bm25")] == []


def test_ingest_checks_before_writing(service: Any, tmp_path: Path) -> None:
    service.create_collection("kb")
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"id": "ok", "text": "fine"}) + "\n" + json.dumps({"id": "x#3", "text": "t"}) + "\n")
    with pytest.raises(InvalidInputError, match="reserved"):
        ingest(service, "kb", path, show_progress=False)
    assert service.collection("kb").count() == 0
    with pytest.raises(InvalidInputError, match="over the encoder's limit"):
        ingest(service, "kb", path, max_tokens=1000, show_progress=False)
    with pytest.raises(InvalidInputError, match="no such file"):
        ingest(service, "kb", tmp_path / "missing", show_progress=False)


@pytest.mark.parametrize(("row", "match"), [
    ({"id": "x" * 510, "text": "t"}, "ids of at most"),  # 'x…#10' would pass 512 characters mid-run
    ({"id": "n", "text": "t", "s": float("nan")}, "metadata"),
    ({"id": "s", "text": "bad \ud800 text"}, "not valid Unicode"),
    ({"id": "p", "text": "t", "parent_id": "elsewhere"}, "set by ingest"),
])
def test_rows_add_would_refuse_are_refused_before_anything_is_written(service: Any, tmp_path: Path, row: dict,
                                                                      match: str) -> None:
    service.create_collection("kb")
    path = tmp_path / "docs.jsonl"
    good = "".join(json.dumps({"id": f"g{i}", "text": "fine text"}) + "\n" for i in range(3))
    path.write_text(good + json.dumps(row) + "\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match=match):
        ingest(service, "kb", path, batch_size=1, show_progress=False)
    assert service.collection("kb").count() == 0


def test_an_id_twice_in_one_batch_leaves_no_chunk_of_the_earlier_row(service: Any, tmp_path: Path) -> None:
    service.create_collection("kb")
    path = tmp_path / "docs.jsonl"
    path.write_text(json.dumps({"id": "a", "text": LONG}) + "\n" + json.dumps({"id": "a", "text": "Short now."})
                    + "\n", encoding="utf-8")
    result = ingest(service, "kb", path, max_tokens=64, overlap=16, show_progress=False)
    assert result.chunks == 1 and result.documents == 1
    assert [d for d in service.collection("kb").ids_matching({"parent_id": "a"})] == ["a#0"]


def test_reingest_leaves_documents_that_only_share_a_parent_id_field_alone(service: Any, tmp_path: Path) -> None:
    """A comment added with `add` whose own metadata says parent_id: post1 is not a chunk of post1."""
    service.create_collection("kb")
    service.add_documents("kb", [{"id": "comment-7", "text": "nice post", "metadata": {"parent_id": "post1"}}])
    path = tmp_path / "docs.jsonl"
    path.write_text(json.dumps({"id": "post1", "text": "The post itself."}) + "\n", encoding="utf-8")
    assert ingest(service, "kb", path, show_progress=False).stale_deleted == 0
    assert service.collection("kb").get("comment-7").text == "nice post"


def test_ingest_cli(service: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from textlatent.cli import _State, app

    src = _folder(tmp_path / "docs")
    monkeypatch.setattr(_State, "service", classmethod(lambda cls: service))
    runner = CliRunner()
    result = runner.invoke(app, ["ingest", "kb", str(src), "--create", "--chunk-tokens", "64", "--overlap", "8",
                                 "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["documents"] == 3 and report["chunks"] == service.collection("kb").count()
    missing = runner.invoke(app, ["ingest", "nope", str(src)])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    bad = runner.invoke(app, ["ingest", "kb", str(src), "--chunk-tokens", "64", "--overlap", "64"])
    assert bad.exit_code == 2 and "overlap" in bad.output
