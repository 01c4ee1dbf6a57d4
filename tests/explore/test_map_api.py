"""The explorer's JSON routes: the collection map (PCA, clusters, sentiment) and neighbours,
with their bad inputs; no browser needed."""

from __future__ import annotations

import pytest

from api.schemas_explore import CollectionMap
from tests.api.helpers import assert_error
from tests.explore.fixtures import NEGATIVE, POSITIVE, documents


@pytest.fixture
def mapped(client):
    assert client.put("/collections/films").status_code == 201
    r = client.post("/collections/films/documents", json={"documents": documents()})
    assert r.status_code == 200, r.text
    return client


def test_pca_map_with_clusters(mapped):
    r = mapped.get("/collections/films/map", params={"clusters": 3})
    assert r.status_code == 200, r.text
    body = r.json()
    CollectionMap.model_validate(body)  # the route skips re-validation: the shape must still match
    assert (body["collection"], body["method"], body["color"]) == ("films", "pca", "cluster")
    assert body["total"] == body["count"] == 12 and len(body["points"]) == 12
    assert body["cached"] is False and body["clusters"] == 3
    ev = body["explained_variance"]
    assert len(ev) == 2 and ev[0] >= ev[1] > 0 and sum(ev) < 1
    by_id = {p["id"]: p for p in body["points"]}
    assert by_id["pos0"]["text"] == POSITIVE[0]
    assert {p["cluster"] for p in body["points"]} == {0, 1, 2}
    assert all(p["label"] is None and p["score"] is None for p in body["points"])
    # the points are spread over the plane, not collapsed
    xs, ys = [p["x"] for p in body["points"]], [p["y"] for p in body["points"]]
    assert max(xs) - min(xs) > 0.1 and max(ys) - min(ys) > 0.1
    # finance news and film reviews never share a cluster
    fin = {by_id[f"fin{i}"]["cluster"] for i in range(4)}
    films = {by_id[f"{g}{i}"]["cluster"] for g in ("pos", "neg") for i in range(4)}
    assert not fin & films


def test_repeated_load_is_served_from_the_cache_until_a_write(mapped):
    first = mapped.get("/collections/films/map").json()
    again = mapped.get("/collections/films/map").json()
    assert again["cached"] is True and first["cached"] is False
    assert again["points"] == first["points"] and again["generation"] == first["generation"]
    r = mapped.post("/collections/films/documents",
                    json={"documents": [{"id": "new", "text": "a charming little gem of a film"}]})
    assert r.status_code == 200
    after = mapped.get("/collections/films/map").json()
    assert after["cached"] is False and after["generation"] > first["generation"]
    assert after["count"] == 13 and "new" in {p["id"] for p in after["points"]}


def test_sentiment_colours_from_the_bundled_head(mapped):
    r = mapped.get("/collections/films/map", params={"color": "sentiment"})
    assert r.status_code == 200, r.text
    body = r.json()
    CollectionMap.model_validate(body)
    assert body["sentiment_model"] and body["clusters"] is None
    by_id = {p["id"]: p for p in body["points"]}
    for i in range(len(POSITIVE)):
        assert by_id[f"pos{i}"]["label"] == "positive", by_id[f"pos{i}"]
    for i in range(len(NEGATIVE)):
        assert by_id[f"neg{i}"]["label"] == "negative", by_id[f"neg{i}"]
    for p in body["points"]:
        assert 0.5 <= p["score"] <= 1 and p["cluster"] is None
        assert p["score"] == pytest.approx(p["positive"] if p["label"] == "positive" else 1 - p["positive"], abs=1e-3)
    # the map reads the stored vectors; /sentiment re-encodes the texts: the same probabilities
    texts = [by_id[f"pos{i}"]["text"] for i in range(2)] + [by_id[f"neg{i}"]["text"] for i in range(2)]
    direct = mapped.post("/sentiment", json={"texts": texts}).json()["data"]
    mapped_scores = [by_id[k]["score"] for k in ("pos0", "pos1", "neg0", "neg1")]
    assert [d["score"] for d in direct] == pytest.approx(mapped_scores, abs=1e-3)


def test_sentiment_colours_of_tokenised_text_match_the_sentiment_route(client):
    """Stored vectors are of the raw text; the bundled head reads Penn-Treebank-tokenised text
    un-tokenised first, so the map must score such documents as /sentiment does."""
    texts = ["it 's not a bad film , but it does n't work .", "-lrb- a -rrb- strange , hollow movie",
             "a wonderful, moving film with brilliant acting", "the worst film of the year, boring and ugly"]
    assert client.put("/collections/tok").status_code == 201
    r = client.post("/collections/tok/documents",
                    json={"documents": [{"id": f"d{i}", "text": t} for i, t in enumerate(texts)]})
    assert r.status_code == 200, r.text
    body = client.get("/collections/tok/map", params={"color": "sentiment"}).json()
    by_id = {p["id"]: p for p in body["points"]}
    direct = client.post("/sentiment", json={"texts": texts}).json()["data"]
    for i, d in enumerate(direct):
        assert by_id[f"d{i}"]["label"] == d["label"]
        assert by_id[f"d{i}"]["score"] == pytest.approx(d["score"], abs=1e-3), (texts[i], by_id[f"d{i}"], d)


