"""Entity-level scores (seqeval's strict IOB2 mode, computed from per-sentence counts).

Scores are built from per-sentence counts of true positives, predicted and gold entities per type, so a
bootstrap can resample sentences without re-parsing tags. ``tests/test_metrics.py`` checks that the counts
give exactly seqeval's ``classification_report(mode="strict", scheme=IOB2)`` numbers.

Two scoring modes share these counts:

- **strict** (the default, seqeval's): every predicted entity that is not an exact gold entity is a false
  positive.
- **don't-care** (``count_entities(..., ignore=...)``): a predicted entity that shares at least one word with
  a gold entity the dataset's label mapping removed (MasakhaNER ``DATE``, CoNLL-2002 ``MISC``, ...; see
  :attr:`xner.types.Sentence.ignore_spans`) and is not itself an exact match is neither a true nor a false
  positive: it is left out of the predicted count. Gold counts are the same in both modes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from xner.labels import split_tag
from xner.types import Span


def strict_spans(tags: Sequence[str]) -> set[Span]:
    """Entities under strict IOB2: ``B-X`` followed by ``I-X``\\*; a stray ``I-`` starts nothing."""
    spans: set[Span] = set()
    start, cur = -1, None
    for i, tag in enumerate(tags):
        prefix, etype = split_tag(tag)
        if cur is not None and prefix == "I" and etype == cur:
            continue
        if cur is not None:
            spans.add(Span(start, i, cur))
            cur = None
        if prefix == "B":
            start, cur = i, etype
    if cur is not None:
        spans.add(Span(start, len(tags), cur))
    return spans


@dataclass
class EntityCounts:
    """Per-sentence, per-type counts: arrays of shape ``[sentences, types]``."""

    types: list[str]
    tp: np.ndarray
    pred: np.ndarray
    gold: np.ndarray

    def subset(self, index: np.ndarray) -> EntityCounts:
        """Counts of the sentences at ``index`` (with repetition, for the bootstrap)."""
        return EntityCounts(self.types, self.tp[index], self.pred[index], self.gold[index])

    def __len__(self) -> int:
        return self.tp.shape[0]


def count_entities(
    gold: Sequence[Sequence[str]],
    pred: Sequence[Sequence[str]],
    types: Sequence[str] | None = None,
    ignore: Sequence[Iterable[Span]] | None = None,
) -> EntityCounts:
    """Count exact-match entities per sentence and type.

    Args:
        gold: gold tags per sentence.
        pred: predicted tags per sentence (same lengths).
        types: the types to report; default: every type seen in gold or predictions.
        ignore: per sentence, don't-care spans (gold entities removed by a label mapping). When given, a
            predicted entity overlapping any of them that is not an exact gold match is dropped from the
            predicted counts (the don't-care mode); ``None`` scores strictly.
    """
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold sentences but {len(pred)} predicted")
    if ignore is not None and len(ignore) != len(gold):
        raise ValueError(f"{len(gold)} gold sentences but {len(ignore)} sentences of ignore spans")
    gold_spans, pred_spans = [], []
    for k, (g, p) in enumerate(zip(gold, pred, strict=True)):
        if len(g) != len(p):
            raise ValueError(f"sentence {k}: {len(g)} gold tags but {len(p)} predicted tags")
        gold_spans.append(strict_spans(g))
        pred_spans.append(strict_spans(p))
    if types is None:
        types = sorted({s.label for spans in gold_spans + pred_spans for s in spans})
    col = {t: j for j, t in enumerate(types)}
    shape = (len(gold), len(types))
    tp, npred, ngold = np.zeros(shape, np.int32), np.zeros(shape, np.int32), np.zeros(shape, np.int32)
    for k, (gs, ps) in enumerate(zip(gold_spans, pred_spans, strict=True)):
        skip = tuple(ignore[k]) if ignore is not None else ()
        for s in gs:
            if s.label in col:
                ngold[k, col[s.label]] += 1
        for s in ps:
            if s.label not in col:
                continue
            hit = s in gs
            if not hit and any(s.overlaps(z) for z in skip):
                continue  # don't-care: on a removed gold entity, neither right nor wrong
            npred[k, col[s.label]] += 1
            tp[k, col[s.label]] += hit
    return EntityCounts(list(types), tp, npred, ngold)


def _prf(tp: float, pred: float, gold: float) -> tuple[float, float, float]:
    p = tp / pred if pred else 0.0
    r = tp / gold if gold else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def scores_from_counts(counts: EntityCounts) -> dict:
    """Micro precision/recall/F1 (in percent) over all types, and the same per type with support."""
    tp, pred, gold = counts.tp.sum(0), counts.pred.sum(0), counts.gold.sum(0)
    p, r, f = _prf(tp.sum(), pred.sum(), gold.sum())
    out = {
        "precision": 100 * p,
        "recall": 100 * r,
        "f1": 100 * f,
        "support": int(gold.sum()),
        "predicted": int(pred.sum()),
        "sentences": len(counts),
        "per_type": {},
    }
    for j, t in enumerate(counts.types):
        pt, rt, ft = _prf(tp[j], pred[j], gold[j])
        out["per_type"][t] = {
            "precision": 100 * pt,
            "recall": 100 * rt,
            "f1": 100 * ft,
            "support": int(gold[j]),
        }
    return out


def f1_from_counts(counts: EntityCounts) -> float:
    """Micro F1 in percent (the fast path used by the bootstrap)."""
    return _prf(counts.tp.sum(), counts.pred.sum(), counts.gold.sum())[2] * 100


def entity_scores(
    gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], types: Sequence[str] | None = None
) -> dict:
    """Entity precision, recall and F1 (strict IOB2), overall and per type."""
    return scores_from_counts(count_entities(gold, pred, types))
