"""Helpers shared by task functions: instantiation, W&B set-up, run records."""

from __future__ import annotations

import json
import logging
import os
import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

from xner.io.conll import removed_tags, write_conll
from xner.tables import format_table  # also imported from here by the tasks

if TYPE_CHECKING:  # lightning and torch load on use, so a config error is reported in a second, not ten
    import lightning as L

log = logging.getLogger(__name__)


def require_setting(cfg: DictConfig, key: str, hint: str) -> None:
    """Exit with status 2 and ``hint`` on stderr when the mandatory setting ``key`` (``???``) is not given.

    Hydra's own error ("Missing mandatory value: ckpt_path") names the key but not what to give it.

    Args:
        cfg: the run's config.
        key: a dotted key, e.g. ``ckpt_path``.
        hint: what to pass and where it comes from, with an example command.
    """
    value = OmegaConf.select(cfg, key, throw_on_missing=False)  # None: ``???``, null or absent
    if value is None or (isinstance(value, str | ListConfig | list) and len(value) == 0):
        print(f"error: {hint}", file=sys.stderr)
        raise SystemExit(2)


class RunInterrupted(SystemExit):
    """The run stopped before it finished (SIGTERM, Ctrl-C): exit with 128 + SIGTERM and no metrics.json.

    Lightning ends an interrupted ``fit``/``test`` with ``SystemExit(None)``, i.e. exit status 0, which
    multiruns, sweep agents and study scripts would take for success.
    """


@contextmanager
def fail_if_interrupted(trainer: L.Trainer, what: str) -> Iterator[None]:
    """Turn an interrupted ``trainer.fit``/``trainer.test`` into :class:`RunInterrupted`."""
    try:
        yield
    except SystemExit as err:
        if isinstance(err, RunInterrupted):
            raise
        log.error("%s was interrupted (%s): no metrics.json written", what, type(err).__name__)
        raise RunInterrupted(143) from err
    if trainer.interrupted:
        log.error("%s was interrupted: no metrics.json written", what)
        raise RunInterrupted(143)


def instantiate_group(cfg: DictConfig | None) -> list[Any]:
    """Instantiate every ``_target_`` entry of a config group (callbacks, loggers)."""
    if not cfg:
        return []
    return [instantiate(v) for v in cfg.values() if isinstance(v, DictConfig) and "_target_" in v]


def prepare_wandb(cfg: DictConfig) -> None:
    """Let the W&B logger run without an account: offline mode unless a key or a mode is configured."""
    if not cfg.get("logger") or "wandb" not in cfg.logger:
        return
    if os.environ.get("WANDB_MODE") or os.environ.get("WANDB_API_KEY"):
        return
    netrc = Path.home() / ".netrc"
    if netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore"):
        return
    log.info("No W&B API key configured: logging offline (sync later with `wandb sync`).")
    os.environ["WANDB_MODE"] = "offline"


def finish_wandb() -> None:
    """Close any W&B run, also after an exception (sweep agents reuse the process)."""
    try:
        import wandb  # noqa: PLC0415 - optional at run time

        if wandb.run is not None:
            wandb.finish()
    except ImportError:
        pass


def seed_and_threads(cfg: DictConfig) -> None:
    """Seed everything and cap torch's threads when configured."""
    import lightning as L  # noqa: PLC0415 - see the TYPE_CHECKING import
    import torch  # noqa: PLC0415

    L.seed_everything(cfg.seed, workers=True)
    if cfg.get("num_threads"):
        torch.set_num_threads(int(cfg.num_threads))


def peak_rss_mb() -> float:
    """Peak resident memory of this process (and finished children), in MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


@contextmanager
def timer(record: dict, key: str) -> Iterator[None]:
    """Store the wall time of the block in ``record[key]`` (seconds)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        record[key] = round(time.perf_counter() - start, 2)


