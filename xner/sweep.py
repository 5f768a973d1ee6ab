"""Run a W&B sweep YAML locally, as sequential runs, when no W&B server is reachable.

The same file drives ``wandb sweep`` + ``wandb agent`` on many machines; here each parameter combination
(``grid``) or sample (``random``) becomes one command built from the YAML's ``command`` template, run one
after another with ``WANDB_MODE=offline``. Every run gets its own directory
``<out>/<sweep name>/<timestamp>/<k>``, and ``runs.jsonl`` there records each command, exit code, run
directory and whether the run completed: exited 0 *and* wrote ``metrics.json`` into its run directory (a run
that exits 0 without it, e.g. an interrupted one, is incomplete). The runner lists the runs that did not
complete and exits 1 when there are any.

    python -m xner.sweep sweeps/kd_depth.yaml [--count N] [--dry-run] [--out logs/sweeps] [-- key=value ...]

Everything after a lone ``--`` is passed through to every run as Hydra ``key=value`` overrides, e.g.
``python -m xner.sweep sweeps/kd_depth.yaml -- teacher_ckpt=<run dir>/checkpoints/best.ckpt trainer=gpu``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
import os
import random
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)

METHODS = ("grid", "random")  # the sweep methods the local runner can do (bayes needs a W&B server)
DISTRIBUTIONS = ("uniform", "int_uniform", "log_uniform_values", "q_uniform")  # besides value / values


def _sample(spec: Mapping[str, Any], rng: random.Random) -> Any:
    """Draw one value of a W&B parameter spec."""
    if "value" in spec:
        return spec["value"]
    if "values" in spec:
        return rng.choice(list(spec["values"]))
    dist = spec.get("distribution", "uniform" if isinstance(spec.get("min"), float) else "int_uniform")
    lo, hi = spec["min"], spec["max"]
    if dist == "uniform":
        return rng.uniform(lo, hi)
    if dist == "int_uniform":
        return rng.randint(int(lo), int(hi))
    if dist == "log_uniform_values":
        return math.exp(rng.uniform(math.log(lo), math.log(hi)))
    if dist == "q_uniform":
        q = spec.get("q", 1)
        return round(rng.uniform(lo, hi) / q) * q
    raise ValueError(
        f"distribution {dist!r} is not supported by the local runner (use a W&B server); it samples "
        f"'value', 'values' or the distributions {', '.join(DISTRIBUTIONS)}"
    )


def parameter_sets(
    sweep: Mapping[str, Any], count: int | None = None, seed: int = 0
) -> Iterator[dict[str, Any]]:
    """Parameter combinations of a sweep: the full grid, or ``count`` random samples.

    Raises:
        ValueError: a grid over a continuous distribution, or a method the local runner lacks (bayes).
    """
    params: Mapping[str, Mapping] = sweep.get("parameters", {})
    method = sweep.get("method", "grid")
    if method == "grid":
        names, choices = [], []
        for name, spec in params.items():
            if "values" in spec:
                choices.append(list(spec["values"]))
            elif "value" in spec:
                choices.append([spec["value"]])
            else:
                raise ValueError(
                    f"grid sweep parameter {name!r} needs 'values' or 'value', not a distribution"
                )
            names.append(name)
        combos = itertools.product(*choices)
        for k, combo in enumerate(combos):
            if count is not None and k >= count:
                return
            yield dict(zip(names, combo, strict=True))
    elif method == "random":
        rng = random.Random(seed)
        n = count if count is not None else 10
        for _ in range(n):
            yield {name: _sample(spec, rng) for name, spec in params.items()}
    else:
        raise ValueError(
            f"sweep method {method!r} needs a W&B server; the local runner does {' and '.join(METHODS)}"
        )


def _format(value: Any) -> str:
    if isinstance(value, float):
        return repr(round(value, 6))
    if isinstance(value, list | tuple):
        return "[" + ",".join(_format(v) for v in value) + "]"
    return str(value)


def build_command(sweep: Mapping[str, Any], params: Mapping[str, Any], extra: list[str]) -> list[str]:
    """Expand the sweep's ``command`` template the way ``wandb agent`` does."""
    args = [f"{k}={_format(v)}" for k, v in params.items()]
    template = sweep.get("command") or ["${env}", "${interpreter}", "${program}", "${args}"]
    cmd: list[str] = []
    for part in template:
        if part == "${env}":
            continue
        if part == "${interpreter}":
            cmd.append(sys.executable)
        elif part == "${program}":
            cmd.append(sweep["program"])
        elif part in ("${args_no_hyphens}",):
            cmd += args
        elif part == "${args}":
            cmd += [f"--{a}" for a in args]
        else:
            cmd.append(part)
    return cmd + list(extra)


