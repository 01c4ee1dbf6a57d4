"""A tiny corpus and a tiny trained VAE, shared by the VAE, CLI and API tests."""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

SUBJECTS = ["the cat", "a dog", "the old man", "my sister", "the bank", "a small company"]
VERBS = ["sees", "likes", "buys", "sells", "finds"]
OBJECTS = ["the house", "a red car", "some bonds", "the big boat", "a new phone", "the stock", "fresh bread"]


def tiny_corpus() -> list[str]:
    """210 short sentences over a 22-word vocabulary: learnable in a few hundred CPU steps."""
    return [f"{s} {v} {o}" for s, v, o in itertools.product(SUBJECTS, VERBS, OBJECTS)]


def split_corpus() -> tuple[list[str], list[str]]:
    """A seeded 180/30 split: every word of the valid sentences occurs in training."""
    import random

    sentences = tiny_corpus()
    order = list(range(len(sentences)))
    random.Random(0).shuffle(order)
    valid = [sentences[i] for i in sorted(order[:30])]
    train = [sentences[i] for i in sorted(order[30:])]
    return train, valid


TINY_MODEL = {"latent_dim": 8, "word_dim": 32, "hidden_dim": 64, "posterior_hidden": 64, "dropout": 0.0,
              "word_dropout": 0.2}


def train_tiny(out: Path, encoder: Any, cache: Path, *, epochs: int = 2, resume: bool = False,
               **overrides: Any) -> dict[str, Any]:
    """Train the tiny VAE into ``out`` with embeddings cached under ``cache`` (not ~/.cache)."""
    from textlatent.vae.train import TrainConfig, train_vae

    train, valid = split_corpus()
    settings: dict[str, Any] = {"batch_size": 8, "lr": 3e-3, "device": "cpu", "free_bits": 0.5,
                                "model": dict(TINY_MODEL), **overrides}
    config = TrainConfig(epochs=epochs, **settings)
    old = os.environ.get("TEXTLATENT_CACHE_DIR")
    os.environ["TEXTLATENT_CACHE_DIR"] = str(cache)
    try:
        return train_vae(train, valid, out, config, encoder=encoder, resume=resume, progress=False)
    finally:
        if old is None:
            os.environ.pop("TEXTLATENT_CACHE_DIR", None)
        else:
            os.environ["TEXTLATENT_CACHE_DIR"] = old
