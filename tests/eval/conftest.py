"""Tiny benchmark folders in the layout of ../shared/data, written to tmp_path per test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

# STS-B rows: genre, file, year, id, score, sentence 1, sentence 2 [, extra trailing fields]. The
# third and fifth rows carry source attributions after the sentences, as the real files do; the
# second holds double quotes, which a csv reader would treat as quoting.
STS_ROWS = [
    ["main-captions", "MSRvid", "2012test", "0001", "5.000", "A man is playing a guitar.",
     "A man is playing a guitar."],
    ["main-captions", "MSRvid", "2012test", "0002", "4.200", 'A woman says "hello" to a child. ',
     "A woman greets a little kid."],
    ["main-forums", "answer-answer", "2016", "0003", "2.500", "The cat sleeps on the sofa.",
     "A dog sleeps on the couch.", "StackExchange Network: http://example.org/1", "StackExchange Network: x"],
    ["main-news", "headlines", "2013", "0004", "0.000", "Stock markets fell sharply in Tokyo today.",
     "A child is eating an apple."],
    ["main-forums", "answer-answer", "2016", "0005", "1.000", "How do I bake bread at home?",
     "The football match ended in a draw.", "extra field"],
    ["main-captions", "MSRvid", "2012test", "0006", "3.800", "Two men are playing chess.",
     "Two people play a game of chess."],
]

CORPUS = [
    {"_id": "d1", "title": "Aspirin", "text": "Aspirin reduces the risk of heart attack.", "metadata": {}},
    {"_id": "d2", "title": "", "text": "Vitamin C does not prevent the common cold. ", "metadata": {}},
    {"_id": "d3", "title": "Sleep", "text": "Adults need seven hours of sleep.", "metadata": {}},
    {"_id": "q9", "text": "A document whose id equals a query id.", "metadata": {}},
]
QUERIES = [
    {"_id": "q1", "text": "Does aspirin prevent heart attacks?", "metadata": {}},
    {"_id": "q2", "text": "Does vitamin C cure colds?", "metadata": {}},
    {"_id": "q3", "text": "How much sleep do adults need?", "metadata": {}},
    {"_id": "q9", "text": "A document whose id equals a query id.", "metadata": {}},
]
# CRLF line ends, as in the BEIR release.
QRELS_TEST = "query-id\tcorpus-id\tscore\r\nq1\td1\t1\r\nq2\td2\t1\r\nq9\td3\t1\r\n"
QRELS_TRAIN = "query-id\tcorpus-id\tscore\r\nq3\td3\t1\r\n"


def write_tiny_data_dir(root: Path) -> Path:
    """Write every format ../shared/data holds, a few rows each; return ``root``."""
    (root / "stsb").mkdir(parents=True)
    text = "".join("\t".join(row) + "\n" for row in STS_ROWS)
    for split in ("train", "dev", "test"):
        (root / "stsb" / f"sts-{split}.csv").write_text(text, encoding="utf-8")

    beir = root / "toyfact"
    (beir / "qrels").mkdir(parents=True)
    (beir / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in CORPUS), encoding="utf-8")
    (beir / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in QUERIES), encoding="utf-8")
    (beir / "qrels" / "test.tsv").write_bytes(QRELS_TEST.encode())
    (beir / "qrels" / "train.tsv").write_bytes(QRELS_TRAIN.encode())

    glue = root / "sst2" / "glue"
    glue.mkdir(parents=True)
    (glue / "dev.tsv").write_text(
        "sentence\tlabel\nit 's a charming and often affecting journey . \t1\nunflinchingly bleak .\t0\n",
        encoding="utf-8",
    )
    (glue / "test.tsv").write_text("index\tsentence\n0\tuneasy mishmash of styles .\n", encoding="utf-8")
    kim = root / "sst2" / "kim_stsa"
    kim.mkdir(parents=True)
    (kim / "stsa.binary.dev").write_text("0 one long string of cliches .\n1 a gorgeous , witty film .\n",
                                         encoding="utf-8")

    (root / "ptb").mkdir()
    (root / "ptb" / "ptb.valid.txt").write_text(
        " consumers may want to move their telephones a little closer to the tv set \n\n"
        " <unk> <unk> watching abc 's monday night football \n",
        encoding="utf-8",
    )
    return root


@pytest.fixture
def tiny_data_dir(tmp_path: Path) -> Path:
    return write_tiny_data_dir(tmp_path / "data")
