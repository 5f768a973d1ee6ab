"""Run a W&B sweep YAML locally, as sequential runs, when no W&B server is reachable.

The same file drives ``wandb sweep`` + ``wandb agent`` on many machines; here each parameter combination
(``grid``) or sample (``random``) becomes one command built from the YAML's ``command`` template, run one
after another with ``WANDB_MODE=offline``. Every run gets its own directory
``<out>/<sweep name>/<timestamp>/<k>``, and ``runs.jsonl`` there records each command, exit code and
run directory.

    python -m xner.sweep sweeps/kd_depth.yaml [--count N] [--dry-run] [--out logs/sweeps] [-- extra=override]
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
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)


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
    raise ValueError(f"distribution {dist!r} is not supported by the local runner (use a W&B server)")


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
        raise ValueError(f"sweep method {method!r} needs a W&B server; the local runner does grid and random")


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


def run_sweep(
    path: str | Path,
    count: int | None = None,
    out: str | Path = "logs/sweeps",
    dry_run: bool = False,
    extra: list[str] | None = None,
    seed: int = 0,
) -> Path:
    """Run every command of a sweep sequentially; returns the sweep directory."""
    sweep = yaml.safe_load(Path(path).read_text())
    name = sweep.get("name") or Path(path).stem
    root = Path(out) / name / datetime.now().strftime("%Y-%m-%d_%H-%M-%S-%f")
    env = dict(os.environ)
    env.setdefault("WANDB_MODE", "offline")
    runs = list(parameter_sets(sweep, count, seed))
    if not dry_run:
        root.mkdir(parents=True, exist_ok=True)
    failures = 0
    for k, params in enumerate(runs):
        run_dir = root / str(k)
        cmd = build_command(sweep, params, [*(extra or []), f"hydra.run.dir={run_dir}"])
        print(f"[{k + 1}/{len(runs)}] {shlex.join(cmd)}", flush=True)
        if dry_run:
            continue
        start = time.perf_counter()
        rc = subprocess.run(cmd, env=env).returncode
        failures += rc != 0
        record = {
            "run": k,
            "params": params,
            "command": cmd,
            "returncode": rc,
            "run_dir": str(run_dir),
            "seconds": round(time.perf_counter() - start, 1),
        }
        with (root / "runs.jsonl").open("a") as handle:
            handle.write(json.dumps(record) + "\n")
    if failures:
        print(f"{failures} of {len(runs)} runs failed; see {root / 'runs.jsonl'}", file=sys.stderr)
    return root


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    parser = argparse.ArgumentParser(prog="python -m xner.sweep", description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep", help="a W&B sweep YAML")
    parser.add_argument(
        "--count", type=int, default=None, help="runs to make (random: samples; grid: first N)"
    )
    parser.add_argument("--out", default="logs/sweeps", help="root of the sweep directories")
    parser.add_argument("--seed", type=int, default=0, help="seed of random sampling")
    parser.add_argument("--dry-run", action="store_true", help="print the commands only")
    args = parser.parse_args(argv)
    root = run_sweep(args.sweep, args.count, args.out, args.dry_run, extra, args.seed)
    if not args.dry_run:
        print(f"sweep runs in {root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
