"""Readers for benchmark folders laid out like ``../shared/data``.

Only the standard library is used here, so that loading (and its error messages) stays
quick and testable without torch. Every reader names the file and line it could not use:
a wrong ``--data-dir`` should read as such, not as a KeyError three frames deep.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from textlatent.errors import InvalidInputError, NotFoundError
from textlatent.text import join_title

STS_SPLITS = ("train", "dev", "test")
SST2_SOURCES = ("glue", "kim")
_PTB_SPLITS = {"train": "train", "dev": "valid", "valid": "valid", "test": "test"}


@dataclass(frozen=True)
class StsData:
    """Sentence pairs with a gold similarity score (0-5 for STS-B)."""

    sentences1: list[str]
    sentences2: list[str]
    scores: list[float]

    def __len__(self) -> int:
        return len(self.scores)


@dataclass(frozen=True)
class LabelledTexts:
    """Texts with integer labels; ``labels`` is ``None`` for an unlabelled file (GLUE test)."""

    texts: list[str]
    labels: list[int] | None

    def __len__(self) -> int:
        return len(self.texts)


@dataclass(frozen=True)
class BeirDataset:
    """One BEIR split: the whole corpus, the queries judged in that split, and their qrels."""

    name: str
    split: str
    corpus: dict[str, dict[str, str]]  # doc id -> {"title", "text"}
    queries: dict[str, str]  # query id -> text (only queries that have qrels in the split)
    qrels: dict[str, dict[str, int]]  # query id -> {doc id: relevance}

    def corpus_texts(self) -> tuple[list[str], list[str]]:
        """Doc ids and the text a dense retriever embeds: ``(title + " " + text).strip()``, as MTEB does."""
        ids = list(self.corpus)
        texts = [join_title(self.corpus[i]["title"], self.corpus[i]["text"]) for i in ids]
        return ids, texts


# --------------------------------------------------------------------------- helpers


def _require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        hint = "" if path.parent.is_dir() else f" (folder {str(path.parent)!r} does not exist either)"
        raise NotFoundError(f"{what} file {str(path)!r} not found{hint}", param="data_dir")
    return path


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Numbered lines without their line ends (LF or CRLF)."""
    with path.open(encoding="utf-8", newline="") as f:
        for number, line in enumerate(f, start=1):
            yield number, line.rstrip("\r\n")


def require_data_dir(data_dir: str | Path) -> Path:
    path = Path(data_dir).expanduser()
    if not path.is_dir():
        raise NotFoundError(
            f"data folder {str(path)!r} does not exist (resolved: {path.resolve()}); pass --data-dir",
            param="data_dir",
        )
    return path


def _check_split(split: str, allowed: tuple[str, ...] | list[str], what: str) -> None:
    if split not in allowed:
        raise InvalidInputError(f"{what} has no split {split!r}; choose one of: {', '.join(allowed)}", param="split")


# --------------------------------------------------------------------------- STS-B


def read_stsb(path: str | Path) -> StsData:
    """STS-B file: tab-separated, no header, score in column 5 and sentences in 6-7 (1-based).

    Some rows carry extra trailing fields (source attributions); they are ignored. The file
    is split on tabs only: sentences contain quotes, so csv quoting rules would merge rows.
    """
    path = _require_file(Path(path), "STS-B")
    s1: list[str] = []
    s2: list[str] = []
    scores: list[float] = []
    for number, line in _lines(path):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 7:
            raise InvalidInputError(
                f"{path}:{number}: expected at least 7 tab-separated fields, found {len(fields)}", param="data_dir"
            )
        try:
            score = float(fields[4])
        except ValueError:
            raise InvalidInputError(
                f"{path}:{number}: column 5 should be a score, found {fields[4]!r}", param="data_dir"
            ) from None
        s1.append(fields[5].strip())
        s2.append(fields[6].strip())
        scores.append(score)
    if not scores:
        raise InvalidInputError(f"{path} holds no sentence pairs", param="data_dir")
    return StsData(s1, s2, scores)


def load_stsb(data_dir: str | Path, split: str = "test") -> StsData:
    """``<data_dir>/stsb/sts-<split>.csv``."""
    _check_split(split, STS_SPLITS, "STS-B")
    return read_stsb(require_data_dir(data_dir) / "stsb" / f"sts-{split}.csv")


