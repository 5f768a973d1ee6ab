"""What is finished: run dirs, the jobs of a Hydra multirun, the cells of an aggregate.

A run directory is complete if and only if it holds ``metrics.json`` (written last, atomically, and only by a
run that finished). Nothing downstream counts any other directory as a finished run:

- :func:`check_multirun` tells whether every job of a multirun (``train.py -m <overrides>``) finished; the
  study script marks a cell done only then::

      python -m xner.completeness check-multirun <sweep dir> <overrides...>

  exits 0 when every job dir ``<sweep dir>/<job num>`` holds ``metrics.json``, else 1 and names the missing
  jobs with their overrides;
- :func:`incomplete_run_dirs` finds run dirs (with ``.hydra/`` or ``checkpoints/``) that never finished;
- :func:`results_problems` checks that every (series, x) cell of an aggregate has as many runs as expected.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

METRICS = "metrics.json"
JOB_SUBDIR = "${hydra.job.num}"


class IncompleteResults(RuntimeError):
    """Runs that did not finish, or cells with fewer runs than expected, where finished ones were expected."""


def is_complete(run_dir: str | Path) -> bool:
    """Whether a run dir holds ``metrics.json``, i.e. its run finished."""
    return (Path(run_dir) / METRICS).is_file()


def multirun_jobs(overrides: Sequence[str]) -> list[list[str]]:
    """The jobs of ``train.py -m <overrides>``: each job's overrides, in job-number order.

    Expands the overrides the way Hydra's basic sweeper does (the product of every sweep, e.g.
    ``seed=1,2,3 distill.depth=0,1`` gives 6 jobs, the last key varying fastest; a later override of a key
    replaces an earlier one). Hydra's own grammar splits the values, so commas inside braces, brackets or
    quotes (``data.train={ref: 'x', limit: 2}``) are not sweeps, and ``range(...)``/``choice(...)`` are.

    Args:
        overrides: the multirun's command-line overrides (``-m``/``--multirun`` are ignored). Sweeps set in a
            config's ``hydra.sweeper.params`` are not seen.

    Returns:
        One list of ``key=value`` strings per job.

    Raises:
        ValueError: an override Hydra cannot parse, or a sweep it cannot enumerate (``interval``).
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser  # noqa: PLC0415
    from hydra.errors import HydraException  # noqa: PLC0415

    lines = [o for o in overrides if o not in ("-m", "--multirun")]
    try:
        parsed = OverridesParser.create().parse_overrides(lines)
    except HydraException as err:
        raise ValueError(f"cannot parse the multirun overrides {lines}: {err}") from err
    choices: dict[str, list[str]] = {}
    for override in parsed:
        key = override.get_key_element()
        if not override.is_sweep_override():
            choices[key] = [f"{key}={override.get_value_element_as_str()}"]
        elif override.is_discrete_sweep():
            choices[key] = [f"{key}={v}" for v in override.sweep_string_iterator()]
        else:
            raise ValueError(
                f"{override.input_line!r} is a {override.value_type.name} sweep, which a multirun cannot "
                "enumerate: use a comma list, range(...) or choice(...)"
            )
    return [list(job) for job in itertools.product(*choices.values())]


