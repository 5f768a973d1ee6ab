"""Candidate matching: candidates, scores, ILP (both formulations) against oracles, greedy, projection."""

from __future__ import annotations

import numpy as np
import pytest

from xner.labels import tags_to_spans
from xner.pipeline.matching import (
    FUSED_BEST,
    align_scores,
    aligned_window,
    candidates,
    chrf,
    fuse,
    ner_scores,
    project_matching,
    solve_brute_force,
    solve_greedy,
    solve_ilp,
    solve_interval_dp,
    strictly_dominated,
    translation_scores,
)
from xner.types import Span

# --------------------------------------------------------------------------------------------------------
# candidates and scores


def test_candidates():
    assert candidates(3, max_len=2) == [(0, 1), (0, 2), (1, 2), (1, 3), (2, 3)]
    assert len(candidates(30, max_len=10)) == sum(min(10, 30 - s) for s in range(30))
    assert candidates(6, max_len=10, window=(2, 4)) == [(2, 3), (2, 4), (3, 4)]
    assert candidates(0) == []
    with pytest.raises(ValueError, match="window"):
        candidates(3, window=(2, 5))


def test_align_scores_prefer_the_shorter_candidate():
    ent = Span(0, 2, "PER")  # two source words, both linked to target word 1
    cands = [(1, 2), (0, 2), (1, 3), (3, 4)]
    scores = align_scores(ent, cands, {(0, 1), (1, 1), (5, 3)})
    np.testing.assert_allclose(scores, [2 / 3, 2 / 4, 2 / 4, 0.0])
    assert aligned_window(ent, {(0, 1), (1, 4), (2, 0)}) == (1, 5)
    assert aligned_window(ent, {(2, 0)}) is None


def test_ner_scores_alpha_class_aware_and_agnostic():
    names = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    probs = np.array(
        [
            [0.1, 0.8, 0.0, 0.1, 0.0],  # B-PER
            [0.1, 0.0, 0.9, 0.0, 0.0],  # I-PER
            [0.4, 0.0, 0.0, 0.6, 0.0],  # B-LOC
            [0.98, 0.01, 0.0, 0.01, 0.0],
        ]
    )
    cands = [(0, 1), (0, 2), (2, 3), (3, 4)]
    per = ner_scores(cands, probs, names, "PER")
    np.testing.assert_allclose(per, [0.8, 1.15 * (0.8 + 0.9) / 2, 0.0, 0.0])
    agnostic = ner_scores(cands, probs, names, None)
    np.testing.assert_allclose(agnostic, [0.8, 1.15 * 0.85, 0.6, 0.0])  # 0.01 < floor 0.05 -> 0
    np.testing.assert_allclose(ner_scores(cands, probs, names, "PER", alpha=1.0)[1], 0.85)
    assert not ner_scores(cands, probs, names, "MISC").any()  # a type the model lacks: no evidence
    with pytest.raises(ValueError, match="label_probs"):
        ner_scores(cands, probs[:, :3], names)


def test_chrf_sanity():
    assert chrf("Nelson Mandela", "Nelson Mandela") == pytest.approx(1.0)
    assert chrf("NelsonMandela", "Nelson  Mandela") == pytest.approx(1.0)  # whitespace ignored
    assert chrf("abc", "xyz") == 0.0
    assert chrf("", "abc") == 0.0 and chrf("abc", " ") == 0.0
    # "NuevaYork" is a prefix of "NuevaYorkCity": precision 1 at every order, recall (10-n)/(14-n), n=1..6
    recall = sum((10 - n) / (14 - n) for n in range(1, 7)) / 6
    assert chrf("Nueva York", "Nueva York City") == pytest.approx(5 * recall / (4 + recall))
    # beta=2 weighs recall: a hypothesis covering the reference beats one covering half of it.
    assert chrf("de Nueva York", "Nueva York") > chrf("Nueva", "Nueva York")


