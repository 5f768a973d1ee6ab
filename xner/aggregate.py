"""Gather many runs (a Hydra multirun, a sweep) into tables and plots of F1 and robustness vs a variable.

    python -m xner.aggregate logs/sweeps/kd_depth --x distill.depth --series distill.map \\
        --pair swa_news:swa_wiki --baseline distill.depth=0 --out results/kd_depth

Reads every ``metrics.json`` under the given directories (train runs) and writes into ``--out``:

- ``runs.csv``: one row per (run, split) with the run's variables, F1, its 95% bootstrap interval, P, R (runs
  named relative to the input root, the common parent of the given directories);
- ``summary.csv``: per (series, x, split): runs, mean ± std of F1 over seeds, and per ``--pair`` the
  in-domain -> out-of-domain drop (absolute and relative), mean ± std;
- ``comparisons.csv``: each (series, x) against ``--baseline`` on the same test sentences, by a two-level
  paired bootstrap (runs paired by seed, and sentences, resampled; the decision), plus the sentences-only
  interval and p-value (needs the runs' ``predictions/<split>.conll``);
- ``summary.csv`` and ``comparisons.csv`` hold every figure twice, in a ``score`` column: ``strict`` (seqeval
  strict F1) and ``dontcare`` (predictions overlapping gold spans that the label mapping removed, such as
  MasakhaNER DATE or NCHLT MISC, are neither true nor false positives; runs made before that scoring existed
  have no don't-care rows); the plots show don't-care when every run has it, and say which;
- ``aggregate.json``: what was aggregated (x, series, pairs, baseline, input root, run dirs, what was
  incomplete);
- ``f1_vs_<x>.png`` and ``drop_vs_<x>.png``: means with ±1 std error bars over seeds.

Incomplete results are refused (see :mod:`xner.completeness`): a (series, x) cell with fewer runs than
``--expect-runs`` (default: as many as the fullest cell), or a run dir under the roots without metrics.json.
``--allow-incomplete`` aggregates anyway, with warnings (also kept in ``aggregate.json``).

With ``--wandb`` the tables and images are also logged to a W&B run (offline without an API key).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import sys
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from xner.aggregate_plots import plot, sort_key
from xner.completeness import IncompleteResults, incomplete_message, results_problems
from xner.io.conll import read_predictions_file
from xner.metrics import EntityCounts, count_entities
from xner.stats import mean_std, paired_bootstrap, paired_bootstrap_drop

log = logging.getLogger(__name__)


def dotted(config: dict, key: str) -> Any:
    """``config["a"]["b"]`` for ``key="a.b"`` (``None`` when absent)."""
    value: Any = config
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def find_runs(roots: Sequence[str | Path]) -> list[Path]:
    """Run directories (those with a train-task ``metrics.json`` holding test splits) under ``roots``."""
    runs = []
    for root in roots:
        for path in sorted(Path(root).rglob("metrics.json")):
            record = json.loads(path.read_text())
            if record.get("splits"):
                runs.append(path.parent)
    return runs


def load_rows(runs: Sequence[Path], keys: Sequence[str]) -> list[dict]:
    """One row per (run, split) with the values of ``keys`` from each run's resolved config."""
    rows = []
    for run in runs:
        record = json.loads((run / "metrics.json").read_text())
        values = {k: dotted(record.get("config", {}), k) for k in keys}
        for split, s in record["splits"].items():
            ci = s.get("f1_ci95") or [None, None]
            rows.append(
                {
                    "run": str(run),
                    **values,
                    "split": split,
                    "f1": s["f1"],
                    "ci_low": ci[0],
                    "ci_high": ci[1],
                    # don't-care: predictions on gold spans the label mapping removed are not counted
                    "f1_dontcare": s.get("f1_dontcare"),
                    "precision": s["precision"],
                    "recall": s["recall"],
                    "support": s["support"],
                    "sentences": s["sentences"],
                }
            )
    return rows


SCORES = {"strict": "f1", "dontcare": "f1_dontcare"}


def _check_score(score: str) -> None:
    if score not in SCORES:
        raise ValueError(f"score must be one of {', '.join(SCORES)}, got {score!r}")


