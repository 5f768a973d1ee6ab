"""Candidate matching, part 1: n-gram candidates and their scores (alignment, target-side NER, chrF).

Candidates are ``(start, end)`` pairs with an **exclusive** end (METHODS.md's inclusive ``(1, 2)`` is
``(1, 3)`` here). Score matrices are ``[entities, candidates]`` numpy arrays; :func:`fuse` sums them with
weights (:data:`FUSED_BEST`, the thesis's best).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

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


def cand_array(cands: Sequence[Candidate]) -> np.ndarray:
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
    arr = cand_array(cands)
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
    arr = cand_array(cands)
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
    arr = cand_array(cands)
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
