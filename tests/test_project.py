"""Alignment heuristic, back-translation refinement and the shared projection types."""

from __future__ import annotations

from collections import Counter

import pytest

from xner.labels import tags_to_spans
from xner.pipeline.project import (
    ProjectionStats,
    char_similarity,
    find_string_span,
    project_heuristic,
    refine_alignment_with_translations,
    simple_tokenize,
)
from xner.types import Span


def _check(result, n_target: int) -> None:
    """Invariants every projection result must keep."""
    result.stats.check()
    assert len(result.tags) == n_target
    assert tags_to_spans(result.tags) == result.spans
    for a, b in zip(result.spans, result.spans[1:], strict=False):
        assert a.end <= b.start


# --------------------------------------------------------------------------------------------------------
# project_heuristic


def test_adjective_noun_swap_en_es():
    # the White House said  ->  la Casa Blanca dijo   (White<->Blanca, House<->Casa cross)
    src = "the White House said".split()
    tgt = "la Casa Blanca dijo".split()
    alignment = {(0, 0), (1, 2), (2, 1), (3, 3)}
    res = project_heuristic([Span(1, 3, "LOC")], alignment, len(tgt))
    _check(res, len(tgt))
    assert res.tags == ["O", "B-LOC", "I-LOC", "O"]
    assert res.stats.projected == 1 and len(src) == 4


def test_split_entity_merged_with_gap_one_not_zero():
    # Werner Zwingmann arrived  ->  Werner von Zwingmann llegó ; "von" is aligned to nothing
    tgt = "Werner von Zwingmann llegó".split()
    alignment = {(0, 0), (1, 2), (2, 3)}
    ent = [Span(0, 2, "PER")]
    merged = project_heuristic(ent, alignment, len(tgt), max_gap=1)
    _check(merged, len(tgt))
    assert merged.tags == ["B-PER", "I-PER", "I-PER", "O"]
    assert merged.stats.counts["merged_ranges"] == 1

    # d=0: two one-word ranges of a two-word entity, ratio 0.5 <= 0.8: both filtered.
    apart = project_heuristic(ent, alignment, len(tgt), max_gap=0)
    _check(apart, len(tgt))
    assert apart.tags == ["O"] * 4
    assert apart.stats.dropped == Counter({"below_length_ratio": 1})
    assert apart.stats.counts["ranges_below_length_ratio"] == 2

    # d=0 without the ratio filter: both pieces labelled as separate spans of the same entity.
    pieces = project_heuristic(ent, alignment, len(tgt), max_gap=0, length_ratio=None)
    _check(pieces, len(tgt))
    assert pieces.tags == ["B-PER", "O", "B-PER", "O"]
    assert pieces.stats.projected == 1 and pieces.stats.counts["spans"] == 2


def test_gap_bridged_even_if_gap_word_aligned_elsewhere():
    # Reading of "unaligned": not aligned to this entity (as in the reference code); "de" links to "of".
    # Source "European Central Bank of ..." (entity = words 0-2); "de" links to "of", outside the entity.
    tgt = "Banco Central de Europa".split()
    alignment = {(0, 3), (1, 1), (2, 0), (3, 2)}
    res = project_heuristic([Span(0, 3, "ORG")], alignment, len(tgt))
    assert res.tags == ["B-ORG", "I-ORG", "I-ORG", "I-ORG"]


def test_unaligned_entity_dropped_and_counted():
    tgt = "Él llegó ayer".split()
    res = project_heuristic([Span(0, 1, "PER"), Span(2, 3, "LOC")], {(1, 1)}, len(tgt))
    _check(res, len(tgt))
    assert res.tags == ["O", "O", "O"]
    assert res.stats.dropped == Counter({"unaligned": 2})
    assert res.stats.total_by_type == Counter({"PER": 1, "LOC": 1})
    assert res.stats.projection_rate == 0.0


def test_duplicated_entity_two_mentions():
    # Williams beat Williams  ->  Williams venció a Williams
    tgt = "Williams venció a Williams".split()
    ents = [Span(0, 1, "PER"), Span(2, 3, "PER")]
    good = project_heuristic(ents, {(0, 0), (1, 1), (2, 3)}, len(tgt))
    _check(good, len(tgt))
    assert good.tags == ["B-PER", "O", "O", "B-PER"]
    assert good.stats.projected == 2

    # A noisy aligner links the first Williams to both mentions: it takes both (top_k=None), the second
    # entity then finds its word taken and is counted as a conflict.
    noisy = {(0, 0), (0, 3), (1, 1), (2, 3)}
    res = project_heuristic(ents, noisy, len(tgt))
    _check(res, len(tgt))
    assert res.tags == ["B-PER", "O", "O", "B-PER"]
    assert res.stats.projected == 1 and res.stats.dropped == Counter({"conflict": 1})
    assert res.stats.counts["conflict_ranges"] == 1

    # top_k=1 keeps one range per entity (equal lengths: the leftmost), so both entities project.
    top1 = project_heuristic(ents, noisy, len(tgt), top_k=1)
    _check(top1, len(tgt))
    assert top1.stats.projected == 2 and top1.stats.counts["ranges_beyond_top_k"] == 1


