"""Optimiser and schedule shared by the LightningModules."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import lightning as L
import torch
from torch.optim.lr_scheduler import LambdaLR


def linear_warmup_decay(step: int, warmup: int, total: int) -> float:
    """Learning-rate factor: linear warm-up to 1 over ``warmup`` steps, then linear decay to 0 at ``total``."""
    if step < warmup:
        return (step + 1) / max(1, warmup)
    return max(0.0, (total - step) / max(1, total - warmup))


def configure_adamw_linear_warmup(module: L.LightningModule, optimizer: Callable | None, warmup_ratio: float):
    """AdamW over trainable parameters (no weight decay on biases and LayerNorms), with linear warm-up/decay."""
    params = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    no_decay = [p for n, p in params if p.ndim < 2]
    decay = [p for n, p in params if p.ndim >= 2]
    factory = optimizer or partial(torch.optim.AdamW, lr=3e-4, weight_decay=0.01)
    opt = factory([{"params": decay}, {"params": no_decay, "weight_decay": 0.0}])
    total = max(1, int(module.trainer.estimated_stepping_batches))
    warmup = int(warmup_ratio * total)
    sched = LambdaLR(opt, partial(linear_warmup_decay, warmup=warmup, total=total))
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
