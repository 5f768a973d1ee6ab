"""A real two-process DDP job on CPU (gloo): it trains, tests, and scores exactly what one process scores."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TEST_SPLITS = "+data.test={eng_news: {ref: 'conll2003::test', limit: 151}, swa_news: {ref: 'masakhaner2:swa:test', limit: 97}}"


def run(script: str, *overrides: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, str(ROOT / script), *overrides],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory, tiny_encoder, data_dir):
    out = tmp_path_factory.mktemp("ddp") / "run"
    run(
        "train.py",
        "trainer=ddp_cpu",
        "trainer.devices=2",
        f"model.encoder={tiny_encoder}",
        f"paths.data_dir={data_dir}",
        f"hydra.run.dir={out}",
        "model.freeze_embeddings=false",
        "model.optimizer.lr=5e-3",
        "trainer.max_epochs=2",
        "data.train={ref: 'conll2003::train', limit: 1500}",
        "data.val={ref: 'conll2003::dev', limit: 101}",
        "~data.test",
        TEST_SPLITS,
    )
    return out


def test_ddp_trains_and_writes_one_record(ddp_run):
    metrics = json.loads((ddp_run / "metrics.json").read_text())
    assert metrics["world_size"] == 2
    # rank 0 alone writes: one metrics.json, one predictions file per split, each test sentence once
    assert sorted(p.relative_to(ddp_run) for p in ddp_run.rglob("metrics.json")) == [Path("metrics.json")]
    for split, n in (("eng_news", 151), ("swa_news", 97)):
        assert metrics["splits"][split]["sentences"] == n
        text = (ddp_run / "predictions" / f"{split}.conll").read_text()
        assert text.count("\n\n") == n
    assert metrics["splits"]["eng_news"]["f1"] > 5, "two epochs on 1.5k sentences find some entities"


@pytest.mark.parametrize("processes", [1, 2])
def test_ddp_scores_equal_evaluation_of_the_checkpoint(ddp_run, tmp_path, data_dir, processes):
    # evaluate.py on the DDP run's checkpoint, in one process and in two (DDP evaluation shards the batches)
    ckpt = ddp_run / "checkpoints" / "best.ckpt"
    out = tmp_path / "eval"
    # fp32 like the training run: the scores must be equal, not within bf16 rounding (trainer=eval's auto)
    ddp_args = ["trainer=ddp_cpu", "trainer.devices=2"] if processes == 2 else ["trainer=default"]
    args = [
        f"ckpt_path={ckpt}",
        f"paths.data_dir={data_dir}",
        f"hydra.run.dir={out}",
        "~data.test",
        TEST_SPLITS,
    ]
    run("evaluate.py", *args, *ddp_args)
    ddp = json.loads((ddp_run / "metrics.json").read_text())["splits"]
    evaluated = json.loads((out / "metrics.json").read_text())["checkpoints"][str(ckpt)]
    for split in ("eng_news", "swa_news"):
        for key in ("f1", "f1_dontcare", "precision", "recall", "support", "sentences"):
            assert evaluated[split][key] == pytest.approx(ddp[split][key]), (split, key)
    assert sorted(p.relative_to(out) for p in out.rglob("metrics.json")) == [Path("metrics.json")]
    print(processes, {s: (ddp[s]["f1"], evaluated[s]["f1"]) for s in ddp})
