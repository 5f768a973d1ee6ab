"""Result types shared by every projection method: per-sentence stats, results and drop reasons.

Conventions used by every projection method in :mod:`xner.pipeline`:

- an *alignment* is a ``set[tuple[int, int]]`` of ``(source word, target word)`` links, 0-based;
- source entities are :class:`~xner.types.Span` objects with an **exclusive** end (METHODS.md writes inclusive
  ranges ``(i, j)``; here that range is ``Span(i, j + 1, label)``);
- a method returns a :class:`ProjectionResult`: IOB2 tags over the target words, the projected spans
  (never overlapping) and a :class:`ProjectionStats` in which every source entity is either projected or
  counted under exactly one drop reason.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from xner.types import Span

Links = set[tuple[int, int]]

# Drop reasons used across methods (a method may add its own; every reason is a plain string key).
DROP_UNALIGNED = "unaligned"
DROP_CONFLICT = "conflict"
DROP_LENGTH_RATIO = "below_length_ratio"
DROP_NO_CANDIDATE = "no_candidate"
DROP_MARKER_MISSING = "marker_missing"
DROP_MARKER_UNBALANCED = "marker_unbalanced"
DROP_MARKER_EMPTY = "marker_empty"
DROP_MARKER_UNRESOLVED = "marker_unresolved_type"


@dataclass
class ProjectionStats:
    """Counts for one sentence (or, after :meth:`merge`, a whole dataset).

    Attributes:
        source_entities: source entities seen.
        projected: source entities that received at least one target span.
        dropped: source entities not projected, keyed by reason (exactly one reason per entity).
        total_by_type: source entities per type.
        projected_by_type: projected source entities per type.
        counts: method-specific counters (``merged_ranges``, ``conflict_ranges``, ``split_markers_merged``, ...).
    """

    source_entities: int = 0
    projected: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    total_by_type: Counter[str] = field(default_factory=Counter)
    projected_by_type: Counter[str] = field(default_factory=Counter)
    counts: Counter[str] = field(default_factory=Counter)

    def add_projected(self, label: str) -> None:
        """Record one projected source entity of type ``label``."""
        self.source_entities += 1
        self.projected += 1
        self.total_by_type[label] += 1
        self.projected_by_type[label] += 1

    def add_dropped(self, label: str, reason: str) -> None:
        """Record one source entity of type ``label`` that was not projected, and why."""
        self.source_entities += 1
        self.total_by_type[label] += 1
        self.dropped[reason] += 1

    @property
    def projection_rate(self) -> float:
        """Share of source entities projected (0.0 when there were none)."""
        return self.projected / self.source_entities if self.source_entities else 0.0

    def rate_by_type(self) -> dict[str, float]:
        """Projection rate per entity type."""
        return {t: self.projected_by_type[t] / n for t, n in sorted(self.total_by_type.items()) if n}

    def merge(self, other: ProjectionStats) -> ProjectionStats:
        """Return the sum of two stats (aggregate sentences into a dataset)."""
        return ProjectionStats(
            self.source_entities + other.source_entities,
            self.projected + other.projected,
            self.dropped + other.dropped,
            self.total_by_type + other.total_by_type,
            self.projected_by_type + other.projected_by_type,
            self.counts + other.counts,
        )

    __add__ = merge

    def check(self) -> None:
        """Raise ``ValueError`` when an entity is unaccounted for or counted twice."""
        accounted = self.projected + sum(self.dropped.values())
        if accounted != self.source_entities or sum(self.total_by_type.values()) != self.source_entities:
            raise ValueError(
                f"Inconsistent projection stats: {self.source_entities} source entities but "
                f"{self.projected} projected + {sum(self.dropped.values())} dropped {dict(self.dropped)}"
            )

    def to_dict(self) -> dict:
        """A JSON-friendly dict (for meta.json)."""
        return {
            "source_entities": self.source_entities,
            "projected": self.projected,
            "projection_rate": self.projection_rate,
            "dropped": {k: v for k, v in sorted(self.dropped.items()) if v},
            "total_by_type": dict(sorted(self.total_by_type.items())),
            "projected_by_type": dict(sorted(self.projected_by_type.items())),
            "rate_by_type": self.rate_by_type(),
            "counts": {k: v for k, v in sorted(self.counts.items()) if v},
        }


@dataclass
class ProjectionResult:
    """What a projection method returns for one sentence pair.

    Attributes:
        tags: IOB2 tags over the target words.
        spans: projected target spans, sorted by start, never overlapping.
        stats: per-sentence counts.
        objective: the assignment objective (candidate matching only), so callers can compare solvers.
        tokens: the target words when the method produced them (markers); ``None`` when they were given.
        method_counts: method-level counters that are not per-entity (marker extraction, alignment
            refinement); the pipeline sums them into the meta key the method names.
    """

    tags: list[str]
    spans: list[Span]
    stats: ProjectionStats
    objective: float | None = None
    tokens: list[str] | None = None

    method_counts: Counter[str] = field(default_factory=Counter)


def validate_alignment(alignment: Iterable[tuple[int, int]], n_target: int) -> Links:
    """Return the alignment as a set after checking its indices.

    Raises:
        ValueError: a link is not a pair of non-negative ints or points past the target sentence.
    """
    links: Links = set()
    for link in alignment:
        if len(link) != 2:
            raise ValueError(f"Alignment link {link!r} is not a (source, target) pair")
        i, j = int(link[0]), int(link[1])
        if i < 0 or j < 0 or j >= n_target:
            raise ValueError(
                f"Alignment link ({i}, {j}) is out of range for a target sentence of {n_target} words; "
                "links are 0-based (source word, target word) pairs."
            )
        links.add((i, j))
    return links


def validate_spans(spans: Sequence[Span], n_words: int, side: str) -> None:
    """Raise ``ValueError`` when a span of the ``side`` sentence reaches past its ``n_words`` words."""
    for span in spans:
        if span.end > n_words:
            raise ValueError(f"{side} span {span} reaches past the sentence end ({n_words} words)")
