"""The Optimus VAE (a frozen causal LM as decoder, z as prefix embeddings) on a tiny random
Llama and the tiny corpus; one slow test loads the real SmolLM2 from its GGUF package."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.api.helpers import assert_error
from tests.vae.helpers import split_corpus
from tests.vae.optimus_helpers import TINY_HEAD, tiny_lm, train_tiny_optimus
from textlatent.errors import InvalidInputError, NotFoundError


@pytest.fixture(scope="module")
def optimus_dir(encoder: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("optimus")
    train_tiny_optimus(out, encoder, tmp_path_factory.mktemp("optimus-cache"), steps=30)
    return out


@pytest.fixture(scope="module")
def pipeline(optimus_dir: Path, encoder: Any) -> Any:
    from textlatent.vae.optimus import OptimusPipeline

    return OptimusPipeline(optimus_dir, device="cpu", encoder=encoder)


def test_training_lowers_the_reconstruction_loss(encoder, tmp_path):
    result = train_tiny_optimus(tmp_path / "m", encoder, tmp_path / "cache", steps=40, lr=1e-2)
    history = result["history"]
    assert [h["step"] for h in history] == [10, 20, 30, 40] and result["steps"] == 40
    first, last = history[0], history[-1]
    # the frozen random LM caps what a prefix can do, but a soft prompt learns the corpus's words
    assert last["train_rec"] < first["train_rec"] - 2.0, history
    assert last["valid_elbo_nll"] < first["valid_elbo_nll"], history
    assert all(math.isfinite(h["valid_kl"]) and h["valid_kl"] >= 0 for h in history)
    assert sum(h["selected"] for h in history) >= 1


def test_select_rec_keeps_the_best_reconstruction(encoder, tmp_path):
    result = train_tiny_optimus(tmp_path / "m", encoder, tmp_path / "cache", steps=30, lr=1e-2, select="rec",
                                free_bits=2.0)
    history = result["history"]
    best = min(history, key=lambda r: r["valid_rec"])
    assert result["select"] == "rec" and [r for r in history if r["selected"]][-1] is best
    assert result["best_valid_rec"] == best["valid_rec"] and result["step"] == best["step"]
    saved = json.loads((tmp_path / "m" / "history.json").read_text())
    assert len(saved) == len(history)
    with pytest.raises(InvalidInputError, match="select must be"):
        train_tiny_optimus(tmp_path / "bad", encoder, tmp_path / "cache", steps=1, select="kl")
    assert not (tmp_path / "bad" / "head.pt").exists()


def test_only_the_head_trains_and_the_lm_stays_frozen(encoder):
    from textlatent.vae.optimus import OptimusConfig, OptimusVAE

    lm, tok = tiny_lm()
    before = {k: v.clone() for k, v in lm.state_dict().items()}
    model = OptimusVAE(OptimusConfig(**TINY_HEAD, embed_dim=384), lm, tok)
    ids = model.token_ids(["the cat sees the house", "a dog buys fresh bread"])
    assert all(s[-1] == model.eos_id for s in ids)
    z = torch.randn(2, 8)
    model.reconstruction_nll(z, ids).sum().backward()
    assert all(p.grad is None for p in model.lm.parameters())
    assert model.to_prefix[0].weight.grad is not None and float(model.to_prefix[0].weight.grad.abs().sum()) > 0
    assert all(torch.equal(v, lm.state_dict()[k]) for k, v in before.items())
    assert not any(k.startswith("lm.") for k in model.trainable_state())


def test_nll_matches_the_lm_scored_by_hand():
    """reconstruction_nll is the LM's own token NLL after the prefix (checked against a plain forward)."""
    from textlatent.vae.optimus import OptimusConfig, OptimusVAE

    lm, tok = tiny_lm()
    model = OptimusVAE(OptimusConfig(**TINY_HEAD, embed_dim=384), lm, tok)
    ids = model.token_ids(["the cat sees the house", "a dog buys"])
    z = torch.randn(2, 8)
    batch = model.reconstruction_nll(z, ids)
    for i, row in enumerate(ids):
        embeds = torch.cat([model.prefix(z[i:i + 1]), lm.get_input_embeddings()(torch.tensor([row[:-1]]))], dim=1)
        logp = torch.log_softmax(lm(inputs_embeds=embeds).logits[0, TINY_HEAD["prefix_len"] - 1:], dim=-1)
        by_hand = -logp[torch.arange(len(row)), torch.tensor(row)].sum()
        assert float(batch[i].detach()) == pytest.approx(float(by_hand.detach()), rel=1e-4)


