"""Alignment quality on the Lambert EPPS English-Spanish gold: precision / recall / F1 / AER per aligner.

Rows: the batched embedding aligner for every method x layer (one encoding of the sentences serves them all),
the ``drop_bare_metaspace`` variant of itermax at the best itermax layer, and the simalign package (itermax at
layer 8 by default) as a cross-check, with the number of pairs where its links differ from the embedding
aligner's.

Usage:
    .venv/bin/python scripts/eval_alignment.py [--layers 6 8] [--methods argmax itermax match softmax]
        [--n 400] [--dtype float32] [--simalign-layer 8] [--no-simalign] [--out results.csv]
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import torch

from xner.paths import resolve_data_dir
from xner.pipeline.aer import alignment_scores, read_lambert
from xner.pipeline.align import METHODS, EmbeddingAligner, SimAlignAligner

COLUMNS = ["aligner", "layer", "method", "variant", "precision", "recall", "f1", "aer", "links", "seconds"]


def main(argv: list[str] | None = None) -> int:
    """Run the evaluation and print the table; returns the exit code."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--data-dir", default=None, help="shared data root (default: $XNER_DATA or ../shared/data)"
    )
    ap.add_argument(
        "--model-dir", default=None, help="encoder (default: the converted multilingual-e5-small)"
    )
    ap.add_argument("--layers", type=int, nargs="+", default=[6, 8])
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--n", type=int, default=None, help="use only the first N pairs (default: all 400)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--threshold", type=float, default=1e-3, help="softmax threshold")
    ap.add_argument("--simalign-layer", type=int, default=8)
    ap.add_argument("--no-simalign", action="store_true", help="skip the simalign package cross-check")
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument("--out", type=Path, default=None, help="also write the rows as CSV")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    eng, spa, gold = read_lambert(resolve_data_dir(args.data_dir))
    if args.n is not None:
        eng, spa, gold = eng[: args.n], spa[: args.n], gold[: args.n]
    print(
        f"Lambert EPPS eng-spa: {len(gold)} pairs, {sum(len(s) for s, _ in gold)} Sure links, "
        f"{sum(len(p) for _, p in gold)} Possible (incl. Sure)",
        flush=True,
    )

    emb = EmbeddingAligner(
        args.model_dir,
        layer=max(args.layers),
        batch_size=args.batch_size,
        dtype=args.dtype,
        softmax_threshold=args.threshold,
    )
    rows: list[dict] = []
    variants = [(layer, method, False) for layer in args.layers for method in args.methods]
    start = time.perf_counter()
    results = emb.align_variants(eng, spa, variants)
    seconds = time.perf_counter() - start
    for layer, method, drop in variants:
        rows.append(_row("embedding", layer, method, "", results[(layer, method, drop)], gold, seconds))

    itermax = [r for r in rows if r["method"] == "itermax"]
    if itermax:
        best = min(itermax, key=lambda r: r["aer"])["layer"]
        start = time.perf_counter()
        nobare = emb.align_variants(eng, spa, [(best, "itermax", True)])[(best, "itermax", True)]
        rows.append(
            _row(
                "embedding", best, "itermax", "drop_bare_metaspace", nobare, gold, time.perf_counter() - start
            )
        )

    if not args.no_simalign:
        layer = args.simalign_layer
        ref = SimAlignAligner(args.model_dir, layer=layer, method="itermax")
        start = time.perf_counter()
        links = ref.align(eng, spa)
        rows.append(_row("simalign", layer, "itermax", "package", links, gold, time.perf_counter() - start))
        mine = results.get((layer, "itermax", False))
        if mine is None:
            mine = emb.align_variants(eng, spa, [(layer, "itermax", False)])[(layer, "itermax", False)]
        differ = sum(a != b for a, b in zip(mine, links, strict=True))
        rows[-1]["variant"] = f"package ({differ} of {len(links)} pairs differ from embedding)"

    _print_table(rows, args.dtype)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        print(f"wrote {args.out}")
    return 0


def _row(
    aligner: str, layer: int, method: str, variant: str, links: list, gold: list, seconds: float
) -> dict:
    scores = alignment_scores(links, gold)
    return {
        "aligner": aligner,
        "layer": layer,
        "method": method,
        "variant": variant,
        "precision": scores["precision"],
        "recall": scores["recall"],
        "f1": scores["f1"],
        "aer": scores["aer"],
        "links": scores["predicted"],
        "seconds": round(seconds, 1),
    }


def _print_table(rows: list[dict], dtype: str) -> None:
    print(
        f"\nembedding rows: dtype {dtype}; their seconds are one shared encoding of all sentences + extraction"
    )
    head = f"{'aligner':<10} {'layer':>5} {'method':<8} {'P':>6} {'R':>6} {'F1':>6} {'AER':>6} {'links':>6} {'sec':>6}  variant"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['aligner']:<10} {r['layer']:>5} {r['method']:<8} {r['precision']:>6.3f} {r['recall']:>6.3f} "
            f"{r['f1']:>6.3f} {r['aer']:>6.3f} {r['links']:>6} {r['seconds']:>6.1f}  {r['variant']}"
        )


if __name__ == "__main__":
    sys.exit(main())
