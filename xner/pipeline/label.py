"""Labelling words with a trained tagger: the one prediction function the pipeline calls.

The pipeline sees a :class:`Labeller`: a callable from word lists to ``{"tags", "probs", "labels"}`` records
with a :meth:`~Labeller.cache_key` that names the model. :func:`checkpoint_labeller` builds one from a
checkpoint; it is the only place in :mod:`xner.pipeline` that reaches the model code, and it does so on call,
so building or loading projected sets never imports Lightning.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from xner.store import file_sha256
from xner.types import Sentence


class Labeller(Protocol):
    """Tags word-tokenised sentences with a model."""

    def cache_key(self) -> dict[str, Any]:
        """What identifies the model in stage-cache keys (e.g. its checkpoint's sha256)."""
        ...

    def __call__(self, sentences: list[list[str]], progress: bool | None = None) -> list[dict[str, Any]]:
        """One record per sentence: ``tags`` (one per word), ``probs`` ([words][labels], 4 decimals),
        ``labels`` (the label names of the probability columns)."""
        ...


class CheckpointLabeller:
    """A :class:`Labeller` over an xner checkpoint, loaded on the first call.

    Args:
        path: the checkpoint (``.ckpt``) of a TaggerModule or DistillModule.
        predict: the prediction function (default :func:`xner.predict.predict_words`); takes the module and
            :class:`~xner.types.Sentence` objects, returns per-sentence ``tags`` and ``probs``.
    """

    def __init__(self, path: str | Path, predict: Callable | None = None):
        self.path = Path(path)
        self._predict = predict
        self._sha256: str | None = None

    def cache_key(self) -> dict[str, Any]:
        """``{"model_sha256": ...}`` of the checkpoint file."""
        if self._sha256 is None:
            self._sha256 = file_sha256(self.path)
        return {"model_sha256": self._sha256}

    def __call__(self, sentences: list[list[str]], progress: bool | None = None) -> list[dict[str, Any]]:
        """Load the checkpoint and tag ``sentences``."""
        # on call: the model code (torch, Lightning) is needed only when a stage is actually built
        from xner.lit.loading import load_checkpoint_module  # noqa: PLC0415

        predict = self._predict
        if predict is None:
            from xner.predict import predict_words as predict  # noqa: PLC0415
        module = load_checkpoint_module(self.path)
        labels = list(module.label_set.labels)
        preds = predict(module, [Sentence(t) for t in sentences], progress=progress)
        return [{"tags": p.tags, "probs": np.round(p.probs, 4).tolist(), "labels": labels} for p in preds]


def checkpoint_labeller(path: str | Path) -> CheckpointLabeller:
    """The default :class:`Labeller` of a pipeline spec's ``source_model``."""
    return CheckpointLabeller(path)
