"""Sentiment heads: calibration helpers, both heads trained on a tiny SST-2, the ONNX encoder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from textlatent.errors import InvalidInputError, NotFoundError
from textlatent.sentiment import LinearSentiment, load_sentiment_model, predict
from textlatent.sentiment.heads import BUNDLED_HEAD, expected_calibration_error, fit_temperature


def test_fit_temperature_recovers_the_temperature_that_generated_the_labels() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 4, 40_000)
    labels = (rng.random(40_000) < 1 / (1 + np.exp(-logits / 2.5))).astype(int)
    assert fit_temperature(logits, labels) == pytest.approx(2.5, rel=0.05)


def test_expected_calibration_error_tells_calibrated_from_overconfident() -> None:
    rng = np.random.default_rng(1)
    p = rng.uniform(0, 1, 50_000)
    labels = (rng.random(50_000) < p).astype(int)
    assert expected_calibration_error(p, labels) < 0.01
    overconfident = np.where(p >= 0.5, 0.999, 0.001)
    assert expected_calibration_error(overconfident, labels) > 0.2


def test_linear_head_trains_saves_loads_and_predicts(sst2_dir: Path, tmp_path: Path) -> None:
    from textlatent.sentiment.train import evaluate_sentiment, train_linear

    result = train_linear(tmp_path / "head", sst2_dir)
    assert result["dev"]["accuracy"] >= 0.9
    config = json.loads((tmp_path / "head" / "sentiment.json").read_text())
    assert config["kind"] == "linear" and len(config["weights"]) == 384 and config["temperature"] > 0
    head = load_sentiment_model(tmp_path / "head")
    assert isinstance(head, LinearSentiment)
    assert np.linalg.norm(head.axis) == pytest.approx(1.0)
    positive, negative = predict(head, ["an utterly wonderful and moving film", "a boring , awful waste of time"])
    assert positive.label == "positive" and 0.5 <= positive.score <= 1.0
    assert negative.label == "negative" and 0.5 <= negative.score <= 1.0
    metrics = evaluate_sentiment(head, sst2_dir, "sst2-test")
    assert metrics["n"] == 8 and metrics["accuracy"] >= 0.75 and 0 <= metrics["f1"] <= 1


def test_an_interrupted_linear_head_run_leaves_no_folder(sst2_dir: Path, tmp_path: Path, monkeypatch) -> None:
    import textlatent.onnx_encoder
    from textlatent.sentiment.train import train_linear

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C during the (on real data, half-hour) encoding

    monkeypatch.setattr(textlatent.onnx_encoder.OnnxEncoder, "encode", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_linear(tmp_path / "head", sst2_dir, backend="onnx")
    assert not (tmp_path / "head").exists()


def test_the_linear_head_reads_text_through_its_stored_normaliser(sst2_dir: Path, tmp_path: Path) -> None:
    """Treebank-tokenised and ordinary spellings of a sentence score alike under the default head; a
    head trained with --normalize none, or saved before the option existed, reads text as given."""
    from textlatent.sentiment.train import train_linear

    train_linear(tmp_path / "tb", sst2_dir)
    train_linear(tmp_path / "raw", sst2_dir, normalize=None)
    tb, raw = load_sentiment_model(tmp_path / "tb"), load_sentiment_model(tmp_path / "raw")
    assert json.loads((tmp_path / "tb" / "sentiment.json").read_text())["normalize"] == "treebank"
    assert json.loads((tmp_path / "raw" / "sentiment.json").read_text())["normalize"] == "none"
    pair = ["it does n't work , sadly -lrb- or so they say -rrb- .", "it doesn't work, sadly (or so they say)."]
    p_tb, p_raw = tb.positive_proba(pair), raw.positive_proba(pair)
    assert p_tb[0] == pytest.approx(p_tb[1], abs=1e-6)
    assert abs(p_raw[0] - p_raw[1]) > 1e-4
    config = json.loads((tmp_path / "tb" / "sentiment.json").read_text())
    del config["normalize"]  # as saved by older versions
    (tmp_path / "tb" / "sentiment.json").write_text(json.dumps(config))
    old = load_sentiment_model(tmp_path / "tb")
    assert abs(old.positive_proba(pair)[0] - old.positive_proba(pair)[1]) > 1e-4
    config["normalize"] = "moses"
    (tmp_path / "tb" / "sentiment.json").write_text(json.dumps(config))
    with pytest.raises(InvalidInputError, match="unknown text normaliser 'moses'"):
        load_sentiment_model(tmp_path / "tb")


def test_finetuned_head_loss_falls_and_the_saved_model_loads(sst2_dir: Path, tmp_path: Path) -> None:
    from textlatent.sentiment import FinetunedSentiment
    from textlatent.sentiment.train import train_finetuned

    # the [CLS] head of sessions 1-19, from a fresh classifier (the mean-pooled default has its own test);
    # bf16 autocast on purpose (emulated where the CPU has no native bf16): the loss must still fall
    result = train_finetuned(tmp_path / "ft", sst2_dir, max_steps=10, batch_size=8, eval_steps=10,
                             learning_rate=1e-4, device="cpu", precision="bf16", pooling="cls")
    assert result["precision"] == "bf16"
    losses = result["losses"]
    assert len(losses) >= 4
    assert np.mean(losses[-3:]) < np.mean(losses[:3])
    head = load_sentiment_model(tmp_path / "ft", device="cpu")
    assert isinstance(head, FinetunedSentiment)
    with pytest.raises(InvalidInputError, match="int8 is for linear heads") as err:  # torch model: no int8 path
        load_sentiment_model(tmp_path / "ft", device="cpu", precision="int8")
    assert err.value.param == "precision"
    probs = head.positive_proba(["a wonderful film", "a dreadful film"])
    assert probs.shape == (2,) and ((probs > 0) & (probs < 1)).all()
    config = json.loads((tmp_path / "ft" / "sentiment.json").read_text())
    assert config["steps"] == 10 and config["selected_on"] == "SST-2 GLUE dev"
    assert config["group_by_length"] is True and config["normalize"] == "treebank"
    assert config["precision"] == "bf16" and config["pooling"] == "cls" and config["init_head"] is None
    # the figure stored is the saved head's own (fp32 here), the one `eval sentiment` reproduces
    assert config["dev_accuracy"] == pytest.approx(result["dev"]["accuracy"])
    assert 0.0 <= config["dev_accuracy_at_selection"] <= 1.0
    assert result["train_seconds"] > 0 and 0 <= result["eval_seconds"] <= result["train_seconds"]
    assert not list((tmp_path / "ft" / "checkpoints").glob("checkpoint-*"))
    # like the linear head, it reads text through its stored normaliser; older folders read it as given
    pair = ["it does n't work , sadly -lrb- or so they say -rrb- .", "it doesn't work, sadly (or so they say)."]
    p = head.positive_proba(pair)
    assert p[0] == pytest.approx(p[1], abs=1e-6)
    del config["normalize"]
    (tmp_path / "ft" / "sentiment.json").write_text(json.dumps(config))
    old = load_sentiment_model(tmp_path / "ft", device="cpu").positive_proba(pair)
    assert abs(old[0] - old[1]) > 1e-5


def test_mean_pooled_classifier_starts_exactly_at_the_linear_head(encoder) -> None:
    """LP-FT's starting point: before any training the classifier's logit margin is the bundled linear
    head's logit, so pooling, normalisation and the weight layout all match the served embedding."""
    import torch
    from transformers import AutoTokenizer

    from textlatent.models import bundled_model_path
    from textlatent.sentiment.pooled import MeanPoolClassifier
    from textlatent.sentiment.train import starting_head

    start = starting_head("mean", None, None)
    assert start is not None and start.folder == BUNDLED_HEAD
    model = MeanPoolClassifier.from_encoder(bundled_model_path())
    model.start_from_linear_head(start.weights, start.bias)
    model.eval()
    texts = ["a wonderful, moving film.", "a dreadful bore that never ends.", "it is a film about a dog."]
    batch = AutoTokenizer.from_pretrained(str(bundled_model_path()))(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        logits = model(**batch).logits.numpy()
    head = load_sentiment_model(None, device="cpu", precision="fp32")
    expected = head.logits(encoder.encode(texts))
    np.testing.assert_allclose(logits[:, 1] - logits[:, 0], expected, atol=1e-4)
    assert expected[0] > 0 > expected[1]  # the comparison is not between two zeros
    with pytest.raises(ValueError, match="cannot start a classifier"):
        model.start_from_linear_head(start.weights[:100], start.bias)


def test_finetuned_head_by_default_reads_the_mean_pooled_embedding(sst2_dir: Path, tmp_path: Path) -> None:
    from textlatent.sentiment import FinetunedSentiment
    from textlatent.sentiment.train import train_finetuned

    result = train_finetuned(tmp_path / "ft", sst2_dir, max_steps=6, batch_size=8, eval_steps=6,
                             learning_rate=1e-5, device="cpu")
    assert all(np.isfinite(result["losses"]))
    config = json.loads((tmp_path / "ft" / "sentiment.json").read_text())
    assert config["pooling"] == "mean" and config["init_head"] == str(BUNDLED_HEAD)
    assert (tmp_path / "ft" / "classifier.safetensors").is_file()
    assert not (tmp_path / "ft" / "checkpoints").exists()
    head = load_sentiment_model(tmp_path / "ft", device="cpu")
    assert isinstance(head, FinetunedSentiment) and head.pooling == "mean"
    p = head.positive_proba(["a wonderful, moving film.", "a dreadful bore that never ends."])
    assert p[0] > 0.5 > p[1]
    assert config["dev_accuracy"] == pytest.approx(result["dev"]["accuracy"])
    # a folder whose classifier file is gone is a clear error, not a random classifier
    (tmp_path / "ft" / "classifier.safetensors").unlink()
    with pytest.raises(InvalidInputError, match="not a readable fine-tuned sentiment folder"):
        load_sentiment_model(tmp_path / "ft", device="cpu")


def test_a_fine_tune_refuses_a_head_it_cannot_start_from(sst2_dir: Path, tmp_path: Path) -> None:
    from textlatent.sentiment.train import starting_head, train_finetuned

    cases = [("max", None, None, "pooling", "pooling must be one of mean, cls"),
             ("cls", None, BUNDLED_HEAD, "init_head", "--pooling cls starts from a fresh one")]
    ft = tmp_path / "ft-head"
    ft.mkdir()
    (ft / "sentiment.json").write_text('{"kind": "finetune"}')
    cases.append(("mean", None, ft, "init_head", "is a finetune head; give a linear one"))
    other = tmp_path / "other-encoder"
    other.mkdir()
    (other / "config.json").write_text("{}")
    cases.append(("mean", str(other), None, "init_head", "was trained on the encoder"))
    bare = tmp_path / "bare-linear"
    bare.mkdir()
    (bare / "sentiment.json").write_text('{"kind": "linear", "bias": 0.1}')
    cases.append(("mean", None, bare, "init_head", "lacks a readable 'weights'"))
    for pooling, base, init, param, message in cases:
        with pytest.raises(InvalidInputError, match=message) as err:
            starting_head(pooling, base, init)
        assert err.value.param == param
    with pytest.raises(NotFoundError):
        starting_head("mean", None, tmp_path / "missing")
    with pytest.raises(InvalidInputError, match="was trained on the encoder"):
        train_finetuned(tmp_path / "out", sst2_dir, base=str(other), max_steps=1, device="cpu")
    assert not (tmp_path / "out").exists()


def test_finetuned_head_refuses_an_unknown_precision_before_making_its_folder(sst2_dir: Path, tmp_path: Path) -> None:
    from textlatent.sentiment.train import train_finetuned

    with pytest.raises(InvalidInputError, match="precision must be one of") as err:
        train_finetuned(tmp_path / "ft", sst2_dir, max_steps=1, precision="fp16", device="cpu")
    assert err.value.param == "precision" and not (tmp_path / "ft").exists()


def test_onnx_encoder_gives_the_torch_encoders_vectors(encoder) -> None:
    from textlatent.onnx_encoder import OnnxEncoder

    texts = ["a short one", "a somewhat longer sentence about the weather in spring", "ünïcödé ☃ text"]
    onnx = OnnxEncoder(threads=1, batch_size=2)
    cos = (onnx.encode(texts) * encoder.encode(texts)).sum(axis=1)
    assert cos.min() > 0.99999


def test_int8_encoder_is_cached_beside_the_export_and_stays_close_to_fp32(encoder) -> None:
    from textlatent.onnx_encoder import OnnxEncoder, export_onnx

    texts = ["a short one", "a somewhat longer sentence about the weather in spring", "ünïcödé ☃ text",
             "one of the most delightful films of the year", "a tedious , joyless slog"]
    int8 = OnnxEncoder(threads=1, batch_size=2, int8=True)
    assert list(export_onnx(encoder.path).parent.glob("model.int8-ort*.onnx"))
    vecs = int8.encode(texts)
    cos = (vecs * encoder.encode(texts)).sum(axis=1)
    assert cos.min() > 0.9 and cos.mean() > 0.97, cos  # close, but another arithmetic: not 0.99999
    assert cos.min() < 0.9999, cos
    assert int8.encode([]).shape == (0, 384)


def test_bundled_head_ships_with_the_package_and_separates_clear_cases(encoder) -> None:
    assert (BUNDLED_HEAD / "sentiment.json").is_file(), "the bundled SST-2 linear head is missing"
    head = load_sentiment_model(None, encoder_factory=lambda spec: encoder)
    assert head.model_id == "sst2-linear"
    preds = predict(head, ["one of the most delightful films of the year", "a tedious , joyless slog"])
    assert [p.label for p in preds] == ["positive", "negative"]
    assert head.normalize("a tedious , joyless slog that does n't end") == "a tedious, joyless slog that doesn't end"


def test_bad_model_folders_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="does not exist"):
        load_sentiment_model(tmp_path / "nope")
    with pytest.raises(NotFoundError, match="not a sentiment model folder"):
        load_sentiment_model(tmp_path)
    (tmp_path / "sentiment.json").write_text(json.dumps({"kind": "tree"}))
    with pytest.raises(InvalidInputError, match="unknown sentiment model kind"):
        load_sentiment_model(tmp_path)