# --------------------------------------------------------------------------- SST-2


def _label(raw: str, path: Path, number: int) -> int:
    try:
        return int(raw)
    except ValueError:
        raise InvalidInputError(
            f"{path}:{number}: label should be an integer, found {raw!r}", param="data_dir"
        ) from None


def read_sst2_glue(path: str | Path) -> LabelledTexts:
    """GLUE SST-2: header ``sentence<TAB>label`` (the test file: ``index<TAB>sentence``, no labels)."""
    path = _require_file(Path(path), "SST-2 (GLUE)")
    rows = _lines(path)
    first = next(rows, None)
    if first is None:
        raise InvalidInputError(f"{path} is empty", param="data_dir")
    header = first[1].split("\t")
    if "sentence" not in header:
        raise InvalidInputError(
            f"{path}:1: expected a header with a 'sentence' column, found {header}", param="data_dir"
        )
    text_col = header.index("sentence")
    label_col = header.index("label") if "label" in header else None
    texts: list[str] = []
    labels: list[int] = []
    for number, line in rows:
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < len(header):
            raise InvalidInputError(
                f"{path}:{number}: expected {len(header)} tab-separated fields, found {len(fields)}", param="data_dir"
            )
        texts.append(fields[text_col].strip())
        if label_col is not None:
            labels.append(_label(fields[label_col].strip(), path, number))
    return LabelledTexts(texts, labels if label_col is not None else None)


def read_sst2_kim(path: str | Path) -> LabelledTexts:
    """Kim's ``stsa.binary.*``: one ``<label> <sentence>`` per line."""
    path = _require_file(Path(path), "SST-2 (Kim)")
    texts: list[str] = []
    labels: list[int] = []
    for number, line in _lines(path):
        if not line.strip():
            continue
        raw, _, text = line.partition(" ")
        if not text.strip():
            raise InvalidInputError(f"{path}:{number}: expected '<label> <sentence>', found {line!r}", param="data_dir")
        labels.append(_label(raw, path, number))
        texts.append(text.strip())
    return LabelledTexts(texts, labels)


def load_sst2(data_dir: str | Path, split: str = "dev", source: str = "glue") -> LabelledTexts:
    """``sst2/glue/<split>.tsv`` or ``sst2/kim_stsa/stsa.binary.<split>``."""
    if source not in SST2_SOURCES:
        raise InvalidInputError(f"SST-2 source must be one of {', '.join(SST2_SOURCES)}, got {source!r}",
                                param="source")
    _check_split(split, STS_SPLITS, "SST-2")
    root = require_data_dir(data_dir) / "sst2"
    if source == "glue":
        return read_sst2_glue(root / "glue" / f"{split}.tsv")
    return read_sst2_kim(root / "kim_stsa" / f"stsa.binary.{split}")


# --------------------------------------------------------------------------- PTB


def read_ptb(path: str | Path) -> list[str]:
    """One sentence per line (Mikolov's preprocessing); blank lines are skipped."""
    path = _require_file(Path(path), "PTB")
    return [line.strip() for _, line in _lines(path) if line.strip()]


def load_ptb(data_dir: str | Path, split: str = "train") -> list[str]:
    """``ptb/ptb.<train|valid|test>.txt``; ``dev`` is accepted for ``valid``."""
    _check_split(split, list(_PTB_SPLITS), "PTB")
    return read_ptb(require_data_dir(data_dir) / "ptb" / f"ptb.{_PTB_SPLITS[split]}.txt")


# --------------------------------------------------------------------------- BEIR


def _read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, object]]]:
    for number, line in _lines(path):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"{path}:{number}: not valid JSON ({exc.msg})", param="data_dir") from None
        if not isinstance(row, dict) or "_id" not in row:
            raise InvalidInputError(f"{path}:{number}: expected an object with an '_id'", param="data_dir")
        yield number, row


