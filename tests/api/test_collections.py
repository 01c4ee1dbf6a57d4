"""The /collections routes, end to end through the FastAPI app (no 5xx ever: see conftest)."""

from __future__ import annotations

import pytest

from tests.api.helpers import assert_error

DOCS = [
    {"id": "cats", "text": "Cats are small domesticated felines that purr.", "metadata": {"topic": "animals", "n": 1}},
    {"id": "dogs", "text": "Dogs are loyal animals that bark and fetch.", "metadata": {"topic": "animals", "n": 2}},
    {"id": "rates", "text": "The central bank raised interest rates to fight inflation.",
     "metadata": {"topic": "finance", "n": 3, "flag": True}},
    {"id": "vitd", "text": "Vitamin D deficiency weakens bones and causes rickets.",
     "metadata": {"topic": "health", "n": 1, "flag": 1}},
]


def index_dir(client):
    return client.app.state.settings.index_dir


def test_full_flow(client, encoder):
    # create: 201, then 200 for the same settings, 409 for other ones
    resp = client.put("/collections/notes")
    assert resp.status_code == 201, resp.text
    info = resp.json()
    assert (info["name"], info["index"], info["dim"], info["model"], info["count"]) == (
        "notes", "Flat", 384, "all-MiniLM-L6-v2", 0)
    assert info["trained"] is True and info["train_threshold"] == 0
    assert (index_dir(client) / "notes" / "collection.json").is_file()

    resp = client.put("/collections/notes", json={"index": "Flat"})
    assert resp.status_code == 200 and resp.json()["name"] == "notes"
    assert_error(client.put("/collections/notes", json={"index": "HNSW32"}), 409, param="name")

    # list / get
    resp = client.get("/collections")
    assert resp.status_code == 200
    assert [c["name"] for c in resp.json()["collections"]] == ["notes"]
    assert client.get("/collections/notes").json()["count"] == 0

    # upsert
    resp = client.post("/collections/notes/documents", json={"documents": DOCS})
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"upserted": 4, "count": 4}
    assert client.get("/collections/notes").json()["count"] == 4

    # get a document
    resp = client.get("/collections/notes/documents/cats")
    assert resp.status_code == 200
    assert resp.json() == {"id": "cats", "text": DOCS[0]["text"], "metadata": DOCS[0]["metadata"]}
    assert_error(client.get("/collections/notes/documents/nope"), 404, param="id")

    # search by text
    resp = client.post("/collections/notes/search", json={"query": "my puppy likes to play fetch", "k": 2})
    assert resp.status_code == 200, resp.text
    results = resp.json()["results"]
    assert [r["id"] for r in results][0] == "dogs" and len(results) == 2
    assert results[0]["score"] >= results[1]["score"]
    assert set(results[0]) == {"id", "score", "text", "metadata"}

    # search by vector: the stored vector of a doc finds it with score ~1
    vec = encoder.encode(DOCS[2]["text"])[0]
    resp = client.post("/collections/notes/search", json={"vector": vec.tolist(), "k": 3})
    assert resp.status_code == 200
    top = resp.json()["results"][0]
    assert top["id"] == "rates" and top["score"] == pytest.approx(1.0, abs=1e-4)

    # filter
    resp = client.post("/collections/notes/search",
                       json={"query": "pets", "k": 10, "filter": {"topic": "animals"}})
    assert {r["id"] for r in resp.json()["results"]} == {"cats", "dogs"}
    resp = client.post("/collections/notes/search", json={"query": "x", "k": 10, "filter": {"flag": True}})
    assert [r["id"] for r in resp.json()["results"]] == ["rates"]  # true does not match 1
    resp = client.post("/collections/notes/search", json={"query": "x", "k": 10, "filter": {"flag": 1}})
    assert [r["id"] for r in resp.json()["results"]] == ["vitd"]
    resp = client.post("/collections/notes/search", json={"query": "x", "k": 10, "filter": {"n": 1}})
    assert {r["id"] for r in resp.json()["results"]} == {"cats", "vitd"}
    resp = client.post("/collections/notes/search", json={"query": "x", "k": 10, "filter": {"topic": "none"}})
    assert resp.json()["results"] == []

    # replace by id
    resp = client.post("/collections/notes/documents",
                       json={"documents": [{"id": "cats", "text": "Stock prices rallied on Wall Street."}]})
    assert resp.json() == {"upserted": 1, "count": 4}
    assert client.get("/collections/notes/documents/cats").json()["metadata"] == {}
    resp = client.post("/collections/notes/search", json={"query": "stock market rally", "k": 1})
    assert resp.json()["results"][0]["id"] == "cats"

    # delete a document
    resp = client.delete("/collections/notes/documents/dogs")
    assert resp.status_code == 200 and resp.json() == {"id": "dogs", "deleted": True}
    assert_error(client.delete("/collections/notes/documents/dogs"), 404)
    assert_error(client.get("/collections/notes/documents/dogs"), 404)
    assert client.get("/collections/notes").json()["count"] == 3
    resp = client.post("/collections/notes/search", json={"query": "my puppy likes to play fetch", "k": 10})
    assert "dogs" not in [r["id"] for r in resp.json()["results"]]

    # delete the collection
    resp = client.delete("/collections/notes")
    assert resp.status_code == 200 and resp.json() == {"id": "notes", "deleted": True}
    assert not (index_dir(client) / "notes").exists()
    assert_error(client.get("/collections/notes"), 404, type_="not_found")
    assert_error(client.delete("/collections/notes"), 404)
    assert client.get("/collections").json() == {"collections": []}


