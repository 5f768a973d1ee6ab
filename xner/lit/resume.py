"""Interrupted training that resumes where it stopped.

Lightning's ``ModelCheckpoint`` writes ``last.ckpt`` every N steps and at the end of each epoch (see
``configs/callbacks/default.yaml``). This callback adds the two things it lacks for an interrupted run:

- on SIGTERM or Ctrl-C it writes ``last.ckpt`` at the step where training stopped (one process only: under
  DDP the other ranks are already being killed, and a checkpoint needs them all), and
- when a fit resumes from a mid-epoch checkpoint, it makes the length-bucketing batch sampler leave out the
  batches that were already trained on. The order of batches depends only on the seed and the epoch, so the
  resumed run trains on exactly the batches the interrupted one had not reached (Lightning itself would
  start the epoch's data from the beginning and stop after the remaining number of steps).

The resumed run is not bit-identical to an uninterrupted one (dropout draws differ), but it sees the same
data in the same order with the same optimizer and schedule state.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import lightning as L
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException

from xner.data.encoding import LengthBucketBatchSampler

log = logging.getLogger(__name__)


class ResumableTraining(L.Callback):
    """Save ``last.ckpt`` when interrupted; skip already-trained batches when resuming mid-epoch.

    Args:
        dirpath: the checkpoint directory (the same as the ``last`` ModelCheckpoint's).
        filename: the checkpoint's file name without ``.ckpt``.
    """

    def __init__(self, dirpath: str, filename: str = "last"):
        self.path = Path(dirpath) / f"{filename}.ckpt"

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # Lightning warns that a mid-epoch resume is unreliable when the loader cannot skip; ours can.
        warnings.filterwarnings(
            "ignore", message=".*resuming from a checkpoint that ended before the epoch.*"
        )

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Called after Lightning restored the loops from the checkpoint and before the epoch's batches are
        # drawn (``on_train_epoch_start`` is skipped on a mid-epoch restart). ``processed`` is the number of
        # batches of the interrupted epoch that were trained; Lightning continues counting from there.
        epoch_loop = trainer.fit_loop.epoch_loop
        done = epoch_loop.batch_progress.current.processed
        if not epoch_loop.restarting or not 0 < done < trainer.num_training_batches:
            return
        sampler = getattr(trainer.train_dataloader, "batch_sampler", None)
        if isinstance(sampler, LengthBucketBatchSampler):
            sampler.skip_next(done)
            log.warning(
                "resuming epoch %d after %d trained batches: skipping them", trainer.current_epoch, done
            )
        else:
            log.warning(
                "resuming mid-epoch after %d batches, but the training loader (%s) cannot skip them: "
                "the epoch's first batches are seen twice",
                done,
                type(sampler).__name__,
            )

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        interrupted = isinstance(exception, SIGTERMException | KeyboardInterrupt)
        fitting = trainer.state.fn == TrainerFn.FITTING
        if not interrupted or not fitting or trainer.world_size > 1:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        trainer.save_checkpoint(self.path)
        log.warning(
            "training interrupted at step %d: saved %s; run the same command again (same run dir) to resume",
            trainer.global_step,
            self.path,
        )
