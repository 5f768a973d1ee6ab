"""Word aligners behind one protocol, and the extraction methods as pure functions on similarity matrices.

An *alignment* is a ``set[tuple[int, int]]`` of 0-based ``(source word, target word)`` links. Every aligner
takes many pre-tokenised sentence pairs at once (:meth:`Aligner.align`). Two aligners:

- :class:`SimAlignAligner` (:mod:`~xner.pipeline.align.simalign_adapter`) — an adapter over the ``simalign``
  package (Jalili Sabet et al. 2020), one pair at a time, as the package does it. The reference.
- :class:`EmbeddingAligner` (:mod:`~xner.pipeline.align.embedding`) — the in-house batched aligner. It
  computes *the same alignments* as the package from the same encoder layer, but encodes every sentence once,
  in length-sorted padded batches, through only as many layers as it needs.

The extraction methods (simalign's argmax / itermax / match, AWESoME-align's softmax) are pure functions in
:mod:`~xner.pipeline.align.methods`; what is shared by the aligners is in :mod:`~xner.pipeline.align.base`.
"""

from __future__ import annotations

from typing import Any

from xner.pipeline.align.base import VERSION, Aligner, resolve_model_dir
from xner.pipeline.align.embedding import BARE_METASPACE, EmbeddingAligner, EncodedSentence
from xner.pipeline.align.methods import (
    METHODS,
    Links,
    argmax_alignment,
    cosine_similarity_matrix,
    extract,
    itermax_alignment,
    match_alignment,
    mean_pool_words,
    normalize_rows,
    softmax_threshold_alignment,
    subword_links_to_words,
)
from xner.pipeline.align.simalign_adapter import SimAlignAligner

__all__ = [
    "ALIGNERS",
    "BARE_METASPACE",
    "METHODS",
    "VERSION",
    "Aligner",
    "EmbeddingAligner",
    "EncodedSentence",
    "Links",
    "SimAlignAligner",
    "argmax_alignment",
    "cosine_similarity_matrix",
    "extract",
    "itermax_alignment",
    "make_aligner",
    "match_alignment",
    "mean_pool_words",
    "normalize_rows",
    "resolve_model_dir",
    "softmax_threshold_alignment",
    "subword_links_to_words",
]

# The aligner kinds of pipeline configs (``aligner: {kind: embedding, ...}``); `python -m xner.pipeline
# --help` lists these names.
ALIGNERS: dict[str, type] = {"embedding": EmbeddingAligner, "simalign": SimAlignAligner}


def make_aligner(kind: str = "embedding", **kwargs: Any) -> Aligner:
    """Build an aligner from a config (``configs/pipeline/*.yaml``: ``aligner: {kind: embedding, ...}``).

    Args:
        kind: ``embedding`` (:class:`EmbeddingAligner`) or ``simalign`` (:class:`SimAlignAligner`).
        **kwargs: the aligner's arguments (``model_dir``, ``layer``, ``method``, ...).

    Raises:
        ValueError: unknown kind.
        FileNotFoundError: the encoder directory is missing (run ``make setup``).
    """
    if kind not in ALIGNERS:
        raise ValueError(f"Unknown aligner kind {kind!r}: expected one of {', '.join(ALIGNERS)}.")
    return ALIGNERS[kind](**kwargs)
