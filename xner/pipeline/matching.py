"""Candidate matching (Politov et al. 2025; thesis of O. Shkalikov): n-gram candidates, scores, ILP and greedy.

Every (source entity, target candidate n-gram) pair gets a score ``c ≥ 0``; the assignment maximises the sum
of chosen scores with at most ``n_proj`` candidates per entity and no two chosen candidates overlapping.
Candidates are ``(start, end)`` pairs with an **exclusive** end (METHODS.md's inclusive ``(1, 2)`` is
``(1, 3)`` here). Score matrices are ``[entities, candidates]`` numpy arrays.

Solvers:

- :func:`solve_ilp` — exact, ``scipy.optimize.milp`` (HiGHS), non-overlap stated per target word
  (``formulation="word"``, the xner form) or per overlapping pair (``"pairwise"``, the thesis's form);
- :func:`solve_greedy` — the greedy approximation of METHODS.md;
- :func:`solve_interval_dp` — maximum-weight independent intervals, exact when no per-entity limit binds
  (a test oracle and a provably exact fast path of the ILP);
- :func:`solve_brute_force` — enumeration for tiny instances (a test oracle).
"""

from __future__ import annotations

import bisect
import itertools
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, milp

from xner.pipeline.project import (
    DROP_CONFLICT,
    DROP_NO_CANDIDATE,
    ProjectionResult,
    ProjectionStats,
    spans_to_iob2,
)
from xner.types import Span

Candidate = tuple[int, int]

#: The thesis's best fusion: align 0.5 + class-agnostic ner 0.5 + translation 1.
FUSED_BEST: dict[str, float] = {"align": 0.5, "ner": 0.5, "translation": 1.0}


# --------------------------------------------------------------------------------------------------------
# Candidates


def candidates(n_target: int, max_len: int = 10, window: tuple[int, int] | None = None) -> list[Candidate]:
    """All target n-grams of length 1..``max_len``, ordered by start then length.

    Args:
        n_target: number of target words.
        max_len: ``M``, the longest candidate (10 covers 99% of entities).
        window: optional ``(lo, hi)`` with exclusive ``hi``: only candidates inside ``[lo, hi)``.

    Returns:
        ``(start, end)`` pairs with exclusive ends.
    """
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    lo, hi = (0, n_target) if window is None else window
    if not 0 <= lo <= hi <= n_target:
        raise ValueError(f"window {window} must satisfy 0 <= lo <= hi <= n_target={n_target}")
    return [(s, e) for s in range(lo, hi) for e in range(s + 1, min(s + max_len, hi) + 1)]


def aligned_window(entity: Span, alignment: Iterable[tuple[int, int]]) -> tuple[int, int] | None:
    """``(leftmost, rightmost + 1)`` of the target words aligned to the entity, or ``None`` when unaligned.

    With the align score alone, candidates can be restricted to this window without loss: a candidate
    reaching outside it has a sub-candidate inside with the same links, a shorter length (a strictly higher
    score) and fewer overlaps.
    """
    targets = [j for i, j in alignment if entity.start <= i < entity.end]
    return (min(targets), max(targets) + 1) if targets else None


def _cand_array(cands: Sequence[Candidate]) -> np.ndarray:
    arr = np.asarray(cands, dtype=np.int64).reshape(-1, 2)
    if len(arr) and (arr[:, 0].min() < 0 or (arr[:, 1] <= arr[:, 0]).any()):
        raise ValueError("candidates must be (start, end) pairs with 0 <= start < end (exclusive end)")
    return arr


# --------------------------------------------------------------------------------------------------------
# Scores


def align_scores(
    entity: Span, cands: Sequence[Candidate], alignment: Iterable[tuple[int, int]]
) -> np.ndarray:
    """Alignment score per candidate: links between entity and candidate words / (len entity + len cand).

    An unaligned extra word always lowers the score, so of two candidates with the same links the shorter
    wins.
    """
    arr = _cand_array(cands)
    if not len(arr):
        return np.zeros(0)
    targets = [j for i, j in alignment if entity.start <= i < entity.end]
    size = int(max(arr[:, 1].max(), max(targets, default=-1) + 1))
    per_word = np.bincount(np.asarray(targets, dtype=np.int64), minlength=size).astype(float)
    prefix = np.concatenate([[0.0], np.cumsum(per_word)])
    links = prefix[arr[:, 1]] - prefix[arr[:, 0]]
    return links / (len(entity) + (arr[:, 1] - arr[:, 0]))


