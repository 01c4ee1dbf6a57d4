"""Ingesting long documents into a collection as overlapping, token-aware chunks.

Sources: a JSONL or CSV file (the fields ``textlatent add`` reads), or a folder of ``.txt`` and
``.md`` files (id = the path relative to the folder). Each document becomes chunks
``<id>#<n>`` whose metadata carries ``parent_id``, ``chunk``, ``start`` and ``end``. Re-ingesting
a document replaces its chunks: chunks the new version no longer has are deleted, so a
shorter document leaves no stale tail behind.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textlatent.collections import MAX_ID_LENGTH, Document, validate_documents
from textlatent.errors import InvalidInputError
from textlatent.retrieval.chunking import DEFAULT_MAX_TOKENS, DEFAULT_OVERLAP, chunk_documents

if TYPE_CHECKING:
    from textlatent.service import TextLatent

TEXT_SUFFIXES = (".txt", ".md")


@dataclass
class IngestResult:
    collection: str
    documents: int
    chunks: int
    empty: int  # documents with no text to index
    stale_deleted: int  # chunks of earlier versions that the new versions no longer have
    seconds: float = 0.0


def read_folder(folder: Path) -> Iterator[Document]:
    """``.txt``/``.md`` files under ``folder`` (recursively, in name order), as documents."""
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES):
        rel = path.relative_to(folder).as_posix()
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInputError(f"{rel} is not UTF-8 text ({exc.reason} at byte {exc.start})",
                                    param="source") from None
        yield Document(id=rel, text=text, metadata={"source": rel, "title": path.stem})


def read_source(path: str | Path, **options: Any) -> Iterator[Document]:
    """Documents from a folder of text files or a JSONL/CSV file (``options`` as for ``add``)."""
    from textlatent.documents import read_documents

    path = Path(path)
    if path.is_dir():
        return read_folder(path)
    if not path.is_file():
        raise InvalidInputError(f"no such file or folder: {path}", param="source")
    return read_documents(path, **options)


CHUNK_KEYS = ("parent_id", "chunk", "start", "end")  # metadata ingest sets on every chunk
_SUFFIX_ROOM = 7  # "#" and up to six digits of a chunk number


def _check_source(path: str | Path, **options: Any) -> int:
    """Read everything once before writing: a bad row stops the run before any write.

    Each document gets the checks ``add`` makes (id, text, metadata), with room in the id for the
    chunk suffix; otherwise a bad row would only fail when its batch is written, after earlier
    batches (and their stale chunks' deletion) had been committed."""
    n = 0
    for doc in read_source(path, **options):
        if not isinstance(doc.id, str) or not doc.id or "#" in doc.id and doc.id.rsplit("#", 1)[1].isdigit():
            raise InvalidInputError(f"document id {doc.id!r}: ids ending in '#<number>' are reserved for chunks",
                                    param="id")
        if len(doc.id) + _SUFFIX_ROOM > MAX_ID_LENGTH:
            raise InvalidInputError(f"document id {doc.id[:40]!r}… is {len(doc.id)} characters; ingest needs ids of at "
                                    f"most {MAX_ID_LENGTH - _SUFFIX_ROOM}, to add '#<chunk>'", param="id")
        reserved = [k for k in CHUNK_KEYS if isinstance(doc.metadata, dict) and k in doc.metadata]
        if reserved:
            raise InvalidInputError(f"document {doc.id!r}: metadata key(s) {reserved} are set by ingest on every "
                                    "chunk; rename them in the source", param="metadata")
        blank = not isinstance(doc.text, str) or not doc.text.strip()  # ingest counts these, as 'empty'
        validate_documents([Document(id=doc.id, text="." if blank else doc.text, metadata=doc.metadata)],
                           label=f"document {doc.id!r}")
        n += 1
    return n


def _chunk_ids_of(ids: list[str], parent: str) -> list[str]:
    """The ids among ``ids`` that are chunks of ``parent`` (``<parent>#<n>``): a document added by
    ``add`` with a ``parent_id`` field of its own is not one, and is never deleted as stale."""
    pattern = re.compile(re.escape(parent) + r"#\d+")
    return [i for i in ids if pattern.fullmatch(i)]


def ingest(
    tl: TextLatent,
    name: str,
    source: str | Path,
    *,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    overlap: int = DEFAULT_OVERLAP,
    batch_size: int = 64,
    show_progress: bool = True,
    **options: Any,
) -> IngestResult:
    """Chunk, embed and upsert every document of ``source`` into collection ``name``."""
    import time

    from tqdm.auto import tqdm

    start = time.perf_counter()
    coll = tl.collection(name)
    encoder = tl._collection_encoder(coll)
    limit = encoder.max_seq_length - 2  # [CLS] and [SEP]
    if max_tokens > limit:
        raise InvalidInputError(f"chunk size {max_tokens} is over the encoder's limit of {limit} tokens",
                                param="max_tokens")
    total = _check_source(source, **options)
    result = IngestResult(collection=name, documents=0, chunks=0, empty=0, stale_deleted=0)
    tokenizer = encoder.model.tokenizer
    batch: list[Document] = []

    def flush() -> None:
        latest = list({d.id: d for d in batch}.values())  # an id twice in one batch: the last row wins
        chunks = list(chunk_documents(({"id": d.id, "text": d.text, "metadata": d.metadata} for d in latest),
                                      tokenizer, max_tokens=max_tokens, overlap=overlap))
        fresh = {c["id"] for c in chunks}
        parents = {c["metadata"]["parent_id"] for c in chunks}
        result.empty += sum(1 for d in latest if d.id not in parents)
        stale = [i for d in latest for i in _chunk_ids_of(coll.ids_matching({"parent_id": d.id}), d.id)
                 if i not in fresh]
        if chunks:
            tl.add_documents(name, chunks, check_limit=False)
        if stale:
            result.stale_deleted += coll.delete(stale)
        result.documents += len(latest)
        result.chunks += len(chunks)
        bar.update(len(batch))
        bar.set_postfix(chunks=result.chunks, refresh=False)
        batch.clear()

    with tqdm(total=total, unit="doc", desc=f"ingest → {name}", disable=not show_progress) as bar:
        for doc in read_source(source, **options):
            batch.append(doc)
            if len(batch) >= batch_size:
                flush()
        if batch:
            flush()
    result.seconds = round(time.perf_counter() - start, 3)
    return result
