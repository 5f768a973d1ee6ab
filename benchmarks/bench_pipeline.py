"""End-to-end translate-train of the full CoNLL-2003 English train set into Spanish: translate + align + project.

    .venv/bin/python benchmarks/bench_pipeline.py [--method heuristic] [--limit N] [--cache DIR] [key=value ...]

Runs the real pipeline (Apertium eng->spa in null-flush mode, the batched embedding aligner on
multilingual-e5-small layer 8 with itermax, the projection method) with a stage cache that holds none of its
entries (a fresh temporary directory by default; an existing directory is checked to be cold for this spec),
and prints the wall time of each stage, sentences/s and the target (<= 15 min on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from xner.pipeline.cache import StageCache
from xner.pipeline.methods import method_names
from xner.pipeline.run import Pipeline, load_spec

SPEC = Path(__file__).resolve().parents[1] / "configs" / "pipeline" / "spa_translate_train.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--method", default="heuristic", choices=method_names())
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--cache", default=None, help="stage cache dir (default: a fresh temporary one)")
    parser.add_argument("overrides", nargs="*", help=f"key=value overrides of {SPEC.name}")
    args = parser.parse_args()
    torch.set_num_threads(2)
    cache = StageCache(args.cache or tempfile.mkdtemp(prefix="bench_pipeline_"))
    overrides = [f"method={args.method}", *([f"limit={args.limit}"] if args.limit else []), *args.overrides]
    spec = load_spec(SPEC, overrides)
    pipeline = Pipeline(spec, cache=cache, progress=True)
    if cache.exists(pipeline.output_key()):
        raise SystemExit(
            f"{cache.root} already holds this projected set: pass an empty --cache for a cold run"
        )
    load_start = os.getloadavg()[0]
    start = time.perf_counter()
    output = pipeline.run_and_store()
    total = time.perf_counter() - start
    n = output.meta["sentences_in"]
    print(
        json.dumps(
            {k: v for k, v in output.meta.items() if k in ("projection", "skipped_sentences")}, indent=1
        )
    )
    print(
        f"{n} sentences, method {args.method}: total {total / 60:.1f} min ({n / total:.1f} sentences/s); "
        f"stages (s): {pipeline.timings}"
    )
    print(f"load average at start {load_start:.2f}, at end {os.getloadavg()[0]:.2f} (2 cores)")
    print(f"target <= 15 min on 2 cores: {'met' if total <= 900 else 'NOT met'}")


if __name__ == "__main__":
    main()
