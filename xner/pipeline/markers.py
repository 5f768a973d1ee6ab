"""Marker-based projection (EasyProject, Chen et al. 2023): mark entities, translate, read the marks back.

Two marker styles:

- ``"bracket"``: ``[ Nelson Mandela ]`` — no ids, so types come back by order (when counts match) or by
  matching separately translated entity strings;
- ``"html"``: ``<b id="k">Nelson Mandela</b>`` with ``k`` the entity's index in the source span list —
  for Apertium's ``-f html`` mode, which carries the markup through translation and reordering. Token text is
  HTML-escaped on the way in and unescaped on the way out.

Known Apertium behaviours handled and counted here (DESIGN.md): a marked span coming back split in two with
the same id (``<b id="3">Werner</b> de la … <b id="3">Zwingmann</b>``), an elided preposition pulled into the
marker (``<b id="1">d'Alemanya</b>``), punctuation glued to markers, unbalanced or missing markers. Nothing is
guessed: a span whose type cannot be recovered is counted and left ``O``.
"""

from __future__ import annotations

import html
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy.optimize import linear_sum_assignment

from xner.labels import spans_to_tags
from xner.pipeline.project import (
    DROP_MARKER_EMPTY,
    DROP_MARKER_MISSING,
    DROP_MARKER_UNBALANCED,
    DROP_MARKER_UNRESOLVED,
    ProjectionResult,
    ProjectionStats,
    char_similarity,
    is_punct,
    normalize_text,
    simple_tokenize,
)
from xner.types import Span

MarkerStyle = Literal["bracket", "html"]

_TAG = re.compile(r"<[^<>]*>")
_B_OPEN = re.compile(r"^<\s*b\b(?P<attrs>[^>]*)>$", re.IGNORECASE)
_B_CLOSE = re.compile(r"^<\s*/\s*b\s*>$", re.IGNORECASE)
_ID = re.compile(r"""\bid\s*=\s*["']?\s*(?P<id>[^"'\s>]+)""", re.IGNORECASE)
_BRACKET = re.compile(r"(\\?\[|\\?\])")


def marker_conflict(tokens: Sequence[str], style: MarkerStyle) -> bool:
    """Whether the words themselves contain marker characters (``[``/``]`` in bracket style).

    HTML style never conflicts: words are escaped. A pipeline can test this first and fall back to html or
    count the sentence as skipped, instead of catching the error of :func:`insert_markers`.
    """
    return style == "bracket" and any("[" in t or "]" in t for t in tokens)


def insert_markers(tokens: Sequence[str], spans: Sequence[Span], style: MarkerStyle = "bracket") -> str:
    """Wrap each entity in markers and join the words with spaces.

    Args:
        tokens: source words.
        spans: source entities; entity ``k`` (its index in this list) gets ``<b id="k">`` in html style.
        style: ``"bracket"`` (``[ Nelson Mandela ]``) or ``"html"`` (``<b id="0">Nelson Mandela</b>``).

    Raises:
        ValueError: overlapping or out-of-range spans, an unknown style, or bracket characters inside the
            words in bracket style (use ``style="html"``; see :func:`marker_conflict`).
    """
    if style not in ("bracket", "html"):
        raise ValueError(f"style must be 'bracket' or 'html', got {style!r}")
    if marker_conflict(tokens, style):
        raise ValueError(
            "the sentence contains '[' or ']', which bracket markers cannot tell apart; use html"
        )
    opens: dict[int, int] = {}
    closes: dict[int, int] = {}
    for k, span in sorted(enumerate(spans), key=lambda ks: ks[1].start):
        if span.end > len(tokens):
            raise ValueError(f"{span} reaches past the sentence end ({len(tokens)} words)")
        if closes and span.start <= max(closes):
            raise ValueError(f"{span} overlaps another span; markers need non-overlapping entities")
        opens[span.start], closes[span.end - 1] = k, k
    out: list[str] = []
    for i, token in enumerate(tokens):
        if style == "bracket":
            if i in opens:
                out.append("[")
            out.append(token)
            if i in closes:
                out.append("]")
        else:
            word = html.escape(token, quote=False)
            if i in opens:
                word = f'<b id="{opens[i]}">{word}'
            if i in closes:
                word = f"{word}</b>"
            out.append(word)
    return " ".join(out)


