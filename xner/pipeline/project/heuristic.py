"""The alignment heuristic (García-Ferrero et al. 2022, extended as in the thesis)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

from xner.labels import spans_to_tags
from xner.pipeline.project.results import (
    DROP_CONFLICT,
    DROP_LENGTH_RATIO,
    DROP_UNALIGNED,
    ProjectionResult,
    ProjectionStats,
    validate_alignment,
)
from xner.types import Span


def _runs(positions: Sequence[int]) -> list[tuple[int, int]]:
    """Maximal runs of consecutive ints in a sorted sequence, as ``[start, end)`` pairs."""
    runs: list[tuple[int, int]] = []
    for p in positions:
        if runs and p == runs[-1][1]:
            runs[-1] = (runs[-1][0], p + 1)
        else:
            runs.append((p, p + 1))
    return runs


def project_heuristic(
    source_spans: Sequence[Span],
    alignment: Iterable[tuple[int, int]],
    n_target: int,
    *,
    max_gap: int = 1,
    only_i: bool = False,
    length_ratio: float | None = 0.8,
    top_k: int | None = None,
    order: Literal["source", "longest"] = "source",
) -> ProjectionResult:
    """Project entities through a word alignment (García-Ferrero et al. 2022, extended as in the thesis).

    For each source entity (METHODS.md §2, steps 1–5):

    1. collect the maximal contiguous target ranges whose words are all aligned to some word of the entity;
    2. merge neighbouring ranges separated by at most ``max_gap`` words. Reading of "unaligned": the gap words
       are those aligned to *no word of this entity* — which every gap word is, since the ranges are maximal —
       whatever their links to other source words. This is what the reference implementation
       (Easy-Label-Projection, ``sentence_projection``) does: it fills short gaps without looking at the gap
       words. With ``only_i`` a gap is not bridged when the right range starts at a word aligned to the
       entity's first word (that range looks like a second mention, not the continuation of this one);
    3. with ``length_ratio``: keep only ranges with ``len(range) / len(entity) > length_ratio`` (strictly);
    4. with ``top_k``: keep the ``k`` longest ranges (ties: leftmost first);
    5. label a range only if all its words are still ``O`` (first come, first served).

    Processing order of entities for step 5: ``"source"`` (default) takes entities in source order, the
    literal first-come-first-served of METHODS.md, deterministic and independent of the aligner's noise;
    ``"longest"`` takes entities with the largest kept target coverage first, which mimics the reference
    code's collision rule ("keep the larger tag").

    An entity is projected when at least one of its ranges is labelled (with ``top_k=None`` an entity whose
    words align to two mentions in the target labels both). Otherwise it is dropped under exactly one reason:
    ``unaligned`` (no link), ``below_length_ratio`` (every range failed step 3) or ``conflict`` (every kept
    range overlapped words labelled earlier). Range-level counts go to ``stats.counts``: ``merged_ranges``,
    ``ranges_below_length_ratio``, ``ranges_beyond_top_k``, ``conflict_ranges``.

    Args:
        source_spans: source entities (exclusive ends).
        alignment: ``(source word, target word)`` links, 0-based.
        n_target: number of target words.
        max_gap: ``d``, the largest gap bridged in step 2 (0 disables merging).
        only_i: see step 2.
        length_ratio: ``thr`` of step 3; ``None`` disables the filter. 0.8 is the best reported setting.
        top_k: ``k`` of step 4; ``None`` keeps all ranges.
        order: entity processing order for step 5, ``"source"`` or ``"longest"``.

    Returns:
        The projection with tags over the ``n_target`` target words.

    Raises:
        ValueError: bad options, or links/spans outside the sentences.
    """
    if max_gap < 0:
        raise ValueError(f"max_gap must be >= 0, got {max_gap}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be None or >= 1, got {top_k}")
    if length_ratio is not None and length_ratio < 0:
        raise ValueError(f"length_ratio must be None or >= 0, got {length_ratio}")
    if order not in ("source", "longest"):
        raise ValueError(f"order must be 'source' or 'longest', got {order!r}")
    links = validate_alignment(alignment, n_target)
    by_source: dict[int, set[int]] = {}
    for i, j in links:
        by_source.setdefault(i, set()).add(j)

    stats = ProjectionStats()
    plans: list[tuple[Span, list[tuple[int, int]], str | None]] = []
    for ent in source_spans:
        aligned = set().union(*(by_source.get(i, ()) for i in range(ent.start, ent.end)))
        if not aligned:
            plans.append((ent, [], DROP_UNALIGNED))
            continue
        first_word_targets = by_source.get(ent.start, set())
        ranges: list[tuple[int, int]] = []
        for start, end in _runs(sorted(aligned)):
            if ranges and start - ranges[-1][1] <= max_gap and not (only_i and start in first_word_targets):
                ranges[-1] = (ranges[-1][0], end)
                stats.counts["merged_ranges"] += 1
            else:
                ranges.append((start, end))
        if length_ratio is not None:
            kept = [r for r in ranges if (r[1] - r[0]) / len(ent) > length_ratio]
            stats.counts["ranges_below_length_ratio"] += len(ranges) - len(kept)
            if not kept:
                plans.append((ent, [], DROP_LENGTH_RATIO))
                continue
            ranges = kept
        if top_k is not None and len(ranges) > top_k:
            stats.counts["ranges_beyond_top_k"] += len(ranges) - top_k
            ranges = sorted(sorted(ranges, key=lambda r: (-(r[1] - r[0]), r[0]))[:top_k])
        plans.append((ent, ranges, None))

    if order == "longest":
        # Stable sort: equal coverage keeps source order.
        plans.sort(key=lambda p: -sum(e - s for s, e in p[1]))

    taken = [False] * n_target
    spans: list[Span] = []
    for ent, ranges, reason in plans:
        if reason is not None:
            stats.add_dropped(ent.label, reason)
            continue
        labelled = 0
        for start, end in ranges:
            if any(taken[start:end]):
                stats.counts["conflict_ranges"] += 1
                continue
            taken[start:end] = [True] * (end - start)
            spans.append(Span(start, end, ent.label))
            labelled += 1
        if labelled:
            stats.add_projected(ent.label)
        else:
            stats.add_dropped(ent.label, DROP_CONFLICT)
    spans.sort(key=lambda s: s.start)
    stats.counts["spans"] += len(spans)
    return ProjectionResult(spans_to_tags(spans, n_target), spans, stats)
