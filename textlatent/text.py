"""Small text conventions shared by ingestion, evaluation and fine-tuning."""

from __future__ import annotations


def join_title(title: str | None, text: str | None) -> str:
    """The text a retriever embeds for a titled document: ``(title + " " + text).strip()``.

    This is MTEB's BEIR convention; ``textlatent add``, ``eval beir`` and ``finetune
    retrieval`` all use it, so a collection embeds documents exactly as they are evaluated.
    """
    return ((title or "").strip() + " " + (text or "")).strip()
