"""Label projection onto target words: shared result types, the alignment heuristic and alignment refinement.

Conventions used by every projection method in :mod:`xner.pipeline`:

- an *alignment* is a ``set[tuple[int, int]]`` of ``(source word, target word)`` links, 0-based;
- source entities are :class:`~xner.types.Span` objects with an **exclusive** end (METHODS.md writes inclusive
  ranges ``(i, j)``; here that range is ``Span(i, j + 1, label)``);
- a method returns a :class:`ProjectionResult`: IOB2 tags over the target words, the projected spans
  (never overlapping) and a :class:`ProjectionStats` in which every source entity is either projected or
  counted under exactly one drop reason.

The matching method lives in :mod:`xner.pipeline.matching`, the marker method in :mod:`xner.pipeline.markers`.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

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
    """

    tags: list[str]
    spans: list[Span]
    stats: ProjectionStats
    objective: float | None = None
    tokens: list[str] | None = None


def spans_to_iob2(spans: Iterable[Span], n_target: int) -> list[str]:
    """IOB2 tags for non-overlapping spans (a thin wrapper that keeps methods free of tag strings)."""
    tags = ["O"] * n_target
    for span in spans:
        tags[span.start] = f"B-{span.label}"
        for i in range(span.start + 1, span.end):
            tags[i] = f"I-{span.label}"
    return tags


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


def _validate_spans(spans: Sequence[Span], n_words: int, side: str) -> None:
    for span in spans:
        if span.end > n_words:
            raise ValueError(f"{side} span {span} reaches past the sentence end ({n_words} words)")


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
    return ProjectionResult(spans_to_iob2(spans, n_target), spans, stats)


# --------------------------------------------------------------------------------------------------------
# Text helpers shared by refinement and markers


def _is_punct(ch: str) -> bool:
    return unicodedata.category(ch).startswith("P")


# An elided article/preposition glued to the next word: d'Alemanya, l'ONU, qu'il, dell'Italia. Elision happens
# before a vowel, h or a capitalised name, which keeps English contractions (don't, we're) whole.
_ELISION = re.compile(r"^([^\W\d_]{1,4})['’](?=[aeiouyhàáâäèéêëìíîïòóôöùúûü]|[^\W\d_])", re.IGNORECASE)


def _elision_length(word: str) -> int:
    m = _ELISION.match(word)
    if m is None or not m.group(1).islower():
        return 0
    nxt = word[m.end()]
    if nxt.lower() in "aeiouyhàáâäèéêëìíîïòóôöùúûü" or nxt.isupper():
        return m.end()
    return 0


def simple_tokenize(text: str) -> list[str]:
    """Split text into words: whitespace, then punctuation peeled off word edges.

    Rules (kept simple and predictable, so marker and string matching stay explainable):

    - split on whitespace;
    - a chunk made only of punctuation stays one token (``...``, ``--``, ``»``);
    - otherwise leading and trailing punctuation characters are split off one by one, runs of the same
      character staying together (``dijo...`` → ``dijo ...``); a final ``.`` stays when the word has another
      ``.`` inside (``U.S.``, ``S.A.``);
    - a lowercase elided article/preposition (up to 4 letters plus apostrophe, before a vowel, ``h`` or a
      capital) is split off: ``d'Alemanya`` → ``d' Alemanya``, ``l'ONU`` → ``l' ONU``, ``dell'Italia``;
      capitalised ones are kept (``O'Neill``, ``D'Angelo``, so a sentence-initial ``L'Espagne`` stays
      whole) and so are English contractions (``don't``, ``we're``).
    """
    tokens: list[str] = []
    for chunk in text.split():
        if all(_is_punct(c) for c in chunk):
            tokens.append(chunk)
            continue
        lead: list[str] = []
        while chunk and _is_punct(chunk[0]):
            k = 1
            while k < len(chunk) and chunk[k] == chunk[0]:
                k += 1
            lead.append(chunk[:k])
            chunk = chunk[k:]
        trail: list[str] = []
        while chunk and _is_punct(chunk[-1]):
            k = len(chunk) - 1
            while k > 0 and chunk[k - 1] == chunk[-1]:
                k -= 1
            if chunk[k:] == "." and k > 0 and chunk[k - 1].isalpha() and "." in chunk[:k]:
                break  # abbreviation: U.S., S.A.
            trail.append(chunk[k:])
            chunk = chunk[:k]
        tokens.extend(lead)
        if chunk:
            cut = _elision_length(chunk)
            if cut:
                tokens.append(chunk[:cut])
                chunk = chunk[cut:]
            tokens.append(chunk)
        tokens.extend(reversed(trail))
    return tokens


