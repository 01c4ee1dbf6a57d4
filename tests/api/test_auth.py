"""API keys (Bearer), and the OpenAPI description."""

from __future__ import annotations

import re

import pytest

from tests.api.helpers import assert_error

PROTECTED = [
    ("get", "/v1/models", None),
    ("post", "/v1/embeddings", {"input": "hello"}),
    ("get", "/collections", None),
    ("put", "/collections/c", None),
]


@pytest.fixture
def keyed(client_factory):
    return client_factory(api_keys=" k1 , k2,")


def call(client, method, path, body, headers=None):
    kwargs = {"headers": headers or {}}
    if body is not None:
        kwargs["json"] = body
    return getattr(client, method)(path, **kwargs)


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED)
def test_missing_key_is_401_with_bearer_challenge(keyed, method, path, body):
    resp = call(keyed, method, path, body)
    err = assert_error(resp, 401, type_="unauthorized")
    assert resp.headers["www-authenticate"] == "Bearer"
    assert "Bearer" in err["message"]


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Bearer k1x"},
        {"Authorization": "Bearer k"},
        {"Authorization": "Bearer "},
        {"Authorization": "Basic k1"},
        {"Authorization": "k1"},
        {"Authorization": "Bearer k1,k2"},
        {"X-API-Key": "k1"},
    ],
)
def test_wrong_key_is_401(keyed, headers):
    for method, path, body in PROTECTED:
        resp = call(keyed, method, path, body, headers)
        assert_error(resp, 401)
        assert resp.headers["www-authenticate"] == "Bearer"
    assert not (keyed.app.state.settings.index_dir / "c").exists()


@pytest.mark.parametrize("key", ["k1", "k2"])
def test_each_right_key_works(keyed, key):
    headers = {"Authorization": f"Bearer {key}"}
    assert call(keyed, "get", "/v1/models", None, headers).status_code == 200
    assert call(keyed, "post", "/v1/embeddings", {"input": "hello"}, headers).status_code == 200
    assert call(keyed, "get", "/collections", None, headers).status_code == 200
    assert call(keyed, "put", f"/collections/c-{key}", None, headers).status_code == 201
    resp = call(keyed, "post", f"/collections/c-{key}/search", {"query": "x"}, headers)
    assert resp.status_code == 200 and resp.json() == {"results": []}
    # the scheme name is case-insensitive
    assert call(keyed, "get", "/v1/models", None, {"Authorization": f"bearer {key}"}).status_code == 200


def test_healthz_and_docs_need_no_key(keyed):
    assert keyed.get("/healthz").status_code == 200
    assert keyed.get("/healthz").json()["status"] == "ok"
    assert keyed.get("/openapi.json").status_code == 200


@pytest.mark.parametrize("body", [{"input": []}, {}, {"input": "x", "dimensions": 0}])
def test_auth_checked_before_body_validation(keyed, body):
    # an invalid body without a key is a 401, not a 422 that would describe the API to strangers
    assert_error(keyed.post("/v1/embeddings", json=body), 401)


def test_without_keys_everything_is_open(client):
    assert client.app.state.api_keys == []
    assert client.get("/v1/models").status_code == 200
    assert client.post("/v1/embeddings", json={"input": "hello"}).status_code == 200
    assert client.get("/collections").status_code == 200
    # a header is simply ignored
    assert client.get("/v1/models", headers={"Authorization": "Bearer anything"}).status_code == 200


def test_openapi_lists_error_responses(client):
    resp = client.get("/openapi.json")
    assert resp.status_code == 200
    spec = resp.json()
    assert spec["info"]["title"] == "textlatent"
    paths = spec["paths"]
    search = paths["/collections/{name}/search"]["post"]["responses"]
    for code in ("200", "400", "401", "404", "422"):
        assert code in search, (code, sorted(search))
    assert search["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")
    emb = paths["/v1/embeddings"]["post"]["responses"]
    for code in ("200", "400", "401", "404", "413", "422"):
        assert code in emb
    put = paths["/collections/{name}"]["put"]["responses"]
    assert {"200", "201", "409"} <= set(put)
    err_schema = spec["components"]["schemas"]["ErrorDetail"]
    assert set(err_schema["properties"]) == {"message", "type", "param", "code"}
    # the Bearer scheme is declared
    schemes = spec["components"]["securitySchemes"]
    assert any(s.get("scheme") == "bearer" for s in schemes.values())
    assert "/healthz" in paths and "/v1/models" in paths


def test_docs_page(client, client_factory):
    resp = client.get("/docs")
    assert resp.status_code == 200
    assert "text/html" in resp.headers["content-type"]
    assert "swagger" in resp.text.lower()
    assert "/openapi.json" in resp.text
    keyed = client_factory(api_keys="k1")
    assert keyed.get("/docs").status_code == 200
    # served from the API itself: an offline machine gets a working page, not a blank one
    assert "cdn." not in resp.text and "https://" not in resp.text.split("<body>")[0]
    for asset in re.findall(r'(?:src|href)="(/static-offline-docs/[^"]+)"', resp.text):
        assert client.get(asset).status_code == 200, asset
    assert "/static-offline-docs/swagger-ui-bundle.js" in resp.text
    redoc = client.get("/redoc")
    assert redoc.status_code == 200 and "cdn." not in redoc.text
