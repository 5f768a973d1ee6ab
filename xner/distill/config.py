"""What a student learns from its teacher: the ``distill`` config group, checked on construction."""

from __future__ import annotations

from dataclasses import dataclass

from xner.distill import losses
from xner.distill.layer_map import STRATEGIES


@dataclass
class DistillConfig:
    """What the student learns from the teacher, and where.

    Attributes:
        depth: number of mapped layer pairs (0 = logits only).
        map: layer-map strategy: uniform, last, skip or explicit.
        pairs: explicit (student, teacher) pairs for ``map=explicit``.
        temperature: softmax temperature of the soft labels.
        ce_weight: weight of cross-entropy on gold/projected labels (0 = pure distillation).
        kd_weight: weight of the soft-label loss.
        hidden_weight: weight of the hidden-state loss (averaged over pairs, so depth does not scale it).
        attention_weight: weight of the attention loss (0 = off).
        kd_loss: ``kl`` or ``mse`` (Wu et al. 2020's code).
        hidden_loss: ``mse`` (TinyBERT), ``cosine`` or ``pkd`` (normalised states, Patient KD).
        attention_loss: ``kl`` or ``mse``.
        teacher_mode: ``cached`` (teacher run once, outputs memory-mapped) or ``online``.
        cache_all_layers: when building the cache for a hidden-state loss, store every teacher layer, so runs
            at other depths reuse the same entry instead of running the teacher again.
    """

    depth: int = 0
    map: str = "uniform"
    pairs: list[list[int]] | None = None
    temperature: float = 1.0
    ce_weight: float = 0.0
    kd_weight: float = 1.0
    hidden_weight: float = 1.0
    attention_weight: float = 0.0
    kd_loss: str = "kl"
    hidden_loss: str = "mse"
    attention_loss: str = "kl"
    teacher_mode: str = "cached"
    cache_all_layers: bool = False

    def __post_init__(self) -> None:
        if self.kd_loss not in ("kl", "mse"):
            raise ValueError(f"distill.kd_loss must be kl or mse, got {self.kd_loss!r}")
        if self.hidden_loss not in losses.HIDDEN_LOSSES:
            raise ValueError(
                f"distill.hidden_loss must be one of {', '.join(losses.HIDDEN_LOSSES)}, got {self.hidden_loss!r}"
            )
        if self.attention_loss not in losses.ATTENTION_LOSSES:
            raise ValueError(
                f"distill.attention_loss must be one of {', '.join(losses.ATTENTION_LOSSES)}, "
                f"got {self.attention_loss!r}"
            )
        if self.map not in STRATEGIES:  # checked here too, so before the teacher is loaded
            raise ValueError(f"distill.map must be one of {', '.join(STRATEGIES)}, got {self.map!r}")
        if self.teacher_mode not in ("cached", "online"):
            raise ValueError(f"distill.teacher_mode must be cached or online, got {self.teacher_mode!r}")
