import random

import numpy as np
import pytest

from xner.metrics import count_entities
from xner.stats import PairedComparison, bootstrap_f1, mean_std, paired_bootstrap


def synthetic(n: int, accuracy: float, seed: int = 0):
    rng = random.Random(seed)
    gold, pred = [], []
    for _ in range(n):
        g = ["B-PER", "I-PER", "O", "B-LOC", "O"]
        gold.append(g)
        pred.append([t if rng.random() < accuracy else "O" for t in g])
    return gold, pred


def test_interval_contains_estimate_and_narrows():
    gold, pred = synthetic(2000, 0.8)
    small = bootstrap_f1(count_entities(gold[:100], pred[:100]), resamples=500)
    large = bootstrap_f1(count_entities(gold, pred), resamples=500)
    for ci in (small, large):
        assert ci.low <= ci.estimate <= ci.high
    assert (large.high - large.low) < 0.5 * (small.high - small.low)  # ~ 1/sqrt(20) of the width


def test_bootstrap_is_reproducible():
    gold, pred = synthetic(300, 0.7)
    counts = count_entities(gold, pred)
    assert bootstrap_f1(counts, seed=3) == bootstrap_f1(counts, seed=3)


def test_paired_bootstrap_model_against_itself():
    gold, pred = synthetic(500, 0.7)
    counts = count_entities(gold, pred)
    cmp = paired_bootstrap(counts, counts)
    assert cmp.delta == 0 and cmp.p_value == 1.0 and not cmp.significant


def test_paired_bootstrap_perfect_vs_broken():
    gold, pred = synthetic(500, 0.5)
    perfect, broken = count_entities(gold, gold), count_entities(gold, pred)
    cmp = paired_bootstrap(perfect, broken, resamples=500)
    assert cmp.delta > 30 and cmp.significant and cmp.p_value < 0.01 and cmp.low > 0


def test_paired_bootstrap_over_seeds():
    gold, _ = synthetic(400, 1.0)
    good = [count_entities(gold, synthetic(400, 0.9, seed)[1]) for seed in range(3)]
    bad = [count_entities(gold, synthetic(400, 0.6, seed)[1]) for seed in range(3, 6)]
    cmp = paired_bootstrap(good, bad, resamples=300)
    assert cmp.significant and cmp.f1_a > cmp.f1_b
    same = paired_bootstrap(good, good, resamples=300)
    assert same.delta == 0 and same.p_value == 1.0


def test_paired_needs_same_sentences():
    gold, pred = synthetic(10, 0.5)
    with pytest.raises(ValueError, match="same sentences"):
        paired_bootstrap(count_entities(gold, pred), count_entities(gold[:5], pred[:5]))


def test_mean_std():
    assert mean_std([1.0, 2.0, 3.0]) == (2.0, pytest.approx(np.std([1, 2, 3], ddof=1)))
    assert mean_std([5.0]) == (5.0, 0.0)


def test_resampling_runs_widens_the_interval_when_seeds_disagree():
    gold, _ = synthetic(400, 1.0)
    a = [count_entities(gold, synthetic(400, acc, seed)[1]) for seed, acc in enumerate((0.9, 0.6, 0.75))]
    b = [count_entities(gold, synthetic(400, acc, seed + 10)[1]) for seed, acc in enumerate((0.7, 0.8, 0.65))]
    two_level = paired_bootstrap(a, b, resamples=400)
    sentences_only = paired_bootstrap(a, b, resamples=400, resample_runs=False)
    assert two_level.delta == sentences_only.delta
    assert (two_level.high - two_level.low) > 2 * (sentences_only.high - sentences_only.low)


def test_comparison_row_names_columns_in_table_order():
    cmp = PairedComparison(delta=2.0, low=0.5, high=3.5, p_value=0.01, f1_a=80.0, f1_b=78.0, resamples=10)
    assert cmp.row(("f1", "reference_f1"), "_dontcare") == {
        "f1_dontcare": 80.0,
        "reference_f1_dontcare": 78.0,
        "delta_dontcare": 2.0,
        "ci_low_dontcare": 0.5,
        "ci_high_dontcare": 3.5,
        "p_value_dontcare": 0.01,
        "significant_dontcare": True,
    }
    assert list(cmp.row()) == ["delta", "ci_low", "ci_high", "p_value", "significant"]
    assert not PairedComparison(1.0, -0.5, 2.0, 0.3, 1.0, 0.0, 10).row()["significant"]
