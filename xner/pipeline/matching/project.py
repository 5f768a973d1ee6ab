"""Candidate matching, part 4: a sentence pair's score matrices and the projection through an assignment."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Literal

import numpy as np

from xner.labels import spans_to_tags
from xner.pipeline.matching.ilp import solve_ilp
from xner.pipeline.matching.scores import (
    Candidate,
    align_scores,
    candidates,
    fuse,
    ner_scores,
    translation_scores,
)
from xner.pipeline.matching.solvers import solve_greedy
from xner.pipeline.project import DROP_CONFLICT, DROP_NO_CANDIDATE, ProjectionResult, ProjectionStats
from xner.types import Span

ScoreInput = np.ndarray | Mapping[str, np.ndarray]


def sentence_scores(
    entities: Sequence[Span],
    target: Sequence[str],
    kinds: Sequence[str],
    *,
    links: set[tuple[int, int]] | None = None,
    entity_translations: Sequence[str] | None = None,
    target_ner: Mapping | None = None,
    ner_alpha: float = 1.15,
) -> Callable[[list[Candidate]], dict[str, np.ndarray]]:
    """The score function of one sentence pair: candidates -> ``{kind: [entities, candidates]}``.

    Args:
        entities: source entities.
        target: target words.
        kinds: the score kinds to compute (``align``, ``translation``, ``ner``).
        links: the word alignment (``align``).
        entity_translations: one translated string per entity (``translation``).
        target_ner: the target-side tagger's output for this sentence, ``{"probs": [words][labels],
            "labels": [...]}`` (``ner``; class-agnostic, the same row for every entity).
        ner_alpha: the exponent of :func:`ner_scores`.
    """

    def scores(cands: list[Candidate]) -> dict[str, np.ndarray]:
        out = {}
        empty = np.zeros((0, len(cands)))
        if "align" in kinds:
            out["align"] = np.stack([align_scores(e, cands, links) for e in entities]) if entities else empty
        if "translation" in kinds:
            out["translation"] = (
                np.stack([translation_scores(cands, target, tr) for tr in entity_translations])
                if entities
                else empty
            )
        if "ner" in kinds:
            probs = np.asarray(target_ner["probs"], dtype=float).reshape(len(target), -1)
            row = ner_scores(cands, probs, target_ner["labels"], None, ner_alpha)
            out["ner"] = np.tile(row, (len(entities), 1))
        return out

    return scores


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
    return ProjectionResult(spans_to_tags(spans, n_target), spans, stats, objective=result.objective)
