"""Candidate matching (Politov et al. 2025; thesis of O. Shkalikov): n-gram candidates, scores, ILP and greedy.

Every (source entity, target candidate n-gram) pair gets a score ``c ≥ 0``; the assignment maximises the sum
of chosen scores with at most ``n_proj`` candidates per entity and no two chosen candidates overlapping.
Candidates are ``(start, end)`` pairs with an **exclusive** end (METHODS.md's inclusive ``(1, 2)`` is
``(1, 3)`` here). Score matrices are ``[entities, candidates]`` numpy arrays.

Modules: :mod:`.scores` (candidates, align / ner / translation (chrF) scores, :func:`fuse`), :mod:`.solvers`
(greedy, interval DP, brute force), :mod:`.ilp` (the exact solver) and :mod:`.project` (a sentence pair's
scores and :func:`project_matching`). Solvers:

- :func:`solve_ilp` — exact, ``scipy.optimize.milp`` (HiGHS), non-overlap stated per target word
  (``formulation="word"``, the xner form) or per overlapping pair (``"pairwise"``, the thesis's form);
- :func:`solve_greedy` — the greedy approximation of METHODS.md;
- :func:`solve_interval_dp` — maximum-weight independent intervals, exact when no per-entity limit binds
  (a test oracle and a provably exact fast path of the ILP);
- :func:`solve_brute_force` — enumeration for tiny instances (a test oracle).
"""

from xner.pipeline.matching.ilp import solve_ilp
from xner.pipeline.matching.project import ScoreInput, project_matching, sentence_scores
from xner.pipeline.matching.scores import (
    FUSED_BEST,
    Candidate,
    align_scores,
    aligned_window,
    candidates,
    chrf,
    fuse,
    ner_scores,
    translation_scores,
)
from xner.pipeline.matching.solvers import (
    Assignment,
    solve_brute_force,
    solve_greedy,
    solve_interval_dp,
    strictly_dominated,
)

__all__ = [
    "FUSED_BEST",
    "Assignment",
    "Candidate",
    "ScoreInput",
    "align_scores",
    "aligned_window",
    "candidates",
    "chrf",
    "fuse",
    "ner_scores",
    "project_matching",
    "sentence_scores",
    "solve_brute_force",
    "solve_greedy",
    "solve_ilp",
    "solve_interval_dp",
    "strictly_dominated",
    "translation_scores",
]
