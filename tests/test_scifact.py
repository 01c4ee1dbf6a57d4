"""Real data: the first 300 SciFact abstracts (slow; run with ``-m slow``)."""

from __future__ import annotations

import itertools
import json

import pytest

pytestmark = pytest.mark.slow


def test_scifact_vitamin_d_query(data_dir, service, tmp_path):
    corpus = data_dir / "scifact" / "corpus.jsonl"
    if not corpus.is_file():
        pytest.skip(f"{corpus} is absent")
    subset = tmp_path / "scifact-300.jsonl"
    with open(corpus, encoding="utf-8") as src:
        lines = list(itertools.islice(src, 300))
    subset.write_text("".join(lines), encoding="utf-8")
    mentions = {json.loads(line)["_id"] for line in lines if "vitamin d" in line.lower()}
    assert mentions, "the first 300 SciFact docs should mention vitamin D somewhere"

    service.create_collection("scifact")
    n = service.add_file("scifact", subset, show_progress=False)
    assert n == 300
    assert service.collection("scifact").count() == 300

    hits = service.search("scifact", query="Does vitamin D deficiency increase disease risk?", k=3)
    assert len(hits) == 3
    assert any("vitamin d" in h.text.lower() for h in hits), [h.text[:80] for h in hits]
    assert hits[0].id in mentions
    # BEIR layout: _id as id, the title before the text and kept in metadata
    top = service.collection("scifact").get(hits[0].id)
    assert top.text.startswith(top.metadata["title"])