@dataclass
class SweepResult:
    """What a local sweep did.

    Attributes:
        root: the sweep directory (holding ``runs.jsonl`` and one run directory per run).
        records: one record per run made, as written to ``runs.jsonl`` (none for a dry run).
        planned: the number of runs of the sweep.
    """

    root: Path
    records: list[dict] = field(default_factory=list)
    planned: int = 0

    @property
    def incomplete(self) -> list[dict]:
        """Records of the runs that failed or exited 0 without writing ``metrics.json``."""
        return [r for r in self.records if not r["complete"]]

    def report(self) -> str:
        """One line on the sweep, then one per run that did not complete."""
        done = len(self.records) - len(self.incomplete)
        jsonl = self.root / "runs.jsonl"
        lines = [f"{done} of {self.planned} runs complete (metrics.json written); see {jsonl}"]
        for r in self.incomplete:
            why = (
                f"exited with {r['returncode']}"
                if r["returncode"] != 0
                else "exited 0 but wrote no metrics.json (interrupted?)"
            )
            lines.append(f"  run {r['run']} {why}: {r['run_dir']}\n    {shlex.join(r['command'])}")
        return "\n".join(lines)


def run_sweep(
    path: str | Path,
    count: int | None = None,
    out: str | Path = "logs/sweeps",
    dry_run: bool = False,
    extra: list[str] | None = None,
    seed: int = 0,
) -> SweepResult:
    """Run every command of a sweep sequentially.

    A run is complete when it exits 0 and its run directory (given to it as ``hydra.run.dir=``) holds
    ``metrics.json``; a run that fails or is incomplete does not stop the sweep.

    Returns:
        The sweep directory and one record per run (``complete`` says whether it completed).
    """
    sweep = yaml.safe_load(Path(path).read_text())
    name = sweep.get("name") or Path(path).stem
    root = Path(out) / name / datetime.now().strftime("%Y-%m-%d_%H-%M-%S-%f")
    env = dict(os.environ)
    env.setdefault("WANDB_MODE", "offline")
    runs = list(parameter_sets(sweep, count, seed))
    if not dry_run:
        root.mkdir(parents=True, exist_ok=True)
    result = SweepResult(root, planned=len(runs))
    for k, params in enumerate(runs):
        run_dir = root / str(k)
        cmd = build_command(sweep, params, [*(extra or []), f"hydra.run.dir={run_dir}"])
        print(f"[{k + 1}/{len(runs)}] {shlex.join(cmd)}", flush=True)
        if dry_run:
            continue
        start = time.perf_counter()
        rc = subprocess.run(cmd, env=env).returncode
        record = {
            "run": k,
            "params": params,
            "command": cmd,
            "returncode": rc,
            "complete": rc == 0 and (run_dir / "metrics.json").is_file(),
            "run_dir": str(run_dir),
            "seconds": round(time.perf_counter() - start, 1),
        }
        result.records.append(record)
        with (root / "runs.jsonl").open("a") as handle:
            handle.write(json.dumps(record) + "\n")
    return result


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    parser = argparse.ArgumentParser(
        prog="python -m xner.sweep",
        usage="%(prog)s SWEEP [--count N] [--out DIR] [--seed N] [--dry-run] [-- key=value ...]",
        description=__doc__.split("\n\n")[0],
        epilog=(
            "Hydra overrides for every run go after a lone --, as key=value: they are appended to each run's\n"
            "command after the swept parameters (the runner adds hydra.run.dir=<out>/<name>/<time>/<k>). E.g.\n"
            "  python -m xner.sweep sweeps/kd_depth.yaml --dry-run -- "
            "teacher_ckpt=logs/model_transfer/runs/<run>/checkpoints/best.ckpt\n"
            "  python -m xner.sweep sweeps/kd_depth.yaml --count 3 -- trainer=gpu data.test_limit=500\n"
            "Exit status: 0 when every run completed (exited 0 and wrote metrics.json), 1 otherwise."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("sweep", help="a W&B sweep YAML")
    parser.add_argument(
        "--count", type=int, default=None, help="runs to make (random: samples; grid: first N)"
    )
    parser.add_argument("--out", default="logs/sweeps", help="root of the sweep directories")
    parser.add_argument("--seed", type=int, default=0, help="seed of random sampling")
    parser.add_argument("--dry-run", action="store_true", help="print the commands only")
    args = parser.parse_args(argv)
    if not Path(args.sweep).is_file():
        found = sorted(str(p) for p in Path("sweeps").glob("*.yaml"))  # relative to the project root
        parser.error(f"no sweep file {args.sweep}" + (f"; sweeps here: {', '.join(found)}" if found else ""))
    try:
        result = run_sweep(args.sweep, args.count, args.out, args.dry_run, extra, args.seed)
    except (
        ValueError
    ) as err:  # the sweep asks for what the local runner cannot do; the message says what it can
        parser.error(str(err))
    if args.dry_run:
        return 0
    print(f"sweep runs in {result.root}")
    print(result.report(), file=sys.stderr if result.incomplete else sys.stdout)
    return 1 if result.incomplete else 0


if __name__ == "__main__":
    raise SystemExit(main())