def _types_of(label_names: Sequence[str]) -> list[str]:
    return sorted({name[2:] for name in label_names if name[:2] in ("B-", "I-")})


def ner_scores(
    cands: Sequence[Candidate],
    label_probs: np.ndarray,
    label_names: Sequence[str],
    entity_type: str | None = None,
    alpha: float = 1.15,
    floor: float = 0.05,
) -> np.ndarray:
    """NER score per candidate from a target-side model's per-word label probabilities.

    For type ``t`` and candidate ``[s, e)`` of length ``L``: ``alpha**(L-1) * mean(P(B-t)[s], P(I-t)[s+1..e-1])``.
    Class-aware with ``entity_type``; class-agnostic (max over the model's types) with ``None``. Scores below
    ``floor`` become 0. A type the model does not know gets 0 everywhere (no evidence either way).

    Args:
        cands: candidates (exclusive ends).
        label_probs: ``[m, len(label_names)]`` probabilities per target word (IOB2 labels).
        label_names: label of each column, e.g. ``["O", "B-PER", "I-PER", ...]``.
        entity_type: the source entity's type, or ``None`` for the class-agnostic score.
        alpha: length bonus ``α`` (1.15 in the thesis).
        floor: scores below it are set to 0.
    """
    probs = np.asarray(label_probs, dtype=float)
    if probs.ndim != 2 or probs.shape[1] != len(label_names):
        raise ValueError(
            f"label_probs must be [words, {len(label_names)}] to match label_names, got {probs.shape}"
        )
    arr = _cand_array(cands)
    if not len(arr):
        return np.zeros(0)
    if arr[:, 1].max() > probs.shape[0]:
        raise ValueError(
            f"a candidate reaches word {arr[:, 1].max()} but label_probs has {probs.shape[0]} rows"
        )
    column = {name: k for k, name in enumerate(label_names)}
    types = _types_of(label_names) if entity_type is None else [entity_type]
    lengths = arr[:, 1] - arr[:, 0]
    best = np.zeros(len(arr))
    zeros = np.zeros(probs.shape[0])
    for t in types:
        p_b = probs[:, column[f"B-{t}"]] if f"B-{t}" in column else zeros
        p_i = probs[:, column[f"I-{t}"]] if f"I-{t}" in column else zeros
        cum_i = np.concatenate([[0.0], np.cumsum(p_i)])
        mean = (p_b[arr[:, 0]] + cum_i[arr[:, 1]] - cum_i[arr[:, 0] + 1]) / lengths
        best = np.maximum(best, alpha ** (lengths - 1) * mean)
    best[best < floor] = 0.0
    return best


def _char_ngrams(text: str, n_max: int) -> list[Counter[str]]:
    s = "".join(text.split())
    return [Counter(s[i : i + n] for i in range(len(s) - n + 1)) for n in range(1, n_max + 1)]


def _chrf_counts(hyp: list[Counter[str]], ref: list[Counter[str]], beta: float) -> float:
    precisions, recalls = [], []
    for h, r in zip(hyp, ref, strict=True):
        n_h, n_r = sum(h.values()), sum(r.values())
        if n_h == 0 and n_r == 0:
            break  # neither string is this long: higher orders say nothing
        match = sum((h & r).values())
        precisions.append(match / n_h if n_h else 0.0)
        recalls.append(match / n_r if n_r else 0.0)
    if not precisions:
        return 0.0
    p, r = sum(precisions) / len(precisions), sum(recalls) / len(recalls)
    if p + r == 0:
        return 0.0
    b2 = beta * beta
    return (1 + b2) * p * r / (b2 * p + r)


