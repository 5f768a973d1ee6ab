"""Distillation step time: KD with cached teacher outputs vs a plain student step vs online KD.

    .venv/bin/python benchmarks/bench_kd.py --teacher <TaggerModule ckpt> [--sentences 512] [--steps 20]

On the same batches of real unlabelled text (MasakhaNER 2.0 Swahili train, gold tags hidden), one 6-layer
student initialised from the teacher's layers 1, 3, ..., 11 runs, interleaved step by step so that machine
load hits all three alike:

- ``plain``: a student training step with a cross-entropy loss only (no teacher);
- ``cached``: KD at full depth (soft labels + hidden states at 6 pairs) with teacher outputs read from the
  memory-mapped cache;
- ``online``: the same KD with the teacher run in every step.

It prints mean step times, the ratios (target: cached <= 1.15x plain) and the cache's size per 1,000
sentences per stored layer (hidden states, attention maps, logits), measured from the files written.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from functools import partial
from pathlib import Path

import lightning as L
import torch

from xner.data.datamodule import NERDataModule
from xner.distill.module import DistillModule
from xner.tasks.train import prepare_distillation


def build(teacher: str, mode: str, cache: str, depth: int, attention: float) -> DistillModule:
    return DistillModule(
        teacher,
        distill={"depth": depth, "teacher_mode": mode, "attention_weight": attention, "ce_weight": 0.0},
        optimizer=partial(torch.optim.AdamW, lr=1e-4),
        cache_dir=cache,
    )


def attach(module: DistillModule, dm: NERDataModule) -> None:
    trainer = L.Trainer(
        max_steps=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        limit_val_batches=0,
    )
    prepare_distillation(module, dm)  # the tokenizer check and (cached mode) the teacher cache, as train.py
    trainer.fit(module, dm)  # attaches trainer + datamodule


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--teacher", required=True)
    parser.add_argument("--sentences", type=int, default=512)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--depth", type=int, default=6)
    parser.add_argument("--attention", type=float, default=0.0, help="attention loss weight (0 = off)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    cache = tempfile.mkdtemp(prefix="bench_kd_")
    encoder = torch.load(args.teacher, map_location="cpu", weights_only=True, mmap=True)["hyper_parameters"][
        "encoder"
    ]
    dm = NERDataModule(
        encoder,
        train={"ref": "masakhaner2:swa:train", "labelled": False, "limit": args.sentences},
        val=None,
        test={},
        batch_size=args.batch_size,
    )
    modules = {}
    for mode in ("cached", "online"):
        modules[mode] = build(args.teacher, mode, cache, args.depth, args.attention)
        attach(modules[mode], dm)
    plain = build(args.teacher, "online", cache, 0, 0.0)
    attach(plain, dm)
    plain.cfg.kd_weight, plain.cfg.ce_weight = 0.0, 1.0  # from here on cross-entropy only: no teacher
    modules = {"plain": plain, **modules}
    batches = list(dm.train_dataloader())[: args.steps]
    for batch in batches:  # the plain student needs labels: every word 'O' is enough to time a step
        starts = batch["word_starts"]
        rows = torch.arange(len(starts))[:, None].expand_as(starts)
        batch["labels"] = torch.full_like(batch["labels"], -100)
        batch["labels"][rows[starts >= 0], starts[starts >= 0]] = 0
    optimisers = {
        k: torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-4)
        for k, m in modules.items()
    }
    times: dict[str, list[float]] = {k: [] for k in modules}
    for step, batch in enumerate(batches):
        for name, module in modules.items():  # interleaved: load affects all three alike
            module.train()
            start = time.perf_counter()
            loss = module.distillation_losses(batch)["total"]
            loss.backward()
            optimisers[name].step()
            optimisers[name].zero_grad()
            if step:  # the first step warms up allocators and caches
                times[name].append(time.perf_counter() - start)
    mean = {k: statistics.mean(v) for k, v in times.items()}
    print(
        f"batches of {args.batch_size} Swahili sentences, {len(batches) - 1} timed steps each, depth {args.depth}, "
        f"attention weight {args.attention}, load average {os.getloadavg()[0]:.2f}"
    )
    for name in modules:
        print(
            f"  {name:<7} {mean[name] * 1000:8.1f} ms/step  (median {statistics.median(times[name]) * 1000:.1f})"
        )
    ratio = mean["cached"] / mean["plain"]
    print(f"  cached / plain  = {ratio:.2f}x  (target <= 1.15x: {'met' if ratio <= 1.15 else 'NOT met'})")
    print(f"  online / plain  = {mean['online'] / mean['plain']:.2f}x")
    print(f"  online / cached = {mean['online'] / mean['cached']:.2f}x")
    entry = modules["cached"]._teacher_cache
    n = len(entry)
    per_k = 1000 / n
    sizes = {p.name: p.stat().st_size for p in Path(entry.path).glob("*.npy")}
    hidden = [v for k, v in sizes.items() if k.startswith("hidden_")]
    print(f"cache for {n} sentences ({int(entry.offsets[-1])} subwords) at {entry.path}:")
    if hidden:
        print(
            f"  hidden states: {statistics.mean(hidden) * per_k / 2**20:.1f} MiB per 1k sentences per layer (fp16)"
        )
    attn = [v for k, v in sizes.items() if k.startswith("attention_") and k != "attention_offsets.npy"]
    if attn:
        print(
            f"  attention maps: {statistics.mean(attn) * per_k / 2**20:.1f} MiB per 1k sentences per layer (fp16)"
        )
    print(f"  word logits: {sizes['word_logits.npy'] * per_k / 2**20:.2f} MiB per 1k sentences")


if __name__ == "__main__":
    main()