@dataclass
class MarkerExtraction:
    """Marked spans read out of a translation.

    Attributes:
        tokens: the clean target words (markers removed), :func:`~xner.pipeline.project.simple_tokenize`-d.
        found: ``(key, start, end)`` per marked span, exclusive end, sorted by start; ``key`` is the entity id
            in html style and the order of appearance (0, 1, ...) in bracket style.
        style: the marker style.
        n_entities: number of source entities that were marked.
        stats: counts (``split_markers_merged``, ``split_markers_dropped``, ``unclosed_marker``,
            ``unmatched_close_marker``, ``marker_bad_id``, ``empty_marker``, ``marker_edges_trimmed``,
            ``marker_starts_lowercase``, ``other_tags_removed``, ``escaped_brackets``).
        lost: html only: entity id → drop reason for ids whose marker was seen but yielded no span.
    """

    tokens: list[str]
    found: list[tuple[int, int, int]]
    style: str
    n_entities: int
    stats: Counter[str] = field(default_factory=Counter)
    lost: dict[int, str] = field(default_factory=dict)


def _events(translated: str, style: MarkerStyle, stats: Counter[str]) -> list[tuple[str, object]]:
    """The translation as a stream of ``("text", str)``, ``("open", id | None)`` and ``("close", None)``."""
    events: list[tuple[str, object]] = []
    if style == "bracket":
        for piece in _BRACKET.split(translated):
            if piece in ("[", "\\["):
                stats["escaped_brackets"] += piece.startswith("\\")
                events.append(("open", None))
            elif piece in ("]", "\\]"):
                stats["escaped_brackets"] += piece.startswith("\\")
                events.append(("close", None))
            elif piece:
                events.append(("text", piece))
        return events
    pos = 0
    for m in _TAG.finditer(translated):
        if m.start() > pos:
            events.append(("text", html.unescape(translated[pos : m.start()])))
        tag = m.group(0)
        if (opened := _B_OPEN.match(tag)) is not None:
            id_match = _ID.search(opened.group("attrs"))
            key = id_match.group("id") if id_match else None
            events.append(("open", int(key) if key is not None and key.isdigit() else -1))
        elif _B_CLOSE.match(tag):
            events.append(("close", None))
        else:
            stats["other_tags_removed"] += 1
        pos = m.end()
    if pos < len(translated):
        events.append(("text", html.unescape(translated[pos:])))
    return events


_ELIDED = re.compile(r"^[^\W\d_]{1,4}['’]$")


def _is_elided_article(token: str) -> bool:
    """``d'``, ``l'``, ``dell'``: what :func:`simple_tokenize` splits off an elided word."""
    return _ELIDED.match(token) is not None and token[:-1].islower()


def _trim(tokens: list[str], start: int, end: int, stats: Counter[str]) -> tuple[int, int]:
    """Shrink a marked span past edge punctuation and a leading elided article (``d'``, ``l'``)."""
    s, e = start, end
    while s < e and (all(is_punct(c) for c in tokens[s]) or _is_elided_article(tokens[s])):
        s += 1
    while e > s and all(is_punct(c) for c in tokens[e - 1]):
        e -= 1
    if (s, e) != (start, end):
        stats["marker_edges_trimmed"] += 1
    if s < e and tokens[s][:1].islower():
        stats["marker_starts_lowercase"] += 1  # e.g. a preposition pulled inside; kept, but visible
    return s, e


