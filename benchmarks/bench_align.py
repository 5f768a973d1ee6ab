"""Batched embedding aligner vs the simalign package, side by side on the same real sentence pairs.

Both aligners use the same encoder (the converted multilingual-e5-small by default), layer and method, on the
first ``--n`` Lambert EPPS English-Spanish pairs. Timed: alignment only (models loaded and warmed up first).
To share out the load of other processes on the machine fairly, the pairs are cut into ``--slices`` slices
and the aligners take turns on each slice (in rotating order). Printed: pairs/s (wall) and CPU seconds per pair for each, the
speed ratio against the 10x target, the number of pairs whose links differ from the package's, the AER of
each, and the machine's load average before and after.

Usage: .venv/bin/python benchmarks/bench_align.py [--n 200] [--method itermax] [--layer 8] [--slices 4]
    [--batch-size 64] [--no-bf16] [--threads 2]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

import torch

from xner.paths import resolve_data_dir
from xner.pipeline.aer import alignment_scores, read_lambert
from xner.pipeline.align import EmbeddingAligner, SimAlignAligner

TARGET = 10.0


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures; returns the exit code."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=200, help="sentence pairs (Lambert has 400)")
    ap.add_argument("--method", default="itermax", choices=["argmax", "itermax", "match"])
    ap.add_argument("--layer", type=int, default=8)
    ap.add_argument(
        "--slices", type=int, default=4, help="turns per aligner (interleaved against load drift)"
    )
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--no-bf16", action="store_true", help="skip the bf16-autocast embedding aligner")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--model-dir", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    logging.getLogger("simalign.simalign").setLevel(logging.WARNING)  # the package logs each model load

    eng, spa, gold = read_lambert(resolve_data_dir(args.data_dir))
    eng, spa, gold = eng[: args.n], spa[: args.n], gold[: args.n]
    n = len(gold)
    load_before = os.getloadavg()

    aligners = {
        "simalign": SimAlignAligner(args.model_dir, layer=args.layer, method=args.method, progress=False)
    }
    aligners["embedding fp32"] = EmbeddingAligner(
        args.model_dir, layer=args.layer, method=args.method, batch_size=args.batch_size, progress=False
    )
    if not args.no_bf16:
        aligners["embedding bf16"] = EmbeddingAligner(
            args.model_dir,
            layer=args.layer,
            method=args.method,
            batch_size=args.batch_size,
            dtype=torch.bfloat16,
            progress=False,
        )
    for aligner in aligners.values():  # warm-up: first-call allocations and kernel selection
        aligner.align(eng[:4], spa[:4])

    links: dict[str, list] = {name: [] for name in aligners}
    wall = dict.fromkeys(aligners, 0.0)
    cpu = dict.fromkeys(aligners, 0.0)
    bounds = [round(k * n / args.slices) for k in range(args.slices + 1)]
    names = list(aligners)
    for turn, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        # Rotate who goes first so that no aligner always meets the same phase of the others' load.
        for name in names[turn % len(names) :] + names[: turn % len(names)]:
            aligner = aligners[name]
            w0, c0 = time.perf_counter(), time.process_time()
            links[name] += aligner.align(eng[lo:hi], spa[lo:hi])
            wall[name] += time.perf_counter() - w0
            cpu[name] += time.process_time() - c0
    load_after = os.getloadavg()

    print(
        f"{n} Lambert eng-spa pairs, method {args.method}, layer {args.layer}, torch threads {args.threads}, "
        f"{args.slices} interleaved slices, embedding batch {args.batch_size} sentences"
    )
    print(
        f"machine load average (1/5/15 min) before {_fmt(load_before)}, after {_fmt(load_after)} "
        f"on {os.cpu_count()} CPUs: figures are wall-clock on a CPU shared with other processes"
    )
    ref = links["simalign"]
    base = n / wall["simalign"]
    print(
        f"\n{'aligner':<16} {'pairs/s':>8} {'CPU s/pair':>10} {'x simalign':>10} {'AER':>7}  differing pairs"
    )
    differ = {name: sum(a != b for a, b in zip(links[name], ref, strict=True)) for name in aligners}
    for name in aligners:
        rate = n / wall[name]
        aer = alignment_scores(links[name], gold)["aer"]
        print(
            f"{name:<16} {rate:>8.1f} {cpu[name] / n:>10.3f} {rate / base:>10.1f} {aer:>7.4f}  "
            f"{'-' if name == 'simalign' else f'{differ[name]} of {n}'}"
        )
    print()
    for name in aligners:
        if name == "simalign":
            continue
        ratio = (n / wall[name]) / base
        verdict = "MET" if ratio >= TARGET else "NOT met"
        print(
            f"{name}: {ratio:.1f}x the package -> the {TARGET:.0f}x target is {verdict}; "
            f"alignments {'identical on every pair' if differ[name] == 0 else 'NOT identical'}"
        )
    return 0


def _fmt(load: tuple[float, float, float]) -> str:
    return "/".join(f"{x:.2f}" for x in load)


if __name__ == "__main__":
    sys.exit(main())
