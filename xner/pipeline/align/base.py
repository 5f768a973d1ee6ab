"""The :class:`Aligner` protocol and what the aligners share: where the encoder is, its identity, checks."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from xner.pipeline.align.methods import Links

VERSION = "1"  # bump when the alignments this package computes change


@runtime_checkable
class Aligner(Protocol):
    """Anything that word-aligns batches of pre-tokenised sentence pairs."""

    name: str

    def align(self, source: Sequence[Sequence[str]], target: Sequence[Sequence[str]]) -> list[Links]:
        """Align ``source[k]`` to ``target[k]`` for every k; links are 0-based (source word, target word)."""
        ...

    def cache_key(self) -> dict:
        """Everything that determines the alignments (for the pipeline's stage cache)."""
        ...


def resolve_model_dir(model_dir: str | os.PathLike | None) -> str:
    """Where to load the encoder from.

    Args:
        model_dir: a local model directory, a HF hub id (``org/name``, used as given), or None for the
            converted multilingual-e5-small (:func:`xner.models.convert_e5.default_model_dir`).

    Raises:
        FileNotFoundError: a local directory (absolute, ``~``, ``.``-relative or the default) is missing;
            the message names ``make setup``.
    """
    from xner.models.convert_e5 import default_model_dir  # noqa: PLC0415

    text = str(model_dir) if model_dir is not None else ""
    path = Path(text).expanduser() if text else default_model_dir()
    if (path / "config.json").is_file():
        return str(path)
    looks_local = not text or text.startswith(("/", "~", ".")) or path.exists() or text.count("/") != 1
    if looks_local:
        raise FileNotFoundError(
            f"Aligner encoder not found: {path} has no config.json. Create the converted multilingual-e5-small "
            "with `make setup` (or `xner-convert-e5 --out DIR`), or pass model_dir=<a HF model directory>."
        )
    return text  # a hub id: transformers resolves it (online, or from the local HF cache)


def encoder_fingerprint(model_dir: str) -> dict:
    """A machine-independent identity of the aligner's encoder, merged into the aligners' cache keys.

    A converted encoder is named by the sha256 of the file it was converted from (its
    ``xner_conversion.json``), another local directory by its ``config.json`` hash, a hub id by itself.
    (Not the HF translator's fingerprint, which also lists file sizes and gives ``None`` for hub ids.)

    Args:
        model_dir: the resolved encoder directory or hub id (:func:`resolve_model_dir`).
    """
    path = Path(model_dir)
    conv = path / "xner_conversion.json"
    if conv.is_file():
        meta = json.loads(conv.read_text())
        return {"model": path.name, "source_sha256": meta.get("source", {}).get("sha256")}
    cfg = path / "config.json"
    if cfg.is_file():
        return {"model": path.name, "config_sha256": hashlib.sha256(cfg.read_bytes()).hexdigest()}
    return {"model": model_dir}


def check_layer(layer: int, depth: int, model_dir: str) -> None:
    if not 0 <= int(layer) <= depth:
        raise ValueError(
            f"Alignment layer {layer} is out of range for {model_dir}: it has {depth} layers, so the layer "
            f"must be in 0..{depth} (0 = embedding output, {depth} = last layer)."
        )


def check_pairs(source: Sequence, target: Sequence) -> None:
    if len(source) != len(target):
        raise ValueError(
            f"align() needs as many source as target sentences, got {len(source)} and {len(target)}."
        )
    for k, words in enumerate(list(source) + list(target)):
        if isinstance(words, str):
            side = "source" if k < len(source) else "target"
            raise TypeError(
                f"{side} sentence {k % max(len(source), 1)} is a string; pass lists of words (e.g. s.split())."
            )


def progress_bar(iterable, total: int | None, desc: str, progress: bool | None):
    from tqdm.auto import tqdm  # noqa: PLC0415

    # disable=None: show the bar on a terminal only.
    return tqdm(
        iterable, total=total, desc=desc, disable=None if progress is None else not progress, leave=False
    )
