"""The evaluation task: score checkpoints on named domain splits; report robustness to domain shift.

Two scores are reported side by side: **strict** F1 (``f1``, seqeval's exact match: a prediction on a gold
entity that the split's label mapping removed, e.g. a MasakhaNER DATE, is a false positive) and
**don't-care** F1 (``f1_dontcare``: such predictions count neither way; see :mod:`xner.metrics`).

Per run it writes ``metrics.json`` (everything below, plus the resolved config), ``metrics.csv`` (a row per
checkpoint, language and split: strict F1 with its 95% bootstrap interval, precision, recall, per-type F1,
support, the don't-care F1 with its interval, precision, recall and per-type F1, the partial-match F1, the
label mapping used and how many gold entities it removed), ``robustness.csv`` (a row per checkpoint and
in-domain/out-of-domain pair: the drop in don't-care F1, absolute and relative, then the same on strict F1),
``comparisons.csv`` (each further checkpoint against the first on the same sentences, by paired bootstrap of
strict and of don't-care F1), ``errors.csv`` (a row per checkpoint, split and type: the error breakdown of
:mod:`xner.errors`) and ``predictions/<ckpt>/<split>.conll`` (word, gold, predicted, removed gold entities).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

from xner.data.registry import DataRef
from xner.precision import trainer_precision
from xner.stats import paired_bootstrap
from xner.tables import write_csv
from xner.tasks.common import (
    fail_if_interrupted,
    finish_wandb,
    format_table,
    instantiate_group,
    peak_rss_mb,
    prepare_wandb,
    require_setting,
    resolved_config,
    seed_and_threads,
    split_records,
    split_results,
    split_table,
    timer,
    write_json,
    write_predictions,
)

log = logging.getLogger(__name__)

CKPT_HINT = (
    "evaluate.py needs ckpt_path=..., e.g.\n"
    "  python evaluate.py ckpt_path=logs/model_transfer/runs/<run>/checkpoints/best.ckpt eval_splits=swa\n"
    "training runs write checkpoints/best.ckpt in their run dir; 'ckpt_path=[a.ckpt,b.ckpt]' compares several."
)


def evaluate(cfg: DictConfig) -> dict:
    """Evaluate every checkpoint in ``ckpt_path`` on every split in ``data.test``; returns the record.

    Exits with status 2 and a hint (the form of ``ckpt_path``, the newest checkpoints under the log dir)
    when ``ckpt_path`` is not given or names a file that does not exist, before anything is loaded.
    """
    ckpts = checkpoints(cfg)
    prepare_wandb(cfg)
    try:
        return _evaluate(cfg, ckpts)
    finally:
        finish_wandb()


def checkpoints(cfg: DictConfig) -> list[str]:
    """The checkpoint paths of ``cfg.ckpt_path`` (one or a list); exits with a hint when none or a missing one."""
    found = _recent_checkpoints(cfg)
    hint = CKPT_HINT
    if found:
        hint += "\nnewest checkpoints here:\n" + "\n".join(f"  {path}" for path in found)
    require_setting(cfg, "ckpt_path", hint)
    value = cfg.ckpt_path
    ckpts = [str(c) for c in value] if isinstance(value, ListConfig | list) else [str(value)]
    missing = [c for c in ckpts if not Path(c).is_file()]
    if missing:
        print(f"error: no checkpoint file {', '.join(missing)}\n{hint}", file=sys.stderr)
        raise SystemExit(2)
    return ckpts


def _recent_checkpoints(cfg: DictConfig, limit: int = 3) -> list[str]:
    """The newest ``best.ckpt`` files of training runs under ``paths.log_dir`` (relative when possible)."""
    try:
        log_dir = Path(OmegaConf.select(cfg, "paths.log_dir", default=None) or "logs")
    except Exception:  # noqa: BLE001 - ${hydra:...} does not resolve outside a Hydra run; a hint is optional
        log_dir = Path("logs")
    if not log_dir.is_dir():
        return []
    found = [
        *log_dir.glob("*/runs/*/checkpoints/best.ckpt"),
        *log_dir.glob("*/multiruns/*/*/checkpoints/best.ckpt"),
    ]
    found.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    cwd = Path.cwd()
    return [str(p.relative_to(cwd)) if p.is_relative_to(cwd) else str(p) for p in found[:limit]]


def _evaluate(cfg: DictConfig, ckpts: list[str]) -> dict:
    from xner.lit.evaluation import SplitProgress  # noqa: PLC0415 - torch/lightning load after the checks
    from xner.lit.loading import load_checkpoint_module  # noqa: PLC0415

    seed_and_threads(cfg)
    out_dir = Path(cfg.paths.output_dir)
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
    rows, error_rows, counts_by_ckpt = [], [], {}
    loggers = instantiate_group(cfg.get("logger"))
    # SplitProgress logs each split's progress; Lightning's bar shows only on a terminal (in a log file or a
    # pipe it is one long line of carriage returns) unless the config sets trainer.enable_progress_bar
    bar = cfg.trainer.get("enable_progress_bar", sys.stdout.isatty())
    # one trainer for every checkpoint: under DDP its launcher starts the other processes once
    trainer = instantiate(
        cfg.trainer,
        logger=loggers or False,
        callbacks=[SplitProgress()],
        enable_checkpointing=False,
        enable_progress_bar=bar,
        precision=trainer_precision(cfg.trainer),
    )
    for k, ckpt in enumerate(ckpts):
        tag = f"ckpt{k}" if len(ckpts) > 1 else "ckpt"
        if trainer.is_global_zero:
            log.info("checkpoint %d/%d: %s", k + 1, len(ckpts), ckpt)
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
        counts_by_ckpt[ckpt] = {
            s.name: (s.scores["counts"], s.scores["counts_dontcare"])
            for s in split_results(module, datamodule)
        }
        if trainer.is_global_zero:
            write_predictions(out_dir / "predictions" / tag, module, datamodule)
            print("\n" + split_table(splits, list(module.label_set.types), f"{ckpt}"))
        for name, s in splits.items():
            rows.append(_split_row(ckpt, name, s))
            error_rows += [{"checkpoint": ckpt, "split": name, **r} for r in s.get("errors", [])]
        record["robustness"] += _drops(ckpt, splits, pairs)
    for ckpt in ckpts[1:]:
        for name in counts_by_ckpt[ckpts[0]]:
            record["comparisons"].append(
                _compare(
                    ckpt, ckpts[0], name, counts_by_ckpt[ckpt][name], counts_by_ckpt[ckpts[0]][name], boot
                )
            )
    if not trainer.is_global_zero:
        return record  # every rank scored every sentence (gathered); rank 0 alone writes the files
    if record["robustness"]:
        print("\n" + format_table(record["robustness"], ROBUSTNESS_COLUMNS, ROBUSTNESS_TITLE))
    plot_splits(rows, out_dir / "f1_by_split.png")
    write_csv(out_dir / "metrics.csv", rows)
    write_csv(out_dir / "robustness.csv", record["robustness"])
    write_csv(out_dir / "comparisons.csv", record["comparisons"])
    write_csv(out_dir / "errors.csv", error_rows)
    record["peak_rss_mb"] = round(peak_rss_mb(), 1)
    record["config"] = resolved_config(cfg)
    write_json(out_dir / "metrics.json", record)
    log.info("Wrote metrics.json, metrics.csv, robustness.csv, errors.csv and predictions/ into %s", out_dir)
    return record


def plot_splits(rows: list[dict], path: Path) -> Path | None:
    """Bar chart of strict F1 per split (95% bootstrap intervals as error bars), one bar colour per checkpoint."""
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
    ax.set_ylabel("strict entity F1 (%), 95% bootstrap CI")
    ax.set_ylim(0, 100)
    ax.grid(axis="y", alpha=0.3)
    if len(ckpts) > 1:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _split_row(ckpt: str, name: str, s: dict) -> dict:
    """A metrics.csv row: strict scores under the plain names, don't-care ones with ``_dontcare``."""
    ref = DataRef.parse(s["ref"]) if s.get("ref") else None
    ci = s.get("f1_ci95") or [None, None]
    ci_dc = s.get("f1_dontcare_ci95") or [None, None]
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
        "f1_dontcare": s.get("f1_dontcare"),
        "f1_dontcare_ci_low": ci_dc[0],
        "f1_dontcare_ci_high": ci_dc[1],
        "precision_dontcare": s.get("precision_dontcare"),
        "recall_dontcare": s.get("recall_dontcare"),
        **{f"f1_dontcare_{t}": v["f1"] for t, v in (s.get("per_type_dontcare") or {}).items()},
        "removed_gold_spans": s.get("removed_gold_spans"),
        "ignored_predictions_dontcare": s.get("ignored_predictions_dontcare"),
        "f1_partial": s.get("f1_partial"),
        "precision_partial": s.get("precision_partial"),
        "recall_partial": s.get("recall_partial"),
        "label_map": "; ".join(f"{a}->{b or 'O'}" for a, b in mapping.items()) or "identity",
        "dropped_entities": "; ".join(f"{a}:{n}" for a, n in (s.get("dropped_entities") or {}).items()),
    }


