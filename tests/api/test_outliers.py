"""POST /collections/{name}/outliers: ranking, and every bad input as a clear 4xx (never a 5xx: conftest)."""

from __future__ import annotations

import pytest

from tests.api.helpers import assert_error
from tests.vae.helpers import tiny_corpus, train_tiny

DOCS = [{"id": f"s{i}", "text": t, "metadata": {}} for i, t in enumerate(tiny_corpus()[:12])]
ODD = {"id": "odd", "text": "Mitochondrial DNA polymerase gamma mutations cause ataxia.", "metadata": {}}


@pytest.fixture
def filled(client):
    assert client.put("/collections/notes").status_code == 201
    assert client.post("/collections/notes/documents", json={"documents": [*DOCS, ODD]}).status_code == 200
    return client


@pytest.mark.parametrize("method", ["knn", "mahalanobis"])
def test_outliers_rank_the_odd_document_first(filled, method):
    resp = filled.post("/collections/notes/outliers", json={"method": method, "k": 3, "n": 5})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["collection"], body["method"], body["count"]) == ("notes", method, 13)
    assert body["k"] == (3 if method == "knn" else None)
    assert [r["rank"] for r in body["results"]] == [1, 2, 3, 4, 5]
    assert body["results"][0]["id"] == "odd" and body["results"][0]["text"] == ODD["text"]
    scores = [r["score"] for r in body["results"]]
    assert scores == sorted(scores, reverse=True)


def test_defaults_without_a_body(filled):
    resp = filled.post("/collections/notes/outliers")
    assert resp.status_code == 200, resp.text
    assert resp.json()["method"] == "knn" and len(resp.json()["results"]) == 10


@pytest.mark.parametrize(("payload", "param"), [
    ({"method": "lof"}, "method"),
    ({"k": 0}, "k"),
    ({"k": 1001}, "k"),
    ({"k": "ten"}, "k"),
    ({"n": 0}, "n"),
    ({"n": -3}, "n"),
    ({"colour": "red"}, "colour"),
])
def test_bad_inputs_are_422(filled, payload, param):
    assert_error(filled.post("/collections/notes/outliers", json=payload), 422, param=param)


def test_other_errors(client, filled):
    assert_error(client.post("/collections/nope/outliers", json={}), 404, param="name")
    # k larger than the collection allows (each document is left out of its own neighbours)
    err = assert_error(filled.post("/collections/notes/outliers", json={"k": 13}), 422, param="k")
    assert "at least 14 documents" in err["message"]
    # elbo without a configured VAE says how to configure one
    err = assert_error(filled.post("/collections/notes/outliers", json={"method": "elbo"}), 404)
    assert "TEXTLATENT_VAE_MODEL" in err["message"]
    assert client.put("/collections/empty").status_code == 201
    assert_error(client.post("/collections/empty/outliers", json={}), 422)
    assert_error(client.post("/collections/notes/outliers", content=b"{not json",
                             headers={"content-type": "application/json"}), 400)


def test_elbo_with_a_configured_vae(client_factory, encoder, tmp_path_factory, monkeypatch):
    import textlatent.cache

    vae_dir = tmp_path_factory.mktemp("outliers-vae")
    train_tiny(vae_dir, encoder, tmp_path_factory.mktemp("outliers-vae-cache"), epochs=2)
    client = client_factory(vae_model=str(vae_dir))
    assert client.put("/collections/notes").status_code == 201
    assert client.post("/collections/notes/documents", json={"documents": [*DOCS, ODD]}).status_code == 200
    cache = tmp_path_factory.mktemp("outliers-request-cache")
    monkeypatch.setenv("TEXTLATENT_CACHE_DIR", str(cache))
    monkeypatch.setattr(textlatent.cache, "MIN_TEXTS", 1)
    resp = client.post("/collections/notes/outliers", json={"method": "elbo", "n": 3})
    assert resp.status_code == 200, resp.text
    assert not list(cache.rglob("*.npy"))  # a request leaves no embedding file behind
    body = resp.json()
    assert body["method"] == "elbo" and body["k"] is None
    assert body["results"][0]["id"] == "odd"  # its words are all unknown to the tiny VAE
