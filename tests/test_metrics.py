import random

import pytest
from seqeval.metrics import classification_report
from seqeval.scheme import IOB2

from xner.metrics import count_entities, entity_scores, scores_from_counts, strict_spans
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


def test_dontcare_ignores_predictions_on_removed_gold_entities():
    # gold after mapping: "Obama" PER; "Monday" (a DATE) and "last week" (a DATE) were removed by the mapping
    gold = [["B-PER", "O", "O", "O", "O", "O", "O"]]
    removed = [(Span(2, 3, "DATE"), Span(4, 6, "DATE"))]
    pred = [
        [
            "B-PER",  # exact: a true positive in both modes
            "O",
            "B-LOC",  # exactly on the removed DATE "Monday": ignored
            "B-ORG",  # ORG over words 3-4: word 4 is the start of "last week",
            "I-ORG",  # so it overlaps a removed span partly: ignored too
            "O",
            "B-LOC",  # word 6: elsewhere, a false positive
        ]
    ]
    strict = count_entities(gold, pred, ["PER", "ORG", "LOC"])
    dontcare = count_entities(gold, pred, ["PER", "ORG", "LOC"], ignore=removed)
    assert strict.pred.sum() == 4 and strict.tp.sum() == 1 and strict.gold.sum() == 1
    assert dontcare.pred.sum() == 2 and dontcare.tp.sum() == 1 and dontcare.gold.sum() == 1
    assert dontcare.pred[0].tolist() == [1, 0, 1]  # the PER hit and the LOC at word 6
    assert scores_from_counts(dontcare)["precision"] == 50.0
    assert scores_from_counts(strict)["precision"] == 25.0
    # with no removed spans the two modes agree
    same = count_entities(gold, pred, ["PER", "ORG", "LOC"], ignore=[()])
    assert same.pred.tolist() == strict.pred.tolist() and same.tp.tolist() == strict.tp.tolist()
    with pytest.raises(ValueError, match="1 gold sentences but 2 sentences of ignore spans"):
        count_entities(gold, pred, ignore=[(), ()])


def test_dontcare_never_drops_an_exact_match():
    # a removed span given by hand over a kept gold entity: the exact match still counts
    counts = count_entities(
        [["B-PER", "I-PER"]], [["B-PER", "I-PER"]], ["PER"], ignore=[(Span(1, 2, "DATE"),)]
    )
    assert counts.tp.sum() == 1 and counts.pred.sum() == 1