@dataclass
class MultirunStatus:
    """Which jobs of a multirun finished.

    Attributes:
        sweep_dir: the multirun's ``hydra.sweep.dir``.
        jobs: every job's overrides, in job-number order (job ``n`` runs in ``sweep_dir/n``).
        missing: job numbers whose dir holds no ``metrics.json``.
        stale: job numbers whose dir finished, but with other values of the swept keys (from an earlier
            multirun with other sweep values); their results are not the ones asked for.
    """

    sweep_dir: Path
    jobs: list[list[str]]
    missing: list[int] = field(default_factory=list)
    stale: list[int] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Every job finished, with the values asked for."""
        return not self.missing and not self.stale

    def report(self) -> str:
        """What is missing, one line per job, and how to proceed."""
        done = len(self.jobs) - len(self.missing) - len(self.stale)
        lines = [f"{self.sweep_dir}: {done} of {len(self.jobs)} jobs finished (hold {METRICS})"]
        for n in self.missing:
            lines.append(f"  job {n} ({self._swept(n)}): no {METRICS} in {self.sweep_dir / str(n)}")
        for n in self.stale:
            lines.append(
                f"  job {n} ({self._swept(n)}): {self.sweep_dir / str(n)} finished with other sweep values "
                "(see its .hydra/overrides.yaml)"
            )
        if not self.complete:
            lines.append("  rerun the same multirun into the same sweep dir (interrupted jobs resume).")
        return "\n".join(lines)

    def _swept(self, n: int) -> str:
        keys = set(swept_keys(self.jobs))
        return " ".join(item for item in self.jobs[n] if item.partition("=")[0] in keys) or "single job"


def swept_keys(jobs: Sequence[Sequence[str]]) -> list[str]:
    """The keys that take more than one value across the jobs of a multirun (from :func:`multirun_jobs`)."""
    values: dict[str, set[str]] = defaultdict(set)
    for job in jobs:
        for item in job:
            key, _, value = item.partition("=")
            values[key].add(value)
    return [k for k, v in values.items() if len(v) > 1]


def check_multirun(sweep_dir: str | Path, overrides: Sequence[str]) -> MultirunStatus:
    """Whether every job of ``train.py -m <overrides>`` with job dirs ``<sweep_dir>/<job num>`` finished.

    A job whose dir holds ``.hydra/overrides.yaml`` is also checked against the swept values it should have
    run with (the other overrides, e.g. ``trainer=gpu``, may differ without making it stale).

    Args:
        sweep_dir: the multirun's ``hydra.sweep.dir``.
        overrides: the multirun's overrides (as passed to ``train.py -m``).

    Raises:
        ValueError: overrides that set ``hydra.sweep.subdir`` to something other than ``${hydra.job.num}``
            (the job dirs could not be found), or that :func:`multirun_jobs` refuses.
    """
    sweep_dir = Path(sweep_dir)
    jobs = multirun_jobs(overrides)
    subdirs = {i.partition("=")[2] for job in jobs for i in job if i.startswith("hydra.sweep.subdir=")}
    if subdirs - {JOB_SUBDIR.replace("{", "\\{").replace("}", "\\}"), JOB_SUBDIR}:
        raise ValueError(
            f"hydra.sweep.subdir is {sorted(subdirs)}, expected '{JOB_SUBDIR}' (the job dirs must be "
            f"<sweep dir>/<job num> to be found): drop the override or set hydra.sweep.subdir='{JOB_SUBDIR}'"
        )
    keys = set(swept_keys(jobs))
    status = MultirunStatus(sweep_dir, jobs)
    for n, job in enumerate(jobs):
        job_dir = sweep_dir / str(n)
        if not is_complete(job_dir):
            status.missing.append(n)
            continue
        recorded = job_dir / ".hydra" / "overrides.yaml"
        if keys and recorded.is_file():
            ran = set(yaml.safe_load(recorded.read_text()) or [])
            if any(item not in ran for item in job if item.partition("=")[0] in keys):
                status.stale.append(n)
    return status


def incomplete_run_dirs(roots: Iterable[str | Path]) -> list[Path]:
    """Run dirs under ``roots`` that never finished: with ``.hydra/`` or ``checkpoints/`` but no metrics.json.

    A run dir's own subdirectories are not searched.
    """
    found = []
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            if ".hydra" in dirnames or "checkpoints" in dirnames:
                if METRICS not in filenames:
                    found.append(Path(dirpath))
                dirnames.clear()
    return sorted(found)


def cell_run_counts(rows: Iterable[dict], keys: Sequence[str]) -> dict[tuple, int]:
    """The number of distinct runs (``row["run"]``) per cell, a cell being the values of ``keys``."""
    runs: dict[tuple, set] = defaultdict(set)
    for r in rows:
        runs[tuple(r.get(k) for k in keys)].add(r["run"])
    return {cell: len(v) for cell, v in runs.items()}


def results_problems(
    rows: Iterable[dict],
    keys: Sequence[str],
    roots: Iterable[str | Path],
    expect_runs: int | None = None,
) -> list[str]:
    """What is incomplete in a set of results: cells with fewer runs than expected, and unfinished run dirs.

    Args:
        rows: rows with ``"run"`` and the values of ``keys`` (as :func:`xner.aggregate.load_rows` makes).
        keys: the config keys that make a cell (the series keys and x).
        roots: the directories the runs were found under (searched for unfinished run dirs).
        expect_runs: runs every cell must have; ``None``: as many as the fullest cell.

    Returns:
        One message per problem (empty when complete).
    """
    counts = cell_run_counts(rows, keys)
    expected = expect_runs if expect_runs is not None else max(counts.values(), default=0)
    problems = []
    for cell, n in sorted(counts.items(), key=lambda kv: tuple(str(v) for v in kv[0])):
        if n < expected:
            named = ", ".join(f"{k}={v}" for k, v in zip(keys, cell, strict=True))
            problems.append(f"cell ({named}) has {n} of {expected} runs")
    for run_dir in incomplete_run_dirs(roots):
        problems.append(f"unfinished run (no {METRICS}): {run_dir}")
    return problems


def incomplete_message(problems: Sequence[str], roots: Iterable[str | Path]) -> str:
    """The error for incomplete results: what was found, where, and how to proceed."""
    return (
        f"incomplete results under {[str(r) for r in roots]}:\n  "
        + "\n  ".join(problems)
        + "\nFinish the missing runs (rerun the multirun or sweep: interrupted runs resume from their "
        "run dir), delete unfinished run dirs you will not finish, set --expect-runs N (expect_runs=N) if "
        "fewer runs per cell are intended, or pass --allow-incomplete (allow_incomplete=True) to aggregate "
        "anyway, with these warnings."
    )


def main(argv: list[str] | None = None) -> int:
    """CLI: ``check-multirun <sweep dir> <overrides...>``; exit 0 complete, 1 incomplete, 2 bad input."""
    parser = argparse.ArgumentParser(prog="python -m xner.completeness", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser(
        "check-multirun",
        help="exit 0 when every job of a multirun holds metrics.json, else 1 (and name the missing jobs)",
        usage="python -m xner.completeness check-multirun [--quiet] SWEEP_DIR [key=value ...]",
    )
    check.add_argument("sweep_dir", help="the multirun's hydra.sweep.dir (job dirs <sweep_dir>/<job num>)")
    check.add_argument("overrides", nargs=argparse.REMAINDER, help="the overrides given to train.py -m")
    check.add_argument("--quiet", action="store_true", help="print nothing; only the exit status")
    args = parser.parse_args(argv)
    try:
        status = check_multirun(args.sweep_dir, args.overrides)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(status.report(), file=sys.stdout if status.complete else sys.stderr)
    return 0 if status.complete else 1


if __name__ == "__main__":
    raise SystemExit(main())
