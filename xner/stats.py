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


def bootstrap_f1(
    counts: EntityCounts, resamples: int = 1000, level: float = 0.95, seed: int = 0, chunk: int = 200
) -> Interval:
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
    f1 = np.concatenate(
        [_resampled_f1(tp, pred, gold, idx) for idx in _indices(len(counts), resamples, rng, chunk)]
    )
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


def paired_bootstrap(
    a: EntityCounts | Sequence[EntityCounts],
    b: EntityCounts | Sequence[EntityCounts],
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    chunk: int = 200,
) -> PairedComparison:
    """Paired bootstrap test of ``F1(a) - F1(b)`` on the same test sentences.

    Each resample draws one set of sentence indices and scores both models on it, so sentence difficulty
    cancels out. ``a`` and ``b`` may each be a list of runs (seeds) on the same sentences: the statistic is
    then the mean F1 over the runs, so seed variation is kept in both. The p-value is two-sided under the
    null of no difference, from the resampled deltas centred on the observed one (Berg-Kirkpatrick et al.
    2012): ``P(|delta* - delta| >= |delta|)``.
    """
    runs_a = [a] if isinstance(a, EntityCounts) else list(a)
    runs_b = [b] if isinstance(b, EntityCounts) else list(b)
    sizes = {len(c) for c in runs_a + runs_b}
    if len(sizes) != 1:
        raise ValueError(f"paired bootstrap needs the same sentences in every run, got sizes {sorted(sizes)}")
    n = sizes.pop()
    rng = np.random.default_rng(seed)
    per_a, per_b = [_per_sentence(c) for c in runs_a], [_per_sentence(c) for c in runs_b]
    deltas = []
    for idx in _indices(n, resamples, rng, chunk):
        f_a = np.mean([_resampled_f1(*p, idx) for p in per_a], axis=0)
        f_b = np.mean([_resampled_f1(*p, idx) for p in per_b], axis=0)
        deltas.append(f_a - f_b)
    deltas = np.concatenate(deltas)
    f1_a = float(np.mean([f1_from_counts(c) for c in runs_a]))
    f1_b = float(np.mean([f1_from_counts(c) for c in runs_b]))
    observed = f1_a - f1_b
    alpha = (1 - level) / 2
    low, high = np.quantile(deltas, [alpha, 1 - alpha])
    if observed == 0 and np.all(deltas == 0):
        p = 1.0
    else:
        p = float((np.sum(np.abs(deltas - observed) >= abs(observed)) + 1) / (len(deltas) + 1))
    return PairedComparison(observed, float(low), float(high), min(1.0, p), f1_a, f1_b, resamples)


def paired_bootstrap_drop(
    a_in: Sequence[EntityCounts],
    a_out: Sequence[EntityCounts],
    b_in: Sequence[EntityCounts],
    b_out: Sequence[EntityCounts],
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    chunk: int = 200,
) -> PairedComparison:
    """Paired bootstrap of a difference in robustness: ``drop(a) - drop(b)``, ``drop = F1_in - F1_out``.

    The in-domain and out-of-domain test sets are resampled independently (they are different sentences);
    within each, both models see the same resampled sentences. Lists hold runs (seeds); F1 is averaged over
    them. A negative delta means ``a`` loses less under the domain shift than ``b``. ``f1_a``/``f1_b`` of the
    result hold the two observed drops.
    """
    for group in (a_in, a_out, b_in, b_out):
        if not group:
            raise ValueError("paired_bootstrap_drop needs at least one run per group")
    n_in, n_out = len(a_in[0]), len(a_out[0])
    if {len(c) for c in [*a_in, *b_in]} != {n_in} or {len(c) for c in [*a_out, *b_out]} != {n_out}:
        raise ValueError(
            "every run must be scored on the same in-domain and the same out-of-domain sentences"
        )
    rng = np.random.default_rng(seed)

    def mean_f1(runs: Sequence[EntityCounts], idx: np.ndarray) -> np.ndarray:
        return np.mean([_resampled_f1(*_per_sentence(c), idx) for c in runs], axis=0)

    deltas = []
    for idx_in, idx_out in zip(
        _indices(n_in, resamples, rng, chunk), _indices(n_out, resamples, rng, chunk), strict=True
    ):
        drop_a = mean_f1(a_in, idx_in) - mean_f1(a_out, idx_out)
        drop_b = mean_f1(b_in, idx_in) - mean_f1(b_out, idx_out)
        deltas.append(drop_a - drop_b)
    deltas = np.concatenate(deltas)

    def observed_drop(ins: Sequence[EntityCounts], outs: Sequence[EntityCounts]) -> float:
        return float(np.mean([f1_from_counts(c) for c in ins]) - np.mean([f1_from_counts(c) for c in outs]))

    drop_a, drop_b = observed_drop(a_in, a_out), observed_drop(b_in, b_out)
    observed = drop_a - drop_b
    alpha = (1 - level) / 2
    low, high = np.quantile(deltas, [alpha, 1 - alpha])
    p = (
        1.0
        if observed == 0 and np.all(deltas == 0)
        else float((np.sum(np.abs(deltas - observed) >= abs(observed)) + 1) / (len(deltas) + 1))
    )
    return PairedComparison(observed, float(low), float(high), min(1.0, p), drop_a, drop_b, resamples)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        raise ValueError("mean_std of no values")
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0