def test_linear_head_weights_stay_finite_when_a_dimension_is_constant() -> None:
    from textlatent.sentiment.heads import fit_linear_head

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 8))
    x[:, 3] = 1e-34 * rng.normal(size=200)  # a dead dimension, as MiniLM has
    y = (x[:, 0] > 0).astype(int)
    fitted = fit_linear_head(x[:150], y[:150], x[150:], y[150:])
    weights = np.asarray(fitted["weights"])
    assert np.abs(weights).max() < 100 and fitted["dev_accuracy"] >= 0.9


def test_budget_schedule_decays_to_zero_at_the_wall_clock_budget_when_it_comes_first() -> None:
    from textlatent.sentiment.train import budget_lr_factor

    def factor(step: int, elapsed: float, budget: float | None = 100.0) -> float:
        return budget_lr_factor(step, elapsed=elapsed, budget_s=budget, total_steps=10_000, warmup_ratio=0.1)

    # Step 300 of 10,000 is 3 % of the steps, but 50 % of the time budget: the rate is halfway down.
    assert factor(300, elapsed=5.0) == pytest.approx(0.5)          # warming up: 5 % of the budget
    assert factor(300, elapsed=55.0) == pytest.approx(0.5)         # (1 - 0.55) / 0.9
    assert factor(600, elapsed=99.0) == pytest.approx(0.01 / 0.9)  # nearly zero near the deadline
    assert factor(600, elapsed=150.0) == 0.0
    # Without a budget, or when the steps end first, it is the usual step-based linear schedule.
    assert factor(500, elapsed=1e6, budget=None) == pytest.approx(0.5)
    assert factor(5_500, elapsed=1.0) == pytest.approx(0.5)
    rates = [factor(s, elapsed=e) for s, e in [(10, 1), (20, 10), (30, 40), (40, 80), (50, 100)]]
    assert rates[1] == max(rates) and rates[-1] == 0.0


