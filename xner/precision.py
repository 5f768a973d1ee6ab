"""``trainer.precision: auto``: bf16 autocast where the CPU computes bf16 natively, fp32 elsewhere.

On CPUs with AVX512_BF16 or AMX, bf16 matmuls run about twice as fast as fp32 ones (DESIGN.md), and training
in bf16 autocast keeps entity F1 (``results/bf16_parity``). Without native support the same autocast runs
emulated kernels, slower than fp32, so ``auto`` must not choose it there.
"""

from __future__ import annotations

import functools
import logging
import platform
from pathlib import Path

log = logging.getLogger(__name__)

NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.cache
def cpu_has_native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether the CPU advertises native bf16 arithmetic (Linux flags; ``False`` where they cannot be read)."""
    if platform.system() != "Linux":
        return False
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    flags = {flag for line in text.splitlines() if line.startswith("flags") for flag in line.split()}
    return any(flag in flags for flag in NATIVE_BF16_FLAGS)


def resolve_precision(precision, accelerator: str = "cpu") -> str | int:
    """The Lightning precision for a ``trainer.precision`` value: ``auto`` becomes ``bf16-mixed`` on a CPU
    with native bf16 and ``32-true`` otherwise (also on other accelerators, whose configs name theirs);
    any other value is returned unchanged."""
    if str(precision) != "auto":
        return precision
    chosen = "bf16-mixed" if str(accelerator) == "cpu" and cpu_has_native_bf16() else "32-true"
    log.info("trainer.precision=auto -> %s (accelerator %s)", chosen, accelerator)
    return chosen


def trainer_precision(trainer) -> str | int:
    """The Lightning precision of a ``trainer`` config (its ``precision``, ``auto`` resolved for its
    ``accelerator``): what train.py and evaluate.py pass to the Trainer they instantiate."""
    return resolve_precision(trainer.get("precision", "32-true"), trainer.get("accelerator", "cpu"))
