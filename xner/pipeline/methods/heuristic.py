"""Projection through a word alignment: ``heuristic``, and ``heuristic_bt`` (alignment refined first).

Options (``projection:``): ``max_gap`` (1), ``only_i`` (false), ``length_ratio`` (0.8), ``top_k`` (none);
heuristic_bt also ``fuzzy_threshold`` (0.8).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from xner.pipeline.methods.base import Needs, ProjectionMethod, SentencePair, register
from xner.pipeline.project import ProjectionResult, project_heuristic, refine_alignment_with_translations


class Heuristic(ProjectionMethod):
    """The alignment heuristic (:func:`~xner.pipeline.project.project_heuristic`)."""

    name = "heuristic"

    def project(self, pair: SentencePair, options: Mapping[str, Any]) -> ProjectionResult:
        """Project through ``pair.links``."""
        return self._project(pair, pair.links, options)

    @staticmethod
    def _project(pair: SentencePair, links, options: Mapping[str, Any]) -> ProjectionResult:
        return project_heuristic(
            pair.entities,
            links,
            len(pair.target),
            max_gap=options.get("max_gap", 1),
            only_i=options.get("only_i", False),
            length_ratio=options.get("length_ratio", 0.8),
            top_k=options.get("top_k"),
        )


class HeuristicBT(Heuristic):
    """The heuristic after refining each entity's links with its separately translated string.

    The refinement's counts (``exact``, ``fuzzy``, ``unmatched``, ``empty_translation``, ``links_added``,
    ``links_removed``) go to ``meta.json`` under ``refinement_counts``.
    """

    name = "heuristic_bt"
    counts_key = "refinement_counts"

    def needs(self, spec) -> Needs:
        """An alignment and the entity translations."""
        return Needs(entity_translations=True)

    def project(self, pair: SentencePair, options: Mapping[str, Any]) -> ProjectionResult:
        """Refine ``pair.links`` with ``pair.entity_translations``, then project."""
        links, counts = pair.links, None
        if pair.entities:
            links, counts = refine_alignment_with_translations(
                pair.source,
                pair.entities,
                pair.target,
                pair.links,
                pair.entity_translations,
                options.get("fuzzy_threshold", 0.8),
            )
        result = self._project(pair, links, options)
        if counts is not None:
            result.method_counts = counts
        return result


register(Heuristic())
register(HeuristicBT())
