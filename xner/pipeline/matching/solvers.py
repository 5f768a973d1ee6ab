"""Candidate matching, part 2: the assignment and its exact and approximate solvers (ILP in :mod:`.ilp`).

Every (source entity, target candidate) pair has a score ``c >= 0``; an assignment maximises the sum of chosen
scores with at most ``n_proj`` candidates per entity and no two chosen candidates overlapping.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from xner.pipeline.matching.scores import Candidate, cand_array


@dataclass(frozen=True)
class Assignment:
    """A solution of the matching problem.

    Attributes:
        pairs: chosen ``(entity index, candidate index)`` pairs, sorted.
        objective: sum of the chosen scores.
        solver: how it was solved: ``"ilp-word"``/``"ilp-pairwise"`` (branch and bound), the same with
            ``-lp`` (integral LP relaxation), ``"ilp-bound"``, ``"ilp-trivial"``, ``"ilp-interval-dp"``
            (see :func:`solve_ilp`), or ``"greedy"``.
        n_variables: binary variables (pairs with a positive score, after the ILP's pruning).
        n_constraints: constraint rows given to the solver.
    """

    pairs: tuple[tuple[int, int], ...]
    objective: float
    solver: str
    n_variables: int = 0
    n_constraints: int = 0


def check_scores(scores: np.ndarray, cands: Sequence[Candidate]) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=float)
    if scores.ndim != 2 or scores.shape[1] != len(cands):
        raise ValueError(f"scores must be [entities, {len(cands)} candidates], got shape {scores.shape}")
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN")
    return scores, cand_array(cands)


def strictly_dominated(scores: np.ndarray, arr: np.ndarray) -> np.ndarray:
    """Mask of pairs (e, c) where some strict sub-interval c' of c has score[e, c'] > score[e, c].

    Such a pair is in no optimal solution: swapping c for c' keeps every constraint (c' covers a subset of
    c's words, and c' cannot be chosen already since it overlaps c) and raises the objective. Pruning them
    therefore leaves the set of optimal solutions unchanged.
    """
    n_ent, n_cand = scores.shape
    if n_cand == 0:
        return np.zeros_like(scores, dtype=bool)
    starts, lengths = arr[:, 0], arr[:, 1] - arr[:, 0]
    n_words, max_len = int(arr[:, 1].max()), int(lengths.max())
    # grid[e, s, L]: score of candidate (s, s+L), -inf where it is not a candidate.
    grid = np.full((n_ent, n_words + 1, max_len + 1), -np.inf)
    grid[:, starts, lengths] = scores
    # within[e, s, L]: best score over all candidates inside [s, s+L), itself included.
    within = np.full_like(grid, -np.inf)
    below = np.full_like(grid, -np.inf)  # best over strict sub-intervals
    within[:, :, 1] = grid[:, :, 1]
    for length in range(2, max_len + 1):
        below[:, :-1, length] = np.maximum(within[:, 1:, length - 1], within[:, :-1, length - 1])
        within[:, :, length] = np.maximum(grid[:, :, length], below[:, :, length])
    return below[:, starts, lengths] > scores


def interval_dp(arr: np.ndarray, weights: np.ndarray) -> tuple[float, list[int]]:
    """Maximum-weight set of pairwise non-overlapping intervals (exclusive ends); returns (value, indices)."""
    idx = [k for k in range(len(arr)) if weights[k] > 0]
    idx.sort(key=lambda k: (arr[k, 1], arr[k, 0], k))
    ends = [int(arr[k, 1]) for k in idx]
    best = [0.0] * (len(idx) + 1)
    take = [False] * (len(idx) + 1)
    prev = [0] * (len(idx) + 1)
    for j, k in enumerate(idx, start=1):
        p = bisect.bisect_right(ends, int(arr[k, 0]), 0, j - 1)  # intervals ending at or before this start
        with_k = float(weights[k]) + best[p]
        if with_k > best[j - 1]:
            best[j], take[j], prev[j] = with_k, True, p
        else:
            best[j] = best[j - 1]
    chosen, j = [], len(idx)
    while j > 0:
        if take[j]:
            chosen.append(idx[j - 1])
            j = prev[j]
        else:
            j -= 1
    return best[-1], sorted(chosen)


def solve_interval_dp(cands: Sequence[Candidate], weights: Sequence[float] | np.ndarray) -> float:
    """Exact maximum total weight of non-overlapping candidates (weighted interval scheduling), O(C log C).

    This is the matching problem without a per-entity limit (weights: for each candidate, the best score of
    any entity on it); a test oracle for :func:`solve_ilp`.
    """
    w = np.asarray(weights, dtype=float)
    if w.shape != (len(cands),):
        raise ValueError(f"need one weight per candidate ({len(cands)}), got shape {w.shape}")
    return interval_dp(cand_array(cands), w)[0]


def solve_brute_force(scores: np.ndarray, cands: Sequence[Candidate], n_proj: int = 1) -> float:
    """Optimal objective by enumeration (depth-first over entities); for tiny instances in tests only."""
    scores, arr = check_scores(scores, cands)
    per_entity = [[c for c in range(len(arr)) if scores[e, c] > 0] for e in range(scores.shape[0])]

    def overlaps(a: int, b: int) -> bool:
        return arr[a, 0] < arr[b, 1] and arr[b, 0] < arr[a, 1]

    def best(e: int, chosen: list[int]) -> float:
        if e == len(per_entity):
            return 0.0
        free = [c for c in per_entity[e] if not any(overlaps(c, d) for d in chosen)]
        value = best(e + 1, chosen)
        for size in range(1, n_proj + 1):
            for combo in itertools.combinations(free, size):
                if any(overlaps(a, b) for a, b in itertools.combinations(combo, 2)):
                    continue
                gain = float(sum(scores[e, c] for c in combo))
                value = max(value, gain + best(e + 1, chosen + list(combo)))
        return value

    return best(0, [])


def make_assignment(
    scores: np.ndarray, pairs: Iterable[tuple[int, int]], solver: str, nv: int, nc: int
) -> Assignment:
    pairs = tuple(sorted((int(e), int(c)) for e, c in pairs))
    return Assignment(pairs, float(sum(scores[e, c] for e, c in pairs)), solver, nv, nc)


def solve_greedy(scores: np.ndarray, cands: Sequence[Candidate], n_proj: int = 1) -> Assignment:
    """Greedy approximation (METHODS.md): highest remaining score first.

    Take the pair with the highest score; mark its candidate and every candidate overlapping it as used for
    all entities (a candidate is free while none of its words is covered by a taken one); retire an entity
    once it has ``n_proj`` projections; stop when no positive score is left. Ties: lower entity index, then
    lower candidate index. Can be suboptimal: one entity, candidates (1,2)=0.2, (2,3)=0.3, (3,5)=0.2
    (inclusive), ``n_proj=2``: greedy 0.3, optimum 0.4.
    """
    if n_proj < 1:
        raise ValueError(f"n_proj must be >= 1, got {n_proj}")
    scores, arr = check_scores(scores, cands)
    ent, cand = np.nonzero(scores > 0)
    if not len(ent):
        return Assignment((), 0.0, "greedy")
    vals = scores[ent, cand]
    order = np.lexsort((cand, ent, -vals))
    covered = bytearray(int(arr[:, 1].max()))
    used = [0] * scores.shape[0]
    active = int(np.count_nonzero(np.bincount(ent, minlength=scores.shape[0])))
    chosen = []
    bounds = arr.tolist()
    for e, c in zip(ent[order].tolist(), cand[order].tolist(), strict=True):
        if used[e] >= n_proj:
            continue
        s, t = bounds[c]
        if any(covered[s:t]):
            continue
        covered[s:t] = b"\x01" * (t - s)
        chosen.append((e, c))
        used[e] += 1
        if used[e] == n_proj:
            active -= 1
            if active == 0:
                break
    return make_assignment(scores, chosen, "greedy", len(ent), 0)
