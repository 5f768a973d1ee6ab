"""Marker-based projection (EasyProject): translate the sentence with its entities marked, read the marks back.

Translate-train only: the marked translation *is* the target sentence. Options (``projection:``): ``style``
(``html``, default, or ``bracket``; bracket recovers types with the separately translated entity strings).
Marker extraction counts go to ``meta.json`` under ``marker_counts``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from xner.pipeline.markers import extract_marked_spans, insert_markers, project_markers
from xner.pipeline.methods.base import Needs, ProjectionMethod, SentencePair, TranslationInput, register
from xner.pipeline.project import ProjectionResult
from xner.types import Sentence, Span


class Markers(ProjectionMethod):
    """Markers around the source entities, carried through translation."""

    name = "markers"
    counts_key = "marker_counts"

    def check(self, spec) -> None:
        """Translate-train only."""
        if spec.direction == "translate_test":
            raise ValueError(
                "markers make the translation the target sentence, so they exist for translate-train "
                "only; use heuristic, heuristic_bt or matching for translate-test"
            )

    def needs(self, spec) -> Needs:
        """No alignment; entity translations in bracket style (to recover types)."""
        return Needs(alignment=False, entity_translations=self._style(spec.projection) == "bracket")

    def translation_input(
        self, sentences: Sequence[Sentence], spans: Sequence[Sequence[Span]], spec
    ) -> TranslationInput:
        """The marked sentences; html style asks the translator to carry markup."""
        style = self._style(spec.projection)
        texts = [insert_markers(s.tokens, ents, style) for s, ents in zip(sentences, spans, strict=True)]
        config = dict(spec.from_english)
        if style == "html":
            config["markup"] = "html"
        return TranslationInput(texts, config, "translate_marked")

    def project(self, pair: SentencePair, options: Mapping[str, Any]) -> ProjectionResult:
        """Extract the marked spans from ``pair.translation`` and give them their entities' types."""
        extraction = extract_marked_spans(pair.translation, self._style(options), len(pair.entities))
        result = project_markers(pair.entities, extraction, pair.entity_translations)
        result.method_counts = extraction.stats
        return result

    @staticmethod
    def _style(options: Mapping[str, Any]) -> str:
        return options.get("style", "html")


register(Markers())
