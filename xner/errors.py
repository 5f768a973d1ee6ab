"""Error breakdown of entity predictions, and span-overlap ("partial match") F1.

Per sentence, gold and predicted entities are read with the strict IOB2 reader
(:func:`xner.metrics.strict_spans`, the one the F1 uses). Every gold entity and every predicted entity gets
exactly one category, from the entities of the other side that overlap it (share at least one word):

===============  ============================================================================================
category         an entity is in it when
===============  ============================================================================================
exact            an entity of the other side has the same start, end and type (a true positive)
boundary         not exact; some overlapping entity of the other side has the same type
type             not exact; none of the same type overlaps; one has the same start and end (another type)
boundary+type    overlapping entities exist, but none of the same type and none with the same boundaries
missed           a gold entity that overlaps no predicted entity
spurious         a predicted entity that overlaps no gold entity
===============  ============================================================================================

One-to-many overlaps: each entity is classified on its own, by the *best* relation it has to any entity of
the other side (exact > boundary > type > boundary+type), and no entity of the other side is used up. So a
gold entity split into two predictions of its type is one ``boundary`` error among gold entities and two
among predicted entities; a prediction that merges a gold ``LOC`` and a gold ``ORG`` into one ``LOC`` is a
``boundary`` error on the prediction side, and the gold ``ORG`` is ``boundary+type``. Gold entities and
predicted entities are therefore counted (and their shares computed) separately; ``exact`` is the same number
on both sides. Entities of one tag sequence never overlap each other, so a ``type`` error has exactly one
overlapping entity on the other side.

Partial-match F1: a predicted entity is correct when it overlaps a gold entity of the same type, each gold
entity matching at most one prediction and each prediction at most one gold entity (exact matches first, then
left to right, each prediction taking the leftmost unmatched overlapping gold entity of its type; for entities
of one tag sequence this gives the largest possible number of matches). ``P = matched / predicted``,
``R = matched / gold``; the counts are :class:`xner.metrics.EntityCounts`, so :mod:`xner.stats` bootstraps them
like the strict ones.

    python -m xner.errors logs/evaluate/runs/<run>/predictions [--out errors.csv]

reads predictions files (``word gold predicted [removed]``, :func:`xner.io.conll.read_predictions_file`) and
prints a table per file; with the optional 4th column (gold entities the label mapping removed) it adds the
don't-care F1 and counts the spurious predictions that lie on removed entities.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xner.metrics import EntityCounts, count_entities, scores_from_counts, strict_spans
from xner.tables import format_table, write_csv
from xner.types import Span

GOLD_CATEGORIES = ("exact", "boundary", "type", "boundary+type", "missed")
PRED_CATEGORIES = ("exact", "boundary", "type", "boundary+type", "spurious")
CATEGORIES = ("exact", "boundary", "type", "boundary+type", "missed", "spurious")


def _category(entity: Span, others: Iterable[Span], none: str) -> str:
    """The best relation of ``entity`` to the overlapping spans in ``others`` (``none`` if there are none)."""
    over = [o for o in others if entity.overlaps(o)]
    if not over:
        return none
    if entity in over:
        return "exact"
    if any(o.label == entity.label for o in over):
        return "boundary"
    if any(o.start == entity.start and o.end == entity.end for o in over):
        return "type"
    return "boundary+type"


def classify(gold: Iterable[Span], pred: Iterable[Span]) -> tuple[dict[Span, str], dict[Span, str]]:
    """Categories of the gold and the predicted entities of one sentence (see the module docstring).

    Returns:
        ``(gold category by span, predicted category by span)``.
    """
    gold, pred = set(gold), set(pred)
    return (
        {g: _category(g, pred, "missed") for g in gold},
        {p: _category(p, gold, "spurious") for p in pred},
    )


def partial_matches(gold: Iterable[Span], pred: Iterable[Span]) -> list[tuple[Span, Span]]:
    """One-to-one ``(gold, predicted)`` pairs of overlapping entities of the same type (partial match)."""
    free = sorted(set(gold), key=lambda s: (s.start, s.end, s.label))
    pairs = []
    rest = []
    for p in sorted(set(pred), key=lambda s: (s.start, s.end, s.label)):
        if p in free:
            free.remove(p)
            pairs.append((p, p))
        else:
            rest.append(p)
    for p in rest:
        g = next((g for g in free if g.label == p.label and g.overlaps(p)), None)
        if g is not None:
            free.remove(g)
            pairs.append((g, p))
    return pairs


def _spans(tags: Sequence[Sequence[str]]) -> list[set[Span]]:
    return [strict_spans(t) for t in tags]


def count_partial(
    gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], types: Sequence[str] | None = None
) -> EntityCounts:
    """Per-sentence, per-type counts where a true positive is a partial match (:func:`partial_matches`).

    Args:
        gold: gold tags per sentence.
        pred: predicted tags per sentence (same lengths; checked by :func:`xner.metrics.count_entities`).
        types: the types to report; default: every type seen in gold or predictions.
    """
    strict = count_entities(gold, pred, types)  # validates the input and counts gold and predicted entities
    col = {t: j for j, t in enumerate(strict.types)}
    tp = np.zeros_like(strict.tp)
    for k, (gs, ps) in enumerate(zip(_spans(gold), _spans(pred), strict=True)):
        for _, p in partial_matches(gs, ps):
            if p.label in col:
                tp[k, col[p.label]] += 1
    return EntityCounts(strict.types, tp, strict.pred, strict.gold)


@dataclass
class ErrorBreakdown:
    """Categories of all gold and predicted entities of a set, with its strict, partial and don't-care counts.

    Attributes:
        types: the entity types reported (rows of :meth:`rows` after ``all``).
        gold: per gold type, the number of gold entities in each of :data:`GOLD_CATEGORIES`.
        pred: per predicted type, the number of predicted entities in each of :data:`PRED_CATEGORIES`.
        spurious_on_removed: per predicted type, spurious predictions overlapping a gold entity the label
            mapping removed (a subset of ``spurious``; what the don't-care score leaves out).
        strict: exact-match counts (:func:`xner.metrics.count_entities`).
        partial: partial-match counts (:func:`count_partial`).
        dontcare: don't-care counts, or ``None`` when no removed spans were given.
    """

    types: list[str]
    gold: dict[str, Counter]
    pred: dict[str, Counter]
    spurious_on_removed: Counter
    strict: EntityCounts
    partial: EntityCounts
    dontcare: EntityCounts | None = None

    def _total(self, side: dict[str, Counter], t: str) -> Counter:
        return sum((side[x] for x in self.types), Counter()) if t == "all" else side[t]

    def rows(self) -> list[dict]:
        """One row per type (``all`` first): entity counts per category and side, strict/partial/don't-care F1.

        Columns: ``gold_entities``, ``predicted_entities``, ``exact``, ``boundary_gold``, ``type_gold``,
        ``boundary_type_gold``, ``missed`` (gold entities), ``boundary_pred``, ``type_pred``,
        ``boundary_type_pred``, ``spurious``, ``spurious_on_removed`` (predicted entities), ``f1`` (strict),
        ``precision_partial``, ``recall_partial``, ``f1_partial`` and, with removed spans, ``f1_dontcare``.
        """
        strict, partial = scores_from_counts(self.strict), scores_from_counts(self.partial)
        dontcare = scores_from_counts(self.dontcare) if self.dontcare is not None else None
        out = []
        for t in ["all", *self.types]:
            g, p = self._total(self.gold, t), self._total(self.pred, t)
            s, q = (strict, partial) if t == "all" else (strict["per_type"][t], partial["per_type"][t])
            row = {
                "type": t,
                "gold_entities": sum(g.values()),
                "predicted_entities": sum(p.values()),
                "exact": g["exact"],
                "boundary_gold": g["boundary"],
                "type_gold": g["type"],
                "boundary_type_gold": g["boundary+type"],
                "missed": g["missed"],
                "boundary_pred": p["boundary"],
                "type_pred": p["type"],
                "boundary_type_pred": p["boundary+type"],
                "spurious": p["spurious"],
                "spurious_on_removed": (
                    sum(self.spurious_on_removed[x] for x in self.types)
                    if t == "all"
                    else self.spurious_on_removed[t]
                ),
                "f1": s["f1"],
                "precision_partial": q["precision"],
                "recall_partial": q["recall"],
                "f1_partial": q["f1"],
            }
            if dontcare is not None:
                row["f1_dontcare"] = dontcare["f1"] if t == "all" else dontcare["per_type"][t]["f1"]
            out.append(row)
        return out

    def table(self, title: str = "") -> str:
        """Counts and shares per category (all types), then strict, partial and don't-care F1 per type."""
        g, p = self._total(self.gold, "all"), self._total(self.pred, "all")
        n_gold, n_pred = sum(g.values()), sum(p.values())
        rows = []
        for c in CATEGORIES:
            row: dict = {"category": c}
            if c in GOLD_CATEGORIES:
                row.update({"gold": g[c], "% of gold": 100 * g[c] / n_gold if n_gold else 0.0})
            if c in PRED_CATEGORIES:
                row.update({"predicted": p[c], "% of predicted": 100 * p[c] / n_pred if n_pred else 0.0})
            rows.append(row)
        rows.append({"category": "total", "gold": n_gold, "% of gold": 100.0, "predicted": n_pred})
        rows[-1]["% of predicted"] = 100.0
        on_removed = sum(self.spurious_on_removed[x] for x in self.types)
        if self.dontcare is not None:
            rows[CATEGORIES.index("spurious")]["on removed gold"] = on_removed
        columns = ["category", "gold", "% of gold", "predicted", "% of predicted"]
        text = format_table(rows, columns + (["on removed gold"] if self.dontcare is not None else []), title)
        f1_columns = ["type", "f1", "f1_partial", "precision_partial", "recall_partial"]
        f1_title = "F1 per type: strict (exact match), partial (overlaps a gold entity of its type)"
        if self.dontcare is not None:
            f1_columns.append("f1_dontcare")
            f1_title += ", don't-care (predictions on removed gold entities ignored)"
        return text + "\n\n" + format_table(self.rows(), f1_columns, f1_title)


def error_breakdown(
    gold: Sequence[Sequence[str]],
    pred: Sequence[Sequence[str]],
    types: Sequence[str] | None = None,
    ignore: Sequence[Iterable[Span]] | None = None,
) -> ErrorBreakdown:
    """Classify every gold and predicted entity of a set (see the module docstring) and count them.

    Args:
        gold: gold tags per sentence.
        pred: predicted tags per sentence (same lengths).
        types: the types to report; default: every type seen in gold or predictions. Entities of other types
            still decide the categories of the reported ones but are not counted.
        ignore: per sentence, gold entities the label mapping removed (:attr:`xner.types.Sentence.ignore_spans`):
            adds the don't-care counts and ``spurious_on_removed``.
    """
    strict = count_entities(gold, pred, types, ignore=None)
    types = strict.types
    gold_by: dict[str, Counter] = {t: Counter() for t in types}
    pred_by: dict[str, Counter] = {t: Counter() for t in types}
    on_removed: Counter = Counter()
    for k, (gs, ps) in enumerate(zip(_spans(gold), _spans(pred), strict=True)):
        gold_cat, pred_cat = classify(gs, ps)
        for span, c in gold_cat.items():
            if span.label in gold_by:
                gold_by[span.label][c] += 1
        removed = tuple(ignore[k]) if ignore is not None else ()
        for span, c in pred_cat.items():
            if span.label in pred_by:
                pred_by[span.label][c] += 1
                if c == "spurious" and any(span.overlaps(z) for z in removed):
                    on_removed[span.label] += 1
    return ErrorBreakdown(
        list(types),
        gold_by,
        pred_by,
        on_removed,
        strict,
        count_partial(gold, pred, types),
        count_entities(gold, pred, types, ignore=ignore) if ignore is not None else None,
    )


def _prediction_files(paths: Sequence[str | Path]) -> list[Path]:
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(path.rglob("*.conll"))
            if not found:
                raise FileNotFoundError(f"no *.conll predictions files under {path}")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"{path} is neither a predictions file nor a directory holding them")
    return files


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: print the breakdown of each predictions file; ``--out`` writes every row as CSV."""
    from xner.io.conll import read_predictions_file  # noqa: PLC0415 - keeps the module import light

    parser = argparse.ArgumentParser(prog="python -m xner.errors", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "paths", nargs="+", help="predictions files (word gold predicted) or dirs holding them"
    )
    parser.add_argument("--out", help="CSV with one row per file and type")
    args = parser.parse_args(argv)
    files = _prediction_files(args.paths)
    root = Path(args.paths[0]) if len(args.paths) == 1 and Path(args.paths[0]).is_dir() else None
    rows = []
    for path in files:
        data = read_predictions_file(path)
        breakdown = error_breakdown(data.gold, data.pred, ignore=data.removed_spans())
        name = str(path.relative_to(root)) if root else str(path)
        title = f"{name}: {len(data.gold)} sentences, gold and predicted entities by error category"
        print(f"\n{breakdown.table(title)}")
        rows += [{"file": name, "split": path.stem, **r} for r in breakdown.rows()]
    if args.out:
        write_csv(args.out, rows)
        print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