def test_damaged_int8_or_fp32_cache_files_are_built_again(encoder) -> None:
    """A garbage int8 twin is quantised again (the export it came from is kept); a garbage export
    with no twin yet is exported again before quantising."""
    from textlatent.onnx_encoder import OnnxEncoder, export_onnx, quantize_onnx

    exported = export_onnx(encoder.path)
    twin = quantize_onnx(exported)
    reference = OnnxEncoder(threads=1, batch_size=2, int8=True).encode(["a short check", "another one"])
    exported_bytes = exported.stat().st_size
    twin.write_bytes(b"not a protobuf")
    again = OnnxEncoder(threads=1, batch_size=2, int8=True)
    assert twin.stat().st_size > 1_000_000 and exported.stat().st_size == exported_bytes
    np.testing.assert_allclose(again.encode(["a short check", "another one"]), reference, atol=1e-6)
    twin.unlink()
    exported.write_bytes(b"not a protobuf")
    again = OnnxEncoder(threads=1, batch_size=2, int8=True)
    assert exported.stat().st_size > 1_000_000 and twin.stat().st_size > 1_000_000
    np.testing.assert_allclose(again.encode(["a short check", "another one"]), reference, atol=1e-6)
    assert not list(exported.parent.glob("*.tmp.onnx")) and not list(exported.parent.glob("*inferred*"))


