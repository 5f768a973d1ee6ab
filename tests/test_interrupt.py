"""An interrupted run must not look finished, and it resumes where it stopped."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent


def _overrides(tiny_encoder: Path, data_dir: Path) -> list[str]:
    return [
        f"model.encoder={tiny_encoder}",
        f"paths.data_dir={data_dir}",
        "model.freeze_embeddings=false",
        "data.train={ref: 'conll2003::train', limit: 4000}",
        "data.val={ref: 'conll2003::dev', limit: 50}",
        "data.batch_size=8",
        "~data.test",
        "+data.test={eng_news: {ref: 'conll2003::test', limit: 50}}",
        "callbacks.last_checkpoint.every_n_train_steps=20",
    ]


def _complete(sweep_dir: Path, overrides: list[str]) -> int:
    """The check the study script runs before it marks a cell .complete (0: every job wrote metrics.json)."""
    cmd = [sys.executable, "-m", "xner.completeness", "check-multirun", str(sweep_dir), *overrides]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120).returncode


def test_sigterm_exits_nonzero_and_rerun_resumes(tmp_path, tiny_encoder, data_dir):
    # a one-job Hydra multirun, as the study script runs its cells
    sweep_dir, run_dir = tmp_path / "cell", tmp_path / "cell" / "0"
    overrides = [*_overrides(tiny_encoder, data_dir), "seed=7"]
    hydra_dirs = [f"hydra.sweep.dir={sweep_dir}", "hydra.sweep.subdir=${hydra.job.num}"]
    cmd = [sys.executable, str(ROOT / "train.py"), "-m", *overrides, *hydra_dirs]
    log = (tmp_path / "first.log").open("w")
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    last = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 240
    while not last.is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 143  # 128 + SIGTERM, not Lightning's exit status 0
    assert not (run_dir / "metrics.json").exists()
    assert _complete(sweep_dir, [*overrides, *hydra_dirs]) == 1  # the cell would not be marked .complete
    stopped = torch.load(last, map_location="cpu", weights_only=False)
    total = 4000 // 8
    assert 0 < stopped["global_step"] < total

    second = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    logged = (run_dir / "train.log").read_text()
    assert f"resuming epoch 0 after {stopped['global_step']} trained batches" in logged
    assert _complete(sweep_dir, [*overrides, *hydra_dirs]) == 0
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["resumed_from"] == str(last)
    # the resumed run trains the remaining batches only: one epoch in all, not one and a bit
    assert (
        torch.load(run_dir / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)[
            "global_step"
        ]
        == total
    )
