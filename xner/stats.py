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

    def row(self, values: tuple[str, str] | None = None, suffix: str = "") -> dict[str, float | bool]:
        """The comparison as table columns, in the order every results table uses.

        Args:
            values: column names for ``f1_a`` and ``f1_b`` (e.g. ``("f1", "reference_f1")``), which come
                first; ``None`` leaves them out.
            suffix: appended to every column name (e.g. ``"_dontcare"``).

        Returns:
            ``{values..., delta, ci_low, ci_high, p_value, significant}``, each name ending in ``suffix``.
        """
        named = dict(zip(values, (self.f1_a, self.f1_b), strict=True)) if values else {}
        named |= {
            "delta": self.delta,
            "ci_low": self.low,
            "ci_high": self.high,
            "p_value": self.p_value,
            "significant": self.significant,
        }
        return {f"{k}{suffix}": v for k, v in named.items()}


def _run_f1(runs: Sequence[EntityCounts], idx: np.ndarray) -> np.ndarray:
    """Resampled F1 of every run: ``[runs, resamples]`` for sentence indices ``idx`` (``[resamples, n]``)."""
    return np.stack([_resampled_f1(*_per_sentence(c), idx) for c in runs])


def _mean_over_runs(f1: np.ndarray, chosen: np.ndarray | None) -> np.ndarray:
    """Mean over runs per resample; ``chosen`` (``[resamples, runs]``) resamples the runs themselves."""
    if chosen is None:
        return f1.mean(0)
    return np.take_along_axis(f1.T, chosen, axis=1).mean(1)


def _choose_runs(rng: np.random.Generator, size: int, n_a: int, n_b: int, resample_runs: bool):
    """Run indices per resample for both sides: paired by position when both have the same number of runs."""
    if not resample_runs:
        return None, None
    chosen_a = rng.integers(0, n_a, size=(size, n_a)) if n_a > 1 else None
    if n_a == n_b:
        return chosen_a, chosen_a
    return chosen_a, rng.integers(0, n_b, size=(size, n_b)) if n_b > 1 else None


def _comparison(
    deltas: np.ndarray, value_a: float, value_b: float, level: float, resamples: int
) -> PairedComparison:
    observed = value_a - value_b
    alpha = (1 - level) / 2
    low, high = np.quantile(deltas, [alpha, 1 - alpha])
    if observed == 0 and np.all(deltas == 0):
        p = 1.0
    else:
        p = float((np.sum(np.abs(deltas - observed) >= abs(observed)) + 1) / (len(deltas) + 1))
    return PairedComparison(observed, float(low), float(high), min(1.0, p), value_a, value_b, resamples)


def _as_runs(x: EntityCounts | Sequence[EntityCounts]) -> list[EntityCounts]:
    return [x] if isinstance(x, EntityCounts) else list(x)


def paired_bootstrap(
    a: EntityCounts | Sequence[EntityCounts],
    b: EntityCounts | Sequence[EntityCounts],
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    chunk: int = 200,
    resample_runs: bool = True,
) -> PairedComparison:
    """Paired bootstrap test of ``F1(a) - F1(b)`` on the same test sentences.

    Each resample draws one set of sentence indices and scores both models on it, so sentence difficulty
    cancels out. ``a`` and ``b`` may each be a list of runs (seeds) on the same sentences: the statistic is
    the mean F1 over the runs. With ``resample_runs`` (default) the runs are resampled too (a two-level
    bootstrap), so the interval covers training randomness as well as the choice of test sentences; when both
    sides have the same number of runs they are paired by position (pass them sorted by seed: same seed, same
    data order). The p-value is two-sided under the null of no difference, from the resampled deltas centred
    on the observed one (Berg-Kirkpatrick et al. 2012): ``P(|delta* - delta| >= |delta|)``.
    """
    runs_a, runs_b = _as_runs(a), _as_runs(b)
    sizes = {len(c) for c in runs_a + runs_b}
    if len(sizes) != 1:
        raise ValueError(f"paired bootstrap needs the same sentences in every run, got sizes {sorted(sizes)}")
    n = sizes.pop()
    rng = np.random.default_rng(seed)
    deltas = []
    for idx in _indices(n, resamples, rng, chunk):
        chosen_a, chosen_b = _choose_runs(rng, len(idx), len(runs_a), len(runs_b), resample_runs)
        deltas.append(
            _mean_over_runs(_run_f1(runs_a, idx), chosen_a) - _mean_over_runs(_run_f1(runs_b, idx), chosen_b)
        )
    f1_a = float(np.mean([f1_from_counts(c) for c in runs_a]))
    f1_b = float(np.mean([f1_from_counts(c) for c in runs_b]))
    return _comparison(np.concatenate(deltas), f1_a, f1_b, level, resamples)


def paired_bootstrap_drop(
    a_in: Sequence[EntityCounts],
    a_out: Sequence[EntityCounts],
    b_in: Sequence[EntityCounts],
    b_out: Sequence[EntityCounts],
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    chunk: int = 200,
    resample_runs: bool = True,
) -> PairedComparison:
    """Paired bootstrap of a difference in robustness: ``drop(a) - drop(b)``, ``drop = F1_in - F1_out``.

    The in-domain and out-of-domain test sets are resampled independently (they are different sentences);
    within each, both models see the same resampled sentences. Lists hold runs (seeds, ``a_in[k]`` and
    ``a_out[k]`` the same run), averaged and, with ``resample_runs``, resampled as in :func:`paired_bootstrap`.
    A negative delta means ``a`` loses less under the domain shift than ``b``. ``f1_a``/``f1_b`` of the result
    hold the two observed drops.
    """
    for group in (a_in, a_out, b_in, b_out):
        if not group:
            raise ValueError("paired_bootstrap_drop needs at least one run per group")
    if len(a_in) != len(a_out) or len(b_in) != len(b_out):
        raise ValueError("every run needs both its in-domain and its out-of-domain counts")
    n_in, n_out = len(a_in[0]), len(a_out[0])
    if {len(c) for c in [*a_in, *b_in]} != {n_in} or {len(c) for c in [*a_out, *b_out]} != {n_out}:
        raise ValueError(
            "every run must be scored on the same in-domain and the same out-of-domain sentences"
        )
    rng = np.random.default_rng(seed)
    deltas = []
    for idx_in, idx_out in zip(
        _indices(n_in, resamples, rng, chunk), _indices(n_out, resamples, rng, chunk), strict=True
    ):
        chosen_a, chosen_b = _choose_runs(rng, len(idx_in), len(a_in), len(b_in), resample_runs)
        drop_a = _mean_over_runs(_run_f1(a_in, idx_in) - _run_f1(a_out, idx_out), chosen_a)
        drop_b = _mean_over_runs(_run_f1(b_in, idx_in) - _run_f1(b_out, idx_out), chosen_b)
        deltas.append(drop_a - drop_b)

    def observed_drop(ins: Sequence[EntityCounts], outs: Sequence[EntityCounts]) -> float:
        return float(np.mean([f1_from_counts(c) for c in ins]) - np.mean([f1_from_counts(c) for c in outs]))

    return _comparison(
        np.concatenate(deltas), observed_drop(a_in, a_out), observed_drop(b_in, b_out), level, resamples
    )


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        raise ValueError("mean_std of no values")
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0
