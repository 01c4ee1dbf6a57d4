"""Fixtures for the retrieval tests: the encoder's tokenizer, a small collection, a private cache."""

from __future__ import annotations

from typing import Any

import pytest

DOCS = [
    {"id": "cats", "text": "Cats are small domesticated carnivores that often sleep on warm mats.",
     "metadata": {"topic": "animals"}},
    {"id": "dogs", "text": "Dogs were domesticated from wolves and bark at strangers.",
     "metadata": {"topic": "animals"}},
    {"id": "stocks", "text": "Stock markets fell sharply as investors feared rising interest rates.",
     "metadata": {"topic": "finance"}},
    {"id": "bread", "text": "To bake sourdough bread, feed the starter and let the dough rise overnight.",
     "metadata": {"topic": "food"}},
    {"id": "vitd", "text": "Vitamin D deficiency is associated with a higher risk of multiple sclerosis.",
     "metadata": {"topic": "health"}},
]


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Embedding caches written by a test go to a temporary folder, never ~/.cache."""
    monkeypatch.setenv("TEXTLATENT_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def tokenizer(encoder: Any) -> Any:
    return encoder.model.tokenizer


@pytest.fixture
def small(service: Any) -> Any:
    """A service with collection ``kb`` holding :data:`DOCS`."""
    service.create_collection("kb")
    service.add_documents("kb", DOCS)
    return service