def test_two_processes_quantising_at_once_both_get_a_good_model(encoder, tmp_path, monkeypatch) -> None:
    """Each builds in a temp file of its own and onnxruntime's shape inference runs in a folder of
    its own: nothing is shared, and the cache ends with one good twin and no leftovers."""
    import shutil
    from concurrent.futures import ThreadPoolExecutor

    from textlatent.cache import cache_root, model_fingerprint
    from textlatent.onnx_encoder import export_onnx, quantize_onnx

    shared = export_onnx(encoder.path)
    monkeypatch.setenv("TEXTLATENT_CACHE_DIR", str(tmp_path / "cache"))
    exported = cache_root() / "onnx" / model_fingerprint(encoder.path) / "model.onnx"  # a fresh cache: copy
    exported.parent.mkdir(parents=True)
    shutil.copy(shared, exported)
    assert export_onnx(encoder.path) == exported
    with ThreadPoolExecutor(2) as pool:
        twins = list(pool.map(lambda _: quantize_onnx(exported), range(2)))
    assert twins[0] == twins[1] and twins[0].stat().st_size > 1_000_000
    import onnx

    onnx.checker.check_model(str(twins[0]))
    assert sorted(p.name for p in exported.parent.iterdir()) == sorted(["model.onnx", twins[0].name])


