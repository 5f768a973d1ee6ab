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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from xner.aggregate_compare import (  # noqa: F401 - baseline_group, is_baseline_group: public here too
    SCORES,
    baseline_group,
    check_score,
    compare_to_baseline,
    is_baseline_group,
)
from xner.aggregate_plots import plot
from xner.completeness import IncompleteResults, incomplete_message, results_problems
from xner.stats import mean_std
from xner.tables import write_csv

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
    check_score(score)
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
            out.append(_summary_row(base, score, split, "f1", values))
        for ind, ood in pairs:
            both = [per for per in runs.values() if ind in per and ood in per]
            if not both:
                continue
            drops = [per[ind] - per[ood] for per in both]
            rel = [100 * (per[ind] - per[ood]) / per[ind] for per in both if per[ind] > 0]
            out.append(_summary_row(base, score, f"{ind}->{ood}", "drop", drops))
            if rel:
                out.append(_summary_row(base, score, f"{ind}->{ood}", "relative_drop_%", rel))
    return out


def _summary_row(base: dict, score: str, split: str, metric: str, values: Sequence[float]) -> dict:
    """One summary.csv row: mean ± std over the runs' ``values``, which are kept too."""
    mean, std = mean_std(values)
    return {
        **base,
        "score": score,
        "split": split,
        "metric": metric,
        "runs": len(values),
        "mean": mean,
        "std": std,
        "values": " ".join(f"{v:.2f}" for v in values),
    }


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
    write_csv(written["runs"], [{**r, "run": names[r["run"]]} for r in rows], ".4f")
    write_csv(written["summary"], summary, ".4f")
    if baseline:
        comparisons = [
            row
            for score in SCORES
            for row in compare_to_baseline(rows, x, series, baseline, resamples, pairs, score)
        ]
        if comparisons:
            written["comparisons"] = out / "comparisons.csv"
            write_csv(written["comparisons"], comparisons, ".4f")
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
