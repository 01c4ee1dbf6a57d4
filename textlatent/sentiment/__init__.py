"""Sentiment heads over the latent space: a linear probe (and the sentiment axis) and a fine-tuned classifier."""

from __future__ import annotations

from textlatent.sentiment.heads import (
    BUNDLED_HEAD,
    LABELS,
    FinetunedSentiment,
    LinearSentiment,
    ParallelPredictor,
    Prediction,
    load_sentiment_model,
    open_for_scoring,
    predict,
    predictions,
)

__all__ = [
    "BUNDLED_HEAD",
    "LABELS",
    "FinetunedSentiment",
    "LinearSentiment",
    "ParallelPredictor",
    "Prediction",
    "load_sentiment_model",
    "open_for_scoring",
    "predict",
    "predictions",
]
