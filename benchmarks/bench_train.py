"""Fine-tuning and inference throughput of me5-small in fp32 and bf16 autocast, side by side, against the
machine's measured matmul peak.

    .venv/bin/python benchmarks/bench_train.py [--batches 40] [--slices 4] [--threads 2] [--student-layers 6]
        [--eval-batches 8] [--teacher CKPT] [--lightning] [--profile]

On real CoNLL-2003 training batches (the DataModule's length-bucketed batches of 16, seed 0), each
configuration runs the same batches; the batches are cut into ``--slices`` slices and the configurations take
turns on each slice in rotating order, so that other load on the machine hits them alike. Configurations:

- ``tagger``: the full 12-layer encoder + head, one training step as the trainer does it (forward, loss,
  backward, gradient clipping at 1.0, the fused AdamW over the trainable parameters, embeddings frozen);
- ``student``: a 6-layer student (teacher layers 1, 3, ..., 11) distilled at full depth (soft labels + hidden
  states at every student layer) from teacher outputs read from the memory-mapped cache (``--teacher``: a
  TaggerModule checkpoint; without it, one is written from the pretrained encoder with an untrained head:
  step time does not depend on the weights);
- ``inference``: the tagger's test pass (eval mode, no gradient) on CoNLL-2003 test batches of 64 sorted by
  length, as the test loop serves them.

Printed per configuration and precision: subwords/s (real subwords; padded positions are counted apart),
ms per step and where the step's time goes (forward, backward, clipping, optimizer), the matmul floor of the
step computed from the peak measured in this run (2048x2048 matmuls, fp32 and bf16, measured before and
after) and the share of that peak reached. ``--lightning`` adds the same tagger steps run by a Lightning
Trainer (data loading, logging and callbacks included; step times from batch-end to batch-end).
``--profile`` prints the operators that take the most time in a few profiled steps of each precision.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import tempfile
import time
from contextlib import nullcontext
from functools import partial
from pathlib import Path

import lightning as L
import torch
from measure import encoder_flops, matmul_peak, print_top_ops  # benchmarks/measure.py (on sys.path)

from xner.data.datamodule import NERDataModule
from xner.distill.module import DistillModule
from xner.lit.tagger import TaggerModule
from xner.paths import cache_dir, resolve_data_dir

PRECISIONS = ("fp32", "bf16")
BATCH_SIZE = 16


def autocast(precision: str):
    """The autocast context the trainer's ``bf16-mixed`` precision uses on CPU (none for fp32)."""
    if precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return nullcontext()


class Stepper:
    """One model trained (or run) by hand, step by step, with its time split into phases."""

    def __init__(self, module, loss_fn, precision: str, training: bool, encoder_config):
        self.module, self.loss_fn, self.precision, self.training = module, loss_fn, precision, training
        self.config = encoder_config
        params = [p for p in module.parameters() if p.requires_grad]
        self.params = params
        self.opt = (
            torch.optim.AdamW(params, lr=1e-5, fused=True) if training else None
        )  # as the trainer runs it
        self.phases: dict[str, float] = dict.fromkeys(("forward", "backward", "clip", "optimizer"), 0.0)
        self.steps, self.real, self.padded, self.flops = 0, 0, 0, 0.0

    def step(self, batch: dict) -> None:
        """One training step (or one inference batch), timed by phase."""
        mark = time.perf_counter()
        if not self.training:
            self.module.eval()
            with torch.no_grad(), autocast(self.precision):
                self.module(batch["input_ids"], batch["attention_mask"]).logits.float().argmax(-1)
            self._tick("forward", mark)
        else:
            self.module.train()
            with autocast(self.precision):
                loss = self.loss_fn(self.module, batch)
            mark = self._tick("forward", mark)
            loss.backward()
            mark = self._tick("backward", mark)
            torch.nn.utils.clip_grad_norm_(self.params, 1.0)
            mark = self._tick("clip", mark)
            self.opt.step()
            self.opt.zero_grad(set_to_none=True)
            self._tick("optimizer", mark)
        self.steps += 1
        self.real += int(batch["attention_mask"].sum())
        self.padded += batch["attention_mask"].numel()
        self.flops += encoder_flops(self.config, *batch["input_ids"].shape, training=self.training)

    def fresh(self) -> Stepper:
        """The same model and optimizer with zeroed counters (after warm-up; for a separate profile)."""
        clone = copy.copy(self)
        clone.phases = dict.fromkeys(self.phases, 0.0)
        clone.steps, clone.real, clone.padded, clone.flops = 0, 0, 0, 0.0
        return clone

    def _tick(self, phase: str, since: float) -> float:
        now = time.perf_counter()
        self.phases[phase] += now - since
        return now

    @property
    def seconds(self) -> float:
        """Wall seconds over every timed step."""
        return sum(self.phases.values())


