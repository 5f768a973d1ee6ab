import math

import pytest
import torch

from xner.distill import losses
from xner.distill.layer_map import build_layer_map


def test_soft_label_kl_known_value_and_temperature():
    teacher = torch.tensor([[[0.0, 0.0]]])  # uniform
    student = torch.tensor([[[0.0, math.log(3.0)]]])  # p = (0.25, 0.75)
    mask = torch.ones(1, 1)
    expected = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    assert losses.soft_label_kl(student, teacher, mask).item() == pytest.approx(expected, rel=1e-5)
    # at T=2 the student distribution is (1, sqrt 3) normalised; the loss is scaled by T^2
    q = torch.tensor([1.0, math.sqrt(3.0)]) / (1 + math.sqrt(3.0))
    at_t2 = 4 * (0.5 * math.log(0.5 / q[0]) + 0.5 * math.log(0.5 / q[1]))
    assert losses.soft_label_kl(student, teacher, mask, temperature=2.0).item() == pytest.approx(
        at_t2, rel=1e-5
    )


def test_losses_vanish_when_student_equals_teacher():
    torch.manual_seed(0)
    logits, hidden = torch.randn(2, 5, 7), torch.randn(2, 5, 16)
    attn = torch.softmax(torch.randn(2, 4, 5, 5), -1)
    mask = torch.ones(2, 5)
    assert losses.soft_label_kl(logits, logits, mask).item() == pytest.approx(0, abs=1e-6)
    assert losses.soft_label_mse(logits, logits, mask).item() == 0
    for fn in losses.HIDDEN_LOSSES.values():
        assert fn(hidden, hidden, mask).item() == pytest.approx(0, abs=1e-6)
    for fn in losses.ATTENTION_LOSSES.values():
        assert fn(attn, attn, mask).item() == pytest.approx(0, abs=1e-6)


def test_hidden_losses_known_values():
    s = torch.tensor([[[1.0, 0.0], [3.0, 4.0]]])
    t = torch.tensor([[[0.0, 1.0], [3.0, 4.0]]])
    mask = torch.tensor([[1, 1]])
    assert losses.hidden_mse(s, t, mask).item() == pytest.approx((1 + 1) / 2 / 2)  # one position differs
    assert losses.hidden_cosine(s, t, mask).item() == pytest.approx(0.5)  # orthogonal: 1, equal: 0
    assert losses.hidden_normalized_mse(-t, t, torch.tensor([[1, 0]])).item() == pytest.approx(
        4.0
    )  # opposite unit vectors


def test_masks_are_respected():
    torch.manual_seed(1)
    s, t = torch.randn(1, 3, 4), torch.randn(1, 3, 4)
    mask = torch.tensor([[1, 1, 0]])
    s2 = s.clone()
    s2[0, 2] += 100.0  # a padded position may hold anything
    for fn in (losses.hidden_mse, losses.hidden_cosine, losses.hidden_normalized_mse, losses.soft_label_kl):
        assert fn(s2, t, mask).item() == pytest.approx(fn(s, t, mask).item(), rel=1e-6)
    assert losses.hidden_mse(s, t, torch.zeros(1, 3)).item() == 0  # nothing to count


def test_attention_losses_known_value_and_head_averaging():
    t = torch.tensor([[[[0.5, 0.5], [1.0, 0.0]]]])  # 1 head, 2 queries
    s = torch.tensor([[[[0.25, 0.75], [1.0, 0.0]]]])
    mask = torch.tensor([[1, 1]])
    kl_q0 = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    assert losses.attention_kl(s, t, mask).item() == pytest.approx(kl_q0 / 2, rel=1e-5)
    assert losses.attention_mse(s, t, mask).item() == pytest.approx((0.0625 * 2 / 2) / 2)
    # a padded query row does not count
    assert losses.attention_kl(s, t, torch.tensor([[0, 1]])).item() == pytest.approx(0, abs=1e-6)
    # 2 student heads vs 1 teacher head: compared after averaging heads
    s2 = torch.cat([s, s], dim=1)
    assert losses.attention_kl(s2, t, mask).item() == pytest.approx(kl_q0 / 2, rel=1e-5)


def test_layer_maps():
    assert build_layer_map("uniform", 0, 6, 12) == []
    assert build_layer_map("uniform", 2, 6, 12) == [(3, 6), (6, 12)]
    assert build_layer_map("uniform", 3, 6, 12) == [(2, 4), (4, 8), (6, 12)]
    assert build_layer_map("uniform", 6, 6, 12) == [(i, 2 * i) for i in range(1, 7)]
    assert build_layer_map("last", 3, 6, 12) == [(4, 10), (5, 11), (6, 12)]
    assert build_layer_map("skip", 2, 6, 12) == [(1, 2), (2, 4)]
    assert build_layer_map("explicit", 0, 6, 12, [[0, 0], [6, 12]]) == [(0, 0), (6, 12)]
    with pytest.raises(ValueError, match="teacher has 12 layers"):
        build_layer_map("explicit", 0, 6, 12, [[3, 13]])
    with pytest.raises(ValueError, match="student has 6 layers"):
        build_layer_map("explicit", 0, 6, 12, [[7, 12]])
    with pytest.raises(ValueError, match="depth 7 is more than the 6 pairs"):
        build_layer_map("uniform", 7, 6, 12)
    with pytest.raises(ValueError, match="unknown layer map"):
        build_layer_map("random", 1, 6, 12)
