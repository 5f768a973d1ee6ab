"""An interrupted run must not look finished, and it resumes where it stopped."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent


def _command(run_dir: Path, tiny_encoder: Path, data_dir: Path) -> list[str]:
    return [
        sys.executable,
        str(ROOT / "train.py"),
        f"model.encoder={tiny_encoder}",
        f"paths.data_dir={data_dir}",
        f"hydra.run.dir={run_dir}",
        "model.freeze_embeddings=false",
        "data.train={ref: 'conll2003::train', limit: 4000}",
        "data.val={ref: 'conll2003::dev', limit: 50}",
        "data.batch_size=8",
        "~data.test",
        "+data.test={eng_news: {ref: 'conll2003::test', limit: 50}}",
        "callbacks.last_checkpoint.every_n_train_steps=20",
    ]


def test_sigterm_exits_nonzero_and_rerun_resumes(tmp_path, tiny_encoder, data_dir):
    run_dir = tmp_path / "run"
    cmd = _command(run_dir, tiny_encoder, data_dir)
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
    stopped = torch.load(last, map_location="cpu", weights_only=False)
    total = 4000 // 8
    assert 0 < stopped["global_step"] < total

    second = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    logged = (run_dir / "train.log").read_text()
    assert f"resuming epoch 0 after {stopped['global_step']} trained batches" in logged
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["resumed_from"] == str(last)
    # the resumed run trains the remaining batches only: one epoch in all, not one and a bit
    assert (
        torch.load(run_dir / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)[
            "global_step"
        ]
        == total
    )
