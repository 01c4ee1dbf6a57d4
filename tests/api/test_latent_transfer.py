"""POST /latent/transfer on a tiny VAE with a fitted axis, and every bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.api.helpers import assert_error
from tests.vae.helpers import train_tiny
from tests.vae.transfer_helpers import vae_with_axis

BODY = {"text": "the cat sees the house", "attribute": "sentiment", "target": "positive", "degree": 2.0}


@pytest.fixture(scope="module")
def trained_dir(encoder: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("api-transfer-vae")
    train_tiny(out, encoder, tmp_path_factory.mktemp("api-transfer-cache"), epochs=2)
    return out


@pytest.fixture(scope="module")
def axis_dir(trained_dir: Path, encoder: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("api-transfer") / "vae"
    vae_with_axis(trained_dir, dest, encoder)
    return dest


@pytest.fixture
def transfer_client(client_factory, axis_dir):
    return client_factory(vae_model=axis_dir)


def test_transfer_moves_towards_the_target(transfer_client, axis_dir):
    r = transfer_client.post("/latent/transfer", json=BODY)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == axis_dir.name and body["source"] == BODY["text"]
    assert body["attribute"] == "sentiment" and body["target"] == "positive" and body["degree"] == 2.0
    assert isinstance(body["output"], str) and len(body["z"]) == 8
    assert 0 <= body["p_before"] <= body["p_after"] <= 1
    down = transfer_client.post("/latent/transfer", json=BODY | {"target": "negative"}).json()
    assert down["p_after"] >= down["p_before"]  # p(target): now p(negative)
    assert down["z"] != body["z"]


def test_reranked_transfer_answers_for_the_same_moved_point(transfer_client):
    plain = transfer_client.post("/latent/transfer", json=BODY).json()
    r = transfer_client.post("/latent/transfer", json=BODY | {"candidates": 6})
    assert r.status_code == 200, r.text
    assert r.json()["z"] == plain["z"] and isinstance(r.json()["output"], str)
    assert transfer_client.post("/latent/transfer", json=BODY | {"candidates": 6}).json() == r.json()  # seeded


def test_content_reranked_transfer_says_which_move_it_kept(transfer_client, axis_dir):
    from textlatent.vae.transfer import load_axis

    r = transfer_client.post("/latent/transfer", json=BODY | {"candidates": 3, "rerank": "content"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["degree"] in {2.0 * j / 8 for j in range(1, 9)}  # 8 moves by default
    axis = load_axis(axis_dir)
    mu = transfer_client.post("/latent/encode", json={"texts": [BODY["text"]]}).json()["mu"][0]
    z, _, _ = axis.shift([mu], 1.0, body["degree"])
    assert body["z"] == pytest.approx(z[0].tolist(), abs=1e-4)  # the point the kept output was decoded from
    assert transfer_client.post("/latent/transfer", json=BODY | {"candidates": 3, "rerank": "content"}).json() == body


def test_content_rerank_counts_a_decode_per_move_and_candidate(client_factory, axis_dir):
    client = client_factory(vae_model=axis_dir, max_batch=16)
    assert client.post("/latent/transfer", json=BODY | {"candidates": 2, "rerank": "content"}).status_code == 200
    r = client.post("/latent/transfer", json=BODY | {"candidates": 3, "rerank": "content"})
    err = assert_error(r, 413, param="candidates")
    assert "content reranking decodes 8 moves x 3 candidates = 24" in err["message"]
    beam = BODY | {"candidates": 1, "rerank": "content", "strategy": "beam", "beam_size": 4}
    err = assert_error(client.post("/latent/transfer", json=beam), 413, param="candidates")
    assert "= 8 at beam_size 4" in err["message"]  # a beam counts as many decodes as it is wide
    err = assert_error(client.post("/latent/transfer", json=BODY | {"candidates": 2, "rerank": "content",
                                                                   "moves": 9}), 413, param="candidates")
    assert "decodes 9 moves x 2 candidates = 18" in err["message"]
    r = client.post("/latent/transfer", json=BODY | {"candidates": 4, "rerank": "content", "moves": 4})
    assert r.status_code == 200 and r.json()["degree"] in (0.5, 1.0, 1.5, 2.0), r.text
    r = client.post("/latent/transfer", json=BODY | {"candidates": 3, "rerank": "content", "degree": 0})
    assert r.status_code == 200, r.text  # nothing moves at degree 0, so nothing is reranked for content


def test_the_largest_seed_works_with_candidates(transfer_client):
    """Candidates 2..n are decoded with seed + k, wrapped: a client's largest valid seed is not refused."""
    r = transfer_client.post("/latent/transfer", json=BODY | {"candidates": 3, "seed": 2**31 - 1})
    assert r.status_code == 200, r.text


