"""Load any xner LightningModule checkpoint without knowing its class in advance."""

from __future__ import annotations

import importlib
from pathlib import Path

import lightning as L
import torch

CLASS_KEY = "xner_module"


def record_class(module: L.LightningModule, checkpoint: dict) -> None:
    """Store the module's import path in a checkpoint (called from ``on_save_checkpoint``)."""
    checkpoint[CLASS_KEY] = f"{type(module).__module__}:{type(module).__qualname__}"


def load_checkpoint_module(path: str | Path, map_location: str = "cpu") -> L.LightningModule:
    """Rebuild the module a checkpoint was saved from, in eval mode.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not an xner checkpoint (says what was found).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"Checkpoint {path} not found. Training runs write checkpoints/best.ckpt in their run dir."
        )
    header = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    target = header.get(CLASS_KEY)
    if target is None:
        raise ValueError(
            f"{path} is not an xner checkpoint (no '{CLASS_KEY}' entry; keys: {sorted(header)[:8]})"
        )
    module_name, _, cls_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    module = cls.load_from_checkpoint(path, map_location=map_location)
    return module.eval()
