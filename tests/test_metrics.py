import random

import pytest
from seqeval.metrics import classification_report
from seqeval.scheme import IOB2

from xner.metrics import entity_scores, strict_spans
from xner.types import Span


def test_strict_spans_ignore_stray_inside_tags():
    assert strict_spans(["I-PER", "B-LOC", "I-LOC", "I-PER", "O", "B-ORG"]) == {
        Span(1, 3, "LOC"),
        Span(5, 6, "ORG"),
    }


def test_hand_checked_scores():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "O"]]
    s = entity_scores(gold, pred, ["PER", "ORG", "LOC"])
    # 2 of 3 predicted are right, 2 of 3 gold found
    assert s["precision"] == pytest.approx(200 / 3) and s["recall"] == pytest.approx(200 / 3)
    assert s["per_type"]["ORG"]["precision"] == 50.0 and s["per_type"]["LOC"]["recall"] == 0.0
    assert s["support"] == 3


def test_matches_seqeval_strict_on_random_predictions():
    rng = random.Random(0)
    labels = ["O", "O", "O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
    gold = [[rng.choice(labels) for _ in range(rng.randint(1, 15))] for _ in range(300)]
    gold = [
        [t if t.startswith(("O", "B")) or (i and g[i - 1][2:] == t[2:]) else "O" for i, t in enumerate(g)]
        for g in gold
    ]
    pred = [[t if rng.random() < 0.7 else rng.choice(labels) for t in g] for g in gold]
    ours = entity_scores(gold, pred)
    ref = classification_report(gold, pred, mode="strict", scheme=IOB2, output_dict=True, zero_division=0)
    assert ours["f1"] == pytest.approx(100 * ref["micro avg"]["f1-score"])
    assert ours["precision"] == pytest.approx(100 * ref["micro avg"]["precision"])
    for t in ("PER", "LOC", "ORG"):
        assert ours["per_type"][t]["f1"] == pytest.approx(100 * ref[t]["f1-score"])
        assert ours["per_type"][t]["support"] == ref[t]["support"]


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="sentence 0: 2 gold tags but 1 predicted"):
        entity_scores([["O", "O"]], [["O"]])