def tagger_loss(module: TaggerModule, batch: dict) -> torch.Tensor:
    """TaggerModule.training_step's loss (without its logging)."""
    logits = module(batch["input_ids"], batch["attention_mask"]).logits
    return module.loss_fn(logits.float().flatten(0, 1), batch["labels"].flatten())


def student_loss(module: DistillModule, batch: dict) -> torch.Tensor:
    """DistillModule.training_step's loss (without its logging)."""
    return module.distillation_losses(batch)["total"]


def write_teacher(encoder: str, path: Path) -> str:
    """A TaggerModule checkpoint of the pretrained encoder with an untrained head (for timing only)."""
    module = TaggerModule(encoder)
    ckpt = {
        "state_dict": module.state_dict(),
        "hyper_parameters": dict(module.hparams),
        "pytorch-lightning_version": L.__version__,
    }
    module.on_save_checkpoint(ckpt)
    torch.save(ckpt, path)
    return str(path)


class StepClock(L.Callback):
    """Wall time from one training batch's end to the next (data loading, logging, callbacks included)."""

    def __init__(self):
        self.times: list[float] = []
        self._last: float | None = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        now = time.perf_counter()
        if self._last is not None:
            self.times.append(now - self._last)
        self._last = now


def lightning_steps(encoder: str, dm: NERDataModule, precision: str, steps: int) -> list[float]:
    """Step times of a real Trainer fitting a TaggerModule for ``steps`` steps (first step excluded)."""
    clock = StepClock()
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        precision="bf16-mixed" if precision == "bf16" else "32-true",
        max_steps=steps,
        gradient_clip_val=1.0,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        callbacks=[clock],
    )
    trainer.fit(TaggerModule(encoder), dm)
    return clock.times


def profile_ops(stepper: Stepper, batches: list[dict], top: int = 12) -> None:
    """Print the operators with the most self CPU time over a few steps."""
    from torch.profiler import ProfilerActivity, profile  # noqa: PLC0415 - only with --profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for batch in batches:
            stepper.step(batch)
    print_top_ops(prof, f"{stepper.precision}, {len(batches)} training steps", top)