def test_translation_scores_forward_backward_and_floor():
    tgt = "el presidente Nelson Mandela llegó".split()
    cands = candidates(len(tgt), max_len=3)
    scores = translation_scores(cands, tgt, "Nelson Mandela")
    assert cands[int(np.argmax(scores))] == (2, 4)
    assert scores[cands.index((2, 4))] == pytest.approx(1.0)
    assert scores[cands.index((0, 1))] == 0.0  # "el" is below the floor
    back = {(2, 4): "Nelson Mandela", (1, 2): "president"}
    both = translation_scores(cands, tgt, "Nelson Mandela", back, entity_text="Nelson Mandela")
    assert both[cands.index((2, 4))] == pytest.approx(1.0)
    assert both[cands.index((1, 2))] <= scores[cands.index((1, 2))]
    with pytest.raises(ValueError, match="entity_text"):
        translation_scores(cands, tgt, "x", back)


def test_translation_scores_vectorised_equal_chrf():
    rng = np.random.default_rng(0)
    letters = list("abcdeáñ")
    for _ in range(200):
        tokens = ["".join(rng.choice(letters, size=rng.integers(1, 6))) for _ in range(rng.integers(1, 12))]
        ref = " ".join(
            "".join(rng.choice(letters, size=rng.integers(1, 4))) for _ in range(rng.integers(1, 4))
        )
        cands = candidates(len(tokens), 5)
        fast = translation_scores(cands, tokens, ref.upper(), floor=0.0)
        slow = [chrf(" ".join(tokens[s:e]), ref) for s, e in cands]
        np.testing.assert_allclose(fast, slow, atol=1e-12)


def test_fuse():
    a, b = np.array([[1.0, 0.0]]), np.array([[0.0, 2.0]])
    np.testing.assert_allclose(
        fuse({"align": a, "ner": b, "other": a}, {"align": 0.5, "ner": 1.0}), [[0.5, 2.0]]
    )
    with pytest.raises(ValueError, match="not in scores"):
        fuse({"align": a}, FUSED_BEST)
    with pytest.raises(ValueError, match="shape"):
        fuse({"align": a, "ner": b[:, :1]}, {"align": 1, "ner": 1})


# --------------------------------------------------------------------------------------------------------
# solvers


def test_methods_counterexample_greedy_vs_optimum():
    # METHODS.md: one entity, inclusive candidates (1,2)=0.2, (2,3)=0.3, (3,5)=0.2, n_proj=2.
    cands = [(1, 3), (2, 4), (3, 6)]
    scores = np.array([[0.2, 0.3, 0.2]])
    greedy = solve_greedy(scores, cands, n_proj=2)
    assert greedy.objective == pytest.approx(0.3) and greedy.pairs == ((0, 1),)
    for formulation in ("word", "pairwise"):
        ilp = solve_ilp(scores, cands, 6, n_proj=2, formulation=formulation)
        assert ilp.objective == pytest.approx(0.4) and ilp.pairs == ((0, 0), (0, 2))
    assert solve_interval_dp(cands, scores[0]) == pytest.approx(0.4)
    assert solve_brute_force(scores, cands, n_proj=2) == pytest.approx(0.4)


def _random_instance(rng: np.random.Generator, n_target: int, max_len: int, n_ent: int, density: float):
    cands = candidates(n_target, max_len)
    # Scores on a coarse grid so that ties (and tie-breaking bugs) are common.
    scores = rng.integers(1, 11, size=(n_ent, len(cands))) / 10
    scores[rng.random(scores.shape) > density] = 0.0
    return cands, scores


@pytest.mark.parametrize("n_proj", [1, 2])
def test_ilp_matches_brute_force_on_random_small_instances(n_proj):
    rng = np.random.default_rng(100 + n_proj)
    for _ in range(120):
        n_target = int(rng.integers(2, 7))
        cands, scores = _random_instance(rng, n_target, 3, int(rng.integers(1, 4)), rng.uniform(0.2, 0.6))
        best = solve_brute_force(scores, cands, n_proj)
        variants = [
            solve_ilp(scores, cands, n_target, n_proj),
            solve_ilp(scores, cands, n_target, n_proj, prune=False, fast_paths=False),
            solve_ilp(scores, cands, n_target, n_proj, fast_paths=False, lp_first=False),
            solve_ilp(scores, cands, n_target, n_proj, "pairwise", fast_paths=False),
            solve_ilp(scores, cands, n_target, n_proj, "pairwise", prune=False, fast_paths=False),
        ]
        for sol in variants:
            assert sol.objective == pytest.approx(best, abs=1e-9), (sol, scores)
            _assert_feasible(sol.pairs, cands, n_proj)
        greedy = solve_greedy(scores, cands, n_proj)
        _assert_feasible(greedy.pairs, cands, n_proj)
        assert greedy.objective <= best + 1e-9