def write_json(path: str | Path, payload: dict) -> Path:
    """Write JSON atomically (numbers as plain floats)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=_json_default) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "__dict__"):
        return vars(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def resolved_config(cfg: DictConfig) -> dict:
    """The config as plain containers with interpolations resolved (for records and loggers)."""
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)


RESULT_OBJECTS = ("predictions", "indices", "counts", "counts_dontcare", "counts_partial", "errors")


@dataclass
class SplitResult:
    """One test split's results joined with the data they were computed on.

    Attributes:
        name: the split's name (``data.test`` key).
        scores: the module's ``eval_results["test"][name]`` (scores, counts, predictions, indices).
        sentences: the scored sentences, in the order of ``scores["predictions"]``.
        stats: what loading the split mapped and dropped (``None`` for splits given as sentences).
    """

    name: str
    scores: dict[str, Any]
    sentences: list
    stats: Any


def split_results(module, datamodule) -> list[SplitResult]:
    """The module's test results per split, joined with the DataModule's sentences and split stats: the one
    place where the tasks put scores and data back together."""
    out = []
    for name, res in module.eval_results.get("test", {}).items():
        dataset = datamodule.datasets[name]
        sentences = [dataset.sentences[i] for i in res["indices"]]
        out.append(SplitResult(name, res, sentences, datamodule.split_stats.get(name)))
    return out


def split_records(module, datamodule) -> dict[str, dict]:
    """Scores per test split with what was mapped, dropped and truncated, for metrics.json.

    Strict scores are ``f1``, ``precision``, ``recall``, ``f1_ci95`` and ``per_type``; the don't-care scores
    (predictions on gold entities the label mapping removed are ignored) the same names with ``_dontcare``
    (``f1_dontcare``, ``f1_dontcare_ci95``, ``per_type_dontcare``, ...), with ``removed_gold_spans`` and
    ``ignored_predictions_dontcare``; partial-match scores end in ``_partial``; ``errors`` holds the error
    breakdown rows of :meth:`xner.errors.ErrorBreakdown.rows`.
    """
    out = {}
    for split in split_results(module, datamodule):
        res, stats = split.scores, split.stats
        record = {k: v for k, v in res.items() if k not in RESULT_OBJECTS}
        if res.get("errors") is not None:
            record["errors"] = res["errors"].rows()
        if stats is not None:
            record.update(
                ref=stats.ref,
                path=stats.path,
                label_map=stats.label_map,
                dropped_entities=stats.dropped_entities,
                gold_entities=stats.entities,
                repaired_gold_tags=stats.repaired_tags,
                gold_scheme=stats.scheme,
            )
        out[split.name] = record
    return out


def write_predictions(out_dir: Path, module, datamodule) -> list[Path]:
    """Write each test split as CoNLL: ``word gold predicted removed`` (see
    :func:`xner.io.conll.read_predictions_file`; ``removed`` holds the gold entities the label mapping
    removed, with their original types, for don't-care scoring)."""
    paths = []
    for split in split_results(module, datamodule):
        paths.append(Path(out_dir) / f"{split.name}.conll")
        write_conll(
            paths[-1],
            split.sentences,
            [split.scores["predictions"], [removed_tags(s) for s in split.sentences]],
        )
    return paths


def split_table(splits: dict[str, dict], types: list[str], title: str = "") -> str:
    """Table per split: strict F1 (with its 95% interval), P, R, per-type strict F1, the don't-care F1 (with
    its interval) and the partial-match F1; a legend line under the table says which is which."""
    rows = []
    for name, s in splits.items():
        ci, ci_dc = s.get("f1_ci95"), s.get("f1_dontcare_ci95")
        row = {
            "split": name,
            "F1": s["f1"],
            "95% CI": f"[{ci[0]:.1f}, {ci[1]:.1f}]" if ci else "",
            "P": s["precision"],
            "R": s["recall"],
            "F1 dc": s.get("f1_dontcare"),
            "dc 95% CI": f"[{ci_dc[0]:.1f}, {ci_dc[1]:.1f}]" if ci_dc else "",
            "F1 partial": s.get("f1_partial"),
            "entities": s["support"],
            "removed": s.get("removed_gold_spans"),
            "sentences": s["sentences"],
        }
        row.update({f"F1 {t}": s["per_type"][t]["f1"] for t in types if t in s["per_type"]})
        rows.append(row)
    columns = ["split", "F1", "95% CI", "P", "R", *[f"F1 {t}" for t in types], "F1 dc", "dc 95% CI"]
    columns += ["F1 partial", "entities", "removed", "sentences"]
    legend = (
        "F1, P, R, F1 <type>: strict (exact match). F1 dc: don't-care (a prediction overlapping a gold entity "
        "that the label mapping removed, counted in 'removed', is neither right nor wrong). F1 partial: a "
        "prediction overlapping a gold entity of its type is right."
    )
    return format_table(rows, columns, title) + "\n" + legend