def _compare(ckpt: str, reference: str, split: str, counts: tuple, ref_counts: tuple, boot) -> dict:
    """Paired bootstrap of ``ckpt`` against ``reference`` on one split, strict (plain names) and don't-care."""
    out = {"checkpoint": ckpt, "reference": reference, "split": split}
    for (a, b), suffix in zip(zip(counts, ref_counts, strict=True), ("", "_dontcare"), strict=True):
        cmp = paired_bootstrap(
            a, b, resamples=int(boot.get("resamples", 1000)), seed=int(boot.get("seed", 0))
        )
        out.update(cmp.row(("f1", "reference_f1"), suffix))
    return out


ROBUSTNESS_COLUMNS = [
    "checkpoint",
    "pair",
    "in_domain",
    "out_of_domain",
    "f1_dontcare_in",
    "f1_dontcare_out",
    "drop_dontcare",
    "relative_drop_dontcare_%",
    "f1_strict_in",
    "f1_strict_out",
    "drop_strict",
    "relative_drop_strict_%",
]
ROBUSTNESS_TITLE = (
    "Robustness: in-domain -> out-of-domain drop in don't-care F1 (predictions on gold entities the label "
    "mapping removed count neither way), then in strict F1"
)


def _drops(ckpt: str, splits: dict, pairs: dict[str, tuple[str, str]]) -> list[dict]:
    """robustness.csv rows: the drop in don't-care F1 (``*_dontcare``) first, then in strict F1 (``*_strict``)."""
    out = []
    for name, (ind, ood) in pairs.items():
        if ind not in splits or ood not in splits:
            log.warning("robustness pair %s needs splits %s and %s; skipped", name, ind, ood)
            continue
        row = {"checkpoint": ckpt, "pair": name, "in_domain": ind, "out_of_domain": ood}
        for key, mode in (("f1_dontcare", "dontcare"), ("f1", "strict")):
            f_in, f_out = splits[ind][key], splits[ood][key]
            row.update(
                {
                    f"f1_{mode}_in": f_in,
                    f"f1_{mode}_out": f_out,
                    f"drop_{mode}": f_in - f_out,
                    f"relative_drop_{mode}_%": 100 * (f_in - f_out) / f_in if f_in else float("nan"),
                }
            )
        out.append(row)
    return out
