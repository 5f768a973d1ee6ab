import pytest

from xner.labels import (
    LabelSet,
    convert_scheme,
    map_types,
    repair_iob2,
    spans_to_tags,
    split_tag,
    tags_to_spans,
)
from xner.types import Span


def test_spans_roundtrip_iob2():
    tags = ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC"]
    spans = tags_to_spans(tags)
    assert spans == [Span(0, 2, "PER"), Span(3, 4, "LOC"), Span(4, 6, "LOC")]
    assert spans_to_tags(spans, len(tags)) == tags


def test_scheme_conversions():
    iob2 = ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC", "B-ORG"]
    bioes = convert_scheme(iob2, "IOB2", "BIOES")
    assert bioes == ["B-PER", "E-PER", "O", "S-LOC", "B-LOC", "E-LOC", "S-ORG"]
    iob1 = convert_scheme(iob2, "IOB2", "IOB1")
    # IOB1 uses B- only between two touching entities of one type
    assert iob1 == ["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-LOC", "I-ORG"]
    assert convert_scheme(iob1, "IOB1", "IOB2") == iob2
    assert convert_scheme(bioes, "BIOES", "IOB2") == iob2


def test_repair_invalid_iob2():
    tags = ["I-PER", "I-PER", "O", "I-LOC", "B-ORG", "I-LOC"]
    repaired, changed = repair_iob2(tags)
    assert repaired == ["B-PER", "I-PER", "O", "B-LOC", "B-ORG", "B-LOC"]
    assert changed == 3


def test_map_types_counts_dropped():
    from collections import Counter

    dropped = Counter()
    out = map_types(
        ["B-DATE", "I-DATE", "B-politician", "I-politician", "B-person"],
        {"DATE": None, "politician": "PER", "person": "PER"},
        dropped,
    )
    # adjacent entities stay separate: the second keeps its B-
    assert out == ["O", "O", "B-PER", "I-PER", "B-PER"]
    assert dropped == {"DATE": 1}


def test_label_set_and_errors():
    ls = LabelSet(["PER", "ORG"])
    assert ls.labels == ("O", "B-PER", "I-PER", "B-ORG", "I-ORG")
    assert ls.decode(ls.encode(["B-ORG", "O"])) == ["B-ORG", "O"]
    with pytest.raises(ValueError, match="Unknown tag 'B-LOC'"):
        ls.encode(["B-LOC"])
    with pytest.raises(ValueError, match="Malformed tag"):
        split_tag("PER")
    with pytest.raises(ValueError, match="overlaps"):
        spans_to_tags([Span(0, 2, "PER"), Span(1, 3, "LOC")], 4)
