"""Small text conventions shared by ingestion, evaluation and fine-tuning."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any


def join_title(title: str | None, text: str | None) -> str:
    """The text a retriever embeds for a titled document: ``(title + " " + text).strip()``.

    This is MTEB's BEIR convention; ``textlatent add``, ``eval beir`` and ``finetune
    retrieval`` all use it, so a collection embeds documents exactly as they are evaluated.
    """
    return ((title or "").strip() + " " + (text or "")).strip()


# Penn Treebank bracket tokens as SST-2 and PTB spell them (lower-cased in SST-2).
_BRACKETS = {"-lrb-": "(", "-rrb-": ")", "-lsb-": "[", "-rsb-": "]", "-lcb-": "{", "-rcb-": "}"}


def detokenize_treebank(text: str) -> str:
    """Undo Penn-Treebank tokenisation: ``"it does n't work , sadly ."`` → ``"it doesn't work, sadly."``.

    SST-2 and PTB are distributed tokenised; MiniLM was trained on ordinary text, where
    ``does n't`` and a free-standing comma do not occur. NLTK's ``TreebankWordDetokenizer``
    (the inverse of the tokeniser these corpora used) does the work, after the bracket tokens
    ``-lrb-`` etc. are turned back into brackets. Ordinary text passes through nearly unchanged
    (runs of whitespace collapse to one space).
    """
    tokens = [_BRACKETS.get(t.lower(), t) for t in text.split()]
    return str(_treebank_detokenizer().detokenize(tokens))


@functools.cache
def _treebank_detokenizer() -> Any:
    from nltk.tokenize.treebank import TreebankWordDetokenizer

    return TreebankWordDetokenizer()


NORMALIZERS = {"treebank": detokenize_treebank}


def _identity(text: str) -> str:
    return text


def text_normalizer(name: str | None) -> Callable[[str], str]:
    """The function a model stores by name in its config (``None`` or ``"none"``: identity)."""
    if name in (None, "none"):
        return _identity
    if name not in NORMALIZERS:
        from textlatent.errors import InvalidInputError

        raise InvalidInputError(f"unknown text normaliser {name!r}; known: none, {', '.join(NORMALIZERS)}",
                                param="normalize")
    return NORMALIZERS[name]
