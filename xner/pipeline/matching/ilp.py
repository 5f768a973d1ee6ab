"""Candidate matching, part 3: the exact solver, an integer linear program (``scipy.optimize.milp``, HiGHS).

:func:`solve_ilp` runs named steps: check -> :func:`_prune` (dominated pairs, greedy bound) ->
:func:`_fast_path` (provably exact shortcuts) -> :func:`_constraints` (one sparse matrix) ->
:func:`_solve_lp_relaxation` (integral vertex: done) -> :func:`_branch_and_bound`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, milp

from xner.pipeline.matching.scores import Candidate
from xner.pipeline.matching.solvers import (
    Assignment,
    check_scores,
    interval_dp,
    make_assignment,
    solve_greedy,
    strictly_dominated,
)


@dataclass
class _Problem:
    """The ILP's variables: one per kept (entity, candidate) pair, with its weight and target interval."""

    scores: np.ndarray
    ent: np.ndarray
    cand: np.ndarray
    weights: np.ndarray
    starts: np.ndarray
    ends: np.ndarray

    @property
    def n_variables(self) -> int:
        return len(self.ent)

    def keep(self, mask: np.ndarray) -> None:
        self.ent, self.cand, self.weights = self.ent[mask], self.cand[mask], self.weights[mask]
        self.starts, self.ends = self.starts[mask], self.ends[mask]

    def per_entity(self) -> np.ndarray:
        return np.bincount(self.ent, minlength=self.scores.shape[0])

    def result(self, chosen: np.ndarray, solver: str, n_rows: int = 0) -> Assignment:
        return make_assignment(
            self.scores,
            zip(self.ent[chosen], self.cand[chosen], strict=True),
            solver,
            self.n_variables,
            n_rows,
        )


def _top_sums(ent: np.ndarray, weights: np.ndarray, n_ent: int, n_proj: int) -> tuple[np.ndarray, np.ndarray]:
    """Per entity: the sum of its ``n_proj`` best weights and of its ``n_proj - 1`` best."""
    order = np.lexsort((-weights, ent))
    grouped = ent[order]
    group_start = np.searchsorted(grouped, grouped, side="left")
    rank = np.arange(len(order)) - group_start
    w = weights[order]
    top = np.bincount(grouped[rank < n_proj], w[rank < n_proj], minlength=n_ent)
    top_less = np.bincount(grouped[rank < n_proj - 1], w[rank < n_proj - 1], minlength=n_ent)
    return top, top_less


def _clique_words(starts: np.ndarray, ends: np.ndarray, n_words: int) -> list[int]:
    """Words whose covering sets are the maximal cliques of the interval graph (one row each suffices).

    Sweep left to right: a word where some interval ends (its last word) closes a maximal clique when an
    interval started since the previous emitted clique; every other word's covering set is a subset of an
    emitted one, so its row would be redundant.
    """
    starts_at = np.bincount(starts, minlength=n_words + 1)
    last_at = np.bincount(ends - 1, minlength=n_words + 1)
    words, fresh = [], False
    for w in range(n_words):
        if starts_at[w]:
            fresh = True
        if last_at[w] and fresh:
            words.append(w)
            fresh = False
    return words


def _prune(problem: _Problem, cands: Sequence[Candidate], n_proj: int) -> Assignment | None:
    """Bound with the greedy solution, as branch and bound does; return it when it is provably optimal.

    Upper bound of any solution: each entity's ``n_proj`` best scores. Greedy reaching it is optimal;
    otherwise a pair whose best possible completion stays strictly below the greedy value is in no optimal
    solution and is removed from ``problem``.
    """
    lower = solve_greedy(problem.scores, cands, n_proj)
    top, top_less = _top_sums(problem.ent, problem.weights, problem.scores.shape[0], n_proj)
    upper_total = float(top.sum())
    tol = 1e-9 * max(1.0, upper_total)
    if lower.objective >= upper_total - tol:
        return Assignment(lower.pairs, lower.objective, "ilp-bound", problem.n_variables, 0)
    ent = problem.ent
    problem.keep(problem.weights + top_less[ent] + (upper_total - top[ent]) >= lower.objective - tol)
    return None


