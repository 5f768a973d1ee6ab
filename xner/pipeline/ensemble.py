"""Combine model transfer with a projection method: span-level ensembles of two IOB2 taggings of one sentence.

Model transfer and projection err differently (the error analysis, ``xner.pipeline.analysis``): transfer
misses or mistypes names its encoder knows badly, projection loses names the MT changed and boundaries. A
*fill* ensemble keeps every entity of a primary tagging and adds the secondary tagging's entities that overlap
none of them, so the primary's decisions stand and only its gaps are filled.
"""

from __future__ import annotations

from collections.abc import Sequence

from xner.labels import spans_to_tags, tags_to_spans
from xner.types import Span

ENSEMBLES = ("transfer_fill", "projection_fill")


def fill(primary: Sequence[str], secondary: Sequence[str]) -> list[str]:
    """Entities of ``primary`` plus those of ``secondary`` that overlap none of them (IOB2 tags, same words).

    Raises:
        ValueError: the taggings have different lengths.
    """
    if len(primary) != len(secondary):
        raise ValueError(f"taggings of different lengths: {len(primary)} and {len(secondary)} words")
    kept: list[Span] = list(tags_to_spans(list(primary)))
    taken = {i for span in kept for i in range(span.start, span.end)}
    for span in tags_to_spans(list(secondary)):
        if not taken.intersection(range(span.start, span.end)):
            kept.append(span)
            taken.update(range(span.start, span.end))
    return spans_to_tags(sorted(kept, key=lambda s: s.start), len(primary))


def ensemble(kind: str, transfer: Sequence[str], projected: Sequence[str]) -> list[str]:
    """``transfer_fill``: transfer's entities, gaps filled from the projection; ``projection_fill``: the reverse."""
    if kind == "transfer_fill":
        return fill(transfer, projected)
    if kind == "projection_fill":
        return fill(projected, transfer)
    raise ValueError(f"unknown ensemble {kind!r}: expected one of {', '.join(ENSEMBLES)}")
