"""`evaluate_ood` with the VAE evidence, on the tiny VAE: every ELBO setting is a candidate,
the one chosen on the selection sets is reported, and text of unknown words is told apart."""

from __future__ import annotations

import numpy as np

from tests.vae.helpers import split_corpus, train_tiny
from textlatent.ood import ELBO_GRID, evaluate_ood


def test_elbo_settings_include_the_unigram_ratio_and_separate_unknown_text(encoder, tmp_path):
    from textlatent.vae.service import load_latent_model

    train_tiny(tmp_path / "vae", encoder, tmp_path / "cache", epochs=2)
    vae = load_latent_model(tmp_path / "vae", encoder=encoder)
    train, valid = split_corpus()
    odd = ["mitochondrial polymerase gamma mutations cause ataxia", "quarterly bond yields rose sharply",
           "insulin lowers blood sugar", "the senate passed the budget bill", "protein folding in yeast cells"]
    sets = {"reference": train, "heldout": valid[:15], "sst2-dev": valid[15:],
            "ptb-valid": odd[:3], "scifact-train": odd[3:], "ptb-test": odd, "scifact-test": odd[::-1]}
    result = evaluate_ood(sets, lambda name, texts: np.asarray(encoder.encode(list(texts))), methods=("elbo",),
                          vae=vae)
    elbo = result["methods"]["elbo"]
    assert [row["setting"] for row in elbo["selection"]] == list(ELBO_GRID)
    assert "token-ratio" in ELBO_GRID
    best = max(elbo["selection"], key=lambda r: r["mean"])
    assert elbo["setting"] == best["setting"]
    # every word of the odd texts is unknown to the tiny VAE: the per-token evidence separates them
    rows = {row["setting"]: row for row in elbo["selection"]}
    assert rows["token"]["mean"] > 0.9, rows
    assert min(elbo["auroc"].values()) > 0.9

    # q(z|x) gets the embedding pass's vectors only when the VAE uses that very encoder
    from textlatent.anomaly import ElboScorer
    from textlatent.vae.ops import trained_on

    seen: list[bool] = []

    def spy(self, texts, *, embeddings=None, show_progress=False):  # noqa: ANN001
        seen.append(embeddings is not None)
        return np.zeros(len(texts))

    embed = lambda name, texts: np.asarray(encoder.encode(list(texts)))  # noqa: E731
    ElboScorer.score_texts, original = spy, ElboScorer.score_texts
    try:
        evaluate_ood(sets, embed, methods=("elbo",), vae=vae, encoder=encoder)
        assert seen and all(seen)
        seen.clear()
        evaluate_ood(sets, embed, methods=("elbo",), vae=vae, encoder=object())  # another encoder embedded
        assert seen and not any(seen)
    finally:
        ElboScorer.score_texts = original
    assert trained_on(tmp_path / "vae", encoder.path)
    other = tmp_path / "some-finetuned-encoder"
    assert not trained_on(tmp_path / "vae", other)  # a CLI --model the VAE was not trained on: not shared
    same_name = tmp_path / "all-MiniLM-L6-v2"  # a fine-tuned folder carrying the bundled model's name
    assert not trained_on(tmp_path / "vae", same_name)
