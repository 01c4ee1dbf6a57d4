"""Style transfer along a latent attribute axis: the axis fit, the move, the CLI and the evaluation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.vae.helpers import split_corpus, tiny_corpus
from tests.vae.transfer_helpers import planted_labels, vae_with_axis, write_sst2_like
from textlatent.cli import app
from textlatent.errors import InvalidInputError, ModelUnavailableError, NotFoundError
from textlatent.vae import transfer as style
from textlatent.vae.ops import reconstruct


@pytest.fixture(scope="module")
def axis_pipeline(tiny_vae_dir: Path, encoder: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return vae_with_axis(tiny_vae_dir, tmp_path_factory.mktemp("transfer") / "vae", encoder)


@pytest.fixture(scope="module")
def axis(axis_pipeline: Any) -> style.LatentAxis:
    return style.load_axis(axis_pipeline, latent_dim=axis_pipeline.latent_dim)


# ---------------------------------------------------------------------------- the axis


def test_fit_axis_recovers_a_planted_direction():
    rng = np.random.default_rng(0)
    true = rng.standard_normal(16)
    true /= np.linalg.norm(true)
    z = rng.standard_normal((4000, 16))
    labels = (z @ true + 0.3 * rng.standard_normal(4000) + 0.5 > 0).astype(int)
    axis = style.fit_axis(z, labels)
    assert float(axis.direction @ true) > 0.98
    assert np.linalg.norm(axis.direction) == pytest.approx(1.0)
    assert axis.bias > 0  # the planted offset favours the positive class
    assert axis.info["fit_accuracy"] > 0.9
    assert axis.margin == pytest.approx(np.abs(axis.logit(z)).mean())


def test_fit_axis_needs_both_classes():
    with pytest.raises(InvalidInputError, match="both classes"):
        style.fit_axis(np.zeros((4, 3)), [1, 1, 1, 1])
    with pytest.raises(InvalidInputError, match="both classes"):
        style.fit_axis(np.zeros((4, 3)), [1, 1, 1, 1], method="mean")


def test_mean_axis_follows_the_class_means_not_the_most_discriminative_direction():
    # The classes differ on average along x (by 2) but are separated most sharply along y, where each
    # class is narrow: logistic regression leans on y, the class-mean axis stays on x.
    rng = np.random.default_rng(0)
    n = 4000
    y = rng.integers(0, 2, n)
    x0 = 2.0 * y + 3.0 * rng.standard_normal(n)  # a large gap in a wide spread
    x1 = 0.2 * y + 0.05 * rng.standard_normal(n)  # a small gap in a narrow spread
    z = np.stack([x0, x1, rng.standard_normal(n)], axis=1)
    mean = style.fit_axis(z, y, method="mean")
    logistic = style.fit_axis(z, y)
    gap = z[y == 1].mean(0) - z[y == 0].mean(0)
    assert mean.direction == pytest.approx(gap / np.linalg.norm(gap))
    assert abs(mean.direction[0]) > 0.99 and abs(logistic.direction[1]) > 0.9
    assert mean.info["method"] == "mean" and logistic.info["method"] == "logistic"
    # the scale and bias are a real classifier along that direction: degrees keep their meaning
    assert mean.scale > 0 and mean.info["fit_accuracy"] > 0.6
    assert mean.margin == pytest.approx(np.abs(mean.logit(z)).mean())
    assert mean.proba(z[y == 1]).mean() > mean.proba(z[y == 0]).mean()


def test_fit_axis_refuses_an_unknown_method_and_equal_means():
    with pytest.raises(InvalidInputError, match="axis method") as err:
        style.fit_axis(np.eye(4), [0, 1, 0, 1], method="lda")
    assert err.value.param == "axis"
    with pytest.raises(InvalidInputError, match="same mean"):
        style.fit_axis(np.array([[1.0, 0.0], [-1.0, 0.0], [1.0, 0.0], [-1.0, 0.0]]), [0, 0, 1, 1], method="mean")


def test_target_logit_follows_the_documented_degree():
    axis = style.LatentAxis("sentiment", np.array([1.0, 0.0]), scale=2.0, bias=0.0, margin=1.5)
    logits = np.array([-3.0, -0.5, 1.0, 5.0])
    assert axis.target_logit(logits, 1.0, 0.0) == pytest.approx(logits)  # degree 0: nothing moves
    assert axis.target_logit(logits, 1.0, 1.0) == pytest.approx([1.5, 1.5, 1.5, 5.0])  # never moved back
    assert axis.target_logit(logits, 1.0, 2.0) == pytest.approx([3.0, 3.0, 3.0, 5.0])
    assert axis.target_logit(logits, -1.0, 2.0) == pytest.approx([-3.0, -3.0, -3.0, -3.0])
    assert axis.target_logit(logits, 1.0, 0.5) == pytest.approx([-0.75, 0.5, 1.25, 5.0])  # halfway to +m
    z, before, after = axis.shift(np.array([[-1.5, 7.0]], dtype=np.float32), 1.0, 2.0)
    assert before == pytest.approx([-3.0]) and after == pytest.approx([3.0])
    assert z[0] == pytest.approx([1.5, 7.0])  # moved along the axis only, by Δlogit / ‖w‖


def test_axes_round_trip_and_missing_axis(axis_pipeline, axis, tmp_path):
    again = style.load_axis(axis_pipeline.path)
    assert again.direction == pytest.approx(axis.direction) and again.margin == axis.margin
    with pytest.raises(NotFoundError, match="fit-transfer"):
        style.load_axis(tmp_path)
    with pytest.raises(ModelUnavailableError, match="latent size"):  # the server's file, not the request
        style.load_axis(axis_pipeline, latent_dim=axis_pipeline.latent_dim + 1)
    with pytest.raises(InvalidInputError):
        style.load_axis(axis_pipeline, "formality")


# ---------------------------------------------------------------------------- moving z


def test_degree_zero_is_the_reconstruction(axis_pipeline, axis):
    texts = split_corpus()[1][:6]
    moved = style.transfer(axis_pipeline, axis, texts, "positive", 0.0)
    assert [m.output for m in moved] == reconstruct(axis_pipeline, texts)
    mu, _ = axis_pipeline.encode(texts)
    assert np.stack([m.z for m in moved]) == pytest.approx(mu)
    assert all(m.p_after == pytest.approx(m.p_before) for m in moved)


def test_positive_target_moves_the_latent_logit_up(axis_pipeline, axis):
    texts = tiny_corpus()[:20]
    mu, _ = axis_pipeline.encode(texts)
    moved = style.transfer(axis_pipeline, axis, texts, "positive", 2.0)
    after = axis.logit(np.stack([m.z for m in moved]))
    before = axis.logit(mu)
    assert np.all(after >= before - 1e-4)
    assert np.all(after >= 2.0 * axis.margin - 1e-3)
    assert any(a > b + 0.5 for a, b in zip(after, before, strict=True))
    assert all(m.p_after >= m.p_before - 1e-6 for m in moved)
    down = style.transfer(axis_pipeline, axis, texts, "negative", 2.0)
    assert np.all(axis.logit(np.stack([m.z for m in down])) <= -2.0 * axis.margin + 1e-3)
    # only the axis component changed
    delta = np.stack([m.z for m in moved]) - mu
    off_axis = delta - np.outer(delta @ axis.direction, axis.direction)
    assert np.abs(off_axis).max() < 1e-4


@pytest.mark.parametrize(("kwargs", "param"), [
    ({"target": "happy"}, "target"),
    ({"degree": -0.5}, "degree"),
    ({"degree": 16.5}, "degree"),
    ({"degree": float("nan")}, "degree"),
    ({"texts": ["  "]}, "text"),
    ({"texts": []}, "texts"),
])
def test_bad_transfer_inputs_are_named(axis_pipeline, axis, kwargs, param):
    args: dict[str, Any] = {"texts": ["the cat sees the house"], "target": "positive", "degree": 1.0, **kwargs}
    with pytest.raises(InvalidInputError) as info:
        style.transfer(axis_pipeline, axis, args.pop("texts"), **args)
    assert info.value.param == param


class _FakeLatent:
    """decode gives, per seed, a fixed sentence per row; encode maps a sentence to a known point."""

    name, latent_dim = "fake", 2

    def __init__(self, points: dict[str, list[float]], by_seed: dict[int | None, list[str]]) -> None:
        self.points, self.by_seed, self.calls = points, by_seed, []

    def decode(self, z, *, strategy="greedy", temperature=1.0, beam_size=5, seed=None):  # noqa: ANN001
        self.calls.append((strategy, temperature, seed))
        return list(self.by_seed[None] if strategy == "greedy" else self.by_seed.get(seed, self.by_seed[None]))

    def encode(self, texts):  # noqa: ANN001
        assert all(t.strip() for t in texts)  # empty candidates are never encoded
        mu = np.asarray([self.points[t] for t in texts], dtype=np.float32)
        return mu, np.zeros_like(mu)


def test_round_trip_rerank_keeps_the_candidate_whose_posterior_is_nearest():
    z = np.array([[0.0, 0.0], [5.0, 5.0]], dtype=np.float32)
    points = {"far": [3.0, 3.0], "near": [0.1, 0.0], "mid": [4.0, 4.0], "spot": [5.0, 5.1]}
    fake = _FakeLatent(points, {None: ["far", ""], 1: ["near", "mid"], 2: ["", "spot"]})
    assert style.round_trip_rerank(fake, z, 3) == ["near", "spot"]
    assert fake.calls == [("greedy", 1.0, None), ("sample", style.RERANK_TEMPERATURE, 1),
                          ("sample", style.RERANK_TEMPERATURE, 2)]
    fake.calls.clear()
    assert style.round_trip_rerank(fake, z, 1) == ["far", ""]  # one candidate: the plain decode
    assert fake.calls == [("greedy", 1.0, None)]
    fake.calls.clear()  # the caller's temperature is the plain decode's; the candidates keep their own
    style.round_trip_rerank(fake, z, 2, strategy="sample", temperature=0.01, seed=7)
    assert fake.calls == [("sample", 0.01, 7), ("sample", style.RERANK_TEMPERATURE, 8)]
    only_empty = _FakeLatent(points, {None: ["", "far"], 1: ["", "mid"]})
    assert style.round_trip_rerank(only_empty, z, 2) == ["", "mid"]
    for bad in (0, 65, 2.5, True):
        with pytest.raises(InvalidInputError, match="candidates must be") as info:
            style.round_trip_rerank(fake, z, bad)
        assert info.value.param == "candidates"


def test_reranked_transfer_on_the_tiny_vae_is_deterministic(axis_pipeline, axis):
    texts = ["the cat sees the house", "a dog likes fresh bread"]
    a = style.transfer(axis_pipeline, axis, texts, "positive", 2.0, candidates=4)
    b = style.transfer(axis_pipeline, axis, texts, "positive", 2.0, candidates=4)
    assert [m.output for m in a] == [m.output for m in b]  # seeded samples
    plain = style.transfer(axis_pipeline, axis, texts, "positive", 2.0)
    assert all(np.array_equal(m.z, p.z) for m, p in zip(a, plain, strict=True))  # the same moved point


EIGHT_MOVES_TO_2 = {2.0 * j / 8 for j in range(1, 9)}  # content reranking's moves at degree 2, by default

class _FakeEmbedding:
    """A model for content reranking: z's first coordinate says which move a decode came from ('m1' …);
    the seed picks the candidate; ``embed`` and ``encode_embeddings`` map a sentence to known points."""

    name, latent_dim = "fake", 2

    def __init__(self, by_move: dict[tuple[int, int | None], str], vectors: dict[str, list[float]],
                 means: dict[str, list[float]]) -> None:
        self.by_move, self.vectors, self.means = by_move, vectors, means
        self._mu_of = {tuple(round(x, 4) for x in v): means[k] for k, v in vectors.items()}

    def decode(self, z, *, strategy="greedy", temperature=1.0, beam_size=5, seed=None):  # noqa: ANN001
        return [self.by_move.get((abs(round(float(row[0]))), seed), "") for row in z]  # either direction

    def embed(self, texts):  # noqa: ANN001
        return np.asarray([self.vectors.get(t, [0.0, 0.0, 1.0]) for t in texts], dtype=np.float32)

    def encode_embeddings(self, emb):  # noqa: ANN001
        mu = np.asarray([self._mu_of.get(tuple(round(float(x), 4) for x in row), [-9.0, 0.0]) for row in emb],
                        np.float32)
        return mu, np.zeros_like(mu)


def test_content_rerank_keeps_the_nearest_source_among_candidates_on_the_target_side():
    # the axis is z's first coordinate (margin 1), so degree 4 moves a source at 0 to 1, 2, 3 and 4
    axis = style.LatentAxis("sentiment", np.array([1.0, 0.0]), scale=1.0, bias=0.0, margin=1.0)
    # an empty candidate is embedded as "." (MiniLM needs text): here that would be the best of all, so
    # only the rule that an empty candidate is never kept keeps it out
    vectors = {"close-but-negative": [1.0, 0.0, 0.0], "close-positive": [0.9, 0.1, 0.0],
               "far-positive": [0.0, 1.0, 0.0], "weak": [0.95, 0.0, 0.05], ".": [0.98, 0.0, 0.0],
               "source": [1.0, 0.0, 0.0]}
    means = {"close-but-negative": [-3.0, 0.0], "close-positive": [3.0, 0.0], "far-positive": [5.0, 0.0],
             "weak": [1.0, 0.0], ".": [6.0, 0.0], "source": [-3.0, 0.0]}  # p(positive) 0.05, 0.95, 0.99, 0.73, 0.998
    fake = _FakeEmbedding({(1, None): "close-but-negative", (2, 1): "far-positive", (3, None): "",
                           (4, 1): "close-positive"}, vectors, means)
    source = np.array([[1.0, 0.0, 0.0]])
    mu, up = np.zeros((1, 2), np.float32), np.array([1.0])
    outputs, kept = style.content_rerank(fake, axis, source, mu, up, 4.0, 2, steps=4, threshold=0.9)
    assert outputs == ["close-positive"] and list(kept) == [4.0]  # the nearest at p ≥ 0.9, found on the 4th move
    outputs, kept = style.content_rerank(fake, axis, source, mu, up, 4.0, 2, steps=4, threshold=0.999)
    assert outputs == ["far-positive"] and list(kept) == [2.0]  # none passes: the highest p(target)
    # the same through transfer(): the answer is the move the kept output came from, not the degree asked for
    [moved] = style.transfer_from_means(fake, axis, ["source"], mu, ["positive"], 4.0, candidates=2,
                                        rerank="content", moves=4)
    assert (moved.output, moved.degree, float(moved.z[0])) == ("close-positive", 4.0, pytest.approx(4.0))
    [moved] = style.transfer_from_means(fake, axis, ["source"], mu, ["positive"], 4.0, candidates=2,
                                        rerank="content", min_p_target=0.99, moves=4)
    assert (moved.output, moved.degree, float(moved.z[0])) == ("far-positive", 2.0, pytest.approx(2.0))
    assert moved.p_after == pytest.approx(1 / (1 + np.exp(-2.0)))
    only_weak = _FakeEmbedding({(1, None): "weak", (2, None): ""}, vectors, means)
    outputs, _ = style.content_rerank(only_weak, axis, source, mu, up, 4.0, 1, steps=4)
    assert outputs == ["weak"]  # an empty candidate is never preferred, even when nothing passes
    outputs, _ = style.content_rerank(fake, axis, source, np.zeros((1, 2), np.float32), -up, 4.0, 2, steps=4)
    assert outputs == ["close-but-negative"]  # towards negative the same candidates rank the other way
    outputs, kept = style.content_rerank(fake, axis, source, mu, up, 4.0, 2, steps=2)  # moves to 2 and 4 only
    assert outputs == ["close-positive"] and list(kept) == [4.0]
    outputs, kept = style.content_rerank(fake, axis, source, mu, up, 2.0, 2, steps=2)  # moves to 1 and 2
    assert outputs == ["far-positive"] and list(kept) == [2.0]  # 'close-positive' is only decoded at 4
    with pytest.raises(InvalidInputError, match="embeds sentences") as info:
        style.content_rerank(_FakeLatent({}, {None: [""]}), axis, source, mu, up, 4.0, 2)
    assert info.value.param == "rerank"


def test_content_reranked_transfer_on_the_tiny_vae(axis_pipeline, axis):
    texts = ["the cat sees the house", "a dog likes fresh bread"]
    moved = style.transfer(axis_pipeline, axis, texts, "positive", 2.0, candidates=3, rerank="content")
    again = style.transfer(axis_pipeline, axis, texts, "positive", 2.0, candidates=3, rerank="content")
    assert [m.output for m in moved] == [m.output for m in again]  # seeded samples
    mu, _ = axis_pipeline.encode(texts)
    for i, m in enumerate(moved):
        assert m.degree in EIGHT_MOVES_TO_2  # which move the kept output came from (8 moves by default)
        z, _, after = axis.shift(mu[i:i + 1], 1.0, m.degree)
        assert np.allclose(m.z, z[0], atol=1e-6)
        assert m.p_after == pytest.approx(1 / (1 + np.exp(-after[0])))
    zero = style.transfer(axis_pipeline, axis, texts, "positive", 0.0, candidates=3, rerank="content")
    assert [m.output for m in zero] == [m.output for m in style.transfer(axis_pipeline, axis, texts, "positive", 0.0,
                                                                          candidates=3)]  # nothing moves at 0
    with pytest.raises(InvalidInputError, match="rerank must be one of") as info:
        style.transfer(axis_pipeline, axis, texts, "positive", 2.0, rerank="judge")
    assert info.value.param == "rerank"
    for bad in (0.4, 1.0, float("nan"), True, "high"):
        with pytest.raises(InvalidInputError, match="min_p_target must be") as info:
            style.transfer(axis_pipeline, axis, texts, "positive", 2.0, candidates=2, rerank="content",
                           min_p_target=bad)
        assert info.value.param == "min_p_target"
    loose = style.transfer(axis_pipeline, axis, texts, "positive", 2.0, candidates=3, rerank="content",
                           min_p_target=0.5)
    assert all(m.degree in EIGHT_MOVES_TO_2 for m in loose)
    coarse = style.transfer(axis_pipeline, axis, texts, "positive", 2.0, candidates=2, rerank="content", moves=2)
    assert all(m.degree in (1.0, 2.0) for m in coarse)
    for bad in (0, 17, 2.5, True, "many"):
        with pytest.raises(InvalidInputError, match="moves must be") as info:
            style.transfer(axis_pipeline, axis, texts, "positive", 2.0, candidates=2, rerank="content", moves=bad)
        assert info.value.param == "moves"


# ---------------------------------------------------------------------------- evaluation


def test_evaluate_transfer_on_a_tiny_fixture(axis_pipeline, axis, encoder):
    from textlatent.sentiment import load_sentiment_model
    from textlatent.vae.transfer_eval import evaluate_transfer

    judge = load_sentiment_model(None, encoder_factory=lambda spec: encoder)
    texts = tiny_corpus()[::10]
    labels = planted_labels(texts)
    seen: list[list[str]] = []

    def fluency(outs):
        seen.append(list(outs))
        return 42.0

    result = evaluate_transfer(axis_pipeline, axis, texts, labels, judge=judge, encoder=encoder,
                               degrees=[1.0, 3.0], fluency=fluency, fluency_limit=len(texts) - 1)
    assert [r["degree"] for r in result["by_degree"]] == [0.0, 1.0, 3.0]
    assert result["baseline_reconstruction"]["degree"] == 0.0
    for row in result["by_degree"]:
        assert 0.0 <= row["flip_rate"] <= 1.0 and -1.0 <= row["content_similarity"] <= 1.0
        assert row["fluency"] == 42.0
    # the sources scored as outputs: similarity 1, flip rate = how often the judge already calls them the target
    assert result["sources"]["content_similarity"] == pytest.approx(1.0, abs=1e-5)
    assert result["sources"]["content_chrf"] == pytest.approx(100.0)  # and every character n-gram kept
    p = judge.positive_proba(texts)
    opposite = [1 - y for y in labels]
    assert result["sources"]["flip_rate"] == pytest.approx(np.mean((p >= 0.5) == np.array(opposite, bool)))
    assert seen[0] == texts[:-1] and len(seen) == 4  # sources, then one call per degree, each cut to the limit
    assert all(len(outs) == len(texts) - 1 for outs in seen) and result["fluency_sentences"] == len(texts) - 1
    assert result["by_degree"][2]["latent_p_target"] > result["by_degree"][0]["latent_p_target"]


def test_evaluate_transfer_reranks_the_moves_but_not_the_baseline(axis_pipeline, axis, encoder):
    from textlatent.sentiment import load_sentiment_model
    from textlatent.vae.transfer_eval import evaluate_transfer

    judge = load_sentiment_model(None, encoder_factory=lambda spec: encoder)
    texts = tiny_corpus()[::20]
    result = evaluate_transfer(axis_pipeline, axis, texts, planted_labels(texts), judge=judge, encoder=encoder,
                               degrees=[2.0], candidates=3)
    assert [(r["degree"], r["candidates"]) for r in result["by_degree"]] == [(0.0, 1), (2.0, 3)]
    plain = evaluate_transfer(axis_pipeline, axis, texts, planted_labels(texts), judge=judge, encoder=encoder,
                              degrees=[2.0], baselines=False)
    assert plain["by_degree"][0]["candidates"] == 1
    content = evaluate_transfer(axis_pipeline, axis, texts, planted_labels(texts), judge=judge, encoder=encoder,
                                degrees=[2.0], candidates=2, rerank="content")
    assert [(r["degree"], r["candidates"], r["rerank"]) for r in content["by_degree"]] == [(0.0, 1, None),
                                                                                         (2.0, 2, "content")]
    with pytest.raises(InvalidInputError, match="rerank"):
        evaluate_transfer(axis_pipeline, axis, texts, planted_labels(texts), judge=judge, encoder=encoder,
                          degrees=[2.0], rerank="closest")


def test_score_outputs_counts_empty_outputs_as_failures(encoder):
    from textlatent.vae.transfer_eval import score_outputs

    class Always:
        def positive_proba(self, texts):
            return np.ones(len(texts))

    r = score_outputs(["good film", "bad film"], ["great film", ""], ["positive", "positive"], judge=Always(),
                      encoder=encoder)
    assert r["flip_rate"] == 0.5 and r["empty_outputs"] == 1
    assert 0 < r["content_similarity"] < 0.5 + 1e-9  # the empty output counts as 0
    # chrF, a surface measure no reranker consults: 'great film' keeps 'film' of 'good film'; '' keeps nothing
    assert 0 < r["content_chrf"] < 50
    same = score_outputs(["good film"], ["good film"], ["positive"], judge=Always(), encoder=encoder)
    assert same["content_chrf"] == pytest.approx(100.0)


def test_degree_selection_rule():
    from textlatent.vae.limits import MAX_DEGREE
    from textlatent.vae.transfer_eval import DEGREE_GRID, heldout_split, selection_score

    assert max(DEGREE_GRID) <= MAX_DEGREE and min(DEGREE_GRID) > 0  # every degree it tries can be served

    assert selection_score(0.8, 0.6) == pytest.approx(0.48)
    assert selection_score(0.59, 0.30) > selection_score(0.47, 0.31)  # flip rate counts when similarity is flat
    fit, held = heldout_split(100, 10, seed=3)
    assert len(held) == 10 and not set(fit) & set(held) and len(fit) + len(held) == 100
    assert heldout_split(100, 10, seed=3) == (fit, held)


@pytest.mark.slow  # loads SmolLM2-135M (converted once into ~/.cache/textlatent)
def test_smollm_perplexity_prefers_english(monkeypatch):
    monkeypatch.delenv("TEXTLATENT_CACHE_DIR", raising=False)
    pytest.importorskip("gguf")
    from textlatent.retrieval.generate_llm import gguf_path
    from textlatent.vae.transfer_eval import SmolLMPerplexity

    try:
        gguf_path()
    except Exception as exc:
        pytest.skip(str(exc))
    ppl = SmolLMPerplexity(device="cpu")
    assert ppl(["the film is a charming and often affecting journey ."]) < ppl(["journey often the . a is charming"])


# ---------------------------------------------------------------------------- CLI


@pytest.fixture
def run(tmp_path, encoder, monkeypatch):
    import textlatent.encoder

    monkeypatch.setattr(textlatent.encoder, "Encoder", lambda *a, **k: encoder)
    monkeypatch.setenv("TEXTLATENT_CACHE_DIR", str(tmp_path / "cache"))
    for var in ("TEXTLATENT_VAE_MODEL", "TEXTLATENT_SENTIMENT_MODEL"):
        monkeypatch.delenv(var, raising=False)
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None):
        return runner.invoke(app, ["--device", "cpu", *args], input=input)

    return invoke


def test_cli_fit_transfer_eval(run, tiny_vae_dir, tmp_path, monkeypatch):
    import shutil

    model = tmp_path / "vae"
    shutil.copytree(tiny_vae_dir, model)
    data = write_sst2_like(tmp_path / "data")
    r = run("transfer", "the cat sees the house", "--model", str(model))
    assert r.exit_code == 2 and "fit-transfer" in r.output  # no axis yet
    from textlatent.cli import _replacing

    with _replacing(model, overwrite=False):  # a training run rewriting the folder holds it
        r = run("fit-transfer", "--model", str(model), "--data-dir", str(data), "--holdout", "30")
        assert r.exit_code == 2 and "being written by another textlatent run" in r.output
        assert not (model / "axes.json").exists()

    r = run("fit-transfer", "--model", str(model), "--data-dir", str(data), "--holdout", "30", "--json")
    assert r.exit_code == 0, r.output
    fitted = json.loads(r.stdout.strip().splitlines()[-1])
    assert "shipped linear head" in fitted["judge"] and "judge:" in r.stderr
    assert fitted["default_degree"] in [row["degree"] for row in fitted["selection"]]
    assert fitted["heldout"] == 30 and (model / "axes.json").is_file()
    assert fitted["candidates"] == 1 and all(row["candidates"] == 1 for row in fitted["selection"])
    assert fitted["no_repeat_ngram"] == 3  # how the degree was chosen: the decoding is recorded with it
    greedy_table = fitted["selection"]
    # by default both axis methods are fitted, and the one whose best degree scores higher is kept
    from textlatent.vae.transfer_eval import DEGREE_GRID

    assert fitted["axis_rule"] == "auto" and len(greedy_table) == 2 * len(DEGREE_GRID)
    scores = {m: max(row["score"] for row in greedy_table if row["method"] == m) for m in ("logistic", "mean")}
    assert fitted["method"] == max(scores, key=lambda m: (scores[m], m == "logistic"))
    best = max(row["score"] for row in greedy_table if row["method"] == fitted["method"])
    assert fitted["default_degree"] == min(row["degree"] for row in greedy_table
                                           if row["method"] == fitted["method"] and row["score"] == best)

    # the degree can be chosen for reranked decoding instead; bad counts are refused at parse time
    r = run("fit-transfer", "--model", str(model), "--data-dir", str(data), "--holdout", "30", "--candidates", "3",
            "--axis", "logistic", "--json")
    assert r.exit_code == 0, r.output
    reranked = json.loads(r.stdout.strip().splitlines()[-1])
    assert reranked["candidates"] == 3 and all(row["candidates"] == 3 for row in reranked["selection"])
    assert [row["degree"] for row in reranked["selection"]] == list(DEGREE_GRID)
    assert reranked["method"] == "logistic" and {row["method"] for row in reranked["selection"]} == {"logistic"}
    assert json.loads((model / "axes.json").read_text())["sentiment"]["info"]["candidates"] == 3
    r = run("fit-transfer", "--model", str(model), "--data-dir", str(data), "--candidates", "65")
    assert r.exit_code == 2 and "candidates" in r.output

    # the class-mean axis: chosen on the command line, recorded in the file
    r = run("fit-transfer", "--model", str(model), "--data-dir", str(data), "--holdout", "30", "--axis", "mean")
    assert r.exit_code == 0, r.output  # the table as text: one line per degree, then what was saved
    assert sum(line.startswith("mean     degree") for line in r.stdout.splitlines()) == len(DEGREE_GRID)
    assert not any(line.startswith("logistic") for line in r.stdout.splitlines())
    assert "mean axis, default degree" in r.stdout
    assert json.loads((model / "axes.json").read_text())["sentiment"]["info"]["method"] == "mean"
    # with auto, a method that cannot be fitted leaves the choice to the other one
    import textlatent.vae.transfer_eval as te

    real_fit = te.fit_axis

    def no_mean(*args, method="logistic", **kw):  # noqa: ANN001, ANN002, ANN003
        if method == "mean":
            raise InvalidInputError("the two classes have the same mean latent vector", param="labels")
        return real_fit(*args, method=method, **kw)

    monkeypatch.setattr(te, "fit_axis", no_mean)
    r = run("fit-transfer", "--model", str(model), "--data-dir", str(data), "--holdout", "30", "--json")
    assert r.exit_code == 0, r.output
    kept = json.loads(r.stdout.strip().splitlines()[-1])
    assert kept["method"] == "logistic" and "same mean" in kept["axis_failures"][0]
    r = run("fit-transfer", "--model", str(model), "--data-dir", str(data), "--holdout", "30", "--axis", "mean")
    assert r.exit_code == 2 and "same mean" in r.output  # asked for by name: its failure is the answer
    monkeypatch.undo()
    r = run("fit-transfer", "--model", str(model), "--data-dir", str(data), "--holdout", "30", "--axis", "mean")
    assert r.exit_code == 0, r.output
    before = (model / "axes.json").read_text()
    r = run("fit-transfer", "--model", str(model), "--data-dir", str(data), "--axis", "lda")
    assert r.exit_code == 2 and "--axis" in r.output and (model / "axes.json").read_text() == before

    r = run("transfer", "the cat sees the house", "a dog sells fresh bread", "--model", str(model),
            "--target", "negative", "--degree", "2", "--json")
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in r.stdout.strip().splitlines()]
    assert [row["source"] for row in rows] == ["the cat sees the house", "a dog sells fresh bread"]
    assert all(row["target"] == "negative" and row["degree"] == 2.0 and row["p_after"] >= row["p_before"]
               for row in rows)
    r = run("transfer", "--model", str(model), input="my sister likes the stock\n")
    assert r.exit_code == 0 and r.stdout.startswith("my sister likes the stock\t")
    sampled = [run("transfer", "the cat sees the house", "--model", str(model), "--strategy", "sample",
                   "--temperature", "2", "--seed", str(seed), "--json") for seed in (5, 5, 6)]
    assert all(r.exit_code == 0 for r in sampled), [r.output for r in sampled]
    assert sampled[0].stdout == sampled[1].stdout  # a seed gives the same sentence again
    r = run("transfer", "the cat sees the house", "--model", str(model), "--temperature", "0")
    assert r.exit_code == 2 and "temperature" in r.output

    r = run("eval", "transfer", "--model", str(model), "--data-dir", str(data), "--no-fluency", "--degree", "1",
            "--degree", "3", "--limit", "10", "--json")
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert result["sentences"] == 10 and result["degree"] == 1.0
    assert [row["degree"] for row in result["by_degree"]] == [0.0, 1.0, 3.0]
    assert {"flip_rate", "content_similarity", "fluency", "judge", "baseline_reconstruction"} <= set(result)
    assert result["fluency"] is None  # --no-fluency
    assert result["no_repeat_ngram"] == 3
    assert result["axis_method"] == "mean" and result["axis_no_repeat_ngram"] == 3  # the last fit above
    r = run("eval", "transfer", "--model", str(model), "--data-dir", str(data), "--no-fluency", "--limit", "4",
            "--no-repeat-ngram", "0", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout.strip().splitlines()[-1])["no_repeat_ngram"] == 0
    assert "chosen with no_repeat_ngram=3; this run decodes with 0" in r.stderr

    r = run("eval", "transfer", "--model", str(model), "--data-dir", str(data), "--no-fluency", "--degree", "2",
            "--limit", "4", "--candidates", "2", "--rerank", "content", "--json")
    assert r.exit_code == 0, r.output
    content = json.loads(r.stdout.strip().splitlines()[-1])
    assert (content["candidates"], content["rerank"], content["by_degree"][1]["rerank"]) == (2, "content", "content")
    assert content["min_p_target"] == 0.8 and content["by_degree"][1]["min_p_target"] == 0.8
    assert content["moves"] == 8 and content["by_degree"][1]["moves"] == 8
    assert "candidate(s)" not in r.stderr  # a degree was given: nothing to say about the fitted one
    r = run("eval", "transfer", "--model", str(model), "--data-dir", str(data), "--no-fluency", "--no-baselines",
            "--limit", "2", "--candidates", "2", "--rerank", "content")
    assert r.exit_code == 0, r.output
    assert "chosen with 1 candidate(s), round-trip reranking; this run uses 2, content" in r.stderr
    r = run("transfer", "the cat sees the house", "--model", str(model), "--degree", "2", "--candidates", "2",
            "--rerank", "content", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout.strip())["degree"] in EIGHT_MOVES_TO_2
    r = run("transfer", "the cat sees the house", "--model", str(model), "--degree", "2", "--candidates", "2",
            "--rerank", "content", "--moves", "4", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout.strip())["degree"] in (0.5, 1.0, 1.5, 2.0)

    out = tmp_path / "outputs.jsonl"
    args = ("eval", "transfer", "--model", str(model), "--data-dir", str(data), "--no-fluency", "--degree", "2",
            "--limit", "4", "--json")
    r = run(*args, "--outputs", str(out))
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(x["degree"], set(x)) for x in lines] == [(d, {"degree", "source", "target", "output"})
                                                      for d in (0.0, 2.0) for _ in range(4)]
    for row in summary["by_degree"]:  # the file holds what was scored; the summary JSON is unchanged
        assert "outputs" not in row
        mine = [x for x in lines if x["degree"] == row["degree"]]
        assert [(x["source"], x["output"]) for x in mine[:len(row["examples"])]] == \
            [(e["source"], e["output"]) for e in row["examples"]]
    before = out.read_bytes()
    r = run(*args, "--outputs", str(out))
    assert r.exit_code == 2 and "exists" in r.output and out.read_bytes() == before  # never overwritten
    r = run(*args, "--outputs", str(tmp_path / "nowhere" / "o.jsonl"))
    assert r.exit_code == 2 and "folder does not exist" in r.output
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no temporary file left

    r = run("eval", "transfer", "--model", str(model), "--data-dir", str(data), "--no-fluency", "--degree", "2",
            "--no-baselines", "--limit", "4")
    assert r.exit_code == 0, r.output
    assert [line.split()[0] for line in r.stdout.strip().splitlines()[1:]] == ["2"]  # no source or degree-0 rows


def test_cli_bad_inputs(run, tmp_path):
    r = run("transfer", "the cat", "--target", "happy", "--model", str(tmp_path))
    assert r.exit_code == 2 and "target must be one of" in r.output
    r = run("transfer", "the cat", "--degree", "17", "--model", str(tmp_path))
    assert r.exit_code == 2
    r = run("transfer", "the cat", "--candidates", "0", "--model", str(tmp_path))
    assert r.exit_code == 2 and "candidates" in r.output
    r = run("transfer", "the cat", "--rerank", "judge", "--model", str(tmp_path))
    assert r.exit_code == 2 and "rerank" in r.output
    r = run("transfer", "the cat", "--rerank", "content", "--min-p-target", "0.2", "--model", str(tmp_path))
    assert r.exit_code == 2 and "min-p-target" in r.output
    r = run("transfer", "the cat", "--rerank", "content", "--moves", "17", "--model", str(tmp_path))
    assert r.exit_code == 2 and "moves" in r.output
    r = run("transfer", "the cat", "--candidates", "65", "--model", str(tmp_path))
    assert r.exit_code == 2 and "candidates" in r.output
    r = run("transfer", "the cat")
    assert r.exit_code == 2 and "TEXTLATENT_VAE_MODEL" in r.output
    r = run("transfer", "the cat", "--model", str(tmp_path))
    assert r.exit_code == 2 and "not a trained VAE folder" in r.output
    r = run("eval", "transfer", "--model", str(tmp_path), "--data-dir", str(tmp_path / "nowhere"))
    assert r.exit_code == 2 and "nowhere" in r.output


def test_saving_an_axis_over_a_damaged_axes_file_keeps_the_new_fit(tmp_path):
    # fit-transfer used to fit for minutes, then die on json.loads of the old, damaged file
    (tmp_path / style.AXES_FILE).write_text("{")
    axis = style.LatentAxis("sentiment", np.array([1.0, 0.0]), scale=2.0, bias=0.0, margin=1.5)
    style.save_axis(tmp_path, axis)
    again = style.load_axis(tmp_path, latent_dim=2)
    assert again.scale == 2.0 and list(again.direction) == [1.0, 0.0]