def test_conflict_first_come_first_served_and_longest_order():
    tgt = "w0 w1 w2 w3".split()
    ents = [Span(0, 1, "PER"), Span(1, 3, "ORG")]
    alignment = {(0, 1), (1, 1), (1, 2), (2, 2)}  # PER -> w1 ; ORG -> w1 w2
    res = project_heuristic(ents, alignment, len(tgt), length_ratio=None)
    _check(res, len(tgt))
    assert res.tags == ["O", "B-PER", "O", "O"]
    assert res.stats.dropped == Counter({"conflict": 1})
    assert res.stats.projected_by_type == Counter({"PER": 1})
    assert res.stats.rate_by_type() == {"ORG": 0.0, "PER": 1.0}

    longest = project_heuristic(ents, alignment, len(tgt), length_ratio=None, order="longest")
    _check(longest, len(tgt))
    assert longest.tags == ["O", "B-ORG", "I-ORG", "O"]
    assert longest.stats.dropped == Counter({"conflict": 1})


def test_length_ratio_filter():
    tgt = "a b c d e f".split()
    ent = [Span(0, 3, "ORG")]
    alignment = {(0, 1), (1, 2)}  # 3-word entity onto 2 words: ratio 0.67
    assert project_heuristic(ent, alignment, 6).stats.dropped == Counter({"below_length_ratio": 1})
    assert project_heuristic(ent, alignment, 6, length_ratio=0.5).tags == [
        "O",
        "B-ORG",
        "I-ORG",
        "O",
        "O",
        "O",
    ]
    assert project_heuristic(ent, alignment, 6, length_ratio=None).stats.projected == 1
    # The comparison is strict: 4 / 5 = 0.8 does not exceed 0.8.
    five = [Span(0, 5, "ORG")]
    four_links = {(i, i) for i in range(4)}
    assert project_heuristic(five, four_links, len(tgt)).stats.dropped["below_length_ratio"] == 1
    assert project_heuristic(five, four_links, len(tgt), length_ratio=0.79).stats.projected == 1


def test_only_i_blocks_merge_at_a_second_mention():
    # Nelson Mandela  ->  Mandela , Nelson Mandela : the right range starts at a word aligned to "Nelson".
    tgt = "Mandela , Nelson Mandela".split()
    alignment = {(1, 0), (0, 2), (1, 3)}
    ent = [Span(0, 2, "PER")]
    merged = project_heuristic(ent, alignment, len(tgt))
    assert merged.tags == ["B-PER", "I-PER", "I-PER", "I-PER"]
    only_i = project_heuristic(ent, alignment, len(tgt), only_i=True)
    _check(only_i, len(tgt))
    assert only_i.tags == ["O", "O", "B-PER", "I-PER"]  # the lone "Mandela" fails the ratio filter
    assert only_i.stats.counts["merged_ranges"] == 0


def test_top_k_keeps_longest():
    tgt = "x y z w v".split()
    alignment = {(0, 0), (0, 2), (1, 3)}  # ranges (0,1) and (2,4) with d=0
    res = project_heuristic([Span(0, 2, "LOC")], alignment, len(tgt), max_gap=0, length_ratio=None, top_k=1)
    assert res.tags == ["O", "O", "B-LOC", "I-LOC", "O"]


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="out of range"):
        project_heuristic([Span(0, 1, "PER")], {(0, 5)}, 3)
    with pytest.raises(ValueError, match="max_gap"):
        project_heuristic([], set(), 3, max_gap=-1)
    with pytest.raises(ValueError, match="top_k"):
        project_heuristic([], set(), 3, top_k=0)
    with pytest.raises(ValueError, match="order"):
        project_heuristic([], set(), 3, order="random")


def test_stats_merge_and_dict():
    a = project_heuristic([Span(0, 1, "PER")], {(0, 0)}, 2).stats
    b = project_heuristic([Span(0, 1, "LOC")], set(), 2).stats
    total = a + b
    total.check()
    d = total.to_dict()
    assert d["source_entities"] == 2 and d["projected"] == 1 and d["dropped"] == {"unaligned": 1}
    assert d["rate_by_type"] == {"LOC": 0.0, "PER": 1.0}
    broken = ProjectionStats(source_entities=2, projected=1)
    with pytest.raises(ValueError, match="Inconsistent"):
        broken.check()


# --------------------------------------------------------------------------------------------------------
# text helpers


