"""simalign's extraction methods (and AWESoME-align's) as pure functions on similarity matrices.

An *alignment* is a ``set[tuple[int, int]]`` of 0-based ``(source word, target word)`` links (:data:`Links`).
What simalign does (``simalign/simalign.py``, version 0.4, ``token_type="bpe"``, ``distortion=0``) and how
these functions reproduce it:

- similarity = ``(cosine + 1) / 2`` on the subword vectors, computed like scikit-learn's
  ``cosine_similarity`` (rows scaled by ``sqrt(einsum("ij,ij->i"))``, then a float32 matrix product);
- the extraction (argmax / itermax / match) runs on the *subword* matrix and every subword link is mapped to
  the link of the words that hold the two pieces (a word pair is linked when any of its pieces are); the
  ``"word"`` granularity (mean of the piece vectors per word) is offered as ``token_type="word"``;
- ``match`` is simalign's ``mwmf``: a maximum-weight matching among the maximum-cardinality matchings of the
  complete bipartite graph (networkx); with positive weights that is exactly the rectangular assignment
  problem, solved here with :func:`scipy.optimize.linear_sum_assignment`.

The fourth method, ``softmax``, is AWESoME-align's extraction (Dou & Neubig 2021): the dot products of the raw
(unnormalised) hidden states of both sentences *with* their special tokens, a softmax over each row and over
each column, and a link where both probabilities exceed ``softmax_threshold`` (1e-3); the special tokens
take part in the softmax and are cut off afterwards, as in awesome-align's ``guide_layer``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

Links = set[tuple[int, int]]
METHODS = ("argmax", "itermax", "match", "softmax")


def cosine_similarity_matrix(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """simalign's similarity: ``(cos(x_i, y_j) + 1) / 2``, computed the way scikit-learn computes cosine.

    Args:
        x: ``[m, d]`` row vectors.
        y: ``[n, d]`` row vectors.

    Returns:
        ``[m, n]`` similarities in ``[0, 1]`` (the input's float dtype).
    """
    return (normalize_rows(x) @ normalize_rows(y).T + 1.0) / 2.0


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """L2-normalise rows as ``sklearn.preprocessing.normalize`` does (near-zero rows are left unscaled)."""
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))
    norms[norms < 10 * np.finfo(norms.dtype).eps] = 1.0
    return x / norms[:, None]


def argmax_alignment(sim: np.ndarray) -> np.ndarray:
    """Links that are the row-wise *and* the column-wise maximum (simalign's ``inter``/ArgMax).

    Ties go to the first index, as ``np.argmax`` does.

    Args:
        sim: ``[m, n]`` similarity matrix.

    Returns:
        ``[m, n]`` boolean link matrix.
    """
    m, n = sim.shape
    out = np.zeros((m, n), dtype=bool)
    if m == 0 or n == 0:
        return out
    fwd = np.zeros((m, n), dtype=bool)
    fwd[np.arange(m), sim.argmax(axis=1)] = True
    out[sim.argmax(axis=0), np.arange(n)] = True
    return out & fwd


def itermax_alignment(sim: np.ndarray, max_count: int = 2, alpha_ratio: float = 0.9) -> np.ndarray:
    """simalign's IterMax: ArgMax, then further rounds of mutual maxima among rows or columns left unaligned.

    Exactly the package's ``iter_max``: matrices with a side of at most 2 return the ArgMax links; in each of
    the ``max_count - 1`` further rounds, similarities are scaled by ``alpha_ratio`` where only the row or
    only the column is still unaligned (by 1 where both are, by 0 where neither is), and new mutual maxima are
    kept where the row or the column was unaligned; a round adds nothing once every row or every column is
    aligned, and the loop stops when a round adds nothing.

    Args:
        sim: ``[m, n]`` similarity matrix (non-negative, as simalign's ``(cos + 1) / 2``).
        max_count: total rounds, the first being ArgMax.
        alpha_ratio: the discount of a cell whose row or column is already aligned.

    Returns:
        ``[m, n]`` boolean link matrix.
    """
    m, n = sim.shape
    inter = argmax_alignment(sim).astype(np.float64)
    if min(m, n) <= 2:
        return inter > 0
    count = 1
    while count < max_count:
        # Same arithmetic as the package (mask values are exactly 0, alpha or 1), so ties break the same way.
        mask_x = 1.0 - np.clip(inter.sum(1), 0.0, 1.0)[:, None] * np.ones((1, n))
        mask_y = 1.0 - np.clip(inter.sum(0), 0.0, 1.0)[None, :] * np.ones((m, 1))
        mask = np.clip(alpha_ratio * mask_x + alpha_ratio * mask_y, 0.0, 1.0)
        mask_zeros = 1.0 - (1.0 - mask_x) * (1.0 - mask_y)
        if mask_x.sum() < 1.0 or mask_y.sum() < 1.0:
            mask *= 0.0
            mask_zeros *= 0.0
        new_sim = sim * mask
        fwd = np.eye(n)[new_sim.argmax(axis=1)] * mask_zeros
        bac = np.eye(m)[new_sim.argmax(axis=0)].transpose() * mask_zeros
        new_inter = fwd * bac
        if np.array_equal(inter + new_inter, inter):
            break
        inter = inter + new_inter
        count += 1
    return inter > 0


def match_alignment(sim: np.ndarray) -> np.ndarray:
    """simalign's Match (``mwmf``): the maximum-weight matching of maximum cardinality.

    simalign runs networkx's ``max_weight_matching(maxcardinality=True)`` on the complete bipartite graph
    (``csr_matrix(sim)``: exact zeros would be missing edges; simalign's ``(cos + 1) / 2`` is 0 only for
    opposite vectors). With positive weights this is the rectangular assignment problem: ``min(m, n)``
    links, one per row and column at most, of maximum total similarity.

    Args:
        sim: ``[m, n]`` similarity matrix.

    Returns:
        ``[m, n]`` boolean link matrix.
    """
    out = np.zeros(sim.shape, dtype=bool)
    if out.size == 0:
        return out
    rows, cols = linear_sum_assignment(sim, maximize=True)
    out[rows, cols] = True
    return out


def softmax_threshold_alignment(scores: np.ndarray, threshold: float = 1e-3) -> np.ndarray:
    """AWESoME-align's extraction: softmax over each row and over each column; keep links above both.

    Args:
        scores: ``[m, n]`` scores; awesome-align uses dot products of raw hidden states (not cosine, whose
            narrow range would make the softmax almost uniform).
        threshold: the probability both softmaxes must exceed.

    Returns:
        ``[m, n]`` boolean link matrix.
    """
    if scores.size == 0:
        return np.zeros(scores.shape, dtype=bool)
    s = scores.astype(np.float64)
    p_rows = np.exp(s - s.max(axis=1, keepdims=True))
    p_rows /= p_rows.sum(axis=1, keepdims=True)
    p_cols = np.exp(s - s.max(axis=0, keepdims=True))
    p_cols /= p_cols.sum(axis=0, keepdims=True)
    return (p_rows > threshold) & (p_cols > threshold)


def extract(sim: np.ndarray, method: str, **options: Any) -> np.ndarray:
    """Apply the extraction ``method`` (one of :data:`METHODS`) to a similarity matrix."""
    if method == "argmax":
        return argmax_alignment(sim)
    if method == "itermax":
        return itermax_alignment(sim, **options)
    if method == "match":
        return match_alignment(sim)
    if method == "softmax":
        return softmax_threshold_alignment(sim, **options)
    raise ValueError(f"Unknown alignment method {method!r}: expected one of {', '.join(METHODS)}.")


def subword_links_to_words(
    links: np.ndarray, source_word_ids: Sequence[int], target_word_ids: Sequence[int]
) -> Links:
    """Map a subword link matrix to word links (simalign's ``bpe`` mode): words linked if any pieces are.

    Args:
        links: ``[m, n]`` boolean matrix over subword pieces.
        source_word_ids: the word index of each of the m source pieces.
        target_word_ids: the word index of each of the n target pieces.

    Returns:
        The word alignment.
    """
    rows, cols = np.nonzero(links)
    return {(int(source_word_ids[i]), int(target_word_ids[j])) for i, j in zip(rows, cols, strict=True)}


def mean_pool_words(vectors: np.ndarray, word_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Average piece vectors per word (simalign's ``token_type="word"``).

    Args:
        vectors: ``[pieces, d]``.
        word_ids: the word index of each piece (non-decreasing).

    Returns:
        ``([words_with_pieces, d] vectors, their word indices)``.
    """
    ids = np.asarray(word_ids)
    words = np.unique(ids)
    pooled = np.stack([vectors[ids == w].mean(0) for w in words]) if len(words) else vectors[:0]
    return pooled, words
