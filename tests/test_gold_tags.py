"""Gold files are read the way the field scores them: nothing in a gold file is silently left unscored."""

import pytest

from xner.data.registry import detect_scheme, load_split
from xner.io.conll import ConllFormatError, read_conll
from xner.metrics import count_entities, scores_from_counts


def _data(root, files: dict[str, bytes | str]):
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return root


def test_stray_inside_tag_begins_an_entity_and_is_counted(tmp_path):
    # "I-LOC" after O and "I-ORG" after a PER entity: conlleval and seqeval's default mode read both as starts
    text = "in O\nParis I-LOC\n.\tO\n\nBill B-PER\nCorp I-ORG\nsaid O\n\nAnn B-PER\nLee I-PER\nof O\nRome B-LOC\n"
    data = _data(tmp_path, {"wikiann/zzz/test.txt": text})
    sents, stats = load_split("wikiann:zzz:test", data)
    assert sents[0].tags == ("O", "B-LOC", "O") and sents[1].tags == ("B-PER", "B-ORG", "O")
    assert stats.repaired_tags == 2 and stats.scheme == "IOB2"
    assert stats.entities == {"LOC": 2, "PER": 2, "ORG": 1}
    # the stray entity is scored: a model that finds it gets full recall, not an F1 over 2 of 3 entities
    gold = [s.tags for s in sents]
    scores = scores_from_counts(count_entities(gold, gold, ["PER", "ORG", "LOC"]))
    assert scores["support"] == 5 and scores["f1"] == 100.0


def test_iob1_file_is_detected_and_converted(tmp_path):
    # IOB1: entities begin with I-, B- only between two adjacent entities of the same type
    text = "Peter I-PER\nBlackburn I-PER\nmet O\nJohn I-PER\nMary B-PER\nin O\nBonn I-LOC\n"
    data = _data(tmp_path, {"wikiann/zzz/test.txt": text})
    sents, stats = load_split("wikiann:zzz:test", data)
    assert stats.scheme == "IOB1" and stats.repaired_tags == 3
    assert sents[0].tags == ("B-PER", "I-PER", "O", "B-PER", "B-PER", "O", "B-LOC")
    assert stats.entities == {"PER": 3, "LOC": 1}
    assert detect_scheme(sents) == "IOB2"


def test_non_utf8_byte_names_file_line_and_fix(tmp_path):
    data = _data(tmp_path, {"f.txt": b"EU B-ORG\n\nM\xfcnchen B-LOC\n"})
    with pytest.raises(
        ConllFormatError, match=r"f\.txt:3: byte b'\\xfc' at column 2 is not valid UTF-8.*iconv"
    ):
        read_conll(data / "f.txt")


def test_no_break_space_stays_inside_the_word(tmp_path):
    data = _data(tmp_path, {"f.txt": "New\u00a0York B-LOC\nis\tO\n"})
    sents = read_conll(data / "f.txt")
    assert sents[0].tokens == ("New\u00a0York", "is") and sents[0].tags == ("B-LOC", "O")


NCHLT_TSN = {"PERS": 2046, "ORG": 1079, "LOC": 1810, "MISC": 7782}


def test_nchlt_setswana_counts_and_mapping(data_dir):
    if not (data_dir / "nchlt" / "tsn" / "test.txt").is_file():
        pytest.skip("nchlt/tsn/test.txt is not in this data dir")
    _, raw = load_split("nchlt:tsn:test", data_dir, label_map="none", keep_types=None)
    assert raw.sentences == 7943 and raw.entities == NCHLT_TSN and raw.repaired_tags == 0
    sents, stats = load_split("nchlt:tsn:test", data_dir)
    assert stats.entities == {"PER": 2046, "ORG": 1079, "LOC": 1810}
    assert stats.dropped_entities == {"MISC": 7782} and sents[0].domain == "government"
