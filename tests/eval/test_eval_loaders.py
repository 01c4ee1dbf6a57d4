"""Loaders on tiny fixtures of every format, their error messages, and the real files when present."""

from __future__ import annotations

from pathlib import Path

import pytest

from textlatent.errors import InvalidInputError, NotFoundError
from textlatent.eval import (
    beir_datasets,
    load_beir,
    load_ptb,
    load_sst2,
    load_stsb,
    read_qrels,
    read_stsb,
)


def test_stsb_reads_columns_5_to_7_and_ignores_trailing_fields(tiny_data_dir: Path) -> None:
    data = load_stsb(tiny_data_dir, "test")
    assert len(data) == 6
    assert data.scores == [5.0, 4.2, 2.5, 0.0, 1.0, 3.8]
    # Row 3 has two extra fields after the sentences: they must not shift or leak into the pair.
    assert data.sentences1[2] == "The cat sleeps on the sofa."
    assert data.sentences2[2] == "A dog sleeps on the couch."
    assert data.sentences2[4] == "The football match ended in a draw."
    # Quotes are text, not csv quoting; trailing spaces are stripped.
    assert data.sentences1[1] == 'A woman says "hello" to a child.'


def test_stsb_short_row_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "sts-test.csv"
    path.write_text("g\tf\t2012\t1\t3.0\tOne sentence.\tTwo sentences.\ng\tf\t2012\t2\t3.0\tonly one\n")
    with pytest.raises(InvalidInputError, match=r"sts-test\.csv:2: expected at least 7"):
        read_stsb(path)


def test_stsb_bad_score_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "sts-test.csv"
    path.write_text("g\tf\t2012\t1\tfive\tA.\tB.\n")
    with pytest.raises(InvalidInputError, match="column 5 should be a score"):
        read_stsb(path)


def test_missing_files_raise_not_found_naming_the_file(tmp_path: Path, tiny_data_dir: Path) -> None:
    with pytest.raises(NotFoundError, match=r"sts-train\.csv"):
        load_stsb(tmp_path, "train")
    with pytest.raises(NotFoundError, match=r"stsa\.binary\.test"):
        load_sst2(tiny_data_dir, "test", source="kim")
    with pytest.raises(NotFoundError, match=r"ptb\.test\.txt"):
        load_ptb(tiny_data_dir, "test")
    with pytest.raises(NotFoundError, match="data folder .* does not exist"):
        load_stsb(tmp_path / "nowhere", "test")


def test_unknown_split_is_invalid_input(tiny_data_dir: Path) -> None:
    with pytest.raises(InvalidInputError, match="choose one of: train, dev, test"):
        load_stsb(tiny_data_dir, "validation")


def test_beir_layout_with_crlf_qrels(tiny_data_dir: Path) -> None:
    data = load_beir(tiny_data_dir, "toyfact", "test")
    assert data.name == "toyfact" and data.split == "test"
    # CRLF must not leak into ids or turn the score into a string.
    assert data.qrels == {"q1": {"d1": 1}, "q2": {"d2": 1}, "q9": {"d3": 1}}
    # Only the queries judged in the split are kept (q3 is judged in train only).
    assert data.queries == {
        "q1": "Does aspirin prevent heart attacks?",
        "q2": "Does vitamin C cure colds?",
        "q9": "A document whose id equals a query id.",
    }
    assert len(data.corpus) == 4
    ids, texts = data.corpus_texts()
    assert ids == ["d1", "d2", "d3", "q9"]
    # MTEB's corpus text: (title + " " + text).strip(); an empty or missing title adds nothing.
    assert texts[0] == "Aspirin Aspirin reduces the risk of heart attack."
    assert texts[1] == "Vitamin C does not prevent the common cold."
    assert texts[3] == "A document whose id equals a query id."
    assert list(load_beir(tiny_data_dir, "toyfact", "train").queries) == ["q3"]


def test_beir_missing_split_lists_available_splits(tiny_data_dir: Path) -> None:
    with pytest.raises(NotFoundError, match=r"qrels/dev\.tsv.*splits with qrels: test, train"):
        load_beir(tiny_data_dir, "toyfact", "dev")