def chrf(hypothesis: str, reference: str, n_max: int = 6, beta: float = 2.0) -> float:
    """Character n-gram F-score (chrF, Popović 2015) in [0, 1].

    Whitespace is removed; for each order ``n = 1..n_max`` that either string reaches, precision and recall
    of clipped character n-gram counts are computed (0 when one side has no n-gram of that order); they are
    averaged over those orders and combined as ``F_beta`` (``beta=2`` weighs recall twice, like sacreBLEU's
    chrF). Case-sensitive; an empty string (after removing whitespace) scores 0 against anything.
    """
    if not "".join(hypothesis.split()) or not "".join(reference.split()):
        return 0.0
    return _chrf_counts(_char_ngrams(hypothesis, n_max), _char_ngrams(reference, n_max), beta)


def translation_scores(
    cands: Sequence[Candidate],
    target_tokens: Sequence[str],
    entity_translation: str,
    candidate_back_translations: Mapping[Candidate, str] | None = None,
    *,
    entity_text: str | None = None,
    floor: float = 0.1,
    beta: float = 2.0,
) -> np.ndarray:
    """Translation score per candidate — the xner offline substitute for the thesis's NMTScore.

    Forward: ``chrF(candidate text, entity_translation)``. Backward (when ``candidate_back_translations`` is
    given): ``chrF(candidate's back-translation, entity_text)``. The score is the mean of the directions
    available for a candidate (NMTScore is symmetric in the same way). Both sides are casefolded, because MT
    output often changes the case of names. Scores below ``floor`` become 0.

    Args:
        cands: candidates (exclusive ends).
        target_tokens: target words.
        entity_translation: the source entity translated on its own.
        candidate_back_translations: optional ``{candidate: text}`` of candidates translated into the source
            language; candidates missing from it use the forward direction only.
        entity_text: the source entity's own string (required with back-translations).
        floor: scores below it are set to 0 (0.1 in the thesis).
        beta: chrF's recall weight.
    """
    if candidate_back_translations is not None and entity_text is None:
        raise ValueError("candidate_back_translations needs entity_text (the source entity's string)")
    arr = _cand_array(cands)
    if len(arr) and arr[:, 1].max() > len(target_tokens):
        raise ValueError(
            f"a candidate reaches word {arr[:, 1].max()} of a {len(target_tokens)}-word sentence"
        )
    out = _window_chrf([t.casefold() for t in target_tokens], arr, entity_translation.casefold(), 6, beta)
    if candidate_back_translations is not None and entity_text is not None:
        src = _char_ngrams(entity_text.casefold(), 6)
        empty_src = not "".join(entity_text.split())
        for k, (s, e) in enumerate(arr.tolist()):
            back = candidate_back_translations.get((s, e))
            if back is not None:
                empty = empty_src or not back.strip()
                backward = 0.0 if empty else _chrf_counts(_char_ngrams(back.casefold(), 6), src, beta)
                out[k] = (out[k] + backward) / 2
    out[out < floor] = 0.0
    return out


