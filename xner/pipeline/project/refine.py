"""Alignment refinement with separately translated entity strings (heuristic_bt)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from xner.pipeline.project.results import Links, validate_alignment, validate_spans
from xner.pipeline.project.text import find_string_span, simple_tokenize
from xner.types import Span


def refine_alignment_with_translations(
    source_tokens: Sequence[str],
    source_spans: Sequence[Span],
    target_tokens: Sequence[str],
    alignment: Iterable[tuple[int, int]],
    entity_translations: Sequence[str],
    fuzzy_threshold: float = 0.8,
) -> tuple[Links, Counter[str]]:
    """Refine an alignment with separately translated entity strings (the xner reading of Politov et al.).

    For each source entity, its translation is looked up in the target sentence with
    :func:`find_string_span` (exact token match first, then fuzzy: difflib character ratio ≥
    ``fuzzy_threshold`` over target n-grams of the translation's length ±1). When found, every entity word is
    linked to every word of the matched target span and the entity's links outside that span are removed.
    Links of other source words are left as they are (the spec changes only the entity's links).

    Choosing among several matches (a name that occurs twice, or two source entities with the same string):
    highest similarity, then a span no earlier entity of this sentence has claimed, then the span holding
    most of this entity's existing links, then the leftmost.

    Args:
        source_tokens: source words (used to check the spans).
        source_spans: source entities (exclusive ends).
        target_tokens: target words.
        alignment: ``(source word, target word)`` links.
        entity_translations: one translated string per source entity, in the same order.
        fuzzy_threshold: minimum character similarity of a fuzzy match.

    Returns:
        The refined alignment and counts: ``exact``, ``fuzzy``, ``unmatched``, ``empty_translation``,
        ``links_added``, ``links_removed`` (every entity lands in exactly one of the first four).

    Raises:
        ValueError: translations and entities differ in number, or indices are out of range.
    """
    if len(entity_translations) != len(source_spans):
        raise ValueError(
            f"Got {len(entity_translations)} entity translations for {len(source_spans)} source entities; "
            "pass one translated string per entity, in the same order."
        )
    validate_spans(source_spans, len(source_tokens), "Source")
    links = validate_alignment(alignment, len(target_tokens))
    stats: Counter[str] = Counter()
    claimed: set[tuple[int, int]] = set()
    for ent, translation in zip(source_spans, entity_translations, strict=True):
        if not simple_tokenize(translation):
            stats["empty_translation"] += 1
            continue
        matches = find_string_span(target_tokens, translation, fuzzy_threshold)
        if not matches:
            stats["unmatched"] += 1
            continue
        ent_words = range(ent.start, ent.end)
        own_targets = Counter(j for i, j in links if ent.start <= i < ent.end)

        def rank(match: tuple[int, int, float], own_targets: Counter[int] = own_targets) -> tuple:
            s, e, sim = match
            inside = sum(own_targets[j] for j in range(s, e))
            return (-round(sim, 9), (s, e) in claimed, -inside, s, e)

        start, end, sim = min(matches, key=rank)
        claimed.add((start, end))
        stats["exact" if sim == 1.0 else "fuzzy"] += 1
        removed = {(i, j) for i, j in links if ent.start <= i < ent.end and not start <= j < end}
        added = {(i, j) for i in ent_words for j in range(start, end)} - links
        links = (links - removed) | added
        stats["links_removed"] += len(removed)
        stats["links_added"] += len(added)
    return links, stats