def _assert_feasible(pairs, cands, n_proj):
    per_entity: dict[int, int] = {}
    taken: set[int] = set()
    for e, c in pairs:
        per_entity[e] = per_entity.get(e, 0) + 1
        words = set(range(*cands[c]))
        assert not words & taken, "chosen candidates overlap"
        taken |= words
    assert all(n <= n_proj for n in per_entity.values())


def test_ilp_equals_interval_dp_when_the_limit_does_not_bind():
    rng = np.random.default_rng(7)
    for _ in range(60):
        n_target = int(rng.integers(3, 25))
        cands, scores = _random_instance(rng, n_target, 6, 1, rng.uniform(0.1, 0.5))
        dp = solve_interval_dp(cands, scores[0])
        for formulation in ("word", "pairwise"):
            ilp = solve_ilp(
                scores, cands, n_target, n_proj=len(cands), formulation=formulation, fast_paths=False
            )
            assert ilp.objective == pytest.approx(dp)
        # Several entities with an unbounded limit: the DP over the best score per candidate.
        cands, scores = _random_instance(rng, n_target, 6, 3, rng.uniform(0.1, 0.4))
        dp = solve_interval_dp(cands, scores.max(axis=0))
        assert solve_ilp(
            scores, cands, n_target, n_proj=len(cands), fast_paths=False
        ).objective == pytest.approx(dp)
        assert solve_ilp(scores, cands, n_target, n_proj=len(cands)).objective == pytest.approx(dp)


def test_word_and_pairwise_agree_on_realistic_sizes():
    rng = np.random.default_rng(11)
    for _ in range(25):
        n_target = int(rng.integers(10, 40))
        n_ent = int(rng.integers(1, 6))
        cands, scores = _random_instance(rng, n_target, 10, n_ent, 0.08)
        for n_proj in (1, 2):
            word = solve_ilp(scores, cands, n_target, n_proj)
            raw = solve_ilp(scores, cands, n_target, n_proj, prune=False, fast_paths=False, lp_first=False)
            pairwise = solve_ilp(scores, cands, n_target, n_proj, "pairwise", fast_paths=False)
            assert word.objective == pytest.approx(pairwise.objective) == pytest.approx(raw.objective)
            assert word.n_constraints <= pairwise.n_constraints
            assert solve_greedy(scores, cands, n_proj).objective <= word.objective + 1e-9


def test_fast_paths_are_exact():
    cands = [(0, 1), (1, 2), (2, 4)]
    # No two positive pairs overlap: each entity takes its best n_proj candidates.
    scores = np.array([[0.5, 0.0, 0.9], [0.0, 0.4, 0.0]])
    trivial = solve_ilp(scores, cands, 4, n_proj=1, prune=False)
    assert trivial.solver == "ilp-trivial" and trivial.pairs == ((0, 2), (1, 1))
    # With pruning, greedy reaches the upper bound (each entity's best score) and is returned as optimal.
    bound = solve_ilp(scores, cands, 4, n_proj=1)
    assert bound.solver == "ilp-bound" and bound.pairs == ((0, 2), (1, 1))
    assert trivial.objective == pytest.approx(solve_brute_force(scores, cands, 1))
    # Each entity has one variable: the interval DP decides the conflict on (1, 2).
    cands = [(0, 2), (1, 2), (2, 3)]
    scores = np.array([[0.6, 0, 0], [0, 0.5, 0], [0, 0, 0.3]])
    dp = solve_ilp(scores, cands, 3)
    assert dp.solver == "ilp-interval-dp" and dp.objective == pytest.approx(0.9)
    assert dp.pairs == ((0, 0), (2, 2))
    # Greedy (0.6) is below the bound (1.1) and the unlimited relaxation uses entity 0 twice: a real solve.
    cands = [(0, 2), (2, 3), (1, 3), (3, 4)]
    scores = np.array([[0.5, 0.5, 0, 0], [0, 0, 0.6, 0.55]])
    assert solve_greedy(scores, cands).objective == pytest.approx(0.6)
    solved = solve_ilp(scores, cands, 4)
    assert solved.solver in ("ilp-word-lp", "ilp-word") and solved.objective == pytest.approx(1.05)
    assert solved.pairs == ((0, 0), (1, 3))