def _fast_path(problem: _Problem, n_target: int, n_proj: int) -> Assignment | None:
    """The exact shortcuts: nothing overlaps (``ilp-trivial``) or the interval DP respects the limit."""
    ent, cand, weights, starts, ends = (
        problem.ent,
        problem.cand,
        problem.weights,
        problem.starts,
        problem.ends,
    )
    coverage = np.cumsum(
        np.bincount(starts, minlength=n_target + 1) - np.bincount(ends, minlength=n_target + 1)
    )
    if coverage.max() <= 1:  # nothing overlaps: only the per-entity limit remains
        chosen = []
        for e in np.flatnonzero(problem.per_entity()):
            own = np.flatnonzero(ent == e)
            chosen.extend(own[np.lexsort((cand[own], -weights[own]))][:n_proj])
        return problem.result(np.asarray(chosen, dtype=np.int64), "ilp-trivial")
    # Relaxation without the per-entity limit: the best entity per candidate (pairs on one candidate
    # conflict anyway) and the exact interval DP. If that optimum happens to respect the limit, it is
    # feasible for the full problem and, being optimal for a relaxation, optimal for it too.
    order = np.lexsort((ent, -weights, cand))
    first = order[np.concatenate([[True], cand[order][1:] != cand[order][:-1]])]
    _, picked = interval_dp(np.stack([starts[first], ends[first]], axis=1), weights[first])
    picked_vars = first[picked]
    if np.bincount(ent[picked_vars], minlength=1).max(initial=0) <= n_proj:
        return problem.result(picked_vars, "ilp-interval-dp")
    return None


def _constraints(
    problem: _Problem, n_target: int, n_proj: int, formulation: str
) -> tuple[sparse.csr_matrix, np.ndarray] | None:
    """All rows in one COO build: per-entity limits first, then non-overlap; ``None`` when there are none."""
    ent, starts, ends = problem.ent, problem.starts, problem.ends
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    upper: list[np.ndarray] = []
    n_rows = 0
    limited = np.flatnonzero(problem.per_entity() > n_proj)
    if len(limited):
        row_of = np.full(problem.scores.shape[0], -1)
        row_of[limited] = np.arange(len(limited))
        mask = np.flatnonzero(row_of[ent] >= 0)
        rows.append(row_of[ent[mask]])
        cols.append(mask)
        upper.append(np.full(len(limited), float(n_proj)))
        n_rows += len(limited)
    if formulation == "word":
        words = np.asarray(_clique_words(starts, ends, n_target), dtype=np.int64)
        cover = (starts[None, :] <= words[:, None]) & (words[:, None] < ends[None, :])
        cover = cover[cover.sum(axis=1) >= 2]
        r, c = np.nonzero(cover)
        rows.append(r + n_rows)
        cols.append(c)
        upper.append(np.ones(len(cover)))
        n_rows += len(cover)
    else:
        overlap = (starts[:, None] < ends[None, :]) & (starts[None, :] < ends[:, None])
        a, b = np.nonzero(np.triu(overlap, k=1))
        rows.append(np.repeat(np.arange(len(a)), 2) + n_rows)
        cols.append(np.stack([a, b], axis=1).ravel())
        upper.append(np.ones(len(a)))
        n_rows += len(a)
    if n_rows == 0:
        return None
    row_idx, col_idx = np.concatenate(rows), np.concatenate(cols)
    matrix = sparse.csr_matrix(
        (np.ones(len(row_idx)), (row_idx, col_idx)), shape=(n_rows, problem.n_variables)
    )
    return matrix, np.concatenate(upper)


def _solve_lp_relaxation(
    problem: _Problem, matrix: sparse.csr_matrix, ub: np.ndarray, options: dict
) -> np.ndarray | None:
    """The chosen variables when the LP relaxation's optimal vertex is integral, else ``None``.

    The LP relaxation bounds the ILP from above; a vertex optimum that is integral (and feasible once rounded,
    checked here rather than trusted to tolerances) is therefore an ILP optimum.
    """
    weights, nv = problem.weights, problem.n_variables
    lp = milp(
        -weights,
        integrality=np.zeros(nv),
        bounds=Bounds(0, 1),
        constraints=LinearConstraint(matrix, -np.inf, ub),
        options={**options, "presolve": False},
    )
    if lp.status == 0 and lp.x is not None and np.all(np.minimum(lp.x, 1 - lp.x) <= 1e-7):
        x = (lp.x > 0.5).astype(float)
        bound = -float(lp.fun)
        if np.all(matrix @ x <= ub + 1e-9) and weights @ x >= bound - 1e-9 * max(1.0, abs(bound)):
            return np.flatnonzero(x)
    return None


def _branch_and_bound(
    problem: _Problem, matrix: sparse.csr_matrix, ub: np.ndarray, options: dict
) -> np.ndarray:
    """The chosen variables of a proven optimum (HiGHS branch and bound)."""
    nv = problem.n_variables
    res = milp(
        -problem.weights,
        integrality=np.ones(nv),
        bounds=Bounds(0, 1),
        constraints=LinearConstraint(matrix, -np.inf, ub),
        options={**options, "mip_rel_gap": 1e-9},
    )
    if res.status != 0 or res.x is None:
        raise RuntimeError(f"HiGHS did not reach a proven optimum (status {res.status}): {res.message}")
    return np.flatnonzero(res.x > 0.5)


