"""Projection error analysis for translate-test: one cause per gold and per predicted entity.

Pure functions over plain per-sentence records (:class:`SentenceRecord`); nothing here runs MT or a model.
Directions follow the pipeline: the translation (English) is the projection's *source* side, the original
target words its *target* side, and links are ``(english word, target word)`` pairs, 0-based.

Gold entities (target side) get the first cause that applies, in this order:

1. ``correct``: a projected entity equals it (span and type).
2. ``span_convention``: a projected entity of its type overlaps it (boundary only: articles, titles, ...).
3. ``dropped_by_projection``: an English entity of its type lies on its counterpart in the translation (the
   English words aligned to it, or a verbatim / fuzzy copy of its words) and the projection dropped it
   (``detail``: the drop reason, from :attr:`SentenceRecord.drops` where recorded, else inferred).
4. ``alignment_wrong``: such an English entity exists and was projected, but onto other target words.
5. ``mt_changed_name``: no English entity of its type on the counterpart, and its words do not occur
   verbatim in the translation (translated or respelled: Lobo -> Wolf, Zaragoza -> Saragossa).
6. ``source_ner_missed_or_mistyped``: otherwise: the name reached the translation unchanged and the English
   model missed it or gave it another type (``detail`` says which, and whether Apertium passed it through
   as an unknown word).

Predicted entities (the projection's output) get, in order: ``correct``; ``span_convention`` (overlaps a
gold entity of its type); ``wrong_type`` (overlaps gold entities of other types only); ``alignment_wrong``
(overlaps no gold entity, but its English entity is the counterpart of a gold entity: projected onto the
wrong words); ``spurious_entity`` (the English entity has no gold counterpart, or none is aligned to it).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from xner.labels import tags_to_spans
from xner.metrics import strict_spans
from xner.pipeline.project.heuristic import project_heuristic
from xner.pipeline.project.results import DROP_UNALIGNED
from xner.pipeline.project.text import find_string_span, is_punct, simple_tokenize
from xner.types import Span

GOLD_CAUSES = (
    "correct",
    "span_convention",
    "dropped_by_projection",
    "alignment_wrong",
    "mt_changed_name",
    "source_ner_missed_or_mistyped",
)
PREDICTED_CAUSES = ("correct", "span_convention", "wrong_type", "alignment_wrong", "spurious_entity")
TRANSFER_CAUSES = ("correct", "span_convention", "wrong_type", "missed")
NOT_PROJECTED = "not_projected"  # inferred drop of an aligned entity whose exact reason was not recorded


@dataclass(frozen=True)
class SentenceRecord:
    """One translate-test sentence: what the pipeline produced for it, as plain lists.

    Attributes:
        target: the original target words.
        gold: gold IOB2 tags over ``target``.
        projected: the projection's IOB2 tags over ``target``.
        translation: the English words (the pipeline's ``simple_tokenize`` of the MT output).
        english: the English model's tags over ``translation``.
        links: ``(english word, target word)`` alignment links (the ones the method used, e.g. the refined
            links of heuristic_bt, where available).
        transfer: model transfer's tags over ``target`` (only :func:`compare_with_transfer` reads them).
        unknown: per translation word, whether Apertium marked it unknown (passed it through untranslated);
            see :func:`unknown_word_flags`.
        drops: drop reason per English entity (spans over ``translation``, as the pipeline reads them with
            ``tags_to_spans``), e.g. from :func:`heuristic_drop_reasons`. ``None``: an English entity counts
            as projected when a projected entity of its type lies on its aligned target words.
        id: the sentence id, shown in examples.
    """

    target: Sequence[str]
    gold: Sequence[str]
    projected: Sequence[str]
    translation: Sequence[str]
    english: Sequence[str]
    links: Collection[tuple[int, int]]
    transfer: Sequence[str] | None = None
    unknown: Sequence[bool] | None = None
    drops: Mapping[Span, str] | None = None
    id: str = ""

    def __post_init__(self) -> None:
        n, m = len(self.target), len(self.translation)
        for name in ("gold", "projected", "transfer", "english", "unknown"):
            items, side = getattr(self, name), "English" if name in ("english", "unknown") else "target"
            size = m if side == "English" else n
            if items is not None and len(items) != size:
                raise ValueError(f"{self.id!r}: {name} has {len(items)} items for {size} {side} words")
        bad = [(e, t) for e, t in self.links if not (0 <= e < m and 0 <= t < n)]
        if bad:
            raise ValueError(f"sentence {self.id!r}: links {bad[:3]} outside ({m} English, {n} target) words")


@dataclass(frozen=True)
class EntityCause:
    """The cause assigned to one entity.

    Attributes:
        side: ``"gold"`` or ``"predicted"``; ``sentence`` / ``id``: the record's index and id.
        span: the entity over the target words; ``text``: those words.
        cause: one of :data:`GOLD_CAUSES` or :data:`PREDICTED_CAUSES`.
        english: the English words on its counterpart (aligned or copied), ``""`` when none.
        detail: what decided the cause (drop reason, the other type, where the projection went, ...).
    """

    side: str
    sentence: int
    id: str
    span: Span
    cause: str
    text: str
    english: str = ""
    detail: str = ""


def _words(words: Sequence[str], positions: Collection[int]) -> str:
    return " ".join(words[i] for i in sorted(positions))


def _cover(span: Span) -> range:
    return range(span.start, span.end)


class _Sentence:
    """One record's spans and link lookups, computed once for all its entities."""

    def __init__(self, record: SentenceRecord, fuzzy: float):
        self.r, self.fuzzy = record, fuzzy
        # strict_spans gives sets (Span has no order): sort so that causes come in sentence order.
        self.gold = sorted(strict_spans(record.gold), key=lambda s: s.start)
        self.pred = sorted(strict_spans(record.projected), key=lambda s: s.start)
        self.english = tags_to_spans(record.english)  # as the pipeline reads the English (lenient)
        self.to_english: dict[int, set[int]] = {}
        self.to_target: dict[int, set[int]] = {}
        for e, t in record.links:
            self.to_english.setdefault(t, set()).add(e)
            self.to_target.setdefault(e, set()).add(t)
        # Counterpart region, MT status per gold entity (every type: predicted entities need them all).
        self.counterpart = {g: self._counterpart(g) for g in self.gold}

    def aligned_english(self, span: Span) -> set[int]:
        return set().union(*(self.to_english.get(t, ()) for t in _cover(span)))

    def aligned_target(self, span: Span) -> set[int]:
        return set().union(*(self.to_target.get(e, ()) for e in _cover(span)))

    def _counterpart(self, g: Span) -> tuple[set[int], list[Span], str]:
        """English words standing for ``g``, the English entities on them, and how MT treated its name."""
        region = self.aligned_english(g)
        matches = find_string_span(self.r.translation, _words(self.r.target, _cover(g)), self.fuzzy)
        for start, end, _ in matches:
            region.update(range(start, end))
        verbatim = [(s, e) for s, e, sim in matches if sim == 1.0]
        if not verbatim:
            mt = "changed"
        elif self.r.unknown is not None and any(all(self.r.unknown[s:e]) for s, e in verbatim):
            mt = "passed through (unknown to MT)"  # copied because unknown, not translated to itself
        else:
            mt = "kept"
        return region, [e for e in self.english if region.intersection(_cover(e))], mt

    def drop_reason(self, ent: Span) -> str | None:
        """Why the projection dropped English entity ``ent``; ``None`` when it was projected."""
        if self.r.drops is not None:
            return self.r.drops.get(ent)
        targets = self.aligned_target(ent)
        if any(p.label == ent.label and targets.intersection(_cover(p)) for p in self.pred):
            return None
        return DROP_UNALIGNED if not targets else NOT_PROJECTED


def _gold_cause(s: _Sentence, g: Span) -> tuple[str, str]:
    _, entities, mt = s.counterpart[g]
    if g in s.pred:
        return "correct", ""
    near = [p for p in s.pred if p.label == g.label and p.overlaps(g)]
    if near:
        return "span_convention", "projected: " + " / ".join(_words(s.r.target, _cover(p)) for p in near)
    same = [e for e in entities if e.label == g.label]
    reasons = [r for r in map(s.drop_reason, same) if r is not None]
    if reasons:
        return "dropped_by_projection", reasons[0]
    if same:
        went = set().union(*(s.aligned_target(e) for e in same))
        return "alignment_wrong", "projected onto: " + (_words(s.r.target, went) or "other words")
    if mt == "changed":
        return "mt_changed_name", "name not verbatim in the translation"
    found = sorted({e.label for e in entities})
    what = f"typed {'/'.join(found)}" if found else "missed"
    return "source_ner_missed_or_mistyped", f"{what}; name {mt}"


def _predicted_cause(s: _Sentence, p: Span) -> tuple[str, str]:
    if p in s.gold:
        return "correct", ""
    overlapping = [g for g in s.gold if g.overlaps(p)]
    if any(g.label == p.label for g in overlapping):
        return "span_convention", "gold: " + " / ".join(_words(s.r.target, _cover(g)) for g in overlapping)
    if overlapping:
        return "wrong_type", "gold type " + "/".join(sorted({g.label for g in overlapping}))
    aligned = s.aligned_english(p)
    sources = [e for e in s.english if e.label == p.label and aligned.intersection(_cover(e))]
    for g, (_, entities, _) in s.counterpart.items():
        if any(e in entities for e in sources):
            return "alignment_wrong", "belongs to gold: " + _words(s.r.target, _cover(g))
    detail = "English entity, no gold counterpart" if sources else "no aligned English entity"
    return "spurious_entity", detail


def analyze(
    records: Sequence[SentenceRecord], types: Collection[str] | None = None, fuzzy: float = 0.8
) -> list[EntityCause]:
    """One cause for every gold and every predicted entity (decision orders in the module docstring).

    Args:
        records: the sentences.
        types: the entity types to analyse (as scored, e.g. PER/ORG/LOC); ``None``: every type.
        fuzzy: ``find_string_span``'s threshold for finding a gold name's respelled copy in the translation.

    Returns:
        Gold entities first, then predicted ones, per sentence in order.
    """
    out: list[EntityCause] = []
    for k, record in enumerate(records):
        s = _Sentence(record, fuzzy)
        for side, spans, decide in (("gold", s.gold, _gold_cause), ("predicted", s.pred, _predicted_cause)):
            for span in spans:
                if types is not None and span.label not in types:
                    continue
                cause, detail = decide(s, span)
                region = s.counterpart[span][0] if side == "gold" else s.aligned_english(span)
                text = _words(record.target, _cover(span))
                english = _words(record.translation, region)
                out.append(EntityCause(side, k, record.id, span, cause, text, english, detail))
    return out


def _shares(counts: Counter[str], order: Sequence[str]) -> dict:
    total = sum(counts.values())
    return {
        "total": total,
        "counts": {c: counts[c] for c in order},
        "shares": {c: counts[c] / total if total else 0.0 for c in order},
    }


def format_example(c: EntityCause) -> str:
    """One line: ``id: "target words" TYPE -> "English words" (detail)``."""
    where = c.id or f"#{c.sentence}"
    return f'{where}: "{c.text}" {c.span.label} -> "{c.english}"' + (f" ({c.detail})" if c.detail else "")


def summarize(causes: Sequence[EntityCause], examples: int = 3) -> dict:
    """Counts, shares and the first ``examples`` examples per cause, for gold and for predicted entities."""
    out = {}
    for side, order in (("gold", GOLD_CAUSES), ("predicted", PREDICTED_CAUSES)):
        mine = [c for c in causes if c.side == side]
        out[side] = _shares(Counter(c.cause for c in mine), order)
        out[side]["examples"] = {
            cause: [format_example(c) for c in mine if c.cause == cause][:examples] for cause in order
        }
    return out


def _transfer_cause(g: Span, transfer: Collection[Span]) -> str:
    if g in transfer:
        return "correct"
    overlapping = [t for t in transfer if t.overlaps(g)]
    if any(t.label == g.label for t in overlapping):
        return "span_convention"
    return "wrong_type" if overlapping else "missed"


def compare_with_transfer(records: Sequence[SentenceRecord], causes: Sequence[EntityCause]) -> dict:
    """Where model transfer and projection disagree on gold entities, and why.

    Args:
        records: the analysed sentences; those without ``transfer`` tags are skipped.
        causes: :func:`analyze`'s output for ``records`` (its gold entities are the ones compared).

    Returns:
        ``transfer_only`` (transfer right, projection wrong: shares of the projection's causes),
        ``projection_only`` (projection right, transfer wrong: shares of transfer's own error, one of
        :data:`TRANSFER_CAUSES`), and the counts ``both_right`` and ``both_wrong``.
    """
    transfer_only: Counter[str] = Counter()
    projection_only: Counter[str] = Counter()
    both: Counter[str] = Counter()
    spans = {k: strict_spans(r.transfer) for k, r in enumerate(records) if r.transfer is not None}
    for c in causes:
        if c.side != "gold" or c.sentence not in spans:
            continue
        transfer = _transfer_cause(c.span, spans[c.sentence])
        if transfer == "correct" and c.cause != "correct":
            transfer_only[c.cause] += 1
        elif transfer != "correct" and c.cause == "correct":
            projection_only[transfer] += 1
        else:
            both["both_right" if transfer == "correct" else "both_wrong"] += 1
    return {
        "transfer_only": _shares(transfer_only, GOLD_CAUSES[1:]),
        "projection_only": _shares(projection_only, TRANSFER_CAUSES[1:]),
        "both_right": both["both_right"],
        "both_wrong": both["both_wrong"],
    }


def markdown_table(summary: dict, examples: bool = True) -> str:
    """:func:`summarize`'s counts as a markdown table (cause | gold | % | predicted | %), then examples."""
    lines = ["| cause | gold | % | predicted | % |", "| --- | ---: | ---: | ---: | ---: |"]
    for cause in dict.fromkeys(GOLD_CAUSES + PREDICTED_CAUSES):
        cells = []
        for side in ("gold", "predicted"):
            part = summary[side]
            has = cause in part["counts"]
            cells += [str(part["counts"][cause]), f"{100 * part['shares'][cause]:.1f}"] if has else ["", ""]
        lines.append(f"| {cause} | " + " | ".join(cells) + " |")
    totals = [str(summary[side]["total"]) for side in ("gold", "predicted")]
    lines.append(f"| total | {totals[0]} | 100 | {totals[1]} | 100 |")
    if examples:
        for side in ("gold", "predicted"):
            for cause, shown in summary[side]["examples"].items():
                if shown and cause != "correct":
                    lines += ["", f"{side} / {cause}:"] + [f"- {line}" for line in shown]
    return "\n".join(lines)


def comparison_table(comparison: dict) -> str:
    """:func:`compare_with_transfer`'s result as a markdown table (group | cause | count | %)."""
    lines = ["| gold entities | cause | count | % |", "| --- | --- | ---: | ---: |"]
    titles = {
        "transfer_only": "transfer right, projection wrong",
        "projection_only": "projection right, transfer wrong",
    }
    for group, title in titles.items():
        part = comparison[group]
        for cause, n in part["counts"].items():
            lines.append(f"| {title} | {cause} | {n} | {100 * part['shares'][cause]:.1f} |")
    lines.append(f"| both right | | {comparison['both_right']} | |")
    lines.append(f"| both wrong | | {comparison['both_wrong']} | |")
    return "\n".join(lines)


def unknown_word_flags(marked: str, marks: str = "*") -> tuple[list[str], list[bool]]:
    """Words and unknown-word flags of a translation made with Apertium's marks on (``apertium`` without ``-u``).

    Apertium prefixes a word it does not know, and so passes through, with ``*`` (``#`` / ``@``: it could
    not generate / transfer it). The pipeline translates without marks; with the mark removed, the words are
    those of ``simple_tokenize`` on the unmarked output (check the two agree before pairing them).

    Args:
        marked: the marked translation of one sentence.
        marks: the characters that flag a word (default: the unknown-word mark only).

    Returns:
        The words and, per word, whether it was marked (punctuation around a marked word is not).
    """
    tokens: list[str] = []
    flags: list[bool] = []
    for chunk in marked.split():
        # The mark sits right before the word, after any opening punctuation: "(*Lobo)".
        i = next((k for k, ch in enumerate(chunk) if ch in marks or not is_punct(ch)), len(chunk))
        flagged = i + 1 < len(chunk) and chunk[i] in marks and not is_punct(chunk[i + 1])
        words = simple_tokenize(chunk[:i] + chunk[i + 1 :] if flagged else chunk)
        tokens += words
        flags += [flagged and not all(is_punct(ch) for ch in w) for w in words]
    return tokens, flags


def heuristic_drop_reasons(
    english: Sequence[Span], links: Collection[tuple[int, int]], n_target: int, **options
) -> dict[Span, str]:
    """Per-entity drop reasons of :func:`~xner.pipeline.project.project_heuristic` (it records counts only).

    In source order an entity's fate depends only on the entities before it, so projecting each prefix of
    ``english`` and diffing the drop counters gives the reason of the prefix's last entity.

    Args:
        english: the English entities in the pipeline's order (``tags_to_spans``), links ``(english word,
            target word)``, ``n_target`` target words, and the heuristic's ``options`` (``max_gap``, ...).

    Returns:
        The dropped entities and their reasons (projected entities are absent).
    """
    if options.get("order", "source") != "source":
        raise ValueError("heuristic_drop_reasons replays the heuristic in source order only")
    reasons: dict[Span, str] = {}
    before: Counter[str] = Counter()
    for k, ent in enumerate(english):
        dropped = project_heuristic(english[: k + 1], links, n_target, **options).stats.dropped
        new = dropped - before
        if new:
            reasons[ent] = next(iter(new))
        before = dropped
    return reasons