def test_limit_samples_the_collection(mapped):
    body = mapped.get("/collections/films/map", params={"limit": 5}).json()
    assert body["total"] == 12 and body["count"] == 5
    assert len({p["id"] for p in body["points"]}) == 5
    assert mapped.get("/collections/films/map", params={"limit": 5}).json()["points"] == body["points"]


def test_long_texts_are_shortened_for_hover(mapped):
    long_text = "an epic review " + "and it goes on " * 40
    mapped.post("/collections/films/documents", json={"documents": [{"id": "long", "text": long_text}]})
    point = next(p for p in mapped.get("/collections/films/map").json()["points"] if p["id"] == "long")
    assert len(point["text"]) == 240 and point["text"].endswith("…")


def test_tiny_collections(client):
    client.put("/collections/empty")
    body = client.get("/collections/empty/map").json()
    assert body["count"] == 0 and body["points"] == []
    client.put("/collections/one")
    client.post("/collections/one/documents", json={"documents": [{"id": "a", "text": "just one"}]})
    body = client.get("/collections/one/map", params={"clusters": 4}).json()
    assert [(p["x"], p["y"], p["cluster"]) for p in body["points"]] == [(0.0, 0.0, 0)]
    err = assert_error(client.get("/collections/one/map", params={"method": "umap"}), 422, param="method")
    assert "at least" in err["message"]


@pytest.mark.parametrize(("params", "param"), [
    ({"method": "tsne"}, "method"),
    ({"color": "rainbow"}, "color"),
    ({"clusters": 1}, "clusters"),
    ({"clusters": 51}, "clusters"),
    ({"clusters": "many"}, "clusters"),
    ({"limit": 0}, "limit"),
    ({"limit": 20001}, "limit"),
    ({"limit": "all"}, "limit"),
])
def test_bad_map_options_are_422(mapped, params, param):
    err = assert_error(mapped.get("/collections/films/map", params=params), 422)
    assert param in (err["param"] or "") and param in err["message"]


def test_unknown_collection_is_404(client):
    assert_error(client.get("/collections/nope/map"), 404)
    assert_error(client.get("/collections/nope/neighbors", params={"id": "x"}), 404)
    assert_error(client.get("/collections/bad..name/map"), 422, param="name")


def test_neighbors_by_stored_vector(mapped):
    r = mapped.get("/collections/films/neighbors", params={"id": "fin0", "k": 3})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == "fin0" and len(body["results"]) == 3
    ids = [h["id"] for h in body["results"]]
    assert "fin0" not in ids and all(i.startswith("fin") for i in ids)
    scores = [h["score"] for h in body["results"]]
    assert scores == sorted(scores, reverse=True)
    assert body["results"][0]["metadata"] == {"group": "fin"}


def test_bad_neighbors_requests(mapped):
    assert_error(mapped.get("/collections/films/neighbors", params={"id": "missing"}), 404, param="id")
    assert_error(mapped.get("/collections/films/neighbors"), 422)
    assert_error(mapped.get("/collections/films/neighbors", params={"id": "fin0", "k": 0}), 422)
    assert_error(mapped.get("/collections/films/neighbors", params={"id": "fin0", "k": 101}), 422)


def test_the_page_is_served_self_contained(client):
    r = client.get("/explore")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    assert "<svg" in html and "/latent/interpolate" in html and "/map?" in html
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")  # no CDN, works offline
    assert "https://" not in html
    csp = r.headers["content-security-policy"]  # only its own (hashed) script and style run; data goes nowhere else
    assert "default-src 'none'" in csp and "script-src 'sha256-" in csp and "connect-src 'self'" in csp
    assert "unsafe-inline" not in csp and r.headers["x-content-type-options"] == "nosniff"


def test_keys_guard_the_data_but_not_the_page(client_factory):
    client = client_factory(api_keys="k1")
    assert client.get("/explore").status_code == 200
    assert_error(client.get("/collections/x/map"), 401)
    assert_error(client.get("/collections/x/neighbors", params={"id": "a"}), 401)


@pytest.mark.slow
def test_umap_map(mapped):
    """UMAP proper (slow: importing umap-learn and numba's first compile take tens of seconds)."""
    import numpy as np

    r = mapped.get("/collections/films/map", params={"method": "umap"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["method"] == "umap" and body["count"] == 12 and body["explained_variance"] is None
    xy = {p["id"]: np.array([p["x"], p["y"]]) for p in body["points"]}
    assert len({tuple(v) for v in xy.values()}) == 12
    fin = [k for k in xy if k.startswith("fin")]
    films = [k for k in xy if not k.startswith("fin")]

    def mean_dist(a, b):
        return np.mean([np.linalg.norm(xy[i] - xy[j]) for i in a for j in b if i != j])

    assert mean_dist(fin, fin) < mean_dist(fin, films)  # the finance news lie together
    assert mapped.get("/collections/films/map", params={"method": "umap"}).json()["cached"] is True