@pytest.fixture
def filled(client):
    assert client.put("/collections/c").status_code == 201
    assert client.post("/collections/c/documents", json={"documents": DOCS}).status_code == 200
    return client


def test_create_with_index_and_model(client):
    resp = client.put("/collections/h", json={"index": "HNSW16", "model": "all-MiniLM-L6-v2"})
    assert resp.status_code == 201 and resp.json()["index"] == "HNSW16"
    resp = client.put("/collections/ivf", json={"index": "IVF4,Flat"})
    assert resp.status_code == 201
    assert resp.json()["trained"] is False and resp.json()["train_threshold"] == 156


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"index": "NotAFactory"}, 422, "index"),
        ({"index": "HNSW1"}, 422, "index"),
        ({"index": ""}, 422, "index"),
        ({"model": "unknown-model"}, 404, "model"),
        ({"index": "Flat", "extra": 1}, 422, "extra"),
        ({"index": 5}, 422, "index"),
    ],
)
def test_create_bad_bodies(client, body, status, param):
    assert_error(client.put("/collections/c", json=body), status, param=param)
    assert not (index_dir(client) / "c").exists()


@pytest.mark.parametrize("k", [0, -1, 1001])
def test_k_out_of_range(filled, k):
    err = assert_error(filled.post("/collections/c/search", json={"query": "cats", "k": k}), 422, param="k")
    assert "1000" in err["message"]


def test_k_at_the_limits(filled):
    assert len(filled.post("/collections/c/search", json={"query": "cats", "k": 1}).json()["results"]) == 1
    resp = filled.post("/collections/c/search", json={"query": "cats", "k": 1000})
    assert len(resp.json()["results"]) == 4


def test_max_k_setting(client_factory):
    client = client_factory(max_k=5)
    client.put("/collections/c")
    client.post("/collections/c/documents", json={"documents": DOCS})
    assert client.post("/collections/c/search", json={"query": "x", "k": 5}).status_code == 200
    assert_error(client.post("/collections/c/search", json={"query": "x", "k": 6}), 422, param="k")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"vector": [0.1] * 10}, "vector"),
        ({"vector": [0.1] * 385}, "vector"),
        ({"vector": []}, "vector"),
        ({}, "query"),
        ({"k": 3}, "query"),
        ({"query": "cats", "vector": [0.1] * 384}, "query"),
        ({"query": "   "}, "query"),
        ({"query": "cats", "filter": {"topic": ["a"]}}, None),
        ({"query": "cats", "filter": {"topic": {"a": 1}}}, None),
        ({"query": "cats", "filter": {'q"': 1}}, "filter"),
        ({"query": "cats", "unknown": 1}, "unknown"),
        ({"query": 5}, "query"),
        ({"query": "cats", "k": "many"}, "k"),
    ],
)
def test_bad_search_bodies(filled, body, param):
    assert_error(filled.post("/collections/c/search", json=body), 422, param=param)


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
def test_non_finite_vector(filled):
    resp = filled.post("/collections/c/search", content=b'{"vector": [NaN' + b", 0.1" * 383 + b"]}",
                       headers={"content-type": "application/json"})
    assert resp.status_code in (400, 422)
    assert_error(resp, resp.status_code)
    resp = filled.post("/collections/c/search", json={"vector": [1e39] + [0.0] * 383})
    assert_error(resp, 422, param="vector")


def test_unknown_collection(client):
    for resp in (
        client.get("/collections/nope"),
        client.delete("/collections/nope"),
        client.post("/collections/nope/search", json={"query": "x"}),
        client.post("/collections/nope/documents", json={"documents": DOCS[:1]}),
        client.get("/collections/nope/documents/a"),
        client.delete("/collections/nope/documents/a"),
    ):
        assert_error(resp, 404, type_="not_found")
    assert not (index_dir(client) / "nope").exists()


@pytest.mark.parametrize("name", ["bad.name", "a%2Fb", "..%2Fescape", ".hidden", "x" * 65, "a%20b", "%2E%2E",
                                  "-dash", "caf%C3%A9"])
def test_invalid_names(client, name):
    before = sorted(p.name for p in index_dir(client).parent.iterdir())
    before_root = sorted(p.name for p in index_dir(client).iterdir())
    responses = [
        client.put(f"/collections/{name}"),
        client.get(f"/collections/{name}"),
        client.delete(f"/collections/{name}"),
        client.post(f"/collections/{name}/documents", json={"documents": DOCS[:1]}),
        client.post(f"/collections/{name}/search", json={"query": "x"}),
    ]
    for resp in responses:
        assert resp.status_code in (404, 405, 422), (name, resp.status_code, resp.text)
        assert_error(resp, resp.status_code)
    assert sorted(p.name for p in index_dir(client).parent.iterdir()) == before
    assert sorted(p.name for p in index_dir(client).iterdir()) == before_root
    assert client.get("/collections").json() == {"collections": []}


