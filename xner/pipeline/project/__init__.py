"""Label projection onto target words: result types, the alignment heuristic, text helpers and refinement.

- :mod:`~xner.pipeline.project.results`: :class:`ProjectionStats`, :class:`ProjectionResult`, the ``DROP_*``
  reasons and alignment checks, shared by every method;
- :mod:`~xner.pipeline.project.heuristic`: :func:`project_heuristic`;
- :mod:`~xner.pipeline.project.text`: :func:`simple_tokenize`, :func:`normalize_text`, :func:`char_similarity`,
  :func:`find_string_span`, :func:`is_punct`;
- :mod:`~xner.pipeline.project.refine`: :func:`refine_alignment_with_translations` (heuristic_bt).

The matching method lives in :mod:`xner.pipeline.matching`, the marker method in :mod:`xner.pipeline.markers`,
and the pipeline's per-method adapters in :mod:`xner.pipeline.methods`.
"""

from xner.pipeline.project.heuristic import project_heuristic
from xner.pipeline.project.refine import refine_alignment_with_translations
from xner.pipeline.project.results import (
    DROP_CONFLICT,
    DROP_LENGTH_RATIO,
    DROP_MARKER_EMPTY,
    DROP_MARKER_MISSING,
    DROP_MARKER_UNBALANCED,
    DROP_MARKER_UNRESOLVED,
    DROP_NO_CANDIDATE,
    DROP_UNALIGNED,
    Links,
    ProjectionResult,
    ProjectionStats,
    validate_alignment,
    validate_spans,
)
from xner.pipeline.project.text import (
    char_similarity,
    find_string_span,
    is_punct,
    normalize_text,
    simple_tokenize,
)

__all__ = [
    "DROP_CONFLICT",
    "DROP_LENGTH_RATIO",
    "DROP_MARKER_EMPTY",
    "DROP_MARKER_MISSING",
    "DROP_MARKER_UNBALANCED",
    "DROP_MARKER_UNRESOLVED",
    "DROP_NO_CANDIDATE",
    "DROP_UNALIGNED",
    "Links",
    "ProjectionResult",
    "ProjectionStats",
    "char_similarity",
    "find_string_span",
    "is_punct",
    "normalize_text",
    "project_heuristic",
    "refine_alignment_with_translations",
    "simple_tokenize",
    "validate_alignment",
    "validate_spans",
]
