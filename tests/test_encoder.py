"""textlatent.encoder: shapes, normalisation, batching, truncation report, input checks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from textlatent.encoder import truncate_dimensions, validate_texts
from textlatent.errors import InvalidInputError

TEXTS = [
    "The cat sat on the mat.",
    "A quick brown fox jumps over the lazy dog.",
    "Vitamin D deficiency is linked to bone disease.",
    "Stock markets fell sharply on Monday.",
    "short",
]


def test_shape_dtype_and_dim(encoder):
    vecs = encoder.encode(TEXTS)
    assert vecs.shape == (len(TEXTS), 384)
    assert vecs.dtype == np.float32
    assert vecs.flags["C_CONTIGUOUS"]
    assert encoder.dim == 384
    assert encoder.model_id == "all-MiniLM-L6-v2"


def test_normalised_by_default(encoder):
    norms = np.linalg.norm(encoder.encode(TEXTS), axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-5)


@pytest.fixture(scope="module")
def raw_encoder(encoder, tmp_path_factory):
    """The same weights without the model's own Normalize module (a model folder of links), so
    that ``normalize`` is what decides whether vectors come out unit-length. Loads in < 1 s."""
    from textlatent.encoder import Encoder

    src = encoder.path
    folder = tmp_path_factory.mktemp("models") / "minilm-no-normalize"
    folder.mkdir()
    for item in src.iterdir():
        if item.name != "modules.json":
            (folder / item.name).symlink_to(item)
    modules = [m for m in json.loads((src / "modules.json").read_text()) if "Normalize" not in m["type"]]
    (folder / "modules.json").write_text(json.dumps(modules))
    return Encoder(folder, device="cpu")


def test_not_normalised_when_asked(raw_encoder):
    assert raw_encoder.model_id == "minilm-no-normalize"
    raw = raw_encoder.encode(TEXTS, normalize=False)
    norms = np.linalg.norm(raw, axis=1)
    assert raw.dtype == np.float32
    assert np.all(np.abs(norms - 1.0) > 0.1), norms
    unit = raw_encoder.encode(TEXTS)  # normalize=True by default
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(raw / norms[:, None], unit, atol=1e-5)


def test_bundled_model_honours_normalize_false(encoder, raw_encoder):
    # all-MiniLM-L6-v2 ends with its own Normalize module; the Encoder drops it and normalises
    # itself, so normalize=False yields the raw mean-pooled vectors and the default is unchanged.
    vecs = encoder.encode(TEXTS, normalize=False)
    assert np.all(np.abs(np.linalg.norm(vecs, axis=1) - 1.0) > 0.1)
    np.testing.assert_allclose(vecs, raw_encoder.encode(TEXTS, normalize=False), atol=1e-5)
    np.testing.assert_allclose(encoder.encode(TEXTS), raw_encoder.encode(TEXTS), atol=1e-5)


def test_single_string_is_one_row(encoder):
    one = encoder.encode("The cat sat on the mat.")
    assert one.shape == (1, 384)
    np.testing.assert_allclose(one[0], encoder.encode(TEXTS)[0], atol=1e-5)


def test_batching_matches_one_by_one(encoder):
    batched = encoder.encode(TEXTS, batch_size=3)
    singles = np.vstack([encoder.encode([t]) for t in TEXTS])
    np.testing.assert_allclose(batched, singles, atol=1e-5)


def test_truncation_report(encoder):
    long_text = " ".join(["word"] * 300 + ["science"] * 300)  # ~600 words, far over 256 tokens
    res = encoder.encode_with_info(["a short sentence", long_text])
    limit = encoder.max_seq_length
    assert limit == 256
    assert res.truncated.tolist() == [False, True]
    assert res.token_counts.dtype == np.int64
    assert res.token_counts[1] == limit  # capped at the model's limit
    assert 3 <= res.token_counts[0] < limit  # [CLS] a short sentence [SEP]
    assert res.embeddings.shape == (2, 384)
    # the full count (before capping) is larger than the limit
    assert encoder.token_counts([long_text])[0] > limit


@pytest.mark.parametrize(
    ("texts", "param"),
    [
        ([], "input"),
        (["ok", 3], "input[1]"),
        (["ok", "fine", None], "input[2]"),
        (["ok", "   \n\t"], "input[1]"),
        ([""], "input[0]"),
        ("", "input"),
        (b"bytes", "input"),
        (42, "input"),
    ],
)
def test_bad_input_names_the_item(encoder, texts, param):
    with pytest.raises(InvalidInputError) as info:
        encoder.encode(texts)
    assert info.value.param == param
    assert param in info.value.message
    assert info.value.status_code == 422
    with pytest.raises(InvalidInputError):
        encoder.encode_with_info(texts)


def test_validate_texts_accepts_tuple_and_string():
    assert validate_texts(("a", "b")) == ["a", "b"]
    assert validate_texts("a") == ["a"]


def test_truncate_dimensions_renormalises(encoder):
    full = encoder.encode(TEXTS)
    cut = truncate_dimensions(full, 64)
    assert cut.shape == (len(TEXTS), 64)
    assert cut.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(cut, axis=1), 1.0, atol=1e-5)
    expected = full[:, :64] / np.linalg.norm(full[:, :64], axis=1, keepdims=True)
    np.testing.assert_allclose(cut, expected, atol=1e-6)
    np.testing.assert_allclose(truncate_dimensions(full, 384), full, atol=1e-6)


@pytest.mark.parametrize("dims", [0, -1, 385])
def test_truncate_dimensions_out_of_range(encoder, dims):
    with pytest.raises(InvalidInputError) as info:
        truncate_dimensions(encoder.encode(["x y"]), dims)
    assert info.value.param == "dimensions"


def test_semantic_sanity(encoder):
    a, b, c = encoder.encode(
        [
            "How do I reset my password?",
            "I forgot my password and need to change it.",
            "The recipe needs two cups of flour and an egg.",
        ]
    )
    para, unrelated = float(a @ b), float(a @ c)
    assert para > unrelated + 0.3, (para, unrelated)
    assert para > 0.5


def test_bf16_autocast_gives_float32_vectors_close_to_fp32(encoder):
    # The path a GPU takes by default (precision='auto' on cuda), exercised on the CPU here.
    from textlatent.encoder import Encoder

    bf16 = Encoder(device="cpu", precision="bf16")
    assert bf16.autocast and not encoder.autocast
    vecs = bf16.encode(TEXTS)
    assert vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-4)
    cosines = np.sum(vecs * encoder.encode(TEXTS), axis=1)
    assert cosines.min() > 0.98, cosines


def test_batches_by_token_count_give_the_vectors_of_sentence_transformers(tmp_path):
    """Our batching by token count is only an order: vectors equal sentence-transformers' own
    encode, also for a model folder with a default prompt and a truncate_dim, which the batches
    must honour; a text past the length limit is truncated alike."""
    import shutil

    from sentence_transformers import SentenceTransformer

    from textlatent.encoder import Encoder, longest_first, token_lengths
    from textlatent.models import bundled_model_path

    folder = tmp_path / "prompted"
    shutil.copytree(bundled_model_path(), folder)
    cfg_path = folder / "config_sentence_transformers.json"
    cfg = json.loads(cfg_path.read_text()) if cfg_path.is_file() else {}
    cfg.update(prompts={"query": "query: "}, default_prompt_name="query")
    cfg_path.write_text(json.dumps(cfg))
    (folder / "modules.json").write_text(json.dumps(
        [m for m in json.loads((folder / "modules.json").read_text()) if not m["type"].endswith("Normalize")]))
    texts = [*TEXTS, "word " * 400, "a", "two words", *TEXTS[::-1]]
    for spec, truncate_dim in ((None, None), (folder, 128)):
        ours = Encoder(spec, device="cpu", batch_size=3)
        reference = SentenceTransformer(str(ours.path), device="cpu", truncate_dim=truncate_dim)
        if truncate_dim:
            ours.model.truncate_dim = truncate_dim
        vecs = ours.encode(texts)
        expected = reference.encode(texts, batch_size=64, normalize_embeddings=True)
        assert vecs.shape == expected.shape == (len(texts), truncate_dim or 384)
        np.testing.assert_allclose(vecs, expected, atol=2e-5)
    assert ours.model.default_prompt_name == "query"  # the prompt was in play
    lengths = token_lengths(ours.model.tokenizer, ["a b c d e", "a", "a b c"])
    assert longest_first(lengths).tolist() == [0, 2, 1]
    assert token_lengths(ours.model.tokenizer, []).shape == (0,)


def test_unknown_precision_is_refused():
    from textlatent.encoder import Encoder
    from textlatent.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="precision"):
        Encoder(device="cpu", precision="fp8")
