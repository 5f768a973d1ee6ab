"""Which student layer learns from which teacher layer: the *depth* of distillation.

Hidden state 0 is the embedding output; 1..L are the transformer layers. A map is a list of
``(student_layer, teacher_layer)`` pairs; depth ``k`` is its length, and ``k = 0`` means logits only.

Strategies (``L_s`` student layers, ``L_t`` teacher layers):

- ``uniform``: ``k`` student layers spread evenly up to the top (``k=2`` of 6 -> 3, 6; ``k=3`` -> 2, 4, 6),
  each paired with teacher layer ``round(i * L_t / L_s)`` (TinyBERT's uniform map).
- ``last``: the top ``k`` student layers with the top ``k`` teacher layers (PKD-Last reads the last ``k`` teacher
  layers; the student's own top layers are the natural partners).
- ``skip``: Patient-KD-Skip: student layer ``i`` with teacher layer ``i * L_t / L_s`` for ``i = 1..k`` from the
  bottom, never the top pair (the logits already cover it), so at most ``L_s - 1`` pairs.
- ``explicit``: the given pairs.
"""

from __future__ import annotations

from collections.abc import Sequence

STRATEGIES = ("uniform", "last", "skip", "explicit")  # the values of distill.map


def check_layer(index: int, num_layers: int, role: str) -> None:
    """Raise when ``index`` is not a hidden state of a model with ``num_layers`` layers."""
    if not 0 <= index <= num_layers:
        raise ValueError(
            f"{role} layer {index} does not exist: the {role} has {num_layers} layers, so hidden states are "
            f"numbered 0 (embeddings) to {num_layers}."
        )


def build_layer_map(
    strategy: str,
    depth: int,
    student_layers: int,
    teacher_layers: int,
    pairs: Sequence[Sequence[int]] | None = None,
) -> list[tuple[int, int]]:
    """Build a layer map.

    Args:
        strategy: ``uniform``, ``last``, ``skip`` or ``explicit``.
        depth: number of pairs (ignored for ``explicit``, whose depth is ``len(pairs)``).
        student_layers: the student's transformer layers.
        teacher_layers: the teacher's transformer layers.
        pairs: the explicit ``(student, teacher)`` pairs.

    Raises:
        ValueError: unknown strategy, a depth the strategy cannot give, or a layer the model lacks.
    """
    if strategy not in STRATEGIES:  # before the depth checks, whose messages assume a known strategy
        raise ValueError(f"unknown layer map {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    if strategy == "explicit":
        if pairs is None:
            raise ValueError("layer map 'explicit' needs distill.pairs, e.g. [[3, 6], [6, 12]]")
        result = [(int(s), int(t)) for s, t in pairs]
    else:
        if depth < 0:
            raise ValueError(f"depth must be >= 0, got {depth}")
        limit = student_layers - 1 if strategy == "skip" else student_layers
        if depth > limit:
            raise ValueError(
                f"depth {depth} is more than the {limit} pairs '{strategy}' can map "
                f"for a {student_layers}-layer student"
            )
        if strategy == "uniform":
            students = (
                sorted({round(student_layers * (j + 1) / depth) for j in range(depth)}) if depth else []
            )
            result = [(i, round(i * teacher_layers / student_layers)) for i in students]
            if len(result) != depth:  # cannot happen for depth <= student_layers; guards future edits
                raise ValueError(f"uniform map collapsed to {len(result)} pairs for depth {depth}")
        elif strategy == "last":
            result = [(student_layers - depth + 1 + j, teacher_layers - depth + 1 + j) for j in range(depth)]
        elif strategy == "skip":
            result = [(i, round(i * teacher_layers / student_layers)) for i in range(1, depth + 1)]
        else:  # unreachable: STRATEGIES was checked above
            raise AssertionError(strategy)
    for s, t in result:
        check_layer(s, student_layers, "student")
        check_layer(t, teacher_layers, "teacher")
    return result