def test_simple_tokenize():
    assert simple_tokenize('("Mandela"), dijo...') == ["(", '"', "Mandela", '"', ")", ",", "dijo", "..."]
    assert simple_tokenize("EE.UU. y la U.S.") == ["EE.UU.", "y", "la", "U.S."]
    assert simple_tokenize("d'Alemanya l'ONU O'Neill don't") == [
        "d'",
        "Alemanya",
        "l'",
        "ONU",
        "O'Neill",
        "don't",
    ]


def test_find_string_span_exact_then_fuzzy():
    tgt = "la Organización de las Naciones Unidas y la ONU".split()
    assert find_string_span(tgt, "Naciones Unidas") == [(4, 6, 1.0)]
    fuzzy = find_string_span(tgt, "Organizacion de las Naciones Unidas")
    assert fuzzy[0][:2] == (1, 6) and 0.9 < fuzzy[0][2] < 1.0
    assert find_string_span(tgt, "Bruselas") == []
    assert find_string_span(tgt, "  ") == []
    assert char_similarity("", "") == 0.0


# --------------------------------------------------------------------------------------------------------
# refine_alignment_with_translations


def test_refinement_fixes_a_wrong_link():
    src = "Peter Blackburn visited Brussels".split()
    tgt = "Peter Blackburn visitó Bruselas".split()
    wrong = {(0, 0), (1, 2), (2, 2), (3, 3)}  # Blackburn wrongly -> visitó
    ents = [Span(0, 2, "PER"), Span(3, 4, "LOC")]
    before = project_heuristic(ents, wrong, len(tgt))
    assert before.tags == ["B-PER", "I-PER", "I-PER", "B-LOC"]  # gap bridged into "visitó"

    refined, stats = refine_alignment_with_translations(
        src, ents, tgt, wrong, ["Peter Blackburn", "Bruselas"]
    )
    assert (1, 2) not in refined and {(0, 0), (0, 1), (1, 0), (1, 1)} <= refined
    assert (2, 2) in refined  # other source words keep their links
    assert stats["exact"] == 2 and stats["links_removed"] == 1 and stats["links_added"] == 3
    after = project_heuristic(ents, refined, len(tgt))
    assert after.tags == ["B-PER", "I-PER", "O", "B-LOC"]


def test_refinement_fuzzy_unmatched_and_empty():
    src = "the United Nations met in Saragossa".split()
    tgt = "la Organización de las Naciones Unidas se reunió en Zaragoza".split()
    ents = [Span(1, 3, "ORG"), Span(5, 6, "LOC"), Span(0, 1, "MISC")]
    refined, stats = refine_alignment_with_translations(
        src, ents, tgt, {(1, 5)}, ["Organizacion de las Naciones Unidas", "Saragossa", ""]
    )
    assert stats == Counter({"fuzzy": 1, "unmatched": 1, "empty_translation": 1, "links_added": 9})
    assert {(1, j) for j in range(1, 6)} <= refined and (2, 1) in refined
    with pytest.raises(ValueError, match="one translated string per entity"):
        refine_alignment_with_translations(src, ents, tgt, set(), ["x"])


def test_refinement_duplicate_entities_claim_different_mentions():
    src = "Williams beat Williams".split()
    tgt = "Williams venció a Williams".split()
    ents = [Span(0, 1, "PER"), Span(2, 3, "PER")]
    refined, stats = refine_alignment_with_translations(src, ents, tgt, set(), ["Williams", "Williams"])
    assert refined == {(0, 0), (2, 3)} and stats["exact"] == 2
    # With links pointing the other way round, each entity follows its own links.
    crossed, _ = refine_alignment_with_translations(
        src, ents, tgt, {(0, 3), (2, 0)}, ["Williams", "Williams"]
    )
    assert crossed == {(0, 3), (2, 0)}


# --------------------------------------------------------------------------------------------------------
# the pipeline's heuristic methods (xner.pipeline.methods)


def test_heuristic_bt_method_repairs_a_misalignment():
    from xner.pipeline.methods import SentencePair, get_method

    src = "Yesterday Nelson Mandela visited Madrid".split()
    tgt = "Ayer Nelson Mandela visitó Madrid".split()
    ents = [Span(1, 3, "PER"), Span(4, 5, "LOC")]
    links = {(0, 0), (1, 3), (2, 3), (3, 1), (4, 4)}  # the aligner tied the name to "visitó"
    pair = SentencePair(ents, src, tgt, links=links, entity_translations=["Nelson Mandela", "Madrid"])
    plain = get_method("heuristic").project(pair, {})
    assert plain.tags == ["O", "O", "O", "O", "B-LOC"]
    assert plain.stats.dropped == Counter({"below_length_ratio": 1})  # 1 of 2 words < 0.8
    bt = get_method("heuristic_bt").project(pair, {})
    assert bt.tags == ["O", "B-PER", "I-PER", "O", "B-LOC"]
    assert bt.method_counts == Counter({"exact": 2, "links_added": 4, "links_removed": 2})
    assert get_method("heuristic_bt").counts_key == "refinement_counts"