def summarise(
    rows: Sequence[dict],
    x: str,
    series: Sequence[str],
    pairs: Sequence[tuple[str, str]],
    score: str = "strict",
) -> list[dict]:
    """Mean ± std over seeds per (series, x, split), plus the drop for each (in-domain, out-of-domain) pair.

    ``score`` is ``strict`` (seqeval strict F1) or ``dontcare`` (predictions overlapping gold spans that the
    label mapping removed are left out); runs recorded before don't-care scoring existed have none.
    """
    _check_score(score)
    group_keys = [*series, x]
    by_group: dict[tuple, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    for r in rows:
        if r.get(SCORES[score]) is not None:
            by_group[tuple(r[k] for k in group_keys)][r["run"]][r["split"]] = r[SCORES[score]]
    out = []
    for group, runs in sorted(by_group.items(), key=lambda kv: tuple(str(v) for v in kv[0])):
        base = dict(zip(group_keys, group, strict=True))
        splits = sorted({s for per in runs.values() for s in per})
        for split in splits:
            values = [per[split] for per in runs.values() if split in per]
            mean, std = mean_std(values)
            out.append(
                {
                    **base,
                    "score": score,
                    "split": split,
                    "metric": "f1",
                    "runs": len(values),
                    "mean": mean,
                    "std": std,
                    "values": " ".join(f"{v:.2f}" for v in values),
                }
            )
        for ind, ood in pairs:
            both = [per for per in runs.values() if ind in per and ood in per]
            if not both:
                continue
            drops = [per[ind] - per[ood] for per in both]
            rel = [100 * (per[ind] - per[ood]) / per[ind] for per in both if per[ind] > 0]
            mean, std = mean_std(drops)
            out.append(
                {
                    **base,
                    "score": score,
                    "split": f"{ind}->{ood}",
                    "metric": "drop",
                    "runs": len(drops),
                    "mean": mean,
                    "std": std,
                    "values": " ".join(f"{v:.2f}" for v in drops),
                }
            )
            if rel:
                mean, std = mean_std(rel)
                out.append(
                    {
                        **base,
                        "score": score,
                        "split": f"{ind}->{ood}",
                        "metric": "relative_drop_%",
                        "runs": len(rel),
                        "mean": mean,
                        "std": std,
                        "values": " ".join(f"{v:.2f}" for v in rel),
                    }
                )
    return out


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
    _check_score(score)  # any other value would silently score don't-care
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
        "value": cmp.f1_a,
        "baseline_value": cmp.f1_b,
        "delta": cmp.delta,
        "ci_low": cmp.low,
        "ci_high": cmp.high,
        "p_value": cmp.p_value,
        "significant": cmp.significant,
        "p_value_sentences_only": cmp_sentences.p_value,
        "ci_low_sentences_only": cmp_sentences.low,
        "ci_high_sentences_only": cmp_sentences.high,
    }


def write_csv(path: Path, rows: Sequence[dict]) -> None:
    """Write dict rows with the union of their keys as columns."""
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()})


