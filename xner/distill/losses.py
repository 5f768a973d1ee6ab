"""Distillation losses as pure functions on tensors (TinyBERT, Patient KD, Wu et al. 2020).

Masks are ``[batch, seq]`` with 1 where a position counts. Every loss averages over counted positions
(and heads/layers where stated), so its scale does not depend on batch size or padding, and every loss is
exactly zero when the student reproduces the teacher.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` (``[batch, seq]``) over positions where ``mask`` is 1 (0 when nothing counts)."""
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp_min(1.0)


def soft_label_kl(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, mask: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """``T^2 * KL(teacher_T || student_T)`` per position, averaged over ``mask`` (Hinton et al. 2015).

    The ``T^2`` factor keeps gradient magnitudes comparable across temperatures.
    """
    t = temperature
    log_p_student = F.log_softmax(student_logits.float() / t, dim=-1)
    log_p_teacher = F.log_softmax(teacher_logits.float() / t, dim=-1)
    kl = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(-1)
    return t * t * _masked_mean(kl, mask)


def soft_label_mse(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, mask: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """Squared error between the two probability distributions (the form of Wu et al. 2020's code)."""
    p_s = F.softmax(student_logits.float() / temperature, dim=-1)
    p_t = F.softmax(teacher_logits.float() / temperature, dim=-1)
    return _masked_mean(((p_s - p_t) ** 2).sum(-1), mask)


def hidden_mse(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """TinyBERT's hidden-state loss: mean squared error per dimension over counted positions.

    ``student`` must already be projected to the teacher's width (see ``HiddenProjection``).
    """
    return _masked_mean(((student.float() - teacher.float()) ** 2).mean(-1), mask)


def hidden_cosine(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``1 - cos(student, teacher)`` per position: direction only, scale-free."""
    return _masked_mean(1 - F.cosine_similarity(student.float(), teacher.float(), dim=-1, eps=1e-8), mask)


def hidden_normalized_mse(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Patient KD's form: squared distance between L2-normalised states (in [0, 4])."""
    s = F.normalize(student.float(), dim=-1)
    t = F.normalize(teacher.float(), dim=-1)
    return _masked_mean(((s - t) ** 2).sum(-1), mask)


HIDDEN_LOSSES = {"mse": hidden_mse, "cosine": hidden_cosine, "pkd": hidden_normalized_mse}


def _match_heads(student: torch.Tensor, teacher: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Average heads when the counts differ (``[batch, heads, seq, seq]``)."""
    if student.shape[1] != teacher.shape[1]:
        return student.mean(1, keepdim=True), teacher.mean(1, keepdim=True)
    return student, teacher


def attention_kl(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """KL(teacher || student) between attention distributions of each head and query position.

    Args:
        student: ``[batch, heads, seq, seq]`` attention probabilities (rows sum to 1 over unpadded keys).
        teacher: the same shape, or with a different head count (then both are head-averaged).
        mask: ``[batch, seq]``; padded query rows are not counted (padded keys have probability 0).
    """
    student, teacher = _match_heads(student.float(), teacher.float())
    eps = 1e-12
    kl = (teacher * (torch.log(teacher + eps) - torch.log(student + eps))).sum(-1)  # [b, h, q]
    return _masked_mean(kl.mean(1), mask)


def attention_mse(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """TinyBERT's attention loss: mean squared error over keys, averaged over heads and counted queries."""
    student, teacher = _match_heads(student.float(), teacher.float())
    keys = mask.to(student.dtype)[:, None, None, :]
    err = (((student - teacher) ** 2) * keys).sum(-1) / keys.sum(-1).clamp_min(1.0)  # [b, h, q]
    return _masked_mean(err.mean(1), mask)


ATTENTION_LOSSES = {"kl": attention_kl, "mse": attention_mse}