def extract_marked_spans(
    translated: str, style: MarkerStyle, n_entities: int, *, max_merge_gap: int = 2
) -> MarkerExtraction:
    """Read marked spans out of a translated, marked sentence.

    Text between markers is tokenised with :func:`~xner.pipeline.project.simple_tokenize`; a marker always
    ends a word, so ``l'<b id="1">Alemanya</b>`` gives ``l'`` and ``Alemanya``. Handling:

    - brackets glued to words or detached (``[Mandela]``, ``[ Mandela ]``) and backslash-escaped brackets
      (``\\[``, left by Apertium's escaping) are markers; other bracket look-alikes are text;
    - an opening marker while one is open: the first is unbalanced — counted ``unclosed_marker``, no span;
      a closing marker with none open: ``unmatched_close_marker``; an open marker at the end: ``unclosed_marker``;
    - punctuation at a span's edges and a leading elided article (``d'Alemanya`` → ``Alemanya``) are trimmed
      off the span (``marker_edges_trimmed``); a span that becomes empty is ``empty_marker``;
    - html ids that are not integers below ``n_entities``: ``marker_bad_id``, no span;
    - html spans with the same id (Apertium split one entity): neighbouring parts with at most
      ``max_merge_gap`` words between them and no other marked span in between are merged into one span
      covering the gap (``split_markers_merged``, once per merge); if parts remain apart, the longest group
      is kept (the first on ties) and the others dropped (``split_markers_dropped``, per dropped group).

    Args:
        translated: the translation of :func:`insert_markers`' output.
        style: ``"bracket"`` or ``"html"``.
        n_entities: number of entities marked in the source.
        max_merge_gap: largest gap (in words) bridged between two parts of one split html span.

    Returns:
        The clean target words, the marked spans and counts.
    """
    if style not in ("bracket", "html"):
        raise ValueError(f"style must be 'bracket' or 'html', got {style!r}")
    stats: Counter[str] = Counter()
    tokens: list[str] = []
    parts: list[tuple[int, int, int]] = []  # (key, start, end)
    unbalanced: set[int] = set()
    open_key: int | None = None
    open_start = 0
    order = 0
    for kind, value in _events(translated, style, stats):
        if kind == "text":
            tokens.extend(simple_tokenize(str(value)))
        elif kind == "open":
            if open_key is not None:
                stats["unclosed_marker"] += 1
                unbalanced.add(open_key)
            if style == "bracket":
                open_key, order = order, order + 1
            else:
                open_key = int(value)  # type: ignore[arg-type]
            open_start = len(tokens)
        else:
            if open_key is None:
                stats["unmatched_close_marker"] += 1
                continue
            key, open_key = open_key, None
            if style == "html" and not 0 <= key < n_entities:
                stats["marker_bad_id"] += 1
                continue
            start, end = _trim(tokens, open_start, len(tokens), stats)
            if start >= end:
                stats["empty_marker"] += 1
                if style == "html":
                    parts.append((key, -1, -1))  # remembered as seen-but-empty, dropped below
                continue
            parts.append((key, start, end))
    if open_key is not None:
        stats["unclosed_marker"] += 1
        unbalanced.add(open_key)

    lost: dict[int, str] = {}
    if style == "bracket":
        # Keys are renumbered over the kept spans so that "by order" lines up with the source order.
        found = [(i, s, e) for i, (_, s, e) in enumerate(parts)]
        if len(found) != n_entities:
            stats["count_mismatch"] += 1
        return MarkerExtraction(tokens, found, style, n_entities, stats, lost)

    by_id: dict[int, list[tuple[int, int]]] = {}
    for key, s, e in parts:
        by_id.setdefault(key, []).append((s, e))
    all_spans = sorted((s, e) for k, s, e in parts if s >= 0)
    found = []
    for key in sorted(by_id):
        pieces = sorted(p for p in by_id[key] if p[0] >= 0)
        if not pieces:
            lost[key] = DROP_MARKER_EMPTY
            continue
        groups = [list(pieces[0])]
        for s, e in pieces[1:]:
            between = [p for p in all_spans if groups[-1][1] <= p[0] and p[1] <= s]
            if s - groups[-1][1] <= max_merge_gap and not between:
                groups[-1][1] = e
                stats["split_markers_merged"] += 1
            else:
                groups.append([s, e])
        best = max(groups, key=lambda g: (g[1] - g[0], -g[0]))
        if len(groups) > 1:
            stats["split_markers_dropped"] += len(groups) - 1
        found.append((key, best[0], best[1]))
    for key in unbalanced:
        if key >= 0 and key < n_entities and key not in by_id:
            lost[key] = DROP_MARKER_UNBALANCED
    found.sort(key=lambda f: f[1])
    # Merging can only bridge gaps with no other marked span, so kept spans never overlap; check anyway.
    for (_, _, e1), (_, s2, _) in zip(found, found[1:], strict=False):
        if s2 < e1:
            raise AssertionError(f"overlapping marked spans {found}")  # internal invariant, not user input
    return MarkerExtraction(tokens, found, style, n_entities, stats, lost)


def _span_similarity(span_text: str, translation: str) -> float:
    """1.0 when the casefolded words are equal (translation tokenised like the target), else difflib's ratio."""
    norm = normalize_text(span_text)
    norm_tr = " ".join(normalize_text(w) for w in simple_tokenize(translation))
    return 1.0 if norm and norm == norm_tr else char_similarity(norm, norm_tr)


def _match_by_translation(
    span_texts: Sequence[str],
    translations: Sequence[str],
    threshold: float,
) -> dict[int, tuple[int, float]]:
    """One-to-one span → entity matches whose similarity reaches ``threshold`` (max total similarity).

    Similarity: 1.0 when the casefolded token sequences are equal, else difflib character ratio. Equal
    similarities are broken toward keeping the relative order of spans and entities.
    """
    if not span_texts or not translations:
        return {}
    sim = np.array([[_span_similarity(text, tr) for tr in translations] for text in span_texts])
    valid = sim >= threshold
    rel = np.abs(
        np.arange(len(span_texts))[:, None] / len(span_texts)
        - np.arange(len(translations))[None, :] / len(translations)
    )
    gain = np.where(valid, sim - 1e-6 * rel, -1.0)
    rows, cols = linear_sum_assignment(gain, maximize=True)
    return {int(p): (int(k), float(sim[p, k])) for p, k in zip(rows, cols, strict=True) if valid[p, k]}