def aggregate(
    roots: Sequence[str | Path],
    x: str,
    out: str | Path,
    series: Sequence[str] = (),
    pairs: Sequence[tuple[str, str]] = (),
    baseline: dict[str, str] | None = None,
    resamples: int = 1000,
    title: str = "",
    expect_runs: int | None = None,
    allow_incomplete: bool = False,
) -> dict[str, Path]:
    """Aggregate runs under ``roots``; returns the paths written.

    Raises:
        IncompleteResults: cells with fewer than ``expect_runs`` runs (default: the fullest cell's count)
            or unfinished run dirs under ``roots``, unless ``allow_incomplete`` (then logged as warnings).
    """
    out = Path(out)
    runs = find_runs(roots)
    if not runs:
        raise FileNotFoundError(f"no train-run metrics.json with test splits under {list(map(str, roots))}")
    rows = load_rows(runs, [*series, x, "seed"])
    problems = results_problems(rows, [*series, x], roots, expect_runs)
    if problems and not allow_incomplete:
        raise IncompleteResults(incomplete_message(problems, roots))
    for problem in problems:
        log.warning("aggregating incomplete results (--allow-incomplete): %s", problem)
    # runs.csv names runs relative to the input root, so it means the same on any machine
    base = os.path.commonpath([os.path.abspath(r) for r in roots])
    names = {str(r): Path(os.path.relpath(os.path.abspath(r), base)).as_posix() for r in runs}
    # both scores, side by side (the "score" column); plots show don't-care where every run has it
    summary = [row for score in SCORES for row in summarise(rows, x, series, pairs, score)]
    plotted = "dontcare" if all(r.get("f1_dontcare") is not None for r in rows) else "strict"
    written = {"runs": out / "runs.csv", "summary": out / "summary.csv", "spec": out / "aggregate.json"}
    out.mkdir(parents=True, exist_ok=True)
    written["spec"].write_text(
        json.dumps(
            {
                "x": x,
                "series": list(series),
                "pairs": [list(p) for p in pairs],
                "baseline": baseline,
                # no absolute path of this machine: the root relative to the working directory, runs to it
                "root": os.path.relpath(base),
                "runs": [names[str(r)] for r in runs],
                "incomplete": problems,
            },
            indent=2,
        )
    )
    write_csv(written["runs"], [{**r, "run": names[r["run"]]} for r in rows])
    write_csv(written["summary"], summary)
    if baseline:
        comparisons = [
            row
            for score in SCORES
            for row in compare_to_baseline(rows, x, series, baseline, resamples, pairs, score)
        ]
        if comparisons:
            written["comparisons"] = out / "comparisons.csv"
            write_csv(written["comparisons"], comparisons)
    name = x.replace(".", "_")
    for metric in ("f1", "drop"):
        shown = [r for r in summary if r["score"] == plotted]
        label = f"{title or f'{metric} vs {x}'} ({plotted} F1)"
        path = plot(shown, x, series, metric, out / f"{metric}_vs_{name}.png", label)
        if path:
            written[f"plot_{metric}"] = path
    log.info("aggregated %d runs into %s", len(runs), out)
    return written


def log_to_wandb(written: dict[str, Path], project: str = "xner", name: str = "aggregate") -> None:
    """Log the CSV tables and plots to a W&B run (offline when no API key is configured)."""
    import wandb  # noqa: PLC0415

    os.environ.setdefault("WANDB_MODE", "offline") if not os.environ.get("WANDB_API_KEY") else None
    run = wandb.init(project=project, name=name, job_type="aggregate")
    try:
        for key, path in written.items():
            if path.suffix == ".csv":
                with path.open() as handle:
                    rows = list(csv.reader(handle))
                run.log({key: wandb.Table(columns=rows[0], data=rows[1:])})
            elif path.suffix == ".png":
                run.log({key: wandb.Image(str(path))})
    finally:
        wandb.finish()


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(prog="python -m xner.aggregate", description=__doc__.split("\n\n")[0])
    parser.add_argument("roots", nargs="+", help="directories holding run dirs (multirun or sweep roots)")
    parser.add_argument("--x", required=True, help="the swept config key, e.g. distill.depth")
    parser.add_argument("--series", nargs="*", default=[], help="config keys that split runs into lines")
    parser.add_argument("--pair", action="append", default=[], help="in-domain:out-of-domain split names")
    parser.add_argument("--baseline", nargs="*", default=[], help="key=value of the reference group")
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--out", required=True)
    parser.add_argument("--title", default="")
    parser.add_argument("--wandb", action="store_true", help="also log tables and plots to W&B")
    parser.add_argument(
        "--expect-runs", type=int, default=None, help="runs per cell (default: as many as the fullest cell)"
    )
    parser.add_argument(
        "--allow-incomplete", action="store_true", help="warn about incomplete results instead of refusing"
    )
    args = parser.parse_args(argv)
    pairs = [tuple(p.split(":", 1)) for p in args.pair]
    baseline = dict(kv.split("=", 1) for kv in args.baseline) or None
    try:
        written = aggregate(
            args.roots, args.x, args.out, args.series, pairs, baseline, args.resamples, args.title,
            args.expect_runs, args.allow_incomplete,
        )  # fmt: skip
    except IncompleteResults as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for key, path in written.items():
        print(f"{key}: {path}")
    if args.wandb:
        log_to_wandb(written)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
