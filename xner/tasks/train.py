"""The training task: fit a model on a DataModule, test it on every named split, write metrics.json.

``metrics.json`` is written last, by rank 0 only, and only when the run finished: an interrupted run exits
non-zero (:class:`~xner.tasks.common.RunInterrupted`) and leaves ``checkpoints/last.ckpt``, from which the
same command with the same run dir resumes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig, OmegaConf

from xner.precision import trainer_precision
from xner.tasks.common import (
    fail_if_interrupted,
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


def check_config(cfg: DictConfig) -> None:
    """Refuse configurations that would run but report a wrong number.

    Raises:
        ValueError: no ``model.encoder`` (``model=hf`` alone), ``train=false`` without a checkpoint (it would test random weights), or distributed
            training with Lightning's distributed sampler (xner's batch samplers shard data themselves).
    """
    if "encoder" in cfg.model.keys() and OmegaConf.is_missing(cfg.model, "encoder"):
        raise ValueError(
            "model.encoder is not set: give the HF encoder to fine-tune by hub name or directory, e.g. "
            "model=hf model.encoder=xlm-roberta-base (or model=me5_small for the offline encoder)."
        )
    if not cfg.get("train", True) and cfg.get("test", True) and not cfg.get("ckpt_path"):
        raise ValueError(
            "train=false tests a model without training it, so it needs its weights: set "
            "ckpt_path=<run dir>/checkpoints/best.ckpt (or use evaluate.py ckpt_path=...)."
        )
    if cfg.trainer.get("use_distributed_sampler", True) and cfg.trainer.get("strategy") not in (None, "auto"):
        raise ValueError(
            "trainer.use_distributed_sampler must be false: xner's length-bucketing and evaluation batch "
            "samplers give each rank its share of the data themselves (and Lightning's sampler would pad "
            "test sets with repeated sentences). Remove the override or set trainer.use_distributed_sampler=false."
        )


def resume_checkpoint(cfg: DictConfig, out_dir: Path) -> str | None:
    """The checkpoint to resume from: ``ckpt_path``, else this run dir's ``last.ckpt`` when a previous,
    interrupted run left one (``resume=false`` turns that off)."""
    if cfg.get("ckpt_path"):
        return str(cfg.ckpt_path)
    last = out_dir / "checkpoints" / "last.ckpt"
    if cfg.get("resume", True) and last.is_file():
        log.warning("%s exists: resuming the interrupted run from it (resume=false starts afresh)", last)
        return str(last)
    return None


def _final_checkpoint(trainer) -> str:
    """The checkpoint to test: the best (or final) one, not the periodic ``last.ckpt`` for resuming."""
    for cb in trainer.checkpoint_callbacks:
        if isinstance(cb, ModelCheckpoint) and cb.filename != "last" and cb.best_model_path:
            return cb.best_model_path
    return ""


def projected_training_set(train_spec: Mapping, data_dir: str | None) -> dict:
    """Run the pipeline stage of a ``{pipeline: {...}, limit: N}`` training split (or reuse its cached
    output) and return the split spec that names the artifact: ``{projected: <sentences.jsonl>, meta:
    <meta.json>, limit: N}``, which the DataModule reads.

    Args:
        train_spec: ``data.train`` with a ``pipeline`` spec (:class:`xner.pipeline.run.PipelineSpec` fields)
            and optionally ``limit`` (train on the first N projected sentences).
        data_dir: the data root.
    """
    from xner.pipeline.run import Pipeline  # noqa: PLC0415 - only runs that train on projected data need it

    spec = dict(train_spec)
    pipeline = Pipeline(dict(spec.pop("pipeline")), data_dir)
    output = pipeline.run_and_store()
    log.info(
        "projected training set: %d sentences, projection rate %.3f",
        len(output.sentences),
        output.meta["projection"]["projection_rate"],
    )
    entry = pipeline.cache.path(pipeline.output_key())
    return {**spec, "projected": str(entry / "data.jsonl"), "meta": str(entry / "meta.json")}


def build_datamodule(cfg: DictConfig):
    """The DataModule of ``cfg.data``; a pipeline training split is built first (the pipeline stage) and the
    DataModule gets its artifact, so the DataModule only reads files."""
    train = cfg.data.get("train")
    if not (isinstance(train, DictConfig) and "pipeline" in train):
        return instantiate(cfg.data)
    # plain containers: the spec is hashed into cache keys, and the artifact replaces the whole split spec
    data = OmegaConf.to_container(cfg.data, resolve=True)
    data["train"] = projected_training_set(data["train"], data.get("data_dir"))
    return instantiate(data)


def prepare_distillation(model, datamodule) -> None:
    """Give a distillation module its training inputs explicitly: the tokenizer check and the teacher
    cache are built from the training sentences, their tokenizer and max length before fitting."""
    from xner.distill.module import DistillModule  # noqa: PLC0415 - only for model=kd_student

    if isinstance(model, DistillModule):
        datamodule.setup("fit")
        model.prepare_training(
            datamodule.datasets["train"].sentences,
            datamodule.tokenizer,
            datamodule.tokenizer_name,
            datamodule.max_length,
        )


def _train(cfg: DictConfig) -> dict:
    check_config(cfg)
    seed_and_threads(cfg)
    out_dir = Path(cfg.paths.output_dir)
    record: dict = {"task": cfg.task_name, "run_dir": str(out_dir), "timings_s": {}}
    times = record["timings_s"]
    with timer(times, "setup"):
        datamodule = build_datamodule(cfg)
        model = instantiate(cfg.model)
        callbacks = instantiate_group(cfg.get("callbacks"))
        loggers = instantiate_group(cfg.get("logger"))
        trainer = instantiate(
            cfg.trainer,
            callbacks=callbacks,
            logger=loggers or False,
            precision=trainer_precision(cfg.trainer),
        )
        if cfg.get("test", True) and datamodule.test_specs:
            datamodule.check_test_splits()  # a typo in a test split fails now, not after training
    for lg in loggers:
        lg.log_hyperparams(resolved_config(cfg))
    ckpt_path = resume_checkpoint(cfg, out_dir)
    best = ""
    if cfg.get("train", True):
        record["resumed_from"] = ckpt_path
        with timer(times, "fit"), fail_if_interrupted(trainer, "training"):
            prepare_distillation(model, datamodule)
            trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
        record["train"] = {
            "sentences": len(datamodule.datasets["train"]),
            "encoding": vars(datamodule.encoding_stats["train"]),
        }
        if datamodule.projected_meta is not None:
            record["train"]["projected"] = {
                "path": datamodule.train_spec["projected"],
                "projection": datamodule.projected_meta.get("projection"),
            }
        if "val" in model.eval_results:
            record["val"] = {k: v["f1"] for k, v in model.eval_results["val"].items()}
        best = _final_checkpoint(trainer)
    else:
        best = ckpt_path  # train=false: test the given checkpoint's weights (check_config insists on one)
    record["checkpoint"] = best or None
    if cfg.get("test", True) and datamodule.test_specs:
        with timer(times, "test"), fail_if_interrupted(trainer, "testing"):
            trainer.test(model, datamodule=datamodule, ckpt_path=best or None, verbose=False)
        record["splits"] = split_records(model, datamodule)
        if trainer.is_global_zero:
            write_predictions(out_dir / "predictions", model, datamodule)
            types = list(datamodule.label_set.types)
            title = f"Entity F1 per split ({cfg.task_name}, scored on {'/'.join(types)})"
            print("\n" + split_table(record["splits"], types, title))
    record["world_size"] = trainer.world_size
    record["peak_rss_mb"] = round(peak_rss_mb(), 1)
    record["config"] = resolved_config(cfg)
    if trainer.is_global_zero:
        path = write_json(out_dir / "metrics.json", record)
        log.info("Wrote %s", path)
        _drop_resume_checkpoint(cfg, out_dir, best)
    return record


def _drop_resume_checkpoint(cfg: DictConfig, out_dir: Path, final: str) -> None:
    """A finished run needs ``last.ckpt`` only to train on later; ``keep_last_ckpt=false`` (the study's
    students) deletes it once the final checkpoint is safely written."""
    last = out_dir / "checkpoints" / "last.ckpt"
    if not cfg.get("keep_last_ckpt", True) and final and Path(final).resolve() != last.resolve():
        last.unlink(missing_ok=True)