def main(argv: list[str] | None = None) -> int:  # noqa: PLR0915 - one linear script
    """Run the benchmark and print its tables; returns the exit code."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batches", type=int, default=40, help="training batches timed per configuration")
    ap.add_argument("--slices", type=int, default=4, help="turns per configuration (interleaved)")
    ap.add_argument("--eval-batches", type=int, default=8, help="test batches of 64 timed for inference")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--student-layers", type=int, default=6, help="0 skips the student")
    ap.add_argument("--teacher", default=None, help="TaggerModule checkpoint (default: an untrained head)")
    ap.add_argument("--lightning", action="store_true", help="also time the tagger under a Lightning Trainer")
    ap.add_argument("--profile", action="store_true", help="print the top operators of a few steps")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--encoder", default=None, help="encoder directory (default: the converted me5-small)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    encoder = args.encoder or os.environ.get(
        "XNER_MODEL_DIR", str(cache_dir() / "models" / "multilingual-e5-small")
    )
    data_dir = str(resolve_data_dir(args.data_dir))
    load_before = os.getloadavg()
    peak_before = {p: matmul_peak(torch.float32 if p == "fp32" else torch.bfloat16) for p in PRECISIONS}

    warm = 2  # batches per configuration run untimed first: allocations and kernel selection
    n_train = (args.batches + warm) * BATCH_SIZE
    dm = NERDataModule(
        encoder,
        train={"ref": "conll2003::train", "limit": n_train},
        val=None,
        test={"test": "conll2003::test"},
        data_dir=data_dir,
        batch_size=BATCH_SIZE,
        eval_batch_size=64,
    )
    dm.setup("fit")
    dm.setup("test")
    train_batches = list(dm.train_dataloader())
    eval_loader = dm.test_dataloader()[0]
    step_every = max(1, len(eval_loader) // max(1, args.eval_batches))
    eval_batches = [b for i, b in enumerate(eval_loader) if i % step_every == 0][: args.eval_batches + 1]

    base = TaggerModule(encoder)
    config = base.model.encoder.config
    steppers: dict[tuple[str, str], Stepper] = {}
    jobs: dict[tuple[str, str], list[dict]] = {}
    for precision in PRECISIONS:
        key = ("tagger", precision)
        steppers[key] = Stepper(copy.deepcopy(base), tagger_loss, precision, True, config)
        jobs[key] = train_batches
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        if args.student_layers:
            teacher = args.teacher or write_teacher(encoder, Path(tmp) / "teacher.ckpt")
            student = DistillModule(
                teacher,
                distill={"depth": args.student_layers, "teacher_mode": "cached", "ce_weight": 0.0},
                student={"init": "teacher_layers", "num_layers": args.student_layers},
                optimizer=partial(torch.optim.AdamW, lr=1e-5),
                cache_dir=str(Path(tmp) / "cache"),
            )
            sentences = dm.datasets["train"].sentences
            student.prepare_training(sentences, dm.tokenizer, dm.tokenizer_name, dm.max_length)
            for precision in PRECISIONS:
                key = ("student", precision)
                module = copy.deepcopy(student)
                module._teacher_cache = student._teacher_cache  # noqa: SLF001 - shared read-only cache
                steppers[key] = Stepper(module, student_loss, precision, True, module.student.encoder.config)
                jobs[key] = train_batches
        for precision in PRECISIONS:
            key = ("inference", precision)
            steppers[key] = Stepper(copy.deepcopy(base), None, precision, False, config)
            jobs[key] = eval_batches

        timed: dict[tuple[str, str], Stepper] = {}
        for key, stepper in steppers.items():  # warm-up, then fresh counters for the timed steps
            for batch in jobs[key][:warm]:
                stepper.step(batch)
            timed[key] = stepper.fresh()
        keys = list(timed)
        for turn in range(args.slices):
            for key in keys[turn % len(keys) :] + keys[: turn % len(keys)]:
                todo = jobs[key][warm:]
                lo, hi = round(turn * len(todo) / args.slices), round((turn + 1) * len(todo) / args.slices)
                for batch in todo[lo:hi]:
                    timed[key].step(batch)
        lightning = {}
        if args.lightning:
            for precision in PRECISIONS:
                lightning[precision] = lightning_steps(encoder, dm, precision, min(args.batches, 30) + 1)
        if args.profile:
            for precision in PRECISIONS:
                profile_ops(timed[("tagger", precision)].fresh(), train_batches[warm : warm + 5])

    peak_after = {p: matmul_peak(torch.float32 if p == "fp32" else torch.bfloat16) for p in PRECISIONS}
    peak = {p: max(peak_before[p], peak_after[p]) for p in PRECISIONS}
    load_after = os.getloadavg()
    print(
        f"me5-small ({config.num_hidden_layers} layers, hidden {config.hidden_size}); CoNLL-2003 train batches of "
        f"{BATCH_SIZE} (length-bucketed), test batches of 64; torch {torch.__version__}, {args.threads} threads, "
        f"{args.slices} interleaved slices"
    )
    print(
        "matmul peak (2048^2, GFLOP/s) before/after: "
        + ", ".join(f"{p} {peak_before[p]:.0f}/{peak_after[p]:.0f}" for p in PRECISIONS)
        + f"; load average before {load_before[0]:.2f}, after {load_after[0]:.2f} on {os.cpu_count()} CPUs"
    )
    print(
        f"\n{'configuration':<11} {'prec':<5} {'steps':>5} {'subwords/s':>10} {'pad %':>6} {'ms/step':>8} "
        f"{'fwd':>6} {'bwd':>6} {'clip':>5} {'optim':>6} {'floor ms':>8} {'% peak':>6} {'x fp32':>6}"
    )
    for key, st in timed.items():
        name, precision = key
        per = 1000 / max(1, st.steps)
        floor = st.flops / (peak[precision] * 1e9) * per
        rate = st.real / st.seconds
        ref = timed[(name, "fp32")]
        print(
            f"{name:<11} {precision:<5} {st.steps:>5} {rate:>10.0f} {100 * (1 - st.real / st.padded):>6.1f} "
            f"{st.seconds * per:>8.1f} {st.phases['forward'] * per:>6.1f} {st.phases['backward'] * per:>6.1f} "
            f"{st.phases['clip'] * per:>5.1f} {st.phases['optimizer'] * per:>6.1f} {floor:>8.1f} "
            f"{100 * floor / (st.seconds * per):>6.1f} {ref.seconds / st.seconds * st.steps / ref.steps:>6.2f}"
        )
    for precision, times in lightning.items():
        raw = timed[("tagger", precision)]
        mean = statistics.mean(times)
        print(
            f"lightning tagger {precision}: {mean * 1000:.1f} ms/step over {len(times)} steps "
            f"(hand loop {raw.seconds / raw.steps * 1000:.1f}; the trainer's overhead included)"
        )
    print(
        "\nfloor ms: the step's matmul FLOPs (padded positions included) at the measured peak of its precision; "
        "% peak = floor / measured. x fp32: the speed-up over the same configuration in fp32."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