def read_beir_corpus(path: str | Path) -> dict[str, dict[str, str]]:
    """``corpus.jsonl``: ``{"_id", "title", "text"}`` per line (title optional)."""
    path = _require_file(Path(path), "BEIR corpus")
    corpus: dict[str, dict[str, str]] = {}
    for _, row in _read_jsonl(path):
        corpus[str(row["_id"])] = {"title": str(row.get("title") or ""), "text": str(row.get("text") or "")}
    return corpus


def read_beir_queries(path: str | Path) -> dict[str, str]:
    """``queries.jsonl``: ``{"_id", "text"}`` per line."""
    path = _require_file(Path(path), "BEIR queries")
    return {str(row["_id"]): str(row.get("text") or "") for _, row in _read_jsonl(path)}


def read_qrels(path: str | Path) -> dict[str, dict[str, int]]:
    """``qrels/<split>.tsv``: header ``query-id corpus-id score``, tab-separated, LF or CRLF."""
    path = _require_file(Path(path), "BEIR qrels")
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header is None:
            raise InvalidInputError(f"{path} is empty", param="data_dir")
        if [h.strip() for h in header[:3]] != ["query-id", "corpus-id", "score"]:
            raise InvalidInputError(
                f"{path}:1: expected the header 'query-id<TAB>corpus-id<TAB>score', found {header}", param="data_dir"
            )
        for number, row in enumerate(reader, start=2):
            if not row or not "".join(row).strip():
                continue
            if len(row) < 3:
                raise InvalidInputError(f"{path}:{number}: expected 3 tab-separated fields, found {len(row)}",
                                        param="data_dir")
            qid, did, raw = row[0].strip(), row[1].strip(), row[2].strip()
            try:
                score = int(float(raw))
            except ValueError:
                raise InvalidInputError(f"{path}:{number}: score should be a number, found {raw!r}",
                                        param="data_dir") from None
            qrels.setdefault(qid, {})[did] = score
    return qrels


def beir_splits(folder: str | Path) -> list[str]:
    """Splits a BEIR folder has qrels for."""
    qdir = Path(folder) / "qrels"
    return sorted(p.stem for p in qdir.glob("*.tsv")) if qdir.is_dir() else []


def beir_datasets(data_dir: str | Path) -> list[str]:
    """Sub-folders of ``data_dir`` laid out like BEIR (a corpus.jsonl and a qrels folder)."""
    root = Path(data_dir)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "corpus.jsonl").is_file() and (p / "qrels").is_dir())


def read_beir(folder: str | Path, split: str = "test") -> BeirDataset:
    """A BEIR folder: corpus, the split's qrels, and the queries those qrels judge.

    Like BEIR's ``GenericDataLoader`` (and MTEB), only queries with qrels in the split are kept.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise NotFoundError(f"BEIR dataset folder {str(folder)!r} does not exist", param="dataset")
    qrels_path = folder / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        splits = beir_splits(folder)
        have = f"; splits with qrels: {', '.join(splits)}" if splits else "; the folder has no qrels/*.tsv"
        raise NotFoundError(f"split {split!r} not found: {str(qrels_path)!r} does not exist{have}", param="split")
    qrels = read_qrels(qrels_path)
    corpus = read_beir_corpus(folder / "corpus.jsonl")
    all_queries = read_beir_queries(folder / "queries.jsonl")
    missing = [q for q in qrels if q not in all_queries]
    if missing:
        raise InvalidInputError(
            f"{qrels_path}: {len(missing)} query id(s) have no entry in queries.jsonl (first: {missing[0]!r})",
            param="data_dir",
        )
    queries = {q: all_queries[q] for q in qrels}
    return BeirDataset(name=folder.name, split=split, corpus=corpus, queries=queries, qrels=qrels)


def load_beir(data_dir: str | Path, dataset: str, split: str = "test") -> BeirDataset:
    """``<data_dir>/<dataset>/`` in the BEIR layout."""
    root = require_data_dir(data_dir)
    folder = root / dataset
    if not folder.is_dir() or not (folder / "corpus.jsonl").is_file():
        found = beir_datasets(root)
        have = f"; BEIR datasets there: {', '.join(found)}" if found else "; none found there"
        what = "has no corpus.jsonl" if folder.is_dir() else "does not exist"
        raise NotFoundError(f"dataset {dataset!r}: {str(folder)!r} {what}{have}", param="dataset")
    return read_beir(folder, split)
