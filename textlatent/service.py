"""The library's front door: encoders and collections wired together.

The API and the CLI are two faces of these calls; neither holds logic of its own.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from textlatent.collections import (
    Collection,
    CollectionStore,
    Document,
    SearchHit,
    check_vectors,
    validate_documents,
    validate_name,
)
from textlatent.config import Settings
from textlatent.errors import InvalidInputError, NotFoundError, PayloadTooLargeError
from textlatent.models import DEFAULT_MODEL_ID, model_id_for

if TYPE_CHECKING:
    from textlatent.encoder import Encoder, EncodeResult
    from textlatent.retrieval.rerank import Reranker


def _batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


@dataclass(frozen=True)
class Embeddings:
    vectors: np.ndarray
    model: str
    prompt_tokens: int
    truncated: list[int]  # indices of inputs cut to the model's token limit


class TextLatent:
    """Encoders (loaded once, on first use) and the collection store of one index folder."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.store = CollectionStore(self.settings.index_dir, device=self.settings.device)
        self._encoders: dict[str, Encoder] = {}
        self._encoder_lock = threading.Lock()
        # model id → what Encoder() takes (None = bundled)
        self._models: dict[str, str | None] = {DEFAULT_MODEL_ID: None}
        if self.settings.model:
            self._models[model_id_for(self.settings.model)] = self.settings.model
        self.default_model = model_id_for(self.settings.model)
        self._sentiment: Any = None
        self._sentiment_lock = threading.Lock()
        self._reranker: Reranker | None = None

    # ---- models and encoding

    def model_ids(self) -> list[str]:
        return list(self._models)

    def is_loaded(self, model: str | None = None) -> bool:
        return self._model_id(model) in self._encoders

    def encoder(self, model: str | None = None) -> Encoder:
        model_id = self._model_id(model)
        with self._encoder_lock:
            enc = self._encoders.get(model_id)
            if enc is None:
                from textlatent.encoder import Encoder

                enc = Encoder(
                    self._models[model_id],
                    device=self.settings.device,
                    threads=self.settings.threads,
                    batch_size=self.settings.batch_size,
                    precision=self.settings.precision,
                )
                self._encoders[model_id] = enc
            return enc

    def _model_id(self, model: str | None) -> str:
        if model is None or model == "":
            return self.default_model
        if model in self._models:
            return model
        alias = model_id_for(model) if "/" not in model or model.startswith("sentence-transformers/") else None
        if alias in self._models:
            return alias  # type: ignore[return-value]
        raise NotFoundError(
            f"model {model!r} is not served here; available: {', '.join(self._models)}", param="model"
        )

    # ---- sentiment

    def sentiment_model(self) -> Any:
        """The sentiment model of the settings (bundled linear head by default), loaded once.

        A linear head shares this service's encoder when it was trained on a model served here.
        """
        with self._sentiment_lock:
            if self._sentiment is None:
                from textlatent.sentiment import load_sentiment_model

                def encoder_for(spec: str | None) -> Encoder:
                    served = DEFAULT_MODEL_ID if spec is None else model_id_for(spec)
                    if served in self._models and self._models[served] == spec:
                        return self.encoder(served)
                    from textlatent.encoder import Encoder

                    return Encoder(spec, device=self.settings.device, threads=self.settings.threads,
                                   batch_size=self.settings.batch_size, precision=self.settings.precision)

                self._sentiment = load_sentiment_model(
                    self.settings.sentiment_model, encoder_factory=encoder_for, device=self.settings.device,
                    batch_size=self.settings.batch_size,
                )
            return self._sentiment

    def sentiment(self, texts: Any) -> tuple[list[Any], str]:
        """Label and calibrated probability per text, and the model's id."""
        from textlatent.encoder import validate_texts
        from textlatent.sentiment import predict

        items = validate_texts(texts, param="texts")
        self._check_batch(len(items), "texts")
        model = self.sentiment_model()
        return predict(model, items), model.model_id

    def _check_batch(self, n: int, param: str) -> None:
        if n > self.settings.max_batch:
            raise PayloadTooLargeError(
                f"{param} has {n} items; the limit is {self.settings.max_batch} per request "
                "(TEXTLATENT_MAX_BATCH)",
                param=param,
            )

    def embed(
        self,
        texts: str | Sequence[str],
        *,
        model: str | None = None,
        dimensions: int | None = None,
        normalize: bool = True,
    ) -> Embeddings:
        from textlatent.encoder import check_dimensions, truncate_dimensions, validate_texts

        items = validate_texts(texts)
        self._check_batch(len(items), "input")
        enc = self.encoder(model)
        if dimensions is not None:
            check_dimensions(dimensions, enc.dim)  # before the work, not after
        result: EncodeResult = enc.encode_with_info(items, normalize=normalize)
        vectors = result.embeddings
        if dimensions is not None:
            vectors = truncate_dimensions(vectors, dimensions)
        return Embeddings(
            vectors=vectors,
            model=enc.model_id,
            prompt_tokens=int(result.token_counts.sum()),
            truncated=[int(i) for i in np.flatnonzero(result.truncated)],
        )

    # ---- collections

    def create_collection(self, name: str, *, index: str = "Flat", model: str | None = None) -> tuple[dict, bool]:
        validate_name(name)  # a bad name is refused before the encoder is even loaded
        model_id = self._model_id(model)
        coll, created = self.store.create(name, index=index, dim=self.encoder(model_id).dim, model=model_id)
        return coll.info(), created

    def collection(self, name: str) -> Collection:
        return self.store.get(name)

    def has_collection(self, name: str) -> bool:
        return self.store.exists(name)

    def list_collections(self) -> list[dict[str, Any]]:
        return self.store.list()

    def delete_collection(self, name: str) -> None:
        self.store.delete(name)

    def delete_document(self, name: str, doc_id: str) -> None:
        """Delete one document; an unknown id is a 404, as for :meth:`Collection.get`."""
        coll = self.collection(name)
        if coll.delete([doc_id]) == 0:
            raise coll.not_found(doc_id)

    def _collection_encoder(self, coll: Collection, *, for_search: bool = False) -> Encoder:
        """The served encoder of ``coll``'s model; a clear 422 when this server does not load it."""
        if coll.config.model not in self._models:
            hint = "search it by vector, or serve that model" if for_search else "serve that model to add text to it"
            raise InvalidInputError(
                f"collection {coll.name!r} was built with model {coll.config.model!r}, which this server does "
                f"not load (it serves {', '.join(self._models)}); {hint}",
                param="query" if for_search else "documents",
            )
        return self.encoder(coll.config.model)

    def add_documents(
        self, name: str, documents: Iterable[Document | Mapping[str, Any]], *, check_limit: bool = True
    ) -> int:
        """Embed and upsert documents (re-adding an id replaces it)."""
        coll = self.collection(name)
        docs = validate_documents(documents)
        if check_limit:
            self._check_batch(len(docs), "documents")
        vectors = self._collection_encoder(coll).encode([d.text for d in docs])
        return coll.upsert(docs, vectors)

    def add_file(
        self,
        name: str,
        path: str | Path,
        *,
        fmt: str = "auto",
        id_field: str | None = None,
        text_field: str = "text",
        title_field: str | None = "title",
        batch_size: int = 256,
        show_progress: bool = True,
    ) -> int:
        """Embed and upsert every document of a JSONL/CSV file, in batches.

        The whole file is checked first, so a bad row stops the command before anything is
        written; then it is read again and stored batch by batch with a docs/s progress bar.
        """
        from tqdm.auto import tqdm

        from textlatent.documents import read_documents

        coll = self.collection(name)
        self._collection_encoder(coll)  # fail early if the model is not served
        options = dict(fmt=fmt, id_field=id_field, text_field=text_field, title_field=title_field)
        total = 0
        for chunk in _batched(read_documents(path, **options), 1000):  # type: ignore[arg-type]
            validate_documents(chunk)  # ids, texts, metadata: all checked before the first write
            total += len(chunk)
        done = 0
        with tqdm(total=total, unit="doc", desc=f"add → {name}", disable=not show_progress) as bar:
            for batch in _batched(read_documents(path, **options), batch_size):  # type: ignore[arg-type]
                done += self.add_documents(name, batch, check_limit=False)
                bar.update(len(batch))
        return done

    def search(
        self,
        name: str,
        *,
        query: str | None = None,
        vector: Sequence[float] | np.ndarray | None = None,
        k: int = 10,
        filter: Mapping[str, Any] | None = None,
        mode: str = "dense",
        rerank: bool = False,
    ) -> list[SearchHit]:
        """Top ``k`` documents by ``mode`` (dense, bm25 or hybrid), reranked when asked
        (see :mod:`textlatent.retrieval.search`)."""
        from textlatent.retrieval.search import check_mode, search_collection

        check_mode(mode)
        coll = self.collection(name)
        if (query is None) == (vector is None):
            raise InvalidInputError("give exactly one of query (text) or vector", param="query")
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= self.settings.max_k:
            raise InvalidInputError(f"k must be between 1 and {self.settings.max_k}, got {k!r}", param="k")
        if query is not None:
            from textlatent.encoder import validate_texts

            if not isinstance(query, str):
                raise InvalidInputError("query must be a string", param="query")
            validate_texts(query, param="query")
            # BM25 alone needs no embedding (and no encoder: it works on any collection).
            q = None if mode == "bm25" else self._collection_encoder(coll, for_search=True).encode([query])
        else:
            q = check_vectors(vector, coll.config.dim)
            if len(q) != 1:
                raise InvalidInputError("vector must be one list of numbers", param="vector")
        reranker = self.reranker() if rerank else None
        return search_collection(coll, query, q, k=k, mode=mode, filter=filter, reranker=reranker)

    def reranker(self) -> Reranker:
        """The cross-encoder of ``TEXTLATENT_RERANKER``, loaded once."""
        if self._reranker is not None:
            return self._reranker
        if not self.settings.reranker:
            raise InvalidInputError("rerank needs a trained reranker: set TEXTLATENT_RERANKER to the folder "
                                    "written by `textlatent rerank train`", param="rerank")
        with self._encoder_lock:
            if self._reranker is None:
                from textlatent.retrieval.rerank import Reranker

                self._reranker = Reranker(self.settings.reranker, device=self.settings.device)
            return self._reranker
