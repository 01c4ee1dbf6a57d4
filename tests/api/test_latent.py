"""The /latent routes: every route on a tiny trained VAE, and their bad inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.api.helpers import assert_error
from tests.vae.helpers import train_tiny

ROUTES = {
    "/latent/encode": {"texts": ["the cat sees the house"]},
    "/latent/decode": {"z": [0.0] * 8},
    "/latent/sample": {"n": 2},
    "/latent/interpolate": {"a": "the cat sees the house", "b": "a dog buys fresh bread", "steps": 3},
    "/latent/analogy": {"a": "the cat sees the house", "b": "the cat buys the house", "c": "a dog sees a red car"},
}


@pytest.fixture(scope="module")
def vae_dir(encoder: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("api-vae")
    train_tiny(out, encoder, tmp_path_factory.mktemp("api-vae-cache"), epochs=2)
    return out


@pytest.fixture
def latent_client(client_factory, vae_dir):
    return client_factory(vae_model=vae_dir)


@pytest.mark.parametrize("route", list(ROUTES))
def test_without_a_model_every_route_says_how_to_set_one(client, route):
    err = assert_error(client.post(route, json=ROUTES[route]), 404, param="model")
    assert "TEXTLATENT_VAE_MODEL" in err["message"]


@pytest.mark.parametrize(("file", "content"), [
    ("config.json", "{"), ("config.json", "[]"),
    ("axes.json", "{"), ("axes.json", '{"sentiment": {"direction": [1.0]}}'), ("axes.json", "[]"),
    ("axes.json", '{"sentiment": {"direction": [1.0], "scale": 1, "bias": 0, "margin": 1}}'),  # wrong size
    ("prior.json", "{"), ("prior.json", '{"kind": "gaussian-mixture", "weights": [1.0], "means": [[0.0]], '
                                        '"scale_tril": [[[1.0]]]}'),  # a prior over 1 dimension, the model has 8
])
def test_a_damaged_model_folder_on_the_server_is_503_naming_it(app_factory, vae_dir, tmp_path, file, content):
    # A plain TestClient: the shared one fails any 5xx, and 503 (the server's own files) is the answer here.
    import shutil

    from fastapi.testclient import TestClient

    folder = tmp_path / "vae"
    shutil.copytree(vae_dir, folder)
    (folder / file).write_text(content)
    route, body = ("/latent/sample", {"n": 1}) if file in ("config.json", "prior.json") else \
        ("/latent/transfer", {"text": "the cat sees the house", "target": "positive"})
    with TestClient(app_factory(vae_model=folder)) as client:
        resp = client.post(route, json=body)
        err = assert_error(resp, 503, type_="model_unavailable")
    assert file in err["message"] or "not a readable VAE folder" in err["message"]
    assert "retry-after" not in resp.headers  # retrying does not mend a damaged file


def test_a_configured_folder_that_is_not_a_vae(client_factory, tmp_path):
    client = client_factory(vae_model=tmp_path)
    err = assert_error(client.post("/latent/sample", json={"n": 1}), 404)
    assert "not a trained VAE folder" in err["message"]


def test_encode(latent_client, vae_dir):
    r = latent_client.post("/latent/encode", json={"texts": ["the cat sees the house", "my sister sells some bonds"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == vae_dir.name and body["latent_dim"] == 8
    assert len(body["mu"]) == len(body["sigma"]) == 2
    assert all(len(v) == 8 for v in body["mu"] + body["sigma"])
    assert all(s > 0 for v in body["sigma"] for s in v)
    assert body["mu"][0] != body["mu"][1]


def test_decode_one_vector_or_many_with_each_strategy(latent_client):
    mu = latent_client.post("/latent/encode", json={"texts": ["the cat sees the house"]}).json()["mu"][0]
    one = latent_client.post("/latent/decode", json={"z": mu}).json()
    assert len(one["texts"]) == 1 and one["texts"][0]
    for strategy in ("greedy", "sample", "beam"):
        r = latent_client.post("/latent/decode", json={"z": [mu, [0.0] * 8], "strategy": strategy,
                                                       "temperature": 0.7, "seed": 1})
        assert r.status_code == 200, r.text
        assert len(r.json()["texts"]) == 2
    a = latent_client.post("/latent/decode", json={"z": mu, "strategy": "sample", "seed": 5}).json()
    b = latent_client.post("/latent/decode", json={"z": mu, "strategy": "sample", "seed": 5}).json()
    assert a == b


def test_decoding_can_allow_or_forbid_repeated_ngrams_per_request(latent_client, vae_dir, encoder):
    from textlatent.vae.ops import VAEPipeline

    z = (np.random.default_rng(0).normal(size=(16, 8)) * 3).astype(np.float32)
    want = {n: VAEPipeline(vae_dir, encoder=encoder, no_repeat_ngram=n).decode(z) for n in (0, 2, 3)}
    assert want[0] != want[3]  # the tiny model loops when left alone
    for n, texts in want.items():
        r = latent_client.post("/latent/decode", json={"z": z.tolist(), "no_repeat_ngram": n})
        assert r.status_code == 200, r.text
        assert r.json()["texts"] == texts
    assert latent_client.post("/latent/decode", json={"z": z.tolist()}).json()["texts"] == want[3]  # the default


def test_sample(latent_client):
    body = latent_client.post("/latent/sample", json={"n": 3, "seed": 0}).json()
    assert len(body["texts"]) == len(body["z"]) == 3
    assert all(len(z) == 8 for z in body["z"])
    assert body == latent_client.post("/latent/sample", json={"n": 3, "seed": 0}).json()


def test_interpolate(latent_client):
    r = latent_client.post("/latent/interpolate", json=ROUTES["/latent/interpolate"] | {"steps": 4})
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["texts"]) == len(body["z"]) == 4
    ends = latent_client.post("/latent/encode", json={"texts": [ROUTES["/latent/interpolate"]["a"]]}).json()
    assert body["z"][0] == pytest.approx(ends["mu"][0], abs=1e-5)


def test_analogy(latent_client):
    body = latent_client.post("/latent/analogy", json=ROUTES["/latent/analogy"]).json()
    mu = latent_client.post("/latent/encode", json={"texts": list(ROUTES["/latent/analogy"].values())}).json()["mu"]
    assert body["z"] == pytest.approx([c + b - a for a, b, c in zip(*mu, strict=True)], abs=1e-4)
    assert isinstance(body["text"], str) and body["text"]


@pytest.mark.parametrize(("route", "payload", "status", "param"), [
    ("/latent/decode", {"z": [0.0] * 7}, 422, "z"),
    ("/latent/decode", {"z": [[0.0] * 8, [0.0] * 9]}, 422, "z"),
    ("/latent/decode", {"z": []}, 422, "z"),
    ("/latent/decode", {"z": "zero"}, 422, None),
    ("/latent/decode", {"z": [0.0] * 8, "strategy": "nucleus"}, 422, "strategy"),
    ("/latent/decode", {"z": [0.0] * 8, "temperature": 0}, 422, "temperature"),
    ("/latent/decode", {"z": [0.0] * 8, "beam_size": 50}, 422, "beam_size"),
    ("/latent/decode", {"z": [0.0] * 8, "no_repeat_ngram": 1}, 422, "no_repeat_ngram"),
    ("/latent/decode", {"z": [0.0] * 8, "no_repeat_ngram": 11}, 422, "no_repeat_ngram"),
    ("/latent/sample", {"n": 1, "no_repeat_ngram": -1}, 422, "no_repeat_ngram"),
    ("/latent/interpolate", {"a": "x y", "b": "y z", "no_repeat_ngram": 1}, 422, "no_repeat_ngram"),
    ("/latent/decode", {}, 422, "z"),
    ("/latent/interpolate", {"a": "x y", "b": "y z", "steps": 1}, 422, "steps"),
    ("/latent/interpolate", {"a": "x y", "b": "y z", "steps": 51}, 422, "steps"),
    ("/latent/interpolate", {"a": "", "b": "y z"}, 422, None),
    ("/latent/interpolate", {"a": "x y", "b": "   "}, 422, "b"),  # named by its field, not "texts[1]"
    ("/latent/analogy", {"a": "x", "b": "y", "c": " \n "}, 422, "c"),
    ("/latent/encode", {"texts": []}, 422, "texts"),
    ("/latent/encode", {"texts": ["ok", "   "]}, 422, "texts[1]"),
    ("/latent/sample", {"n": 0}, 422, "n"),
    ("/latent/sample", {"n": 1001}, 422, "n"),
    ("/latent/analogy", {"a": "x", "b": "y"}, 422, "c"),
    # these were 500s: numpy refuses a negative seed, torch one past 2**64, and a huge z overflowed the
    # decoder into NaN probabilities for 'sample'
    ("/latent/sample", {"n": 1, "seed": -1}, 422, "seed"),
    ("/latent/decode", {"z": [0.0] * 8, "strategy": "sample", "seed": 2**64}, 422, "seed"),
    ("/latent/decode", {"z": [3e38] * 8, "strategy": "sample"}, 422, "z"),
    ("/latent/decode", {"z": [[0.0] * 8, [0.0] * 7 + [-1001.0]]}, 422, "z"),
])
def test_bad_inputs_get_a_clear_4xx(latent_client, route, payload, status, param):
    err = assert_error(latent_client.post(route, json=payload), status, param=param)
    assert err["message"]


def test_the_largest_z_allowed_still_decodes(latent_client):
    r = latent_client.post("/latent/decode", json={"z": [1000.0] * 8, "strategy": "sample", "seed": 2**31 - 1})
    assert r.status_code == 200, r.text
    assert isinstance(r.json()["texts"][0], str)


def test_too_many_items_is_413(client_factory, vae_dir):
    client = client_factory(vae_model=vae_dir, max_batch=2)
    assert_error(client.post("/latent/encode", json={"texts": ["a", "b", "c"]}), 413, param="texts")
    assert_error(client.post("/latent/decode", json={"z": [[0.0] * 8] * 3}), 413, param="z")
    assert_error(client.post("/latent/sample", json={"n": 3}), 413, param="n")
    # a beam of width w costs about w rows
    assert_error(client.post("/latent/sample", json={"n": 1, "strategy": "beam", "beam_size": 3}), 413, param="n")
    assert_error(client.post("/latent/decode", json={"z": [[0.0] * 8] * 2, "strategy": "beam", "beam_size": 2}),
                 413, param="z")
    r = client.post("/latent/decode", json={"z": [0.0] * 8, "strategy": "beam", "beam_size": 2})
    assert r.status_code == 200, r.text
    beam_path = {"a": "the cat sees the house", "b": "a dog buys fresh bread", "steps": 2, "strategy": "beam",
                 "beam_size": 2}
    assert_error(client.post("/latent/interpolate", json=beam_path), 413, param="steps")


def test_routes_need_the_api_key_when_keys_are_set(client_factory, vae_dir):
    client = client_factory(vae_model=vae_dir, api_keys="k1")
    assert_error(client.post("/latent/sample", json={"n": 1}), 401)
    r = client.post("/latent/sample", json={"n": 1}, headers={"Authorization": "Bearer k1"})
    assert r.status_code == 200, r.text
    assert_error(client.get("/latent/model"), 401)
    assert client.get("/latent/model", headers={"Authorization": "Bearer k1"}).status_code == 200


def test_model_info_and_sampling_follow_a_fitted_prior(client, client_factory, app_factory, vae_dir, tmp_path):
    import shutil

    import numpy as np
    import torch

    from textlatent.vae.prior import MixturePrior

    assert_error(client.get("/latent/model"), 404, param="model")  # no model configured
    r = client_factory(vae_model=vae_dir).get("/latent/model")
    assert r.status_code == 200 and r.json() == {"model": vae_dir.name, "decoder": "gru", "latent_dim": 8,
                                                 "prior": {"kind": "standard"}}, r.text
    folder = tmp_path / "vae"
    shutil.copytree(vae_dir, folder)
    prior = MixturePrior(torch.tensor([0.25, 0.75], dtype=torch.float64), torch.full((2, 8), 3.0).double(),
                         0.1 * torch.eye(8, dtype=torch.float64).expand(2, 8, 8).clone())
    prior.save(folder)
    fitted = client_factory(vae_model=folder)
    r = fitted.get("/latent/model")
    assert r.status_code == 200 and r.json()["prior"] == {"kind": "gaussian-mixture", "components": 2}, r.text
    r = fitted.post("/latent/sample", json={"n": 3, "seed": 4})
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json()["z"], prior.sample(3, np.random.default_rng(4)), atol=1e-5)
    assert min(min(row) for row in r.json()["z"]) > 2.0  # drawn around the mixture's means, not from N(0, I)

    # A prior records the weights it was fitted to: served beside them, refused (503) beside others.
    from textlatent.vae.prior import weights_digest

    prior.meta["model_sha256"] = weights_digest(folder)
    prior.save(folder)
    r = client_factory(vae_model=folder).get("/latent/model")
    assert r.status_code == 200 and r.json()["prior"]["components"] == 2, r.text
    prior.meta["model_sha256"] = "0" * 64
    prior.save(folder)
    from fastapi.testclient import TestClient

    with TestClient(app_factory(vae_model=folder)) as plain:  # plain: the shared one fails any 5xx
        err = assert_error(plain.get("/latent/model"), 503, type_="model_unavailable")
    assert "fitted to other weights" in err["message"]
