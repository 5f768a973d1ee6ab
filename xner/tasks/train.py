"""The training task: fit a model on a DataModule, test it on every named split, write metrics.json."""

from __future__ import annotations

import logging
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig

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


def train(cfg: DictConfig) -> dict:
    """Train (optionally), then test on ``data.test`` splits; returns the metrics record.

    The record is also written to ``<run dir>/metrics.json``: per-split F1, precision, recall, per-type F1,
    what each split's label mapping dropped, wall times and peak memory.
    """
    prepare_wandb(cfg)
    try:
        return _train(cfg)
    finally:
        finish_wandb()


def _train(cfg: DictConfig) -> dict:
    seed_and_threads(cfg)
    out_dir = Path(cfg.paths.output_dir)
    record: dict = {"task": cfg.task_name, "run_dir": str(out_dir), "timings_s": {}}
    times = record["timings_s"]
    with timer(times, "setup"):
        datamodule = instantiate(cfg.data)
        model = instantiate(cfg.model)
        callbacks = instantiate_group(cfg.get("callbacks"))
        loggers = instantiate_group(cfg.get("logger"))
        trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    for lg in loggers:
        lg.log_hyperparams(resolved_config(cfg))
    if cfg.get("train", True):
        with timer(times, "fit"):
            trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
        record["train"] = {
            "sentences": len(datamodule.datasets["train"]),
            "encoding": vars(datamodule.encoding_stats["train"]),
        }
        if "val" in model.eval_results:
            record["val"] = {k: v["f1"] for k, v in model.eval_results["val"].items()}
    best = getattr(trainer.checkpoint_callback, "best_model_path", "") if trainer.checkpoint_callback else ""
    record["checkpoint"] = best or None
    if cfg.get("test", True) and datamodule.test_specs:
        with timer(times, "test"):
            trainer.test(model, datamodule=datamodule, ckpt_path=best or None, verbose=False)
        record["splits"] = split_records(model, datamodule)
        write_predictions(out_dir / "predictions", model, datamodule)
        print(
            "\n"
            + split_table(
                record["splits"],
                list(datamodule.label_set.types),
                f"Entity F1 per split ({cfg.task_name}, scored on {'/'.join(datamodule.label_set.types)})",
            )
        )
    record["peak_rss_mb"] = round(peak_rss_mb(), 1)
    record["config"] = resolved_config(cfg)
    path = write_json(out_dir / "metrics.json", record)
    log.info("Wrote %s", path)
    return record