def test_a_damaged_onnx_export_is_exported_again(encoder) -> None:
    """A garbage model.onnx in the cache made onnxruntime fail on every start; it is re-exported once."""
    from textlatent.onnx_encoder import OnnxEncoder, export_onnx

    target = export_onnx(encoder.path)
    target.write_bytes(b"not a protobuf")
    onnx = OnnxEncoder(threads=1, batch_size=2)
    assert target.stat().st_size > 1_000_000  # a real export again
    np.testing.assert_allclose(onnx.encode(["a short check"]), encoder.encode(["a short check"]), atol=1e-4)
    assert not list(target.parent.glob("*.tmp.onnx"))


def test_an_unwritable_onnx_cache_exports_to_a_private_temp_folder(encoder, tmp_path, monkeypatch) -> None:
    from textlatent.onnx_encoder import export_onnx

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("TEXTLATENT_CACHE_DIR", str(blocker / "cache"))
    exported = export_onnx(encoder.path)
    assert exported.is_file() and blocker not in exported.parents and exported.stat().st_size > 1_000_000
    assert not list(exported.parent.glob("*.tmp.onnx"))


@pytest.mark.parametrize("config", ['{"kind": "finetune"}', "[1, 2]"])
def test_a_damaged_head_folder_is_a_message(tmp_path, config) -> None:
    from textlatent.errors import InvalidInputError
    from textlatent.sentiment.heads import load_sentiment_model

    (tmp_path / "sentiment.json").write_text(config)  # no weights, no tokenizer / not an object
    with pytest.raises(InvalidInputError, match="not a readable fine-tuned sentiment folder|not a JSON object"):
        load_sentiment_model(tmp_path, device="cpu")