def test_beir_unknown_dataset_lists_datasets(tiny_data_dir: Path) -> None:
    assert beir_datasets(tiny_data_dir) == ["toyfact"]
    with pytest.raises(NotFoundError, match="dataset 'nfcorpus'.*BEIR datasets there: toyfact"):
        load_beir(tiny_data_dir, "nfcorpus")


def test_beir_missing_corpus_or_queries_is_named(tiny_data_dir: Path) -> None:
    (tiny_data_dir / "toyfact" / "queries.jsonl").unlink()
    with pytest.raises(NotFoundError, match=r"queries\.jsonl"):
        load_beir(tiny_data_dir, "toyfact")
    (tiny_data_dir / "toyfact" / "corpus.jsonl").unlink()
    with pytest.raises(NotFoundError, match="has no corpus.jsonl"):
        load_beir(tiny_data_dir, "toyfact")


def test_qrels_without_header_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "test.tsv"
    path.write_bytes(b"q1\td1\t1\r\n")
    with pytest.raises(InvalidInputError, match="expected the header"):
        read_qrels(path)


def test_qrels_query_missing_from_queries_is_reported(tiny_data_dir: Path) -> None:
    with (tiny_data_dir / "toyfact" / "qrels" / "test.tsv").open("ab") as f:
        f.write(b"q77\td1\t1\r\n")
    with pytest.raises(InvalidInputError, match="no entry in queries.jsonl.*'q77'"):
        load_beir(tiny_data_dir, "toyfact")


def test_sst2_glue_with_header_and_unlabelled_test(tiny_data_dir: Path) -> None:
    dev = load_sst2(tiny_data_dir, "dev", source="glue")
    assert dev.texts == ["it 's a charming and often affecting journey .", "unflinchingly bleak ."]
    assert dev.labels == [1, 0]
    test = load_sst2(tiny_data_dir, "test", source="glue")
    assert test.texts == ["uneasy mishmash of styles ."]
    assert test.labels is None


def test_sst2_kim_label_then_sentence(tiny_data_dir: Path) -> None:
    dev = load_sst2(tiny_data_dir, "dev", source="kim")
    assert dev.labels == [0, 1]
    assert dev.texts == ["one long string of cliches .", "a gorgeous , witty film ."]


def test_sst2_kim_bad_label(tmp_path: Path) -> None:
    kim = tmp_path / "sst2" / "kim_stsa"
    kim.mkdir(parents=True)
    (kim / "stsa.binary.dev").write_text("positive a fine film .\n")
    with pytest.raises(InvalidInputError, match=r"stsa\.binary\.dev:1: label should be an integer"):
        load_sst2(tmp_path, "dev", source="kim")


def test_ptb_one_sentence_per_line(tiny_data_dir: Path) -> None:
    sentences = load_ptb(tiny_data_dir, "dev")  # 'dev' means Mikolov's 'valid'
    assert sentences == [
        "consumers may want to move their telephones a little closer to the tv set",
        "<unk> <unk> watching abc 's monday night football",
    ]


# --------------------------------------------------------------------------- real files (skip if absent)


def test_real_files_have_the_documented_sizes(data_dir: Path) -> None:
    """Row counts from ../shared/data/README.md."""
    assert [len(load_stsb(data_dir, s)) for s in ("train", "dev", "test")] == [5749, 1500, 1379]
    scifact = load_beir(data_dir, "scifact", "test")
    assert (len(scifact.corpus), len(scifact.queries)) == (5183, 300)
    assert sum(len(docs) for docs in scifact.qrels.values()) == 339
    train = load_beir(data_dir, "scifact", "train")
    assert (len(train.queries), sum(len(d) for d in train.qrels.values())) == (809, 919)
    assert [len(load_sst2(data_dir, s)) for s in ("train", "dev", "test")] == [67349, 872, 1821]
    assert [len(load_sst2(data_dir, s, source="kim")) for s in ("train", "dev", "test")] == [6920, 872, 1821]
    assert [len(load_ptb(data_dir, s)) for s in ("train", "valid", "test")] == [42068, 3370, 3761]