def normalize_text(text: str) -> str:
    """Casefold and collapse whitespace (NFKC first), the comparison form for entity strings."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def char_similarity(a: str, b: str) -> float:
    """Character-level similarity in [0, 1]: difflib's ratio ``2·matches / (len a + len b)``.

    Compared after :func:`normalize_text`; two empty strings score 0 (an empty string matches nothing).
    """
    a, b = normalize_text(a), normalize_text(b)
    if not a or not b:
        return 0.0
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def find_string_span(
    target_tokens: Sequence[str],
    text: str,
    fuzzy_threshold: float = 0.8,
) -> list[tuple[int, int, float]]:
    """Where ``text`` occurs in the target words: exact token matches, else fuzzy n-gram matches.

    Exact: the casefolded tokens of ``text`` (:func:`simple_tokenize`) equal a run of target words. Fuzzy
    (only when there is no exact match): every target n-gram with ``n`` in ``len ± 1`` whose
    :func:`char_similarity` to ``text`` is at least ``fuzzy_threshold``.

    Returns:
        ``(start, end, similarity)`` triples (exclusive ends), best similarity first, then leftmost;
        similarity 1.0 marks exact matches. Empty when nothing matches or ``text`` has no words.
    """
    words = [normalize_text(w) for w in simple_tokenize(text)]
    if not words:
        return []
    norm = [normalize_text(t) for t in target_tokens]
    n, m = len(words), len(norm)
    exact = [(s, s + n, 1.0) for s in range(m - n + 1) if norm[s : s + n] == words]
    if exact:
        return exact
    joined = " ".join(words)
    found: list[tuple[int, int, float]] = []
    for length in (n - 1, n, n + 1):
        if length < 1:
            continue
        for s in range(m - length + 1):
            sim = char_similarity(" ".join(norm[s : s + length]), joined)
            if sim >= fuzzy_threshold:
                found.append((s, s + length, sim))
    found.sort(key=lambda f: (-f[2], f[0], f[1]))
    return found


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
    _validate_spans(source_spans, len(source_tokens), "Source")
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


def symmetrize(
    forward: Iterable[tuple[int, int]],
    backward: Iterable[tuple[int, int]],
    mode: Literal["intersection", "union", "grow-diag"] = "intersection",
) -> Links:
    """Combine two directional alignments, both given as ``(source word, target word)`` links.

    ``backward`` comes from aligning in the other direction (e.g. the back-translation of the target against
    the source); flip its pairs to ``(source, target)`` before calling.

    Modes: ``intersection``; ``union``; ``grow-diag`` (Koehn et al. 2003, as in Moses without the ``final``
    step): start from the intersection and repeatedly add a union link that neighbours (8-neighbourhood,
    diagonals included) a current link when its source or its target word is still unaligned, until nothing
    changes. Points are visited in (source, target) order and additions take effect at once, like Moses.
    """
    fwd, bwd = set(forward), set(backward)
    if mode == "intersection":
        return fwd & bwd
    if mode == "union":
        return fwd | bwd
    if mode != "grow-diag":
        raise ValueError(f"mode must be 'intersection', 'union' or 'grow-diag', got {mode!r}")
    union = fwd | bwd
    current = fwd & bwd
    if not union:
        return current
    src_aligned = Counter(i for i, _ in current)
    tgt_aligned = Counter(j for _, j in current)
    n_src = max(i for i, _ in union) + 1
    n_tgt = max(j for _, j in union) + 1
    neighbours = [(-1, 0), (0, -1), (1, 0), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1)]
    changed = True
    while changed:
        changed = False
        for i in range(n_src):
            for j in range(n_tgt):
                if (i, j) not in current:
                    continue
                for di, dj in neighbours:
                    p = (i + di, j + dj)
                    if p in union and p not in current and (not src_aligned[p[0]] or not tgt_aligned[p[1]]):
                        current.add(p)
                        src_aligned[p[0]] += 1
                        tgt_aligned[p[1]] += 1
                        changed = True
    return current
