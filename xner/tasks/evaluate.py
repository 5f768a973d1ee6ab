"""The evaluation task: score checkpoints on named splits; write metrics.json, a CSV and predictions."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig

from xner.lit.loading import load_checkpoint_module
from xner.tasks.common import (
    finish_wandb,
    instantiate_group,
    peak_rss_mb,
    prepare_wandb,
    resolved_config,
    seed_and_threads,
    split_records,
    split_table,
    timer,
    write_json,
    write_predictions,
)

log = logging.getLogger(__name__)


def evaluate(cfg: DictConfig) -> dict:
    """Evaluate every checkpoint in ``ckpt_path`` on every split in ``data.test``.

    Writes ``metrics.json`` (one entry per checkpoint), ``metrics.csv`` (a row per checkpoint and split) and
    ``predictions/<ckpt>/<split>.conll`` (word, gold, predicted) into the run directory.
    """
    prepare_wandb(cfg)
    try:
        return _evaluate(cfg)
    finally:
        finish_wandb()


def _evaluate(cfg: DictConfig) -> dict:
    seed_and_threads(cfg)
    out_dir = Path(cfg.paths.output_dir)
    ckpts = list(cfg.ckpt_path) if isinstance(cfg.ckpt_path, ListConfig | list) else [cfg.ckpt_path]
    record: dict = {"task": cfg.task_name, "run_dir": str(out_dir), "checkpoints": {}, "timings_s": {}}
    rows = []
    loggers = instantiate_group(cfg.get("logger"))
    for k, ckpt in enumerate(ckpts):
        tag = f"ckpt{k}" if len(ckpts) > 1 else "ckpt"
        with timer(record["timings_s"], tag):
            module = load_checkpoint_module(ckpt)
            datamodule = instantiate(cfg.data, tokenizer=module.hparams.encoder, types=list(module.label_set.types))
            trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=[], enable_checkpointing=False)
            trainer.test(module, datamodule=datamodule, verbose=False)
        splits = split_records(module, datamodule)
        record["checkpoints"][str(ckpt)] = splits
        print("\n" + split_table(splits, list(module.label_set.types), f"{ckpt}"))
        write_predictions(out_dir / "predictions" / tag, module, datamodule)
        for name in module.eval_results["test"]:
            s = splits[name]
            rows.append({"checkpoint": str(ckpt), "split": name, "ref": s.get("ref", ""), "f1": s["f1"],
                         "precision": s["precision"], "recall": s["recall"], "support": s["support"],
                         **{f"f1_{t}": v["f1"] for t, v in s["per_type"].items()}})
    _write_csv(out_dir / "metrics.csv", rows)
    record["peak_rss_mb"] = round(peak_rss_mb(), 1)
    record["config"] = resolved_config(cfg)
    write_json(out_dir / "metrics.json", record)
    log.info("Wrote %s and %s", out_dir / "metrics.json", out_dir / "metrics.csv")
    return record


def _write_csv(path: Path, rows: list[dict]) -> None:
    if not rows:
        return
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