def test_folder_saves_loads_and_is_picked_by_kind(optimus_dir, encoder):
    from textlatent.vae.ops import LatentModel, VAEPipeline
    from textlatent.vae.optimus import OptimusPipeline, is_optimus_folder
    from textlatent.vae.service import load_latent_model

    meta = json.loads((optimus_dir / "config.json").read_text())
    assert meta["kind"] == "optimus" and meta["model"]["lm"] == "lm" and meta["frozen_lm"] is True
    assert (optimus_dir / "head.pt").is_file() and (optimus_dir / "lm" / "config.json").is_file()
    assert is_optimus_folder(optimus_dir)
    loaded = load_latent_model(optimus_dir, device="cpu", encoder=encoder)
    assert isinstance(loaded, OptimusPipeline) and isinstance(loaded, LatentModel)
    assert not isinstance(loaded, VAEPipeline)
    again = OptimusPipeline(optimus_dir, device="cpu", encoder=encoder)
    mu_a, lv_a = loaded.encode(["the cat sees the house"])
    mu_b, lv_b = again.encode(["the cat sees the house"])
    np.testing.assert_array_equal(mu_a, mu_b)
    np.testing.assert_array_equal(lv_a, lv_b)


def test_a_folder_without_head_is_a_clear_error(tmp_path, encoder):
    from textlatent.vae.optimus import OptimusPipeline

    (tmp_path / "config.json").write_text(json.dumps({"kind": "optimus", "model": {}}))
    with pytest.raises(NotFoundError, match="not a trained Optimus folder"):
        OptimusPipeline(tmp_path, encoder=encoder)


def test_a_head_that_does_not_match_its_config_is_a_clear_error(optimus_dir, tmp_path, encoder):
    import shutil

    from textlatent.vae.optimus import OptimusPipeline

    broken = tmp_path / "broken"
    shutil.copytree(optimus_dir, broken)
    state = torch.load(broken / "head.pt", weights_only=True)
    del state["to_prefix.0.weight"]
    torch.save(state, broken / "head.pt")
    with pytest.raises(NotFoundError, match="does not match"):
        OptimusPipeline(broken, encoder=encoder)


def test_latent_model_decodes_with_every_strategy(pipeline):
    from textlatent.vae.ops import interpolate, reconstruct, sample

    mu, logvar = pipeline.encode(["the cat sees the house", "a dog buys fresh bread"])
    assert mu.shape == logvar.shape == (2, 8) and mu.dtype == np.float32
    for strategy in ("greedy", "beam"):
        texts = pipeline.decode(mu, strategy=strategy, beam_size=3)
        assert len(texts) == 2 and all(isinstance(t, str) for t in texts)
    one = pipeline.decode(mu, strategy="sample", temperature=0.8, seed=7)
    assert one == pipeline.decode(mu, strategy="sample", temperature=0.8, seed=7)
    z, texts = sample(pipeline, 3, seed=1)
    assert z.shape == (3, 8) and len(texts) == 3
    assert len(reconstruct(pipeline, ["the cat sees the house"])) == 1
    assert len(interpolate(pipeline, "the cat sees the house", "a dog buys fresh bread", 3)[1]) == 3
    with pytest.raises(InvalidInputError, match="latent size"):
        pipeline.decode(np.zeros((1, 5), dtype=np.float32))
    with pytest.raises(InvalidInputError, match="strategy"):
        pipeline.decode(mu, strategy="nucleus")  # type: ignore[arg-type]


# the product filters this once at import (textlatent.vae.optimus); pytest resets filters around each test
@pytest.mark.filterwarnings("ignore:Passing `no_repeat_ngram_size` with `inputs_embeds`")
def test_optimus_blocks_repeated_ngrams_only_when_asked(pipeline, monkeypatch):
    seen: list[dict] = []
    generate = pipeline.model.lm.generate

    def spy(*args, **kw):
        seen.append(kw)
        return generate(*args, **kw)

    monkeypatch.setattr(pipeline.model.lm, "generate", spy)
    mu, _ = pipeline.encode(["the cat sees the house"])
    assert pipeline.no_repeat_ngram == 0  # SmolLM2's figures were measured without it
    pipeline.decode(mu)
    pipeline.decode(mu, strategy="beam", beam_size=2, no_repeat_ngram=2)
    assert seen[0]["no_repeat_ngram_size"] == 0 and seen[1]["no_repeat_ngram_size"] == 2  # 0 said explicitly
    with pytest.raises(InvalidInputError, match="no_repeat_ngram"):
        pipeline.decode(mu, no_repeat_ngram=1)