def solve_ilp(
    scores: np.ndarray,
    cands: Sequence[Candidate],
    n_target: int,
    n_proj: int = 1,
    formulation: Literal["word", "pairwise"] = "word",
    *,
    prune: bool = True,
    fast_paths: bool = True,
    lp_first: bool = True,
    time_limit: float | None = None,
) -> Assignment:
    """Optimal assignment by integer linear programming (``scipy.optimize.milp``, HiGHS).

    Binary ``x[e, c]`` for every pair with a positive score; maximise ``Σ score·x`` subject to
    ``Σ_c x[e, c] ≤ n_proj`` per entity and non-overlap, stated as

    - ``"word"`` (xner): for each target word, the sum of ``x`` over all entities and candidates covering it
      is ≤ 1. Only the rows of maximal cliques of the interval graph are built (every other word's row is
      implied by one of them), and rows with a single variable are skipped;
    - ``"pairwise"`` (thesis): ``x[e, c] + x[e', c'] ≤ 1`` for every two distinct variables whose candidates
      overlap (the same candidate for two entities included).

    Reductions that provably keep the optimal value (all on by default; the ``solver`` field of the result
    says which one finished the job):

    - ``prune``: strictly dominated pairs are removed (see :func:`strictly_dominated`); then the greedy
      solution serves as a lower bound: if it reaches the upper bound "each entity's ``n_proj`` best scores"
      it is returned (``"ilp-bound"``), else every pair whose score plus the best possible rest stays strictly
      below the greedy value is removed (it is in no optimal solution);
    - ``fast_paths``: when no two remaining variables overlap, each entity takes its ``n_proj`` best
      candidates (``"ilp-trivial"``); when the exact interval DP without the per-entity limit (a relaxation)
      returns a solution that respects the limit anyway, that solution is optimal (``"ilp-interval-dp"``);
    - ``lp_first``: the LP relaxation is solved first; when its optimal vertex is integral it is an optimum
      of the ILP (the relaxation's value bounds the ILP's) and branch and bound is skipped (suffix ``-lp``).
      The word form's relaxation is the tighter one (the pairwise form admits ``x = 1/2`` everywhere).

    Ties between optimal solutions may be broken differently from plain HiGHS; the objective is the same.

    Args:
        scores: ``[entities, candidates]`` non-negative scores.
        cands: candidates (exclusive ends).
        n_target: number of target words.
        n_proj: maximum projections per entity (1 was best in the thesis).
        formulation: ``"word"`` or ``"pairwise"``.
        prune: remove dominated and bounded-out pairs first (see above).
        fast_paths: use the exact shortcuts above when they apply.
        lp_first: try the LP relaxation before branch and bound.
        time_limit: seconds for HiGHS (``None``: no limit).

    Returns:
        The chosen pairs and objective.

    Raises:
        ValueError: bad shapes or options.
        RuntimeError: HiGHS did not prove optimality.
    """
    if n_proj < 1:
        raise ValueError(f"n_proj must be >= 1, got {n_proj}")
    if formulation not in ("word", "pairwise"):
        raise ValueError(f"formulation must be 'word' or 'pairwise', got {formulation!r}")
    scores, arr = check_scores(scores, cands)
    if len(arr) and arr[:, 1].max() > n_target:
        raise ValueError(f"a candidate reaches word {arr[:, 1].max()} of a {n_target}-word sentence")
    positive = scores > 0
    if prune and positive.any():
        positive &= ~strictly_dominated(scores, arr)
    ent, cand = np.nonzero(positive)
    solver = f"ilp-{formulation}"
    if len(ent) == 0:
        return Assignment((), 0.0, solver)
    problem = _Problem(scores, ent, cand, scores[ent, cand], arr[cand, 0], arr[cand, 1])
    if prune and (bounded := _prune(problem, cands, n_proj)) is not None:
        return bounded
    if fast_paths and (shortcut := _fast_path(problem, n_target, n_proj)) is not None:
        return shortcut
    built = _constraints(problem, n_target, n_proj, formulation)
    if built is None:  # nothing conflicts and no limit binds: take everything
        return problem.result(np.arange(problem.n_variables), solver)
    matrix, ub = built
    options: dict = {} if time_limit is None else {"time_limit": time_limit}
    if lp_first and (chosen := _solve_lp_relaxation(problem, matrix, ub, options)) is not None:
        return problem.result(chosen, f"{solver}-lp", matrix.shape[0])
    return problem.result(_branch_and_bound(problem, matrix, ub, options), solver, matrix.shape[0])