def test_invalid_name_is_422_with_param(client):
    err = assert_error(client.put("/collections/bad.name"), 422, param="name")
    assert "bad.name" in err["message"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"documents": [{"id": "a", "text": "x", "extra": 1}]}, "documents[0].extra"),
        ({"documents": [{"id": "a", "text": "x"}], "extra": 1}, "extra"),
        ({"documents": [{"id": "", "text": "x"}]}, "documents[0].id"),
        ({"documents": [{"id": "a" * 513, "text": "x"}]}, "documents[0].id"),
        ({"documents": [{"id": "a", "text": ""}]}, "documents[0].text"),
        ({"documents": [{"id": "a", "text": "   "}]}, "documents[0].text"),
        ({"documents": [{"id": "a"}]}, "documents[0].text"),
        ({"documents": [{"id": "a", "text": "x", "metadata": [1]}]}, "documents[0].metadata"),
        ({"documents": []}, "documents"),
        ({"docs": []}, None),
        ([{"id": "a", "text": "x"}], None),
    ],
)
def test_bad_document_bodies(filled, body, param):
    assert_error(filled.post("/collections/c/documents", json=body), 422, param=param)
    assert filled.get("/collections/c").json()["count"] == 4


def test_nan_in_metadata_rejected(filled):
    raw = b'{"documents": [{"id": "n", "text": "t", "metadata": {"x": NaN}}]}'
    resp = filled.post("/collections/c/documents", content=raw, headers={"content-type": "application/json"})
    assert resp.status_code in (400, 422)
    assert_error(resp, resp.status_code)
    assert_error(filled.get("/collections/c/documents/n"), 404)


def test_documents_over_max_batch(client_factory):
    client = client_factory(max_batch=2)
    client.put("/collections/c")
    err = assert_error(client.post("/collections/c/documents", json={"documents": DOCS[:3]}), 413)
    assert err["param"] == "documents"
    assert client.get("/collections/c").json()["count"] == 0
    assert client.post("/collections/c/documents", json={"documents": DOCS[:2]}).json()["count"] == 2


@pytest.mark.parametrize("path", ["/collections/c/search", "/collections/c/documents", "/collections/c"])
def test_malformed_json(filled, path):
    method = filled.put if path == "/collections/c" else filled.post
    resp = method(path, content=b'{"query": ', headers={"content-type": "application/json"})
    err = assert_error(resp, 400, type_="invalid_request")
    assert "JSON" in err["message"]


def test_duplicate_ids_in_one_request_keep_the_last(filled):
    docs = [{"id": "dup", "text": "first version"}, {"id": "dup", "text": "second version about rockets"}]
    resp = filled.post("/collections/c/documents", json={"documents": docs})
    assert resp.json() == {"upserted": 1, "count": 5}
    assert filled.get("/collections/c/documents/dup").json()["text"] == docs[1]["text"]
    top = filled.post("/collections/c/search", json={"query": "rockets", "k": 1}).json()["results"][0]
    assert top["id"] == "dup"


@pytest.mark.parametrize("doc_id", ["id with spaces", "q?x=1", "hash#tag", "é-ü", "100%", "a+b", "dir/name"])
def test_document_ids_with_odd_characters_round_trip(filled, encoder, doc_id):
    from urllib.parse import quote

    text = f"a document whose id is {doc_id}"
    resp = filled.post("/collections/c/documents", json={"documents": [{"id": doc_id, "text": text}]})
    assert resp.status_code == 200
    resp = filled.get(f"/collections/c/documents/{quote(doc_id, safe='')}")
    assert resp.status_code == 200 and resp.json()["id"] == doc_id
    hits = filled.post("/collections/c/search", json={"vector": encoder.encode(text)[0].tolist(), "k": 1})
    assert hits.json()["results"][0]["id"] == doc_id
    resp = filled.delete(f"/collections/c/documents/{quote(doc_id, safe='')}")
    assert resp.status_code == 200 and resp.json()["id"] == doc_id
    assert filled.get("/collections/c").json()["count"] == 4


def test_collection_model_not_served_is_422_for_text_but_vector_works(client, encoder):
    from textlatent.collections import CollectionStore

    # a collection built elsewhere with another model of the same dimension
    store = CollectionStore(index_dir(client))
    coll, _ = store.create("foreign", dim=384, model="other-model")
    vec = encoder.encode("hello")
    coll.upsert([{"id": "h", "text": "hello"}], vec)
    err = assert_error(client.post("/collections/foreign/search", json={"query": "hello"}), 422, param="query")
    assert "other-model" in err["message"]
    resp = client.post("/collections/foreign/search", json={"vector": vec[0].tolist()})
    assert resp.status_code == 200 and resp.json()["results"][0]["id"] == "h"
    assert_error(client.post("/collections/foreign/documents", json={"documents": DOCS[:1]}), 422)
