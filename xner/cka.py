"""Linear centred kernel alignment (CKA) between two representations of the same examples, and the
first-subword word vectors of a tagger's hidden states to compare with it.

Kornblith et al. (2019), "Similarity of Neural Network Representations Revisited", eq. (5): with ``X``
(``[n, d1]``) and ``Y`` (``[n, d2]``) the representations of the same ``n`` examples, each column centred,

    CKA(X, Y) = ||Y^T X||_F^2 / (||X^T X||_F * ||Y^T Y||_F)

It lies in ``[0, 1]``, is symmetric, and is invariant to orthogonal transformations and isotropic scaling
of either representation (not to arbitrary invertible linear maps), so it compares layers of different
widths, e.g. a student layer and a teacher layer. This is the biased (plug-in HSIC) estimator: for
independent random representations it is not 0 at finite ``n`` but about ``sqrt(d1 * d2) / n`` (for
``n >> d``; 0.04 for two 384-wide layers over 10,000 words), so compare CKA values computed on similar
numbers of examples.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from xner.data.encoding import Encoded, PadCollator, gather_word_starts
from xner.distill.layer_map import build_layer_map, check_layer


def _as_matrix(values: Any, name: str) -> np.ndarray:
    """A float64 ``[n, d]`` copy of a NumPy array, a torch tensor or nested lists."""
    if hasattr(values, "detach"):  # torch tensor (any device or dtype)
        values = values.detach().to("cpu").double().numpy()
    array = np.array(values, dtype=np.float64, copy=True)
    if array.ndim != 2:
        raise ValueError(
            f"linear_cka needs {name} as a 2-d matrix [examples, features], got shape {array.shape}; "
            "flatten the word/sentence axes into one example axis first"
        )
    if not np.isfinite(array).all():
        raise ValueError(f"{name} has {int((~np.isfinite(array)).sum())} non-finite values (NaN or inf)")
    return array


def linear_cka(x: Any, y: Any) -> float:
    """Linear CKA between two representations of the same examples.

    Computed in float64: columns are centred, each matrix is divided by its Frobenius norm (CKA is
    scale-invariant; this keeps the products far from overflow for any input scale), and the cross products
    ``Y^T X`` (``[d2, d1]``) are formed in feature space, so the cost is ``O(n * d1 * d2)`` and memory
    ``O(d1 * d2)``. The result is clipped to ``[0, 1]`` against rounding.

    Args:
        x: ``[n, d1]`` representations (NumPy array or torch tensor).
        y: ``[n, d2]`` representations of the same ``n`` examples, in the same order.

    Returns:
        The CKA similarity in ``[0, 1]``.

    Raises:
        ValueError: not 2-d, different numbers of examples, fewer than 2 examples, non-finite values, or a
            representation that is constant over the examples (CKA is undefined: 0 / 0).
    """
    a, b = _as_matrix(x, "x"), _as_matrix(y, "y")
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"linear_cka needs the same examples in both representations: x has {a.shape[0]} rows, "
            f"y has {b.shape[0]}"
        )
    if a.shape[0] < 2:
        raise ValueError(f"linear_cka needs at least 2 examples, got {a.shape[0]}")
    a -= a.mean(axis=0, keepdims=True)
    b -= b.mean(axis=0, keepdims=True)
    for name, m in (("x", a), ("y", b)):
        norm = np.linalg.norm(m)
        if norm == 0 or not np.isfinite(norm):
            raise ValueError(
                f"{name} is constant over the {m.shape[0]} examples (zero variance after centring): "
                "CKA is undefined"
            )
        m /= norm
    cross = np.linalg.norm(b.T @ a) ** 2
    self_x = np.linalg.norm(a.T @ a)
    self_y = np.linalg.norm(b.T @ b)
    return float(np.clip(cross / (self_x * self_y), 0.0, 1.0))


def reference_pairs(student_layers: int, teacher_layers: int) -> list[tuple[int, int]]:
    """The student-teacher layer pairs every student is compared on, whatever it was distilled at.

    ``(i, round(i * L_t / L_s))`` for ``i = 0..L_s``: the embeddings (0, 0), then the pairs the ``uniform``
    map uses at full depth (depth ``L_s``; for 6 of 12 layers: (1, 2), (2, 4), ..., (6, 12)). So a depth-0
    (logits-only) student has a CKA per student layer too, on the same pairs as every other student, and the
    last pair ``(L_s, L_t)`` is the top layer of each.
    """
    return [(0, 0), *build_layer_map("uniform", student_layers, student_layers, teacher_layers)]


def layer_pairs(
    student_layers: int, teacher_layers: int, mapped: Sequence[Sequence[int]]
) -> list[tuple[int, int, bool, bool]]:
    """``(student layer, teacher layer, mapped, reference)`` to compute CKA at for one student.

    The :func:`reference_pairs` (``reference=True``), each marked ``mapped`` when the student was distilled
    on it, then the student's mapped pairs outside them (``map=last``, ``skip``, ``explicit``).

    Args:
        student_layers: the student's transformer layers.
        teacher_layers: the teacher's transformer layers.
        mapped: the student's layer map (``DistillModule.layer_map``; empty at depth 0).
    """
    mapped_pairs = [(int(s), int(t)) for s, t in mapped]
    pairs = [(s, t, (s, t) in mapped_pairs, True) for s, t in reference_pairs(student_layers, teacher_layers)]
    seen = {(s, t) for s, t, _, _ in pairs}
    return pairs + [(s, t, True, False) for s, t in mapped_pairs if (s, t) not in seen]


@torch.no_grad()
def word_representations(
    model: Callable[..., Any],
    encoded: Sequence[Encoded],
    pad_token_id: int,
    layers: Sequence[int],
    batch_size: int = 32,
) -> tuple[dict[int, np.ndarray], np.ndarray]:
    """First-subword vectors of every word at the chosen hidden states of a tagger.

    The convention of the labels (the first subword of a word stands for the word) applied to the hidden
    states: hidden state 0 is the embedding output, ``1..L`` the transformer layers. Sentences run in batches
    sorted by length (little padding), without gradients, in eval mode; the rows come back in sentence order.

    Args:
        model: a TaggerModule, a DistillModule or a TokenClassifier: called as
            ``model(input_ids, attention_mask, output_hidden_states=True)``, it returns ``.hidden_states``.
        encoded: the encoded sentences (:func:`xner.data.encoding.encode_sentences`).
        pad_token_id: the tokenizer's padding id.
        layers: hidden states to keep.
        batch_size: sentences per forward pass.

    Returns:
        ``{layer: [words, width] float32}`` over the words that have a subword position, and a boolean mask
        over all words of all sentences (``False``: the word was cut by ``max_length`` or tokenised to
        nothing, so it has no row).

    Raises:
        ValueError: a layer the model does not have (the message names its depth).
    """
    if hasattr(model, "eval"):
        model.eval()
    collate = PadCollator(pad_token_id)
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i].input_ids))
    per_sentence: dict[int, dict[int, np.ndarray]] = {}
    checked = False
    for lo in range(0, len(order), batch_size):
        idx = order[lo : lo + batch_size]
        batch = collate(
            [
                {"input_ids": encoded[i].input_ids, "labels": encoded[i].labels,
                 "word_starts": encoded[i].word_starts, "index": i}
                for i in idx
            ]
        )  # fmt: skip
        states = model(batch["input_ids"], batch["attention_mask"], output_hidden_states=True).hidden_states
        if not checked:
            for layer in layers:
                check_layer(layer, len(states) - 1, "model")
            checked = True
        for row, i in enumerate(idx):
            starts = torch.tensor(encoded[i].word_starts, dtype=torch.long)
            # only the words that have a first subword: ``present`` below marks which ones they are
            per_sentence[i] = {
                layer: gather_word_starts(states[layer][row], starts)[starts >= 0].float().cpu().numpy()
                for layer in layers
            }
    present = np.array([p >= 0 for e in encoded for p in e.word_starts], dtype=bool)
    out = {
        layer: np.concatenate([per_sentence[i][layer] for i in range(len(encoded))])
        if encoded
        else np.zeros((0, 0), np.float32)
        for layer in layers
    }
    return out, present
