"""Inputs that used to reach the database or tokenizer unchecked, and a busy collection."""

from __future__ import annotations

from filelock import FileLock

from tests.api.helpers import assert_error

LONE = '"\\ud800"'  # a JSON escape for a lone surrogate: valid JSON, not valid Unicode


def _post_raw(client, url: str, body: str):
    return client.post(url, content=body.encode(), headers={"content-type": "application/json"})


def test_lone_surrogates_are_422_everywhere(client):
    assert client.put("/collections/u").status_code == 201
    assert_error(_post_raw(client, "/v1/embeddings", '{"input": ' + LONE + "}"), 422, param="input")
    assert_error(
        _post_raw(client, "/collections/u/documents", '{"documents": [{"id": "a", "text": "ok", "metadata": {"m": '
                  + LONE + "}}]}"),
        422,
        param="documents[0].metadata",
    )
    assert_error(_post_raw(client, "/collections/u/search", '{"query": ' + LONE + "}"), 422, param="query")
    assert client.get("/collections/u").json()["count"] == 0


def test_busy_collection_is_503_and_unchanged(app_factory, monkeypatch):
    # A plain TestClient: the shared one fails any 5xx, and 503 is the right answer here.
    # The lock timeout is per thread in filelock, so it is lowered where collections are made.
    from fastapi.testclient import TestClient

    monkeypatch.setattr("textlatent.collections._LOCK_TIMEOUT_S", 0.2)
    app = app_factory()
    with TestClient(app) as client:
        assert client.put("/collections/busy").status_code == 201
        coll = app.state.service.collection("busy")
        with FileLock(str(coll.path / ".write.lock")):  # another process is writing
            resp = client.post("/collections/busy/documents", json={"documents": [{"id": "a", "text": "hello"}]})
        assert_error(resp, 503, type_="busy")
        assert client.get("/collections/busy").json()["count"] == 0


def test_bad_name_is_refused_before_the_encoder_loads(app_factory):
    from fastapi.testclient import TestClient

    app = app_factory(preload=False)
    service = app.state.service
    service._encoders.clear()  # nothing loaded
    with TestClient(app) as c:
        assert_error(c.put("/collections/bad.name"), 422, param="name")
    assert not service._encoders
