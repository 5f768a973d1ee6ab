"""The machine's measured matmul peak and the matmul FLOPs of a BERT-like encoder: the floor that the
benchmarks print their throughput against, and a profile printer."""

from __future__ import annotations

import time

import torch


def matmul_peak(dtype: torch.dtype, n: int = 2048, reps: int = 8) -> float:
    """Best GFLOP/s of an ``n x n`` matmul in ``dtype`` over ``reps`` runs (after one warm-up), with the
    current torch thread count."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def encoder_flops(config, rows: int, width: int, layers: int | None = None, training: bool = False) -> float:
    """Matmul FLOPs of ``layers`` (default: all) encoder layers over a padded ``[rows, width]`` batch: the dense
    layers (2 FLOPs per weight per position forward) plus attention's two ``width x width`` products per layer;
    x3 for a training step (forward + backward). Embeddings are lookups and cost nothing here."""
    d, ff = config.hidden_size, config.intermediate_size
    n_layers = config.num_hidden_layers if layers is None else layers
    per_pos = n_layers * (2 * (4 * d * d + 2 * d * ff) + 4 * width * d)
    return per_pos * rows * width * (3 if training else 1)


def print_top_ops(prof, title: str, top: int = 10) -> None:
    """Print the operators with the most self CPU time in a finished ``torch.profiler`` profile."""
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) or 1
    print(f"\nprofile: {title}, self CPU time by operator")
    for e in events[:top]:
        print(
            f"  {e.key:<52} {e.self_cpu_time_total / 1e3:9.1f} ms  {100 * e.self_cpu_time_total / total:5.1f}%"
        )
