"""The evaluation task: score checkpoints on named domain splits; report robustness to domain shift.

Per run it writes ``metrics.json`` (everything below, plus the resolved config), ``metrics.csv`` (a row per
checkpoint, language and split: F1 with its 95% bootstrap interval, precision, recall, per-type F1, support
and the label mapping used), ``robustness.csv`` (a row per checkpoint and in-domain/out-of-domain pair: the
drop in F1, absolute and relative), ``comparisons.csv`` (each further checkpoint against the first on the same
sentences, by paired bootstrap) and ``predictions/<ckpt>/<split>.conll`` (word, gold, predicted).
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

from xner.data.registry import DataRef
from xner.lit.loading import load_checkpoint_module
from xner.stats import paired_bootstrap
from xner.tasks.common import (
    fail_if_interrupted,
    finish_wandb,
    format_table,
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
    """Evaluate every checkpoint in ``ckpt_path`` on every split in ``data.test``; returns the record."""
    prepare_wandb(cfg)
    try:
        return _evaluate(cfg)
    finally:
        finish_wandb()


def _evaluate(cfg: DictConfig) -> dict:
    seed_and_threads(cfg)
    out_dir = Path(cfg.paths.output_dir)
    ckpts = (
        [str(c) for c in cfg.ckpt_path]
        if isinstance(cfg.ckpt_path, ListConfig | list)
        else [str(cfg.ckpt_path)]
    )
    pairs = {
        k: tuple(v) for k, v in OmegaConf.to_container(cfg.get("robustness", {}).get("pairs", {})).items()
    }
    boot = cfg.get("bootstrap", {})
    record: dict = {
        "task": cfg.task_name,
        "run_dir": str(out_dir),
        "checkpoints": {},
        "robustness": [],
        "comparisons": [],
        "timings_s": {},
    }
    rows, counts_by_ckpt = [], {}
    loggers = instantiate_group(cfg.get("logger"))
    # one trainer for every checkpoint: under DDP its launcher starts the other processes once
    trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=[], enable_checkpointing=False)
    for k, ckpt in enumerate(ckpts):
        tag = f"ckpt{k}" if len(ckpts) > 1 else "ckpt"
        with timer(record["timings_s"], tag):
            module = load_checkpoint_module(ckpt)
            module.bootstrap_resamples = int(boot.get("resamples", 1000))
            datamodule = instantiate(
                cfg.data, tokenizer=module.hparams.encoder, types=list(module.label_set.types)
            )
            with fail_if_interrupted(trainer, f"testing {ckpt}"):
                trainer.test(module, datamodule=datamodule, verbose=False)
        splits = split_records(module, datamodule)
        record["checkpoints"][ckpt] = splits
        counts_by_ckpt[ckpt] = {name: res["counts"] for name, res in module.eval_results["test"].items()}
        if trainer.is_global_zero:
            write_predictions(out_dir / "predictions" / tag, module, datamodule)
            print("\n" + split_table(splits, list(module.label_set.types), f"{ckpt}"))
        for name, s in splits.items():
            rows.append(_split_row(ckpt, name, s))
        record["robustness"] += _drops(ckpt, splits, pairs)
    for ckpt in ckpts[1:]:
        for name in counts_by_ckpt[ckpts[0]]:
            cmp = paired_bootstrap(
                counts_by_ckpt[ckpt][name],
                counts_by_ckpt[ckpts[0]][name],
                resamples=int(boot.get("resamples", 1000)),
                seed=int(boot.get("seed", 0)),
            )
            record["comparisons"].append(
                {
                    "checkpoint": ckpt,
                    "reference": ckpts[0],
                    "split": name,
                    "f1": cmp.f1_a,
                    "reference_f1": cmp.f1_b,
                    "delta": cmp.delta,
                    "ci_low": cmp.low,
                    "ci_high": cmp.high,
                    "p_value": cmp.p_value,
                    "significant": cmp.significant,
                }
            )
    if not trainer.is_global_zero:
        return record  # every rank scored every sentence (gathered); rank 0 alone writes the files
    if record["robustness"]:
        print(
            "\n"
            + format_table(
                record["robustness"],
                [
                    "checkpoint",
                    "pair",
                    "in_domain",
                    "out_of_domain",
                    "f1_in",
                    "f1_out",
                    "drop",
                    "relative_drop_%",
                ],
                "Robustness: in-domain -> out-of-domain drop in F1",
            )
        )
    plot_splits(rows, out_dir / "f1_by_split.png")
    _write_csv(out_dir / "metrics.csv", rows)
    _write_csv(out_dir / "robustness.csv", record["robustness"])
    _write_csv(out_dir / "comparisons.csv", record["comparisons"])
    record["peak_rss_mb"] = round(peak_rss_mb(), 1)
    record["config"] = resolved_config(cfg)
    write_json(out_dir / "metrics.json", record)
    log.info("Wrote metrics.json, metrics.csv, robustness.csv and predictions/ into %s", out_dir)
    return record


def plot_splits(rows: list[dict], path: Path) -> Path | None:
    """Bar chart of F1 per split (95% bootstrap intervals as error bars), one bar colour per checkpoint."""
    if not rows:
        return None
    import matplotlib  # noqa: PLC0415 - plotting only here

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    ckpts = list(dict.fromkeys(r["checkpoint"] for r in rows))
    splits = list(dict.fromkeys(r["split"] for r in rows))
    width = 0.8 / len(ckpts)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(splits) * len(ckpts) + 2), 4.2))
    for k, ckpt in enumerate(ckpts):
        mine = {r["split"]: r for r in rows if r["checkpoint"] == ckpt}
        xs = [i + (k - (len(ckpts) - 1) / 2) * width for i, sp in enumerate(splits) if sp in mine]
        f1 = [mine[sp]["f1"] for sp in splits if sp in mine]
        low = [mine[sp]["f1"] - (mine[sp]["f1_ci_low"] or mine[sp]["f1"]) for sp in splits if sp in mine]
        high = [(mine[sp]["f1_ci_high"] or mine[sp]["f1"]) - mine[sp]["f1"] for sp in splits if sp in mine]
        label = Path(ckpt).parent.parent.name if len(ckpts) > 1 else None
        ax.bar(xs, f1, width, yerr=[low, high], capsize=2, label=label)
    ax.set_xticks(range(len(splits)), splits, rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("entity F1 (%), 95% bootstrap CI")
    ax.set_ylim(0, 100)
    ax.grid(axis="y", alpha=0.3)
    if len(ckpts) > 1:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _split_row(ckpt: str, name: str, s: dict) -> dict:
    ref = DataRef.parse(s["ref"]) if s.get("ref") else None
    ci = s.get("f1_ci95") or [None, None]
    mapping = s.get("label_map") or {}
    return {
        "checkpoint": ckpt,
        "language": ref.lang if ref else "",
        "split": name,
        "ref": s.get("ref", ""),
        "f1": s["f1"],
        "f1_ci_low": ci[0],
        "f1_ci_high": ci[1],
        "precision": s["precision"],
        "recall": s["recall"],
        "support": s["support"],
        "sentences": s["sentences"],
        **{f"f1_{t}": v["f1"] for t, v in s["per_type"].items()},
        **{f"support_{t}": v["support"] for t, v in s["per_type"].items()},
        "label_map": "; ".join(f"{a}->{b or 'O'}" for a, b in mapping.items()) or "identity",
        "dropped_entities": "; ".join(f"{a}:{n}" for a, n in (s.get("dropped_entities") or {}).items()),
    }


def _drops(ckpt: str, splits: dict, pairs: dict[str, tuple[str, str]]) -> list[dict]:
    out = []
    for name, (ind, ood) in pairs.items():
        if ind not in splits or ood not in splits:
            log.warning("robustness pair %s needs splits %s and %s; skipped", name, ind, ood)
            continue
        f_in, f_out = splits[ind]["f1"], splits[ood]["f1"]
        out.append(
            {
                "checkpoint": ckpt,
                "pair": name,
                "in_domain": ind,
                "out_of_domain": ood,
                "f1_in": f_in,
                "f1_out": f_out,
                "drop": f_in - f_out,
                "relative_drop_%": 100 * (f_in - f_out) / f_in if f_in else float("nan"),
            }
        )
    return out


def _write_csv(path: Path, rows: list[dict]) -> None:
    if not rows:
        return
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
