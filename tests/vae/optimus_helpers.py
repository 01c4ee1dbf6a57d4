"""A tiny random Llama LM with a word-level tokenizer: stands in for SmolLM2 in fast tests."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tests.vae.helpers import split_corpus, tiny_corpus

SPECIALS = ["<unk>", "<|endoftext|>", "<|im_end|>"]
TINY_HEAD = {"latent_dim": 8, "prefix_len": 2, "prefix_hidden": 64, "posterior_hidden": 64}


def tiny_lm(seed: int = 0) -> tuple[Any, Any]:
    """A 2-layer, 64-wide LlamaForCausalLM over the tiny corpus's words, and a fast tokenizer
    (word level; decoding joins words with spaces). Weights drawn 10x wider than the default
    (std 0.2): a default-initialised random LM is near-uniform whatever it is fed, so a prefix
    could barely move it and the tests could not tell learning from noise."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = sorted({w for s in tiny_corpus() for w in s.split()} | {"here", "is", "sentence", ":"})
    vocab = {w: i for i, w in enumerate([*SPECIALS, *words])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.decoder = decoders.WordPiece(prefix="##")
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>", bos_token="<|endoftext|>",
                                        eos_token="<|im_end|>", pad_token="<|im_end|>")
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         bos_token_id=1, eos_token_id=2, pad_token_id=2, tie_word_embeddings=True,
                         initializer_range=0.2)
    return LlamaForCausalLM(config).eval(), tokenizer


def train_tiny_optimus(out: Path, encoder: Any, cache: Path, *, steps: int = 40, **overrides: Any) -> dict[str, Any]:
    """Train an Optimus head over the tiny LM into ``out`` (embeddings cached under ``cache``)."""
    from textlatent.vae.optimus_train import OptimusTrainConfig, train_optimus

    train, valid = split_corpus()
    settings: dict[str, Any] = {"max_steps": steps, "eval_every": 10, "batch_size": 16, "lr": 3e-3,
                                "device": "cpu", "free_bits": 0.25, "model": dict(TINY_HEAD), **overrides}
    lm, tokenizer = tiny_lm()
    old = os.environ.get("TEXTLATENT_CACHE_DIR")
    os.environ["TEXTLATENT_CACHE_DIR"] = str(cache)
    try:
        return train_optimus(train, valid, out, OptimusTrainConfig(**settings), encoder=encoder, lm=lm,
                             tokenizer=tokenizer, progress=False)
    finally:
        if old is None:
            os.environ.pop("TEXTLATENT_CACHE_DIR", None)
        else:
            os.environ["TEXTLATENT_CACHE_DIR"] = old