def project_markers(
    source_spans: Sequence[Span],
    extraction: MarkerExtraction,
    entity_translations: Sequence[str] | None = None,
    *,
    fuzzy_threshold: float = 0.8,
) -> ProjectionResult:
    """Give each marked span its source entity's type.

    - html style: by id (the id is the entity's index in ``source_spans``).
    - bracket style, as many spans as entities: by order. When ``entity_translations`` are given, the order
      is checked against them: if a span confidently matches (≥ ``fuzzy_threshold``) some entity's
      translation but not the translation of the entity at its position, and the types differ, the order is
      not trusted (translation reordered the entities; counted ``order_contradicted``) and types are resolved
      by matching as below.
    - otherwise: by matching each span's text to the separately translated entity strings (exact token
      match, then difflib character similarity ≥ ``fuzzy_threshold``; one span per entity). Spans left
      unmatched are counted ``unresolved_spans`` and stay ``O`` — never guessed.

    Every source entity is projected or dropped once: html ``marker_missing`` (id not in the output),
    ``marker_unbalanced`` (its marker never closed), ``marker_empty``; bracket ``marker_unresolved_type``
    (as many unmatched entities as there were unresolved spans) and ``marker_missing`` for the rest.

    Args:
        source_spans: the source entities, in the order used by :func:`insert_markers`.
        extraction: the output of :func:`extract_marked_spans`.
        entity_translations: one translated string per source entity (needed to resolve bracket spans when
            counts differ; optional otherwise).
        fuzzy_threshold: minimum similarity of a fuzzy string match.

    Returns:
        The projection over ``extraction.tokens`` (also returned as ``tokens``).
    """
    if extraction.n_entities != len(source_spans):
        raise ValueError(
            f"the extraction was made for {extraction.n_entities} entities but {len(source_spans)} were given"
        )
    if entity_translations is not None and len(entity_translations) != len(source_spans):
        raise ValueError(
            f"Got {len(entity_translations)} entity translations for {len(source_spans)} source entities"
        )
    stats = ProjectionStats()
    stats.counts.update(extraction.stats)
    tokens = extraction.tokens
    assigned: dict[int, tuple[int, int]] = {}  # entity → (start, end)
    unresolved = 0
    if extraction.style == "html":
        for key, s, e in extraction.found:
            assigned[key] = (s, e)
    else:
        found = extraction.found
        texts = [" ".join(tokens[s:e]) for _, s, e in found]
        use_order = len(found) == len(source_spans)
        matches: dict[int, tuple[int, float]] | None = None
        if entity_translations is not None:
            matches = _match_by_translation(texts, entity_translations, fuzzy_threshold)
            if use_order:
                for p, (k, _) in matches.items():
                    own = _span_similarity(texts[p], entity_translations[p])  # the order hypothesis
                    if k != p and own < fuzzy_threshold and source_spans[k].label != source_spans[p].label:
                        use_order = False
                        stats.counts["order_contradicted"] += 1
                        break
        if use_order:
            stats.counts["types_by_order"] += len(found)
            for p, (_, s, e) in enumerate(found):
                assigned[p] = (s, e)
        elif matches is not None:
            stats.counts["types_by_translation"] += len(matches)
            for p, (k, _) in matches.items():
                assigned[k] = found[p][1:]
            unresolved = len(found) - len(matches)
        else:
            unresolved = len(found)
        stats.counts["unresolved_spans"] += unresolved

    spans: list[Span] = []
    for k, ent in enumerate(source_spans):
        if k in assigned:
            s, e = assigned[k]
            spans.append(Span(s, e, ent.label))
            stats.add_projected(ent.label)
        elif extraction.style == "html":
            stats.add_dropped(ent.label, extraction.lost.get(k, DROP_MARKER_MISSING))
        elif unresolved > 0:
            unresolved -= 1
            stats.add_dropped(ent.label, DROP_MARKER_UNRESOLVED)
        else:
            stats.add_dropped(ent.label, DROP_MARKER_MISSING)
    spans.sort(key=lambda s: s.start)
    return ProjectionResult(spans_to_tags(spans, len(tokens)), spans, stats, tokens=list(tokens))
