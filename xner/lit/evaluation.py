"""Shared validation/test logic: collect word-level predictions per named split and score them."""

from __future__ import annotations

import logging
import time
from collections import defaultdict

import lightning as L
import torch

from xner.errors import error_breakdown
from xner.labels import LabelSet
from xner.metrics import count_entities, scores_from_counts
from xner.stats import bootstrap_f1

log = logging.getLogger(__name__)


class SplitEvaluationMixin:
    """For LightningModules: per-split prediction collection in val/test, metrics logged at epoch end.

    The host calls :meth:`init_evaluation` in ``__init__`` and its ``forward(input_ids, attention_mask)``
    returns an object with ``.logits``; the val/test hooks below need nothing else (override
    ``validation_step`` to log a loss too, calling :meth:`collect`). Metric names:
    ``val/f1`` (first validation split) and ``test/<split>/f1``, ``test/<split>/f1_<TYPE>``, ... (strict),
    ``test/<split>/f1_dontcare`` (predictions on gold entities the label mapping removed ignored) and
    ``test/<split>/f1_partial`` (overlap match). Results with predictions, counts (``counts``,
    ``counts_dontcare``, ``counts_partial``) and, for test, the error breakdown (``errors``) stay in
    ``self.eval_results[stage][split]`` for writers (predictions files, metrics.json).
    """

    label_set: LabelSet
    bootstrap_resamples: int = 1000

    def init_evaluation(self, label_set: LabelSet) -> None:
        """Call from ``__init__``: the label set to decode with and empty result stores."""
        self.label_set = label_set
        self.eval_results: dict[str, dict] = {}
        self._pending: dict[str, dict] = {}

    def _reset_eval(self, stage: str) -> None:
        self._pending[stage] = defaultdict(dict)

    def _loaders(self, stage: str) -> list:
        loaders = self.trainer.val_dataloaders if stage == "val" else self.trainer.test_dataloaders
        return loaders if isinstance(loaders, list | tuple) else [loaders]

    def collect(self, stage: str, batch: dict, logits: torch.Tensor, dataloader_idx: int = 0) -> None:
        """Store the predicted label of every word column of a batch under its split.

        Reads only the batch: ``word_starts`` (``[B, W]``, -1 where a word has no subword and past the end
        of a sentence). :meth:`finish` cuts each row to its sentence's words.
        """
        rows = zip(
            batch["index"].tolist(), batch["word_starts"].tolist(), logits.argmax(-1).tolist(), strict=True
        )
        for idx, starts, labels in rows:
            self._pending[stage][dataloader_idx][idx] = [
                labels[pos] if 0 <= pos < len(labels) else None for pos in starts
            ]

    def _word_tags(self, predicted: list[int | None], n_words: int) -> tuple[list[str], int]:
        """Tags of a sentence's ``n_words`` words from :meth:`collect`'s columns (``O`` where a word has no
        subword, e.g. cut by max_length) and how many words had none."""
        columns = predicted[:n_words] + [None] * (n_words - len(predicted))
        tags = [self.label_set.labels[c] if c is not None else "O" for c in columns]
        return tags, sum(c is None for c in columns)

    def _gather(self, stage: str) -> dict[int, dict]:
        """Predictions of every rank: under DDP each rank scored only its share of the batches, so all
        shares are gathered and every rank scores the whole split (identical numbers on every rank)."""
        pending = self._pending[stage]
        if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            return pending
        world = torch.distributed.get_world_size()
        if world == 1:
            return pending
        shares: list = [None] * world
        torch.distributed.all_gather_object(shares, dict(pending))
        merged: dict[int, dict] = defaultdict(dict)
        for share in shares:
            for k, preds in share.items():
                merged[k].update(preds)
        return merged

    def finish(self, stage: str) -> dict[str, dict]:
        """Score every split of ``stage``, log metrics, keep predictions; returns scores by split."""
        results = {}
        pending = self._gather(stage)
        loaders = self._loaders(stage)
        for k, loader in enumerate(loaders):
            start = time.perf_counter()
            dataset, preds = loader.dataset, pending.get(k, {})
            if len(preds) != len(dataset):
                if self.trainer.sanity_checking or (stage == "val" and len(preds) == 0):
                    continue  # partial sanity-check pass or limited val batches: nothing to score
                log.warning(
                    "%s/%s: predictions for %d of %d sentences (limit_%s_batches?)",
                    stage,
                    dataset.name,
                    len(preds),
                    len(dataset),
                    stage,
                )
            order = sorted(preds)
            sentences = [dataset.sentences[i] for i in order]
            gold = [sent.tags for sent in sentences]
            ignore = [sent.ignore_spans for sent in sentences]
            decoded = [self._word_tags(preds[i], len(sent)) for i, sent in zip(order, sentences, strict=True)]
            pred = [tags for tags, _ in decoded]
            truncated = sum(missing for _, missing in decoded)
            name = dataset.name or f"split{k}"
            counts = count_entities(gold, pred, self.label_set.types)
            counts_dc = count_entities(gold, pred, self.label_set.types, ignore=ignore)
            scores = {**scores_from_counts(counts), **self._dontcare_scores(counts, counts_dc)}
            scores["removed_gold_spans"] = sum(len(spans) for spans in ignore)
            results[name] = {"counts": counts, "counts_dontcare": counts_dc}
            if stage == "test":
                errors = error_breakdown(gold, pred, self.label_set.types, ignore=ignore)
                partial = scores_from_counts(errors.partial)
                scores.update({f"{m}_partial": partial[m] for m in ("f1", "precision", "recall")})
                results[name].update(errors=errors, counts_partial=errors.partial)
                if len(counts):
                    ci = bootstrap_f1(counts, resamples=self.bootstrap_resamples)
                    ci_dc = bootstrap_f1(counts_dc, resamples=self.bootstrap_resamples)
                    scores["f1_ci95"], scores["f1_dontcare_ci95"] = [ci.low, ci.high], [ci_dc.low, ci_dc.high]
            scores["truncated_words"] = truncated
            results[name].update(scores, predictions=pred, indices=order)
            if stage == "val":
                if k == 0:
                    self.log("val/f1", scores["f1"], prog_bar=True, add_dataloader_idx=False)
                self.log(f"val/{name}/f1", scores["f1"], add_dataloader_idx=False)
            else:
                for metric in ("f1", "precision", "recall", "f1_dontcare", "f1_partial"):
                    self.log(f"test/{name}/{metric}", scores[metric], add_dataloader_idx=False)
                for t, s in scores["per_type"].items():
                    self.log(f"test/{name}/f1_{t}", s["f1"], add_dataloader_idx=False)
            if stage == "test" and self.trainer.is_global_zero:  # the bootstrap takes a while on big splits
                log.info(
                    "scored split %d/%d %s in %s: F1 %.1f",
                    k + 1,
                    len(loaders),
                    name,
                    format_seconds(time.perf_counter() - start),
                    scores["f1"],
                )
            if truncated:
                log.warning(
                    "%s/%s: %d words had no subword position (truncated) and were tagged O",
                    stage,
                    name,
                    truncated,
                )
        self.eval_results[stage] = results
        return results

    @staticmethod
    def _dontcare_scores(strict, dontcare) -> dict:
        """The don't-care scores under ``*_dontcare`` names, and how many predictions the mode ignored."""
        scores = scores_from_counts(dontcare)
        out = {f"{m}_dontcare": scores[m] for m in ("f1", "precision", "recall", "predicted")}
        out["per_type_dontcare"] = scores["per_type"]
        out["ignored_predictions_dontcare"] = int(strict.pred.sum() - dontcare.pred.sum())
        return out

    # Lightning hooks: collect predictions per split, score them at the end of the epoch.
    def on_validation_epoch_start(self) -> None:
        self._reset_eval("val")

    def validation_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        self.collect("val", batch, self(batch["input_ids"], batch["attention_mask"]).logits, dataloader_idx)

    def on_validation_epoch_end(self) -> None:
        self.finish("val")

    def on_test_epoch_start(self) -> None:
        self._reset_eval("test")

    def test_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        self.collect("test", batch, self(batch["input_ids"], batch["attention_mask"]).logits, dataloader_idx)

    def on_test_epoch_end(self) -> None:
        self.finish("test")


