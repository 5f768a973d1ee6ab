"""Batched embedding aligner vs the simalign package, side by side on the same real sentence pairs.

Both aligners use the same encoder (the converted multilingual-e5-small by default), layer and method, on the
first ``--n`` Lambert EPPS English-Spanish pairs. Timed: alignment only (models loaded and warmed up first).
Each of ``--rounds`` rounds gives every aligner the whole set in one call, as the pipeline does (it aligns
chunks of 2,048 pairs), in rotating order, so that load from other processes hits them alike. Printed:
pairs/s (wall, over all rounds) and CPU seconds per pair, the speed ratio to the package, the number of pairs
whose links differ from the package's, the AER of each; for the batched aligners, the time split into
tokenise+encode and extraction, and the encoder's matmul floor at the peak measured in the same run
(2048x2048 matmuls in its precision) with the share of it reached; the machine's load before and after.
``--profile`` prints the encoder's top operators.

Usage: .venv/bin/python benchmarks/bench_align.py [--n 200] [--method itermax] [--layer 8] [--rounds 3]
    [--batch-size 64] [--no-bf16] [--threads 2] [--profile]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

import torch
from measure import encoder_flops, matmul_peak, print_top_ops  # benchmarks/measure.py (on sys.path)

from xner.paths import resolve_data_dir
from xner.pipeline.aer import alignment_scores, read_lambert
from xner.pipeline.align import EmbeddingAligner, SimAlignAligner


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures; returns the exit code."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=200, help="sentence pairs (Lambert has 400)")
    ap.add_argument("--method", default="itermax", choices=["argmax", "itermax", "match"])
    ap.add_argument("--layer", type=int, default=8)
    ap.add_argument(
        "--rounds", type=int, default=3, help="times each aligner aligns the whole set (interleaved)"
    )
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--no-bf16", action="store_true", help="skip the bf16-autocast embedding aligner")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--model-dir", default=None)
    ap.add_argument(
        "--profile", action="store_true", help="print the encoder's top operators (fp32 and bf16)"
    )
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

    peak = {"embedding fp32": matmul_peak(torch.float32), "embedding bf16": matmul_peak(torch.bfloat16)}
    distinct = list(dict.fromkeys([tuple(s) for s in eng] + [tuple(t) for t in spa]))
    links: dict[str, list] = {}
    wall = dict.fromkeys(aligners, 0.0)
    cpu = dict.fromkeys(aligners, 0.0)
    first = dict.fromkeys(aligners, 0.0)
    phases = {name: {"encode": 0.0, "extract": 0.0} for name in aligners if name != "simalign"}
    names = list(aligners)
    for turn in range(args.rounds):
        # Rotate who goes first so that no aligner always meets the same phase of the others' load.
        for name in names[turn % len(names) :] + names[: turn % len(names)]:
            aligner = aligners[name]
            w0, c0 = time.perf_counter(), time.process_time()
            if name == "simalign":
                result = aligner.align(eng, spa)
            else:  # what align() does, with its two phases timed apart
                encoded = aligner.encode(distinct, [args.layer])
                w1 = time.perf_counter()
                result = [
                    aligner.align_encoded(
                        encoded[tuple(s)], encoded[tuple(t)], args.layer, args.method, False
                    )
                    for s, t in zip(eng, spa, strict=True)
                ]
                phases[name]["encode"] += w1 - w0
                phases[name]["extract"] += time.perf_counter() - w1
            wall[name] += time.perf_counter() - w0
            cpu[name] += time.process_time() - c0
            if turn == 0:  # the first call meets every batch shape for the first time
                first[name] = time.perf_counter() - w0
            links.setdefault(name, result)
    load_after = os.getloadavg()
    config = aligners["embedding fp32"].model.config
    lengths = [len(e.word_ids) for e in aligners["embedding fp32"].encode(distinct, [args.layer]).values()]
    flops = sum(encoder_flops(config, 1, width, layers=args.layer) for width in lengths)

    print(
        f"{n} Lambert eng-spa pairs ({len(distinct)} distinct sentences, {sum(lengths)} subwords), method "
        f"{args.method}, layer {args.layer}, torch threads {args.threads}, {args.rounds} interleaved rounds of the "
        f"whole set, embedding batch {args.batch_size} sentences"
    )
    print(
        f"machine load average (1/5/15 min) before {_fmt(load_before)}, after {_fmt(load_after)} "
        f"on {os.cpu_count()} CPUs; matmul peak fp32 {peak['embedding fp32']:.0f}, bf16 "
        f"{peak['embedding bf16']:.0f} GFLOP/s"
    )
    ref = links["simalign"]
    total = n * args.rounds
    base = total / wall["simalign"]
    print(
        f"\n{'aligner':<16} {'pairs/s':>8} {'1st round':>9} {'CPU s/pair':>10} {'x simalign':>10} {'AER':>7}  "
        f"{'differing pairs':<16} {'encode s':>8} {'extract s':>9} {'floor s':>7} {'% peak':>6}"
    )
    differ = {name: sum(a != b for a, b in zip(links[name], ref, strict=True)) for name in aligners}
    for name in aligners:
        rate = total / wall[name]
        aer = alignment_scores(links[name], gold)["aer"]
        row = (
            f"{name:<16} {rate:>8.1f} {n / first[name]:>9.1f} {cpu[name] / total:>10.3f} {rate / base:>10.1f} {aer:>7.4f}  "
            f"{'-' if name == 'simalign' else f'{differ[name]} of {n}':<16}"
        )
        if name in phases:
            enc, ext = (phases[name][k] / args.rounds for k in ("encode", "extract"))
            floor = flops / (peak[name] * 1e9)
            row += f" {enc:>8.2f} {ext:>9.2f} {floor:>7.2f} {100 * floor / (enc + ext):>6.1f}"
        print(row)
    print(
        "\n1st round: pairs/s of the first call alone (new batch shapes). encode/extract s: per round (tokenise + encode the distinct sentences; extraction of every pair). "
        "floor s: the encoder's matmul FLOPs over the real subwords (no padding) at the measured peak."
    )
    if args.profile:
        for name in phases:
            profile_encoder(aligners[name], distinct, args.layer)
    return 0


def profile_encoder(aligner: EmbeddingAligner, sentences: list, layer: int, top: int = 8) -> None:
    """Print the operators with the most self CPU time while the aligner encodes ``sentences``."""
    from torch.profiler import ProfilerActivity, profile  # noqa: PLC0415 - only with --profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        aligner.encode(sentences, [layer])
    print_top_ops(prof, f"{aligner.dtype}, encoding {len(sentences)} sentences", top)


def _fmt(load: tuple[float, float, float]) -> str:
    return "/".join(f"{x:.2f}" for x in load)


if __name__ == "__main__":
    sys.exit(main())
