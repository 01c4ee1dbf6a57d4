"""A small collection for the explorer tests: film reviews of clear polarity and some finance news."""

from __future__ import annotations

from typing import Any

POSITIVE = [
    "a wonderful, moving film with brilliant acting",
    "an absolute delight from start to finish",
    "the best comedy i have seen in years, truly hilarious",
    "beautifully shot and deeply touching",
]
NEGATIVE = [
    "a dull, tedious mess that wastes its cast",
    "the worst film of the year, boring and ugly",
    "painfully slow, badly written and utterly forgettable",
    "a clumsy, lifeless and irritating movie",
]
NEUTRAL = [
    "the central bank raised interest rates by a quarter point",
    "shares of the company fell after the quarterly report",
    "bond yields climbed as inflation data surprised traders",
    "the stock exchange will close early on friday",
]


def documents() -> list[dict[str, Any]]:
    docs = []
    for group, texts in (("pos", POSITIVE), ("neg", NEGATIVE), ("fin", NEUTRAL)):
        docs += [{"id": f"{group}{i}", "text": t, "metadata": {"group": group}} for i, t in enumerate(texts)]
    return docs
