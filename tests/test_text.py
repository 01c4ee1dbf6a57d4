"""Text conventions: undoing Penn-Treebank tokenisation for the encoder."""

from __future__ import annotations

import pytest

from textlatent.errors import InvalidInputError
from textlatent.text import detokenize_treebank, text_normalizer


@pytest.mark.parametrize(("tokenised", "expected"), [
    ("it 's a charming and often affecting journey . ", "it's a charming and often affecting journey."),
    ("it does n't believe in itself , it has no humor", "it doesn't believe in itself, it has no humor"),
    ("the draw ( for `` big bad love '' ) is solid", 'the draw (for "big bad love") is solid'),
    ("a subtle -lrb- for the most part -rrb- chiller", "a subtle (for the most part) chiller"),
    ("The -LRB- Reuters -RRB- report", "The (Reuters) report"),
])
def test_treebank_tokenisation_is_undone(tokenised: str, expected: str) -> None:
    assert detokenize_treebank(tokenised) == expected


def test_ordinary_text_passes_through() -> None:
    for text in ["Hello, world! It's \"fine\" (really).", "don't stop", "", "naïve café – 3.5 stars"]:
        assert detokenize_treebank(text) == text


def test_normalisers_by_name() -> None:
    assert text_normalizer(None)("does n't") == text_normalizer("none")("does n't") == "does n't"
    assert text_normalizer("treebank")("does n't") == "doesn't"
    with pytest.raises(InvalidInputError, match="known: none, treebank"):
        text_normalizer("moses")