def _window_chrf(
    tokens: Sequence[str], arr: np.ndarray, reference: str, n_max: int, beta: float
) -> np.ndarray:
    """:func:`chrf` of every candidate's text against one reference, vectorised over candidates.

    A candidate's whitespace-free text is a substring of the sentence's whitespace-free concatenation, so
    its count of reference n-gram ``g`` is a difference of prefix sums of ``g``'s occurrences. Equal to
    ``chrf(" ".join(tokens[s:e]), reference)`` up to float rounding (tested).
    """
    out = np.zeros(len(arr))
    ref = "".join(reference.split())
    if not len(arr) or not ref:
        return out
    pieces = ["".join(t.split()) for t in tokens]
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in pieces])]).astype(np.int64)
    text = "".join(pieces)
    lo, hi = offsets[arr[:, 0]], offsets[arr[:, 1]]
    len_h, len_r = hi - lo, len(ref)
    sum_p, sum_r = np.zeros(len(arr)), np.zeros(len(arr))
    for n in range(1, n_max + 1):
        n_h = np.maximum(len_h - n + 1, 0)
        n_r = max(len_r - n + 1, 0)
        if not n_h.any() and not n_r:
            break
        ref_counts = Counter(ref[i : i + n] for i in range(n_r))
        match = np.zeros(len(arr))
        if ref_counts and len(text) >= n:
            index = {g: k for k, g in enumerate(ref_counts)}
            grams = np.array([index.get(text[i : i + n], -1) for i in range(len(text) - n + 1)])
            hits = np.zeros((len(index), len(grams) + 1))
            found = np.flatnonzero(grams >= 0)
            hits[grams[found], found + 1] = 1.0
            prefix = np.cumsum(hits, axis=1)  # prefix[g, p] = occurrences of g starting before p
            first = np.minimum(lo, len(grams))  # starts p in [lo, hi - n] lie inside the candidate
            last = np.maximum(hi - n + 1, first)
            counts = prefix[:, last] - prefix[:, first]
            limit = np.fromiter(ref_counts.values(), dtype=float)[:, None]
            match = np.minimum(counts, limit).sum(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            sum_p += np.where(n_h > 0, match / np.maximum(n_h, 1), 0.0)
            sum_r += match / n_r if n_r else 0.0
    orders = np.minimum(np.maximum(len_h, len_r), n_max).astype(float)
    p, r = sum_p / orders, sum_r / orders
    b2 = beta * beta
    denom = b2 * p + r
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(denom > 0, (1 + b2) * p * r / denom, 0.0)
    out[len_h == 0] = 0.0
    return out


def fuse(scores: Mapping[str, np.ndarray], weights: Mapping[str, float]) -> np.ndarray:
    """Weighted sum of score arrays of one shape; kinds absent from ``weights`` are not used.

    Raises:
        ValueError: a weighted kind is missing, shapes differ, or no weights are given.
    """
    if not weights:
        raise ValueError("fuse needs at least one weight, e.g. FUSED_BEST")
    missing = [k for k in weights if k not in scores]
    if missing:
        raise ValueError(f"weights name score kinds {missing} that are not in scores {sorted(scores)}")
    arrays = {k: np.asarray(scores[k], dtype=float) for k in weights}
    shapes = {a.shape for a in arrays.values()}
    if len(shapes) != 1:
        raise ValueError(f"score arrays differ in shape: { {k: a.shape for k, a in arrays.items()} }")
    return sum(w * arrays[k] for k, w in weights.items())


# --------------------------------------------------------------------------------------------------------
# Solvers


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


def _check_scores(scores: np.ndarray, cands: Sequence[Candidate]) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=float)
    if scores.ndim != 2 or scores.shape[1] != len(cands):
        raise ValueError(f"scores must be [entities, {len(cands)} candidates], got shape {scores.shape}")
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN")
    return scores, _cand_array(cands)


def _strictly_dominated(scores: np.ndarray, arr: np.ndarray) -> np.ndarray:
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


def _interval_dp(arr: np.ndarray, weights: np.ndarray) -> tuple[float, list[int]]:
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
    return _interval_dp(_cand_array(cands), w)[0]


def solve_brute_force(scores: np.ndarray, cands: Sequence[Candidate], n_proj: int = 1) -> float:
    """Optimal objective by enumeration (depth-first over entities); for tiny instances in tests only."""
    scores, arr = _check_scores(scores, cands)
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


