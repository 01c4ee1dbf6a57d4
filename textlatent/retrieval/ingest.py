"""Ingesting long documents into a collection as overlapping, token-aware chunks.

Sources: a JSONL or CSV file (the fields ``textlatent add`` reads), or a folder of ``.txt`` and
``.md`` files (id = the path relative to the folder). Each document becomes chunks
``<id>#<n>`` whose metadata carries ``parent_id``, ``chunk``, ``start`` and ``end``. Re-ingesting
a document replaces its chunks: chunks the new version no longer has are deleted, so a
shorter document leaves no stale tail behind.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textlatent.collections import Document
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
        text = path.read_text(encoding="utf-8")
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


def _check_source(path: str | Path, **options: Any) -> int:
    """Read everything once before writing: a bad row stops the run before any write."""
    n = 0
    for doc in read_source(path, **options):
        if not isinstance(doc.id, str) or not doc.id or "#" in doc.id and doc.id.rsplit("#", 1)[1].isdigit():
            raise InvalidInputError(f"document id {doc.id!r}: ids ending in '#<number>' are reserved for chunks",
                                    param="id")
        n += 1
    return n


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
        chunks = list(chunk_documents(({"id": d.id, "text": d.text, "metadata": d.metadata} for d in batch),
                                      tokenizer, max_tokens=max_tokens, overlap=overlap))
        fresh = {c["id"] for c in chunks}
        parents = {c["metadata"]["parent_id"] for c in chunks}
        result.empty += sum(1 for d in batch if d.id not in parents)
        stale = [i for d in batch for i in coll.ids_matching({"parent_id": d.id}) if i not in fresh]
        if chunks:
            tl.add_documents(name, chunks, check_limit=False)
        if stale:
            result.stale_deleted += coll.delete(stale)
        result.documents += len(batch)
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
