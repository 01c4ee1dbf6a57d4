"""POST /sentiment: labels with calibrated probabilities from the configured head; bad input is 4xx."""

from __future__ import annotations

import json

import pytest

from tests.api.helpers import assert_error


def test_labels_and_scores_from_the_bundled_head(client):
    texts = ["one of the most delightful films of the year", "a tedious , joyless slog"]
    resp = client.post("/sentiment", json={"texts": texts})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["model"] == "sst2-linear"
    assert [d["index"] for d in body["data"]] == [0, 1]
    assert [d["label"] for d in body["data"]] == ["positive", "negative"]
    assert all(0.5 <= d["score"] <= 1.0 for d in body["data"])


def test_a_configured_head_is_used(client_factory, tmp_path, encoder):
    """A linear head folder given by TEXTLATENT_SENTIMENT_MODEL answers instead of the bundled one."""
    from textlatent.sentiment.heads import BUNDLED_HEAD

    config = json.loads((BUNDLED_HEAD / "sentiment.json").read_text())
    config.update(name="flipped", weights=[-w for w in config["weights"]], bias=-config["bias"])
    (tmp_path / "sentiment.json").write_text(json.dumps(config))
    client = client_factory(sentiment_model=str(tmp_path))
    body = client.post("/sentiment", json={"texts": ["a delightful film"]}).json()
    assert body["model"] == "flipped" and body["data"][0]["label"] == "negative"


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        ({"texts": []}, "texts"),
        ({"texts": ["fine", "  "]}, "texts[1]"),
        ({"texts": "not a list"}, None),
        ({"texts": [1, 2]}, None),
        ({}, None),
    ],
)
def test_bad_input_is_422_naming_the_problem(client, payload, param):
    assert_error(client.post("/sentiment", json=payload), 422, param=param)


def test_too_many_texts_is_413(client_factory):
    client = client_factory(max_batch=2)
    assert_error(client.post("/sentiment", json={"texts": ["a", "b", "c"]}), 413, param="texts")


def test_malformed_json_is_400(client):
    resp = client.post("/sentiment", content=b"{nope", headers={"content-type": "application/json"})
    assert_error(resp, 400)


def test_a_missing_model_folder_is_404_not_500(client_factory, tmp_path):
    client = client_factory(sentiment_model=str(tmp_path / "absent"))
    assert_error(client.post("/sentiment", json={"texts": ["fine"]}), 404, param="model")
