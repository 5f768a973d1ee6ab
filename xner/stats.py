"""Bootstrap statistics over test sentences: confidence intervals and paired comparisons of two models.

Both resample *sentences* (the unit a test set is drawn in) and recompute micro F1 from per-sentence entity
counts (:class:`xner.metrics.EntityCounts`), so a thousand resamples of a 10k-sentence set take well under a
second.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from xner.metrics import EntityCounts, f1_from_counts


def _resampled_f1(tp: np.ndarray, pred: np.ndarray, gold: np.ndarray, idx: np.ndarray) -> np.ndarray:
    t, p, g = tp[idx].sum(1), pred[idx].sum(1), gold[idx].sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(p + g > 0, 200.0 * t / (p + g), 0.0)  # F1 = 2TP / (P + G)
    return f1


def _indices(n_sentences: int, n_resamples: int, rng: np.random.Generator, chunk: int) -> list[np.ndarray]:
    sizes = [min(chunk, n_resamples - lo) for lo in range(0, n_resamples, chunk)]
    return [rng.integers(0, n_sentences, size=(s, n_sentences)) for s in sizes]


def _per_sentence(counts: EntityCounts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return counts.tp.sum(1), counts.pred.sum(1), counts.gold.sum(1)


@dataclass(frozen=True)
class Interval:
    """A point estimate with a percentile bootstrap interval (percent F1)."""

    estimate: float
    low: float
    high: float
    level: float
    resamples: int

    def __str__(self) -> str:
        return f"{self.estimate:.1f} [{self.low:.1f}, {self.high:.1f}]"


def bootstrap_f1(counts: EntityCounts, resamples: int = 1000, level: float = 0.95, seed: int = 0,
                 chunk: int = 200) -> Interval:
    """Percentile bootstrap interval of micro F1, resampling sentences with replacement.

    Args:
        counts: per-sentence entity counts of one model on one test set.
        resamples: number of bootstrap samples.
        level: coverage of the interval.
        seed: RNG seed (the same seed gives the same interval).
        chunk: resamples drawn at once (bounds memory: chunk x sentences indices).
    """
    if len(counts) == 0:
        raise ValueError("bootstrap needs at least one sentence")
    rng = np.random.default_rng(seed)
    tp, pred, gold = _per_sentence(counts)
    f1 = np.concatenate([_resampled_f1(tp, pred, gold, idx) for idx in _indices(len(counts), resamples, rng, chunk)])
    alpha = (1 - level) / 2
    low, high = np.quantile(f1, [alpha, 1 - alpha])
    return Interval(f1_from_counts(counts), float(low), float(high), level, resamples)


@dataclass(frozen=True)
class PairedComparison:
    """F1 of model A minus model B on the same sentences, with its interval and a two-sided p-value."""

    delta: float
    low: float
    high: float
    p_value: float
    f1_a: float
    f1_b: float
    resamples: int

    @property
    def significant(self) -> bool:
        """Whether the interval excludes zero (at the level it was computed with)."""
        return self.low > 0 or self.high < 0


def paired_bootstrap(a: EntityCounts, b: EntityCounts, resamples: int = 1000, level: float = 0.95,
                     seed: int = 0, chunk: int = 200) -> PairedComparison:
    """Paired bootstrap test of ``F1(a) - F1(b)`` on the same test sentences.

    Each resample draws one set of sentence indices and scores both models on it, so sentence difficulty
    cancels out. The p-value is two-sided under the null of no difference, from the resampled deltas centred
    on the observed one (Berg-Kirkpatrick et al. 2012): ``P(|delta* - delta| >= |delta|)``.
    """
    if len(a) != len(b):
        raise ValueError(f"paired bootstrap needs the same sentences: {len(a)} vs {len(b)}")
    rng = np.random.default_rng(seed)
    pa, pb = _per_sentence(a), _per_sentence(b)
    deltas = np.concatenate([
        _resampled_f1(*pa, idx) - _resampled_f1(*pb, idx) for idx in _indices(len(a), resamples, rng, chunk)
    ])
    f1_a, f1_b = f1_from_counts(a), f1_from_counts(b)
    observed = f1_a - f1_b
    alpha = (1 - level) / 2
    low, high = np.quantile(deltas, [alpha, 1 - alpha])
    if observed == 0 and np.all(deltas == 0):
        p = 1.0
    else:
        p = float((np.sum(np.abs(deltas - observed) >= abs(observed)) + 1) / (len(deltas) + 1))
    return PairedComparison(observed, float(low), float(high), min(1.0, p), f1_a, f1_b, resamples)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        raise ValueError("mean_std of no values")
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0