def test_degree_zero_is_the_reconstruction_and_default_degree_is_used(transfer_client):
    from textlatent.vae.transfer import load_axis

    zero = transfer_client.post("/latent/transfer", json=BODY | {"degree": 0}).json()
    mu = transfer_client.post("/latent/encode", json={"texts": [BODY["text"]]}).json()["mu"][0]
    assert zero["z"] == pytest.approx(mu, abs=1e-5)
    recon = transfer_client.post("/latent/decode", json={"z": mu}).json()["texts"][0]
    assert zero["output"] == recon
    default = transfer_client.post("/latent/transfer", json={"text": BODY["text"], "target": "positive"}).json()
    assert default["degree"] == load_axis(transfer_client.app.state.settings.vae_model).default_degree


@pytest.mark.parametrize(("payload", "param"), [
    (BODY | {"attribute": "formality"}, "attribute"),
    (BODY | {"target": "happy"}, "target"),
    (BODY | {"degree": -1}, "degree"),
    (BODY | {"degree": 16.5}, "degree"),
    (BODY | {"text": ""}, "text"),
    (BODY | {"text": "   "}, "text"),
    ({k: v for k, v in BODY.items() if k != "target"}, None),
    ({k: v for k, v in BODY.items() if k != "text"}, None),
    (BODY | {"strategy": "nucleus"}, None),
    (BODY | {"degree": "far"}, None),
    (BODY | {"candidates": 0}, "candidates"),
    (BODY | {"no_repeat_ngram": 1}, "no_repeat_ngram"),
    (BODY | {"no_repeat_ngram": 11}, "no_repeat_ngram"),
    (BODY | {"candidates": 65}, "candidates"),
    (BODY | {"candidates": "many"}, None),
    (BODY | {"rerank": "judge"}, "rerank"),
    (BODY | {"rerank": "content", "min_p_target": 0.3}, "min_p_target"),
    (BODY | {"rerank": "content", "min_p_target": 1.0}, "min_p_target"),
    (BODY | {"rerank": "content", "moves": 0}, "moves"),
    (BODY | {"rerank": "content", "moves": 17}, "moves"),
    (BODY | {"rerank": "content", "moves": 2.5}, "moves"),
    (BODY | {"degre": 3}, "degre"),  # a misspelt option was ignored (200 at the default degree)
    (BODY | {"degree": True}, "degree"),
])
def test_bad_inputs_get_a_clear_422(transfer_client, payload, param):
    err = assert_error(transfer_client.post("/latent/transfer", json=payload), 422, param=param)
    assert err["message"]


def test_without_a_model_404_says_how_to_set_one(client):
    err = assert_error(client.post("/latent/transfer", json=BODY), 404, param="model")
    assert "TEXTLATENT_VAE_MODEL" in err["message"]


def test_a_model_without_an_axis_404_says_how_to_fit_one(client_factory, trained_dir):
    client = client_factory(vae_model=trained_dir)
    err = assert_error(client.post("/latent/transfer", json=BODY), 404, param="model")
    assert "fit-transfer" in err["message"]
    # a bad decoding option is the client's mistake whatever the server holds: refused before any model work
    assert_error(client.post("/latent/transfer", json=BODY | {"no_repeat_ngram": 1}), 422, param="no_repeat_ngram")