def _assignment(
    scores: np.ndarray, pairs: Iterable[tuple[int, int]], solver: str, nv: int, nc: int
) -> Assignment:
    pairs = tuple(sorted((int(e), int(c)) for e, c in pairs))
    return Assignment(pairs, float(sum(scores[e, c] for e, c in pairs)), solver, nv, nc)


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

    - ``prune``: strictly dominated pairs are removed (see :func:`_strictly_dominated`); then the greedy
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
    scores, arr = _check_scores(scores, cands)
    if len(arr) and arr[:, 1].max() > n_target:
        raise ValueError(f"a candidate reaches word {arr[:, 1].max()} of a {n_target}-word sentence")
    positive = scores > 0
    if prune and positive.any():
        positive &= ~_strictly_dominated(scores, arr)
    ent, cand = np.nonzero(positive)
    nv = len(ent)
    solver = f"ilp-{formulation}"
    if nv == 0:
        return Assignment((), 0.0, solver)
    weights = scores[ent, cand]
    if prune:
        # Bounding with a feasible solution, as branch and bound does. Upper bound of any solution: each
        # entity's n_proj best scores. Greedy reaching it is optimal; otherwise a pair whose best possible
        # completion stays strictly below the greedy value is in no optimal solution and is removed.
        lower = solve_greedy(scores, cands, n_proj)
        top, top_less = _top_sums(ent, weights, scores.shape[0], n_proj)
        upper_total = float(top.sum())
        tol = 1e-9 * max(1.0, upper_total)
        if lower.objective >= upper_total - tol:
            return Assignment(lower.pairs, lower.objective, "ilp-bound", nv, 0)
        keep = weights + top_less[ent] + (upper_total - top[ent]) >= lower.objective - tol
        ent, cand, weights = ent[keep], cand[keep], weights[keep]
        nv = len(ent)
    starts, ends = arr[cand, 0], arr[cand, 1]
    per_entity = np.bincount(ent, minlength=scores.shape[0])

    if fast_paths:
        coverage = np.cumsum(
            np.bincount(starts, minlength=n_target + 1) - np.bincount(ends, minlength=n_target + 1)
        )
        if coverage.max() <= 1:  # nothing overlaps: only the per-entity limit remains
            chosen = []
            for e in np.flatnonzero(per_entity):
                own = np.flatnonzero(ent == e)
                own = own[np.lexsort((cand[own], -weights[own]))][:n_proj]
                chosen.extend(zip(ent[own], cand[own], strict=True))
            return _assignment(scores, chosen, "ilp-trivial", nv, 0)
        # Relaxation without the per-entity limit: the best entity per candidate (pairs on one candidate
        # conflict anyway) and the exact interval DP. If that optimum happens to respect the limit, it is
        # feasible for the full problem and, being optimal for a relaxation, optimal for it too.
        order = np.lexsort((ent, -weights, cand))
        first = order[np.concatenate([[True], cand[order][1:] != cand[order][:-1]])]
        _, picked = _interval_dp(np.stack([starts[first], ends[first]], axis=1), weights[first])
        picked_vars = first[picked]
        if np.bincount(ent[picked_vars], minlength=1).max(initial=0) <= n_proj:
            pairs = zip(ent[picked_vars], cand[picked_vars], strict=True)
            return _assignment(scores, pairs, "ilp-interval-dp", nv, 0)

    # One COO build for all rows: per-entity limits first, then non-overlap.
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    upper: list[np.ndarray] = []
    n_rows = 0
    limited = np.flatnonzero(per_entity > n_proj)
    if len(limited):
        row_of = np.full(scores.shape[0], -1)
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
    if n_rows == 0:  # nothing conflicts and no limit binds: take everything
        return _assignment(scores, zip(ent, cand, strict=True), solver, nv, 0)
    row_idx, col_idx = np.concatenate(rows), np.concatenate(cols)
    matrix = sparse.csr_matrix((np.ones(len(row_idx)), (row_idx, col_idx)), shape=(n_rows, nv))
    ub = np.concatenate(upper)
    constraint = LinearConstraint(matrix, -np.inf, ub)
    options: dict = {} if time_limit is None else {"time_limit": time_limit}
    if lp_first:
        # The LP relaxation bounds the ILP from above; a vertex optimum that is integral (and feasible once
        # rounded, checked here rather than trusted to tolerances) is therefore an ILP optimum.
        lp = milp(
            -weights,
            integrality=np.zeros(nv),
            bounds=Bounds(0, 1),
            constraints=constraint,
            options={**options, "presolve": False},
        )
        if lp.status == 0 and lp.x is not None and np.all(np.minimum(lp.x, 1 - lp.x) <= 1e-7):
            x = (lp.x > 0.5).astype(float)
            bound = -float(lp.fun)
            if np.all(matrix @ x <= ub + 1e-9) and weights @ x >= bound - 1e-9 * max(1.0, abs(bound)):
                chosen = np.flatnonzero(x)
                return _assignment(
                    scores, zip(ent[chosen], cand[chosen], strict=True), f"{solver}-lp", nv, n_rows
                )
    res = milp(
        -weights,
        integrality=np.ones(nv),
        bounds=Bounds(0, 1),
        constraints=constraint,
        options={**options, "mip_rel_gap": 1e-9},
    )
    if res.status != 0 or res.x is None:
        raise RuntimeError(f"HiGHS did not reach a proven optimum (status {res.status}): {res.message}")
    chosen = np.flatnonzero(res.x > 0.5)
    return _assignment(scores, zip(ent[chosen], cand[chosen], strict=True), solver, nv, n_rows)


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
    scores, arr = _check_scores(scores, cands)
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
    return _assignment(scores, chosen, "greedy", len(ent), 0)