def test_dominance_pruning():
    cands = [(0, 1), (0, 2), (1, 2)]
    scores = np.array([[0.5, 0.4, 0.1], [0.2, 0.2, 0.0]])
    dominated = strictly_dominated(scores, np.array(cands))
    # (0,2) for entity 0 is beaten by its sub-candidate (0,1); entity 1's tie is not strict.
    assert dominated.tolist() == [[False, True, False], [False, False, False]]


def test_solvers_handle_empty_and_reject_bad_input():
    cands = candidates(3, 2)
    zero = np.zeros((2, len(cands)))
    assert solve_ilp(zero, cands, 3).pairs == () and solve_greedy(zero, cands).objective == 0.0
    assert solve_ilp(np.zeros((0, len(cands))), cands, 3).objective == 0.0
    with pytest.raises(ValueError, match="candidates"):
        solve_ilp(np.zeros((1, 2)), cands, 3)
    with pytest.raises(ValueError, match="NaN"):
        solve_greedy(np.full((1, len(cands)), np.nan), cands)
    with pytest.raises(ValueError, match="n_proj"):
        solve_ilp(zero, cands, 3, n_proj=0)
    with pytest.raises(ValueError, match="reaches word"):
        solve_ilp(zero, cands, 2)


# --------------------------------------------------------------------------------------------------------
# project_matching


def test_project_matching_with_align_scores():
    # the White House and Nelson Mandela met  ->  la Casa Blanca y Nelson Mandela se reunieron
    tgt = "la Casa Blanca y Nelson Mandela se reunieron".split()
    ents = [Span(1, 3, "ORG"), Span(4, 6, "PER"), Span(7, 8, "MISC")]
    alignment = {(0, 0), (1, 2), (2, 1), (3, 3), (4, 4), (5, 5), (6, 6), (6, 7)}

    def score_fn(cands):
        return {"align": np.stack([align_scores(e, cands, alignment) for e in ents])}

    for solver in ("ilp", "greedy"):
        res = project_matching(ents, len(tgt), score_fn, solver=solver)
        res.stats.check()
        assert res.tags == ["O", "B-ORG", "I-ORG", "O", "B-PER", "I-PER", "O", "O"]
        assert tags_to_spans(res.tags) == res.spans
        assert res.stats.dropped == {"no_candidate": 1}  # MISC has no link
        assert res.objective == pytest.approx(2 * 2 / 4)  # two links / (2 + 2 words), twice


def test_project_matching_conflict_and_n_proj():
    cands = [(0, 1), (0, 2), (1, 2), (2, 3)]
    ents = [Span(0, 1, "PER"), Span(1, 2, "LOC")]
    fused = np.array([[0.0, 0.9, 0.0, 0.0], [0.0, 0.5, 0.0, 0.0]])
    res = project_matching(ents, 3, fused, cands=cands)
    res.stats.check()
    assert res.tags == ["B-PER", "I-PER", "O"] and res.stats.dropped == {"conflict": 1}

    two = np.array([[0.6, 0.0, 0.0, 0.7]])
    res = project_matching(
        [Span(0, 1, "PER")], 3, {"align": two, "ner": two}, {"align": 1.0}, n_proj=2, cands=cands
    )
    assert res.tags == ["B-PER", "O", "B-PER"] and res.stats.counts["extra_projections"] == 1
    assert res.stats.projected == 1 and res.objective == pytest.approx(1.3)


def test_project_matching_bad_input():
    ents = [Span(0, 1, "PER")]
    with pytest.raises(ValueError, match="need weights"):
        project_matching(ents, 2, {"a": np.zeros((1, 3)), "b": np.zeros((1, 3))})
    with pytest.raises(ValueError, match="scores must be"):
        project_matching(ents, 2, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="solver"):
        project_matching(ents, 2, np.zeros((1, 3)), solver="lp")
