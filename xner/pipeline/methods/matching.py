"""Candidate matching: ``matching_ilp`` (exact) and ``matching_greedy``.

Options (``projection:``): ``weights`` (score kinds -> fusion weight, default
:data:`~xner.pipeline.matching.FUSED_BEST`), ``n_proj`` (1), ``max_len`` (10), ``ner_alpha`` (1.15).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from xner.pipeline.matching import FUSED_BEST, project_matching, sentence_scores
from xner.pipeline.methods.base import Needs, ProjectionMethod, SentencePair, register
from xner.pipeline.project import ProjectionResult

SCORE_KINDS = ("align", "ner", "translation")  # the candidate scores matching can fuse (projection.weights)


def fusion_weights(options: Mapping[str, Any]) -> dict[str, float]:
    """The fusion weights of ``projection`` options (default: the thesis's best)."""
    return dict(options.get("weights", FUSED_BEST))


class Matching(ProjectionMethod):
    """Candidate matching with one solver (``"ilp"`` or ``"greedy"``)."""

    def __init__(self, solver: str):
        self.solver = solver
        self.name = f"matching_{solver}"

    def check(self, spec) -> None:
        """Weights must name known score kinds; an ``ner`` weight needs ``source_model``."""
        weights = fusion_weights(spec.projection)
        unknown = sorted(set(weights) - set(SCORE_KINDS))
        if unknown:
            raise ValueError(
                f"projection.weights names unknown score kinds {unknown}; the kinds are {', '.join(SCORE_KINDS)}"
            )
        if weights.get("ner", 0) > 0 and not spec.source_model:
            raise ValueError(
                "matching with an 'ner' score needs source_model (the multilingual NER model run on "
                "the target sentence); set projection.weights.ner=0 to match without it"
            )

    def needs(self, spec) -> Needs:
        """An alignment, plus entity translations and target NER when their weights are positive."""
        weights = fusion_weights(spec.projection)
        return Needs(
            entity_translations=weights.get("translation", 0) > 0, target_ner=weights.get("ner", 0) > 0
        )

    def project(self, pair: SentencePair, options: Mapping[str, Any]) -> ProjectionResult:
        """Score every (entity, candidate) pair, fuse, and solve the assignment."""
        weights = {kind: w for kind, w in fusion_weights(options).items() if w}
        scores = sentence_scores(
            pair.entities,
            pair.target,
            list(weights),
            links=pair.links,
            entity_translations=pair.entity_translations,
            target_ner=pair.target_ner,
            ner_alpha=options.get("ner_alpha", 1.15),
        )
        return project_matching(
            pair.entities,
            len(pair.target),
            scores,
            weights,
            solver=self.solver,
            n_proj=options.get("n_proj", 1),
            max_len=options.get("max_len", 10),
        )


register(Matching("ilp"))
register(Matching("greedy"))
