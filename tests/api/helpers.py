"""Helpers shared by the API tests."""

from __future__ import annotations


def assert_error(resp, status: int, *, param: str | None = None, type_: str | None = None) -> dict:
    assert resp.status_code == status, resp.text[:500]
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert set(body) == {"error"}
    err = body["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["code"] == status
    assert isinstance(err["message"], str) and err["message"]
    assert isinstance(err["type"], str) and err["type"]
    if param is not None:
        assert err["param"] == param, err
    if type_ is not None:
        assert err["type"] == type_, err
    return err