# --------------------------------------------------------------------------------------------------------
# Projection


ScoreInput = np.ndarray | Mapping[str, np.ndarray]


def project_matching(
    source_spans: Sequence[Span],
    n_target: int,
    scores: ScoreInput | Callable[[list[Candidate]], ScoreInput],
    weights: Mapping[str, float] | None = None,
    *,
    solver: Literal["ilp", "greedy"] = "ilp",
    n_proj: int = 1,
    max_len: int = 10,
    cands: Sequence[Candidate] | None = None,
    formulation: Literal["word", "pairwise"] = "word",
) -> ProjectionResult:
    """Project entities by candidate matching: each entity's type goes to the candidate(s) it is assigned.

    Args:
        source_spans: source entities (their order is the row order of the score matrices).
        n_target: number of target words.
        scores: ``[entities, candidates]`` scores — one fused array, a ``{kind: array}`` dict fused with
            ``weights`` (a single kind needs no weights), or a callable that receives the candidate list and
            returns either.
        weights: fusion weights (e.g. :data:`FUSED_BEST`); required for a dict of several kinds.
        solver: ``"ilp"`` (exact) or ``"greedy"``.
        n_proj: maximum projections per entity.
        max_len: longest candidate when ``cands`` is not given.
        cands: the candidate list the scores refer to (default: :func:`candidates` of ``n_target``, ``max_len``).
        formulation: ILP non-overlap form, ``"word"`` or ``"pairwise"``.

    Returns:
        The projection; ``objective`` holds the assignment objective, so a caller can compute the greedy gap.
        Unprojected entities are counted ``no_candidate`` (no positive score) or ``conflict`` (their
        candidates went to other entities). ``stats.counts`` has ``candidates`` and ``variables``.
    """
    if solver not in ("ilp", "greedy"):
        raise ValueError(f"solver must be 'ilp' or 'greedy', got {solver!r}")
    cand_list = list(cands) if cands is not None else candidates(n_target, max_len)
    given = scores(cand_list) if callable(scores) else scores
    if isinstance(given, Mapping):
        if weights is None:
            if len(given) != 1:
                raise ValueError(f"several score kinds {sorted(given)} need weights, e.g. FUSED_BEST")
            weights = {next(iter(given)): 1.0}
        matrix = fuse(given, weights)
    else:
        if weights is not None:
            raise ValueError("weights apply to a dict of score kinds, not to one fused array")
        matrix = np.asarray(given, dtype=float)
    if matrix.shape != (len(source_spans), len(cand_list)):
        raise ValueError(
            f"scores must be [{len(source_spans)} entities, {len(cand_list)} candidates], got {matrix.shape}"
        )
    if solver == "ilp":
        result = solve_ilp(matrix, cand_list, n_target, n_proj, formulation)
    else:
        result = solve_greedy(matrix, cand_list, n_proj)
    stats = ProjectionStats()
    stats.counts["candidates"] += len(cand_list)
    stats.counts["variables"] += result.n_variables
    by_entity: dict[int, list[int]] = {}
    for e, c in result.pairs:
        by_entity.setdefault(e, []).append(c)
    spans = []
    for e, ent in enumerate(source_spans):
        chosen = by_entity.get(e, [])
        if chosen:
            stats.add_projected(ent.label)
            stats.counts["extra_projections"] += len(chosen) - 1
            spans.extend(Span(cand_list[c][0], cand_list[c][1], ent.label) for c in chosen)
        elif not (matrix[e] > 0).any():
            stats.add_dropped(ent.label, DROP_NO_CANDIDATE)
        else:
            stats.add_dropped(ent.label, DROP_CONFLICT)
    spans.sort(key=lambda s: s.start)
    return ProjectionResult(spans_to_iob2(spans, n_target), spans, stats, objective=result.objective)
