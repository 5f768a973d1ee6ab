"""Projection error analysis: one constructed sentence per cause, the one-cause invariant, the comparison."""

from __future__ import annotations

from collections import Counter

import pytest

from xner.labels import tags_to_spans
from xner.metrics import count_entities
from xner.pipeline.analysis import (
    GOLD_CAUSES,
    PREDICTED_CAUSES,
    SentenceRecord,
    analyze,
    compare_with_transfer,
    comparison_table,
    heuristic_drop_reasons,
    markdown_table,
    summarize,
    unknown_word_flags,
)
from xner.pipeline.project import project_heuristic, simple_tokenize
from xner.types import Span


def rec(target, gold, projected, translation, english, links=None, **kw) -> SentenceRecord:
    """A record from space-separated words and tags; ``links=None``: word i <-> word i."""
    target, translation = target.split(), translation.split()
    if links is None:
        links = {(i, i) for i in range(min(len(target), len(translation)))}
    return SentenceRecord(target, gold.split(), projected.split(), translation, english.split(), links, **kw)


# One sentence per cause: (record, gold causes, predicted causes), each list in span order.
CASES = {
    "correct": (
        rec(
            "Juan vive en Madrid",
            "B-PER O O B-LOC",
            "B-PER O O B-LOC",
            "Juan lives in Madrid",
            "B-PER O O B-LOC",
        ),
        ["correct", "correct"],
        ["correct", "correct"],
    ),
    # The English model puts the article inside the name; the gold leaves it out.
    "span_convention": (
        rec(
            "el Real Madrid ganó",
            "O B-ORG I-ORG O",
            "B-ORG I-ORG I-ORG O",
            "the Real Madrid won",
            "B-ORG I-ORG I-ORG O",
        ),
        ["span_convention"],
        ["span_convention"],
    ),
    # "Pérez" was found in the translation, but nothing aligns it to the target word.
    "dropped_by_projection": (
        rec("Lo dijo Pérez", "O O B-PER", "O O O", "Pérez said it", "B-PER O O", {(1, 1), (2, 0)}),
        ["dropped_by_projection"],
        [],
    ),
    # "Luis" is aligned to "ayer" (and "yesterday" to "Luis"): the PER lands on the wrong word.
    "alignment_wrong": (
        rec(
            "Ana saludó a Luis ayer",
            "B-PER O O B-PER O",
            "B-PER O O O B-PER",
            "Ana greeted Luis yesterday",
            "B-PER O B-PER O",
            {(0, 0), (1, 1), (2, 4), (3, 3)},
        ),
        ["correct", "alignment_wrong"],
        ["correct", "alignment_wrong"],
    ),
    # Apertium translated the surname: the English model sees an animal.
    "mt_changed_name": (
        rec("Lobo llegó ayer", "B-PER O O", "O O O", "Wolf arrived yesterday", "O O O"),
        ["mt_changed_name"],
        [],
    ),
    # The name reached the translation unchanged; the English model called it ORG.
    "source_ner_missed_or_mistyped": (
        rec("Habló con Lobo", "O O B-PER", "O O B-ORG", "Spoke with Lobo", "O O B-ORG"),
        ["source_ner_missed_or_mistyped"],
        ["wrong_type"],
    ),
    # "He" tagged PER in English and projected: gold has no entity there.
    "spurious_entity": (
        rec("Dijo que sí", "O O O", "B-PER O O", "He said yes", "B-PER O O"),
        [],
        ["spurious_entity"],
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_each_cause_from_a_constructed_sentence(name):
    record, gold, predicted = CASES[name]
    causes = analyze([record])
    assert [c.cause for c in causes if c.side == "gold"] == gold
    assert [c.cause for c in causes if c.side == "predicted"] == predicted
    assert name in gold + predicted


def test_details_name_what_decided():
    by_case = {name: analyze([case[0]]) for name, case in CASES.items()}
    dropped = by_case["dropped_by_projection"][0]
    assert dropped.detail == "unaligned" and dropped.english == "Pérez"
    wrong = [c for c in by_case["alignment_wrong"] if c.cause == "alignment_wrong"]
    assert wrong[0].detail == "projected onto: ayer"
    assert wrong[1].detail == "belongs to gold: Luis"
    assert by_case["mt_changed_name"][0].english == "Wolf"
    assert by_case["source_ner_missed_or_mistyped"][0].detail == "typed ORG; name kept"
    assert by_case["spurious_entity"][0].detail == "English entity, no gold counterpart"


def test_unknown_marks_and_missed_entity():
    # Apertium did not know "Lobo" and passed it through; the English model then missed it.
    tokens, flags = unknown_word_flags("Spoke with *Lobo.")
    assert tokens == simple_tokenize("Spoke with Lobo.") and flags == [False, False, True, False]
    record = rec("Habló con Lobo .", "O O B-PER O", "O O O O", " ".join(tokens), "O O O O", unknown=flags)
    (cause,) = analyze([record])
    assert (cause.cause, cause.detail) == (
        "source_ner_missed_or_mistyped",
        "missed; name passed through (unknown to MT)",
    )
    # The mark follows opening punctuation; a lone "*" is a word, not a mark.
    assert unknown_word_flags("(*Lobo) * x") == (
        ["(", "Lobo", ")", "*", "x"],
        [False, True, False, False, False],
    )
    # Without the flags the same name counts as merely kept.
    (cause,) = analyze([rec("Habló con Lobo .", "O O B-PER O", "O O O O", " ".join(tokens), "O O O O")])
    assert cause.detail == "missed; name kept"


def test_recorded_drop_reasons_win_over_inference():
    english = [Span(0, 1, "LOC"), Span(2, 4, "ORG"), Span(5, 6, "PER")]
    # word 0 -> target 0; ORG (2-3) has one of two words aligned (ratio 0.5); PER has no link;
    # a second LOC over word 1 conflicts with the first one's target word.
    links = {(0, 0), (1, 0), (2, 2)}
    spans = [english[0], Span(1, 2, "LOC"), *english[1:]]
    reasons = heuristic_drop_reasons(spans, links, n_target=4)
    assert reasons == {
        Span(1, 2, "LOC"): "conflict",
        english[1]: "below_length_ratio",
        english[2]: "unaligned",
    }
    assert Counter(reasons.values()) == project_heuristic(spans, links, 4).stats.dropped
    record = rec(
        "Lo dijo Pérez",
        "O O B-PER",
        "O O O",
        "Pérez said it",
        "B-PER O O",
        {(0, 2)},
        drops={Span(0, 1, "PER"): "conflict"},
    )
    (cause,) = analyze([record])
    assert (cause.cause, cause.detail) == ("dropped_by_projection", "conflict")


def test_first_applicable_cause_wins():
    # MT changed the name (Lobo -> Wolf) *and* the projection dropped the English entity ("Mr Wolf": one of
    # its two words aligned, ratio 0.5): the earlier cause in the order, dropped_by_projection, is the one.
    english = "B-PER I-PER O"
    record = rec("Lobo llegó", "B-PER O", "O O", "Mr Wolf arrived", english, {(1, 0), (2, 1)})
    (cause,) = analyze([record])
    assert (cause.cause, cause.detail, cause.english) == ("dropped_by_projection", "not_projected", "Wolf")
    drops = heuristic_drop_reasons(tags_to_spans(english.split()), record.links, 2)
    (cause,) = analyze(
        [rec("Lobo llegó", "B-PER O", "O O", "Mr Wolf arrived", english, record.links, drops=drops)]
    )
    assert cause.detail == "below_length_ratio"


def test_one_cause_per_entity_counts_sum_to_entities():
    records = [case[0] for case in CASES.values()]
    causes = analyze(records)
    summary = summarize(causes)
    counts = count_entities([r.gold for r in records], [r.projected for r in records])
    assert summary["gold"]["total"] == counts.gold.sum() == sum(summary["gold"]["counts"].values())
    assert summary["predicted"]["total"] == counts.pred.sum() == sum(summary["predicted"]["counts"].values())
    assert sum(summary["gold"]["shares"].values()) == pytest.approx(1.0)
    assert set(summary["gold"]["counts"]) == set(GOLD_CAUSES)
    assert set(summary["predicted"]["counts"]) == set(PREDICTED_CAUSES)
    assert len({(c.side, c.sentence, c.span) for c in causes}) == len(causes)  # no entity counted twice
    # Restricting the types restricts both sides, as the scorer does.
    per = summarize(analyze(records, types=["PER"]))
    per_counts = count_entities([r.gold for r in records], [r.projected for r in records], ["PER"])
    assert (per["gold"]["total"], per["predicted"]["total"]) == (per_counts.gold.sum(), per_counts.pred.sum())


def test_summary_tables_show_counts_and_examples():
    summary = summarize(analyze([case[0] for case in CASES.values()]), examples=1)
    table = markdown_table(summary)
    assert "| mt_changed_name | 1 | 12.5 |  |  |" in table
    assert "| spurious_entity |  |  | 1 | 14.3 |" in table
    assert '- #4: "Lobo" PER -> "Wolf" (name not verbatim in the translation)' in table
    assert all(len(v) <= 1 for v in summary["gold"]["examples"].values())


def test_compare_with_transfer():
    lobo = rec(
        "Lobo llegó ayer",
        "B-PER O O",
        "O O O",
        "Wolf arrived yesterday",
        "O O O",
        transfer="B-PER O O".split(),
    )
    juan = rec(
        "Juan vive en Madrid",
        "B-PER O O B-LOC",
        "B-PER O O B-LOC",
        "Juan lives in Madrid",
        "B-PER O O B-LOC",
        transfer="B-PER O O O".split(),
    )
    pena = rec(
        "Habló con Lobo",
        "O O B-PER",
        "O O B-ORG",
        "Spoke with Lobo",
        "O O B-ORG",
        transfer="O B-PER I-PER".split(),
    )
    no_transfer = CASES["mt_changed_name"][0]
    records = [lobo, juan, pena, no_transfer]
    result = compare_with_transfer(records, analyze(records))
    assert result["transfer_only"]["counts"]["mt_changed_name"] == 1 and result["transfer_only"]["total"] == 1
    assert result["projection_only"]["counts"] == {"span_convention": 0, "wrong_type": 0, "missed": 1}
    assert (result["both_right"], result["both_wrong"]) == (1, 1)  # Juan; Lobo (ORG) vs "con Lobo"
    table = comparison_table(result)
    assert "| transfer right, projection wrong | mt_changed_name | 1 | 100.0 |" in table


def test_record_checks_lengths_and_links():
    with pytest.raises(ValueError, match="gold has 2 items for 3 target words"):
        rec("a b c", "O O", "O O O", "a b c", "O O O")
    with pytest.raises(ValueError, match="links"):
        rec("a b", "O O", "O O", "a b", "O O", {(0, 5)})
