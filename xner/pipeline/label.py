"""Labelling words with a trained tagger: the one prediction function the pipeline calls.

The pipeline sees a :class:`Labeller`: a callable from word lists to ``{"tags", "probs", "labels"}`` records
with a :meth:`~Labeller.cache_key` that names the model. :func:`make_labeller` builds one from a pipeline's
``source_model``: an xner checkpoint (:class:`CheckpointLabeller`) or a Hugging Face token-classification
model by hub name or directory (:class:`HubLabeller`). This is the only place in :mod:`xner.pipeline` that
reaches the model code, and it does so on call, so building or loading projected sets never imports Lightning.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from xner.store import file_sha256
from xner.types import Sentence

# weight files whose bytes identify a local HF model directory in cache keys
_WEIGHT_PATTERNS = ("*.safetensors", "*.bin")


class Labeller(Protocol):
    """Tags word-tokenised sentences with a model."""

    def cache_key(self) -> dict[str, Any]:
        """What identifies the model in stage-cache keys (e.g. its checkpoint's sha256)."""
        ...

    def __call__(self, sentences: list[list[str]], progress: bool | None = None) -> list[dict[str, Any]]:
        """One record per sentence: ``tags`` (one per word), ``probs`` ([words][labels], 4 decimals),
        ``labels`` (the label names of the probability columns)."""
        ...


class _LazyLabeller:
    """A :class:`Labeller` whose model is loaded on the first call (by :meth:`_load`) and kept."""

    _predict: Callable | None = None
    _module: Any = None

    def _load(self) -> Any:
        raise NotImplementedError

    def __call__(self, sentences: list[list[str]], progress: bool | None = None) -> list[dict[str, Any]]:
        """Load the model (once) and tag ``sentences``."""
        predict = self._predict
        if predict is None:
            from xner.predict import predict_words as predict  # noqa: PLC0415 - model code on call only
        if self._module is None:
            self._module = self._load()
        labels = list(self._module.label_set.labels)
        preds = predict(self._module, [Sentence(t) for t in sentences], progress=progress)
        return [{"tags": p.tags, "probs": np.round(p.probs, 4).tolist(), "labels": labels} for p in preds]


class CheckpointLabeller(_LazyLabeller):
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

    def _load(self) -> Any:
        # on call: the model code (torch, Lightning) is needed only when a stage is actually built
        from xner.lit.loading import load_checkpoint_module  # noqa: PLC0415

        return load_checkpoint_module(self.path)


class HubLabeller(_LazyLabeller):
    """A :class:`Labeller` over a Hugging Face token-classification model, loaded on the first call.

    The model must be encoder + linear head with IOB2 labels in ``config.id2label`` (e.g. an English NER model
    fine-tuned on CoNLL-2003, or a directory written by :mod:`xner.export`); see
    :func:`xner.export.convert.from_hf_model`.

    Args:
        name_or_path: hub name (``org/model``; needs a network or the local HF cache) or a model directory.
        device: where to run it; ``None`` picks CUDA when available (not part of the cache key).
        predict: the prediction function (default :func:`xner.predict.predict_words`).
    """

    def __init__(self, name_or_path: str | Path, device: str | None = None, predict: Callable | None = None):
        self.name_or_path = str(name_or_path)
        self.device = device
        self._predict = predict
        self._key: dict[str, Any] | None = None

    def cache_key(self) -> dict[str, Any]:
        """A local directory: the sha256 of its config and weight files; a hub name: the name itself (pin a
        revision by downloading it to a directory)."""
        if self._key is None:
            path = Path(self.name_or_path)
            if path.is_dir():
                files = [path / "config.json"]
                files += sorted(p for pattern in _WEIGHT_PATTERNS for p in path.glob(pattern))
                self._key = {"hf_model": path.name, "files_sha256": {p.name: file_sha256(p) for p in files}}
            else:
                self._key = {"hf_model": self.name_or_path}
        return self._key

    def _load(self) -> Any:
        from xner.export.convert import load_hub_tagger  # noqa: PLC0415 - torch and transformers on call

        return load_hub_tagger(self.name_or_path, self.device)


def checkpoint_labeller(path: str | Path) -> CheckpointLabeller:
    """A :class:`CheckpointLabeller` of ``path`` (kept for callers that know they hold a checkpoint)."""
    return CheckpointLabeller(path)


def make_labeller(source_model: str | Path, device: str | None = None) -> CheckpointLabeller | HubLabeller:
    """The :class:`Labeller` of a pipeline spec's ``source_model``.

    Args:
        source_model: an xner checkpoint file (``.ckpt``), a HF model directory (with ``config.json``), or a
            hub name such as ``org/model``.
        device: for a HF model (see :class:`HubLabeller`); checkpoints load on the CPU.

    Raises:
        FileNotFoundError: ``source_model`` looks like a local path (a ``.ckpt`` name, or starts with ``/``,
            ``.`` or ``~``) that does not exist, or is a directory without ``config.json``.
    """
    text = str(source_model)
    path = Path(text).expanduser()
    if path.is_file():
        return CheckpointLabeller(path)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"source_model {path} is a directory without config.json: give an xner checkpoint (.ckpt), a "
                "Hugging Face model directory, or a hub name"
            )
        return HubLabeller(path, device)
    if text.endswith(".ckpt") or text.startswith(("/", ".", "~")) or text.count("/") != 1:
        raise FileNotFoundError(
            f"source_model {text} not found: give an existing xner checkpoint (.ckpt; training runs write "
            "checkpoints/best.ckpt), a Hugging Face model directory, or a hub name such as org/model"
        )
    return HubLabeller(text, device)
