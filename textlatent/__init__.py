"""textlatent: turn text into latent spaces and serve them.

Heavy modules (torch, sentence-transformers, faiss) load on first use, so importing the
package, the CLI's ``--help`` and the API's start stay quick.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from textlatent.collections import Collection, CollectionStore, Document, SearchHit
    from textlatent.config import Settings
    from textlatent.encoder import Encoder
    from textlatent.service import TextLatent

_LAZY = {
    "Encoder": "textlatent.encoder",
    "Collection": "textlatent.collections",
    "CollectionStore": "textlatent.collections",
    "Document": "textlatent.collections",
    "SearchHit": "textlatent.collections",
    "Settings": "textlatent.config",
    "TextLatent": "textlatent.service",
}

__all__ = [
    "Collection",
    "CollectionStore",
    "Document",
    "Encoder",
    "SearchHit",
    "Settings",
    "TextLatent",
    "__version__",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'textlatent' has no attribute {name!r}")
