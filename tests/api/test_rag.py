"""POST /rag/query and the mode/rerank fields of collection search, on a tiny collection."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.api.helpers import assert_error
from tests.retrieval.fake_llm import fake_llm

DOCS = [
    {"id": "aspirin", "text": "Daily low-dose aspirin lowers the risk of a second heart attack.",
     "metadata": {"parent_id": "paper-1", "start": 120, "end": 184, "year": 2019}},
    {"id": "vitc", "text": "Vitamin C supplements do not prevent the common cold in most people.",
     "metadata": {"year": 2007}},
    {"id": "sleep", "text": "Adults need seven or more hours of sleep per night for good health.",
     "metadata": {"year": 2015}},
]


@pytest.fixture
def kb(client: Any) -> Any:
    assert client.put("/collections/kb", json={}).status_code == 201
    assert client.post("/collections/kb/documents", json={"documents": DOCS}).status_code == 200
    return client


def test_rag_query_returns_cited_passages_and_prompt(kb: Any) -> None:
    resp = kb.post("/rag/query", json={"query": "Does aspirin prevent heart attacks?", "collection": "kb", "k": 2,
                                       "mode": "hybrid", "max_context_tokens": 300})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    first = body["passages"][0]
    assert first["id"] == "aspirin" and first["citation"] == 1 and first["parent_id"] == "paper-1"
    assert (first["start"], first["end"]) == (120, 120 + len(first["text"]))
    assert first["metadata"]["year"] == 2019 and not first["truncated"]
    assert len(body["passages"]) == 2 and body["passages"][1]["citation"] == 2
    assert "[1] (source: paper-1) Daily low-dose aspirin" in body["prompt"]
    assert body["prompt_tokens"] <= 300 and body["max_context_tokens"] == 300
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert body["answer"] is None and body["mode"] == "hybrid" and body["reranked"] is False


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_collection_search_modes(kb: Any, mode: str) -> None:
    resp = kb.post("/collections/kb/search", json={"query": "vitamin C and colds", "k": 2, "mode": mode})
    assert resp.status_code == 200, resp.text
    assert resp.json()["results"][0]["id"] == "vitc"


def test_bad_requests_are_4xx_json(kb: Any) -> None:
    assert_error(kb.post("/rag/query", json={"query": "q", "collection": "nope"}), 404, param="collection")
    assert_error(kb.post("/rag/query", json={"query": "q", "collection": "../x"}), 422, param="collection")
    assert_error(kb.post("/rag/query", json={"query": "q", "collection": "kb", "mode": "fuzzy"}), 422, param="mode")
    assert_error(kb.post("/rag/query", json={"query": "q", "collection": "kb", "max_context_tokens": 5}), 422,
                 param="max_context_tokens")
    assert_error(kb.post("/rag/query", json={"query": "q", "collection": "kb", "k": 0}), 422, param="k")
    assert_error(kb.post("/rag/query", json={"query": "q", "collection": "kb", "rerank": True}), 422, param="rerank")
    # a union's member (GenerateOptions) is not part of the field's name
    err = assert_error(kb.post("/rag/query", json={"query": "q", "collection": "kb", "generate": {"backend": "x"}}),
                       422, param="generate")
    assert "generate.backend:" in err["message"] and "GenerateOptions" not in err["message"]
    assert_error(kb.post("/rag/query", json={"query": "", "collection": "kb"}), 422)
    assert_error(kb.post("/rag/query", json={"query": "q", "collection": "kb", "extra": 1}), 422)
    assert_error(kb.post("/rag/query", json={"query": "q", "collection": "kb",
                                             "generate": {"backend": "remote"}}), 422, param="generate.backend")
    assert_error(kb.post("/rag/query", json={"query": "q", "collection": "kb",
                                             "generate": {"max_new_tokens": 0}}), 422)
    assert_error(kb.post("/collections/kb/search", json={"vector": [0.0] * 384, "mode": "bm25"}), 422,
                 param="query")
    assert_error(kb.post("/collections/kb/search", json={"query": "q", "mode": "other"}), 422)


def test_generation_through_a_remote_endpoint(client_factory: Any) -> None:
    with fake_llm("Aspirin lowers the risk [1].") as (url, seen):
        client = client_factory(llm_url=url, llm_model="tiny")
        client.put("/collections/kb", json={})
        client.post("/collections/kb/documents", json={"documents": DOCS})
        resp = client.post("/rag/query", json={"query": "aspirin?", "collection": "kb", "k": 1,
                                               "generate": {"max_new_tokens": 16}})
        assert resp.status_code == 200, resp.text
        assert resp.json()["answer"] == {"text": "Aspirin lowers the risk [1].", "model": "tiny"}
        assert seen[0]["body"]["messages"] == resp.json()["messages"]
        assert seen[0]["body"]["max_tokens"] == 16

        with client.stream("POST", "/rag/query", json={"query": "aspirin?", "collection": "kb", "k": 1,
                                                       "generate": {"stream": True, "max_new_tokens": 16}}) as s:
            assert s.status_code == 200 and s.headers["content-type"].startswith("text/event-stream")
            raw = s.read().decode()
    events = [(b.split("\n")[0].removeprefix("event: "), json.loads(b.split("\n")[1].removeprefix("data: ")))
              for b in raw.strip().split("\n\n")]
    names = [e for e, _ in events]
    assert names[0] == "passages" and names[-1] == "done" and set(names[1:-1]) == {"delta"}
    assert events[0][1]["passages"][0]["id"] == "aspirin"
    assert "".join(d["text"] for e, d in events if e == "delta").strip() == "Aspirin lowers the risk [1]."
    assert events[-1][1] == {"answer": "Aspirin lowers the risk [1].", "model": "tiny"}


def test_upstream_failure_is_502(client_factory: Any) -> None:
    with fake_llm(status=500) as (url, _):
        client = client_factory(llm_url=url)
        client.event_hooks["response"].clear()  # a 502 is the right answer here
        client.put("/collections/kb", json={})
        client.post("/collections/kb/documents", json={"documents": DOCS})
        resp = client.post("/rag/query", json={"query": "aspirin?", "collection": "kb", "generate": True})
        streamed = client.post("/rag/query", json={"query": "aspirin?", "collection": "kb",
                                                   "generate": {"stream": True}})
    assert_error(resp, 502, type_="upstream_error")
    # streaming too: the failure comes before the first piece, so it is a 502, not a 200 with an error event
    assert_error(streamed, 502, type_="upstream_error")