def format_seconds(seconds: float) -> str:
    """``4.2 s``, ``3 min 07 s`` or ``1 h 02 min``: durations for progress lines."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


class SplitProgress(L.Callback):
    """Log lines on the progress of testing, split by split, on rank 0.

    ``split 3/15 swa_wiki (1,234 sentences, 39 batches) ...`` when a split starts, ``split 3/15 swa_wiki:
    predicted in 12.3 s (elapsed 1 min 02 s)`` when it ends, and a line every ``every_s`` seconds within a
    long split. They go through :mod:`logging` (Hydra's console and the run's log file), so the progress
    shows where a progress bar cannot: redirected output and batch-job logs. The scoring of each split
    (bootstrap intervals) is logged by :meth:`SplitEvaluationMixin.finish` after the last split.

    Args:
        every_s: seconds between the lines within a split (``None``: none).
    """

    def __init__(self, every_s: float | None = 60.0):
        self.every_s = every_s
        self._current: int | None = None
        self._start = self._split_start = self._last = 0.0
        self._loaders: list = []

    def _batches(self, idx: int) -> str:
        try:
            return str(len(self._loaders[idx]))
        except TypeError:  # an iterable loader has no length
            return "?"

    def _describe(self, idx: int) -> str:
        dataset = getattr(self._loaders[idx], "dataset", None)
        return f"split {idx + 1}/{len(self._loaders)} {getattr(dataset, 'name', None) or f'split{idx}'}"

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        loaders = trainer.test_dataloaders
        self._loaders = list(loaders) if isinstance(loaders, list | tuple) else [loaders]
        self._current, self._start = None, time.perf_counter()
        if trainer.is_global_zero:
            sentences = sum(len(getattr(loader, "dataset", ())) for loader in self._loaders)
            log.info("testing %d splits (%s sentences)", len(self._loaders), f"{sentences:,}")

    def on_test_batch_start(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        batch: object,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if dataloader_idx == self._current:
            return
        self._end_split(trainer)
        self._current = dataloader_idx
        self._split_start = self._last = time.perf_counter()
        if trainer.is_global_zero:
            sentences = len(getattr(self._loaders[dataloader_idx], "dataset", ()))
            log.info(
                "%s (%s sentences, %s batches) ...",
                self._describe(dataloader_idx),
                f"{sentences:,}",
                self._batches(dataloader_idx),
            )

    def on_test_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: object,
        batch: object,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        now = time.perf_counter()
        if self.every_s is None or now - self._last < self.every_s or not trainer.is_global_zero:
            return
        self._last = now
        log.info(
            "%s: batch %d/%s, %s",
            self._describe(dataloader_idx),
            batch_idx + 1,
            self._batches(dataloader_idx),
            format_seconds(now - self._split_start),
        )

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._end_split(trainer)  # runs before the module's hook, which scores every split
        self._current = None

    def _end_split(self, trainer: L.Trainer) -> None:
        if self._current is None or not trainer.is_global_zero:
            return
        now = time.perf_counter()
        log.info(
            "%s: predicted in %s (elapsed %s)",
            self._describe(self._current),
            format_seconds(now - self._split_start),
            format_seconds(now - self._start),
        )
