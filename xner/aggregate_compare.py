"""Paired comparisons of aggregated runs (:mod:`xner.aggregate`) against a baseline group.

Each (series, x) group is compared with its baseline group on the same test sentences by a two-level paired
bootstrap (runs paired by seed, and sentences, resampled; the decision) and a sentences-only one (kept for
reference), per split and per (in-domain, out-of-domain) drop. The counts come from the runs'
``predictions/<split>.conll``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from xner.aggregate_plots import sort_key
from xner.io.conll import read_predictions_file
from xner.metrics import EntityCounts, count_entities
from xner.stats import paired_bootstrap, paired_bootstrap_drop

SCORES = {"strict": "f1", "dontcare": "f1_dontcare"}


def check_score(score: str) -> None:
    """Refuse a score other than ``strict`` or ``dontcare`` (any other would silently score don't-care)."""
    if score not in SCORES:
        raise ValueError(f"score must be one of {', '.join(SCORES)}, got {score!r}")


def _counts(run: str, split: str, score: str = "strict") -> EntityCounts | None:
    path = Path(run) / "predictions" / f"{split}.conll"
    if not path.is_file():
        return None
    data = read_predictions_file(path)
    if score == "strict":
        return count_entities(data.gold, data.pred)
    removed = data.removed_spans()  # None: a file written before removed spans were recorded
    return None if removed is None else count_entities(data.gold, data.pred, ignore=removed)


def compare_to_baseline(
    rows: Sequence[dict],
    x: str,
    series: Sequence[str],
    baseline: dict[str, str],
    resamples: int = 1000,
    pairs: Sequence[tuple[str, str]] = (),
    score: str = "strict",
) -> list[dict]:
    """Paired bootstrap (pooled seeds) of every (series, x) group against the baseline group, per split,
    on the counts of ``score`` (``strict`` or ``dontcare``; see :func:`summarise`).

    For each (in, out) pair the *drop* is compared too: the statistic is the difference of drops, resampling
    the in-domain and out-of-domain sentences independently (they are different test sets).
    """
    check_score(score)  # any other value would silently score don't-care
    group_keys = [*series, x]
    runs_by_group: dict[tuple, set[str]] = defaultdict(set)
    seed_of: dict[str, Any] = {}
    for r in rows:
        runs_by_group[tuple(r[k] for k in group_keys)].add(r["run"])
        seed_of[r["run"]] = r.get("seed")

    def by_seed(runs: set[str]) -> list[str]:
        # same seed, same position: the bootstrap pairs runs of two groups by position
        return sorted(runs, key=lambda run: (sort_key(seed_of[run]), run))

    splits = sorted({r["split"] for r in rows})

    out = []
    for group, runs in sorted(runs_by_group.items(), key=lambda kv: tuple(str(v) for v in kv[0])):
        if is_baseline_group(group_keys, group, baseline):
            continue
        values = dict(zip(group_keys, group, strict=True))
        ref_group = baseline_group(runs_by_group, group_keys, group, baseline, series)
        if ref_group is None:
            continue
        for split in splits:
            a = [c for run in by_seed(runs) if (c := _counts(run, split, score)) is not None]
            b = [
                c
                for run in by_seed(runs_by_group[ref_group])
                if (c := _counts(run, split, score)) is not None
            ]
            if not a or not b:
                continue
            cmp = paired_bootstrap(a, b, resamples=resamples)
            cmp_sentences = paired_bootstrap(a, b, resamples=resamples, resample_runs=False)
            row = _comparison_row(values, split, "f1", baseline, len(a), len(b), cmp, cmp_sentences)
            out.append({"score": score, **row})
        for ind, ood in pairs:
            groups = [
                [c for run in by_seed(rs) if (c := _counts(run, split, score)) is not None]
                for rs in (runs, runs_by_group[ref_group])
                for split in (ind, ood)
            ]
            if all(groups) and len(groups[0]) == len(groups[1]) and len(groups[2]) == len(groups[3]):
                cmp = paired_bootstrap_drop(*groups, resamples=resamples)
                cmp_sentences = paired_bootstrap_drop(*groups, resamples=resamples, resample_runs=False)
                row = _comparison_row(
                    values,
                    f"{ind}->{ood}",
                    "drop",
                    baseline,
                    len(groups[0]),
                    len(groups[2]),
                    cmp,
                    cmp_sentences,
                )
                out.append({"score": score, **row})
    return out


def is_baseline_group(keys: Sequence[str], group: tuple, baseline: Mapping[str, Any]) -> bool:
    """Whether ``group`` (values of ``keys``) is a baseline group (``baseline``: ``{key: value}``)."""
    values = dict(zip(keys, group, strict=True))
    return all(str(values.get(k)) == str(v) for k, v in baseline.items())


def baseline_group(
    groups: Iterable[tuple],
    keys: Sequence[str],
    group: tuple,
    baseline: Mapping[str, Any],
    match: Sequence[str],
) -> tuple | None:
    """The baseline group sharing ``group``'s values of ``match`` (the series), else the only baseline group.

    (Depth 0 is logits only, so e.g. the ``map=last`` series has no depth-0 run of its own: it is compared
    with the single depth-0 group.)"""
    candidates = [g for g in groups if is_baseline_group(keys, g, baseline)]
    values = dict(zip(keys, group, strict=True))
    same = [
        g
        for g in candidates
        if all(dict(zip(keys, g, strict=True))[k] == values[k] for k in match if k not in baseline)
    ]
    if same:
        return same[0]
    return candidates[0] if len(candidates) == 1 else None


def _comparison_row(
    values: dict, split: str, metric: str, baseline: dict, runs: int, baseline_runs: int, cmp, cmp_sentences
) -> dict:
    """One comparison: the two-level bootstrap (runs and sentences) decides; the sentences-only p is kept."""
    return {
        **values,
        "split": split,
        "metric": metric,
        "baseline": " ".join(f"{k}={v}" for k, v in baseline.items()),
        "runs": runs,
        "baseline_runs": baseline_runs,
        **cmp.row(("value", "baseline_value")),
        "p_value_sentences_only": cmp_sentences.p_value,
        "ci_low_sentences_only": cmp_sentences.low,
        "ci_high_sentences_only": cmp_sentences.high,
    }