def test_evaluation_uses_the_word_denominator(pipeline):
    from textlatent.vae.optimus_train import evaluate_optimus

    _, valid = split_corpus()
    r = evaluate_optimus(pipeline, valid, k=3, lm_baseline=True, z_check=True)
    words = sum(len(s.split()) + 1 for s in valid)
    assert r["sentences"] == len(valid) and r["words"] == words
    assert r["tokens"] == words  # word-level tokenizer: one token a word, plus the end token
    assert r["ppl_elbo"] == pytest.approx(math.exp(r["nll"] * len(valid) / words))
    assert r["ppl"] == pytest.approx(math.exp(r["iw_nll"] * len(valid) / words))
    assert r["nll"] == pytest.approx(r["rec"] + r["kl"])
    assert 0 <= r["au"] <= 8 and len(r["au_variances"]) == 8 and r["iw_samples"] == 3
    assert r["lm_only_nll"] > 0 and math.isfinite(r["ppl_lm_only"])
    assert all(r[key] > 0 for key in ("rec_at_mu", "rec_at_other_mu", "rec_at_zero"))
    assert r["rec_at_mu"] != r["rec_at_other_mu"]  # the prefix depends on z


def test_cli_eval_sample_and_bad_train_options(optimus_dir, encoder, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import textlatent.encoder
    from textlatent.cli import app

    monkeypatch.setattr(textlatent.encoder, "Encoder", lambda *a, **k: encoder)
    monkeypatch.setenv("TEXTLATENT_CACHE_DIR", str(tmp_path / "cache"))
    _, valid = split_corpus()
    data = tmp_path / "valid.txt"
    data.write_text("\n".join(valid) + "\n")
    runner = CliRunner()
    r = runner.invoke(app, ["--device", "cpu", "vae", "eval", "--model", str(optimus_dir), "--data", str(data),
                            "--k", "2", "--json"])
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert result["kind"] == "optimus" and result["sentences"] == len(valid) and result["iw_samples"] == 2
    r = runner.invoke(app, ["--device", "cpu", "vae", "eval", "--model", str(optimus_dir), "--data", str(data),
                            "--refine-steps", "3"])
    assert r.exit_code == 2 and "--refine-steps is for the GRU decoder" in r.output
    r = runner.invoke(app, ["--device", "cpu", "vae", "eval-optimus", "--model", str(optimus_dir), "--data",
                            str(data), "--k", "1", "--subset", "2"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout.strip().splitlines()[-1])["sentences"] == 2
    for cmd in ("eval", "eval-optimus"):  # a missing --data is said first, whatever the model
        r = runner.invoke(app, ["--device", "cpu", "vae", cmd, "--model", str(tmp_path / "no-model"), "--data",
                                str(tmp_path / "missing.txt")])
        assert r.exit_code == 2 and "missing.txt" in r.output, r.output
    r = runner.invoke(app, ["--device", "cpu", "vae", "sample", "--model", str(optimus_dir), "-n", "2",
                            "--seed", "0"])
    assert r.exit_code == 0, r.output
    assert len(r.stdout.strip("\n").splitlines()) == 2
    r = runner.invoke(app, ["--device", "cpu", "vae", "train-optimus", "--train", str(data), "--valid", str(data),
                            "--out", str(tmp_path / "x"), "--init-posterior", str(tmp_path)])
    assert r.exit_code == 2 and "not a trained GRU VAE folder" in r.output
    r = runner.invoke(app, ["--device", "cpu", "vae", "train-optimus", "--train", str(tmp_path / "missing.txt"),
                            "--valid", str(data), "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "is not a file" in r.output
    r = runner.invoke(app, ["--device", "cpu", "vae", "train-optimus", "--train", str(data), "--valid", str(data),
                            "--out", str(tmp_path / "x"), "--select", "kl"])
    assert r.exit_code == 2 and "'kl' is not one of" in r.output


def test_api_latent_routes_serve_the_optimus_model(client_factory, optimus_dir):
    client = client_factory(vae_model=optimus_dir)
    r = client.get("/latent/model")
    assert r.status_code == 200 and r.json() == {"model": optimus_dir.name, "decoder": "optimus", "latent_dim": 8,
                                                 "prior": {"kind": "standard"}}, r.text
    r = client.post("/latent/encode", json={"texts": ["the cat sees the house"]})
    assert r.status_code == 200, r.text
    assert r.json()["latent_dim"] == 8 and r.json()["model"] == optimus_dir.name
    mu = r.json()["mu"][0]
    r = client.post("/latent/decode", json={"z": [mu, [0.0] * 8], "strategy": "beam", "beam_size": 2})
    assert r.status_code == 200, r.text
    assert len(r.json()["texts"]) == 2
    r = client.post("/latent/sample", json={"n": 2, "seed": 3})
    assert r.status_code == 200, r.text
    assert len(r.json()["texts"]) == 2
    assert_error(client.post("/latent/decode", json={"z": [0.0] * 5}), 422, param="z")
    assert_error(client.post("/latent/sample", json={"n": 2, "strategy": "nucleus"}), 422)


@pytest.mark.slow
def test_real_smollm2_as_decoder():
    """The bundled SmolLM2-135M-Instruct (converted from the GGUF package) under the prefix."""
    pytest.importorskip("gguf")
    from textlatent.vae.optimus import BUNDLED_LM, OptimusConfig, OptimusVAE, load_lm

    try:
        lm, tokenizer = load_lm(BUNDLED_LM, None, "cpu")
    except NotFoundError as exc:
        pytest.skip(f"SmolLM2 is not installed: {exc}")
    model = OptimusVAE(OptimusConfig(latent_dim=8, prefix_len=2), lm, tokenizer)
    assert model.config.hidden_size == 576
    ids = model.token_ids(["the company said <unk> rose N %"])
    z = torch.zeros(1, 8, requires_grad=True)
    nll = model.reconstruction_nll(z, ids)
    assert math.isfinite(float(nll)) and float(nll) > 0
    nll.sum().backward()
    assert z.grad is not None and float(z.grad.abs().sum()) > 0
    out = model.generate(torch.zeros(2, 8), max_len=8)
    assert len(out) == 2 and all(len(s) <= 8 for s in out)


def test_training_text_reads_lines_or_an_sst2_tsv(tmp_path):
    from textlatent.cli_optimus import _read_training_text

    tsv = tmp_path / "train.tsv"
    tsv.write_text("sentence\tlabel\na gripping film \t1\n\t0\ndull , dull , dull\t0\n")
    assert _read_training_text(tsv) == ["a gripping film", "dull , dull , dull"]
    txt = tmp_path / "ptb.txt"
    txt.write_text("the cat sees the house\n\n a dog buys \n")
    assert _read_training_text(txt) == ["the cat sees the house", "a dog buys"]
    with pytest.raises(InvalidInputError, match="sentence"):
        (tmp_path / "bad.tsv").write_text("text\tlabel\nx\t1\n")
        _read_training_text(tmp_path / "bad.tsv")


def test_a_head_trained_on_another_smollm2_file_is_refused(tmp_path, monkeypatch):
    # The prefix is fitted to one LM's embeddings: under another GGUF (a package upgrade) it would
    # decode without error and mean something else. A folder records the file it was trained on.
    import json

    import textlatent.retrieval.generate_llm as llm
    from textlatent.errors import InvalidInputError
    from textlatent.vae.optimus import BUNDLED_LM, OptimusConfig, OptimusPipeline, load_lm

    monkeypatch.setattr(llm, "gguf_key", lambda: "installed0000000")

    def no_conversion(*a, **k):
        raise RuntimeError("past the check")

    monkeypatch.setattr(llm, "local_model_dir", no_conversion)
    with pytest.raises(InvalidInputError, match="another SmolLM2 file"):
        load_lm(BUNDLED_LM, None, "cpu", trained_on="trainedon0000000")
    with pytest.raises(RuntimeError, match="past the check"):  # the same file, or none recorded: loads
        load_lm(BUNDLED_LM, None, "cpu", trained_on="installed0000000")
    with pytest.raises(RuntimeError, match="past the check"):
        load_lm(BUNDLED_LM, None, "cpu")
    folder = tmp_path / "optimus"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"kind": "optimus", "model": OptimusConfig(lm=BUNDLED_LM).to_dict(),
                                                    "lm_gguf": "trainedon0000000"}))
    (folder / "head.pt").write_bytes(b"")
    with pytest.raises(InvalidInputError, match="another SmolLM2 file") as info:
        OptimusPipeline(folder, device="cpu")
    assert info.value.param == "model"


def test_training_on_the_bundled_lm_records_its_gguf(encoder, tmp_path, monkeypatch):
    # train_optimus resolves the bundled LM through load_lm; the tiny LM stands in for it here.
    import json

    import textlatent.retrieval.generate_llm as llm
    import textlatent.vae.optimus_train as optimus_train
    from tests.vae.optimus_helpers import TINY_HEAD, tiny_lm
    from textlatent.vae.optimus_train import OptimusTrainConfig, train_optimus

    monkeypatch.setattr(llm, "gguf_key", lambda: "trainedon0000000")
    monkeypatch.setattr(optimus_train, "load_lm", lambda spec, folder, device, **k: tiny_lm())
    monkeypatch.setenv("TEXTLATENT_CACHE_DIR", str(tmp_path / "cache"))
    train, valid = split_corpus()
    config = OptimusTrainConfig(max_steps=2, eval_every=2, batch_size=16, device="cpu", model=dict(TINY_HEAD))
    train_optimus(train, valid, tmp_path / "m", config, encoder=encoder, progress=False)
    meta = json.loads((tmp_path / "m" / "config.json").read_text())
    assert meta["model"]["lm"] == "SmolLM2-135M-Instruct" and meta["lm_gguf"] == "trainedon0000000"
