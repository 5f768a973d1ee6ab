"""Word aligners: extraction functions, AER, the gold reader, and the batched aligner against simalign."""

from __future__ import annotations

import numpy as np
import pytest

from xner.pipeline.aer import alignment_scores, read_gold, read_lambert
from xner.pipeline.align import (
    Aligner,
    argmax_alignment,
    cosine_similarity_matrix,
    itermax_alignment,
    make_aligner,
    match_alignment,
    mean_pool_words,
    resolve_model_dir,
    softmax_threshold_alignment,
    subword_links_to_words,
)


def links(matrix: np.ndarray) -> set[tuple[int, int]]:
    return {(int(i), int(j)) for i, j in zip(*np.nonzero(matrix), strict=True)}


# ------------------------------------------------------------------------------------ pure functions
def test_argmax_is_intersection_of_row_and_column_maxima():
    sim = np.array([[0.9, 0.1, 0.2], [0.8, 0.3, 0.1]])
    # rows pick columns 0, 0; columns pick rows 0, 1, 0: only (0, 0) is mutual.
    assert links(argmax_alignment(sim)) == {(0, 0)}
    assert links(argmax_alignment(np.eye(3))) == {(0, 0), (1, 1), (2, 2)}
    assert argmax_alignment(np.zeros((0, 3))).shape == (0, 3)


def test_itermax_adds_mutual_maxima_of_unaligned_rows_or_columns():
    sim = np.array([[0.9, 0.8, 0.1], [0.85, 0.2, 0.1], [0.1, 0.1, 0.7]])
    assert links(argmax_alignment(sim)) == {(0, 0), (2, 2)}
    # Round 2: row 1 and column 1 are unaligned; (0, 1) scores 0.8*0.9 and (1, 0) 0.85*0.9, both mutual.
    assert links(itermax_alignment(sim)) == {(0, 0), (2, 2), (0, 1), (1, 0)}
    assert links(itermax_alignment(sim, max_count=1)) == {(0, 0), (2, 2)}
    # A side of at most 2 returns ArgMax, as in simalign.
    two = np.array([[0.9, 0.8, 0.7], [0.85, 0.2, 0.1]])
    assert links(itermax_alignment(two)) == links(argmax_alignment(two))


def test_match_is_maximum_weight_assignment():
    sim = np.array([[0.9, 0.8], [0.85, 0.1]])
    assert links(argmax_alignment(sim)) == {(0, 0)}
    assert links(match_alignment(sim)) == {(0, 1), (1, 0)}  # 0.8 + 0.85 > 0.9 + 0.1
    wide = np.array([[0.1, 0.9, 0.5], [0.2, 0.8, 0.7]])
    assert links(match_alignment(wide)) == {(0, 1), (1, 2)}  # min(m, n) links


def test_softmax_threshold():
    scores = np.array([[10.0, 0.0], [0.0, 10.0]])
    assert links(softmax_threshold_alignment(scores)) == {(0, 0), (1, 1)}  # off-diagonal p = 4.5e-5
    assert links(softmax_threshold_alignment(scores, threshold=1e-5)) == {(0, 0), (0, 1), (1, 0), (1, 1)}
    # Both directions must pass: (0, 1) has row p 0.0067 and column p 0.5; (1, 0) row 0.0067, column 4.5e-5.
    skew = np.array([[10.0, 5.0], [0.0, 5.0]])
    assert links(softmax_threshold_alignment(skew, threshold=0.005)) == {(0, 0), (0, 1), (1, 1)}
    assert links(softmax_threshold_alignment(skew, threshold=0.01)) == {(0, 0), (1, 1)}


def test_pure_functions_equal_simalign_static_methods():
    simalign = pytest.importorskip("simalign.simalign")
    aligner = simalign.SentenceAligner
    rng = np.random.default_rng(0)
    for _ in range(200):
        m, n = rng.integers(1, 12, size=2)
        sim = aligner.get_similarity(rng.normal(size=(m, 8)), rng.normal(size=(n, 8)))
        if rng.random() < 0.3:  # ties: repeated values
            sim = np.round(sim, 1)
        fwd, rev = aligner.get_alignment_matrix(sim)
        assert links(argmax_alignment(sim)) == links(fwd * rev)
        assert links(itermax_alignment(sim)) == links(aligner.iter_max(sim))
        if simalign.nx is not None and len(np.unique(sim)) == sim.size:  # no ties: unique optimum
            assert links(match_alignment(sim)) == links(aligner.get_max_weight_match(sim))


def test_cosine_similarity_matches_sklearn():
    from sklearn.metrics.pairwise import cosine_similarity

    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(7, 16)).astype(np.float32), rng.normal(size=(5, 16)).astype(np.float32)
    np.testing.assert_array_equal(cosine_similarity_matrix(x, y), (cosine_similarity(x, y) + 1.0) / 2.0)


def test_subword_links_map_to_words_and_mean_pooling():
    matrix = np.zeros((3, 3), dtype=bool)
    matrix[0, 0] = matrix[1, 2] = matrix[2, 2] = True
    # source pieces: word 0, word 1, word 1; target pieces: word 0, word 0, word 1
    assert subword_links_to_words(matrix, [0, 1, 1], [0, 0, 1]) == {(0, 0), (1, 1)}
    vectors = np.array([[1.0, 0.0], [3.0, 2.0], [5.0, 4.0]])
    pooled, words = mean_pool_words(vectors, [0, 2, 2])
    np.testing.assert_array_equal(pooled, [[1.0, 0.0], [4.0, 3.0]])
    assert words.tolist() == [0, 2]


# ------------------------------------------------------------------------------------------------ AER
def test_alignment_scores_known_values():
    sure = {(0, 0), (1, 1)}
    possible = sure | {(1, 2)}
    predicted = {(0, 0), (1, 2), (2, 2)}
    s = alignment_scores([predicted], [(sure, possible)])
    assert s["precision"] == pytest.approx(2 / 3)  # |A∩P| / |A|
    assert s["recall"] == pytest.approx(1 / 2)  # |A∩S| / |S|
    assert s["aer"] == pytest.approx(1 - (1 + 2) / (3 + 2))
    assert s["f1"] == pytest.approx(4 / 7)
    # Micro average: counts summed over pairs; a perfect second pair changes the totals.
    s2 = alignment_scores([predicted, {(0, 0)}], [(sure, possible), ({(0, 0)}, {(0, 0)})])
    assert s2["aer"] == pytest.approx(1 - (2 + 3) / (4 + 3))
    assert alignment_scores([set()], [(sure, possible)])["aer"] == 1.0
    with pytest.raises(ValueError, match="same sentence pairs"):
        alignment_scores([predicted], [])


def test_read_gold_one_indexed_possible_includes_sure(tmp_path):
    path = tmp_path / "test.gold"
    path.write_text("1-1 2p3 3-2\n\n10p1\n")
    gold = read_gold(path)
    assert gold == [
        ({(0, 0), (2, 1)}, {(0, 0), (1, 2), (2, 1)}),
        (set(), set()),
        (set(), {(9, 0)}),
    ]
    assert read_gold(path, one_indexed=False)[0][0] == {(1, 1), (3, 2)}


@pytest.mark.parametrize(
    "text,match", [("1-1 2x3\n", "test.gold:1: malformed"), ("1-1\n0-2\n", "test.gold:2")]
)
def test_read_gold_errors_name_file_and_line(tmp_path, text, match):
    path = tmp_path / "test.gold"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        read_gold(path)


def test_read_lambert(data_dir):
    eng, spa, gold = read_lambert(data_dir)
    assert len(eng) == len(spa) == len(gold) == 400
    assert eng[0][:2] == ["Finally", ","] and spa[0][:2] == ["Por", "último"]
    sure, possible = gold[0]
    assert (0, 0) in sure and (2, 4) in possible and (2, 4) not in sure  # "1-1", "3p5"
    # PROVENANCE counts 12,059 Sure + 5,416 Possible link tokens; lines 337 and 348 repeat one link each.
    assert sum(len(s) for s, _ in gold) == 12058 and sum(len(p) for _, p in gold) == 17473


def test_missing_model_dir_names_make_setup(tmp_path):
    with pytest.raises(FileNotFoundError, match="make setup"):
        resolve_model_dir(tmp_path / "nope")
    with pytest.raises(ValueError, match="Unknown aligner kind"):
        make_aligner(kind="fast_align")


# ----------------------------------------------------------------------------------- real aligners
@pytest.fixture(scope="module")
def lambert(data_dir):
    return read_lambert(data_dir)


@pytest.fixture(scope="module")
def embedding_aligner(me5_dir):
    import torch

    torch.set_num_threads(2)
    return make_aligner("embedding", model_dir=me5_dir, layer=8, method="itermax", progress=False)


@pytest.fixture(scope="module")
def simalign_aligner(me5_dir):
    return make_aligner("simalign", model_dir=me5_dir, layer=8, method="itermax", progress=False)


def _compare(embedding_aligner, simalign_aligner, eng, spa, methods):
    ref = simalign_aligner.align_methods(eng, spa, methods)
    mine = embedding_aligner.align_variants(eng, spa, [(8, m, False) for m in methods])
    for method in methods:
        differ = [
            k for k, (a, b) in enumerate(zip(mine[(8, method, False)], ref[method], strict=True)) if a != b
        ]
        assert not differ, f"{method}: pairs {differ[:10]} differ from simalign"


def test_embedding_aligner_edge_cases(embedding_aligner):
    out = embedding_aligner.align(
        [[], ["a"], ["Hello", ","], ["Hello", ","]], [["x"], [], ["Hola", ","], ["Hola"]]
    )
    assert out[0] == set() and out[1] == set()
    assert out[2] and all(i < 2 and j < 2 for i, j in out[2])
    with pytest.raises(ValueError, match="as many source as target"):
        embedding_aligner.align([["a"]], [])
    with pytest.raises(TypeError, match="lists of words"):
        embedding_aligner.align(["a b"], [["a"]])
    with pytest.raises(ValueError, match="12 layers"):
        embedding_aligner.align_variants([["a"]], [["b"]], [(13, "argmax", False)])


def test_embedding_aligner_deeper_layer_after_a_shallower_run(me5_dir):
    # The first forward ran through a cut layer stack; a later run through all 12 layers must still see them.
    aligner = make_aligner("embedding", model_dir=me5_dir, layer=4, method="argmax", progress=False)
    src, tgt = [["The", "house", "is", "red"]], [["La", "casa", "es", "roja"]]
    aligner.align(src, tgt)
    deep = aligner.align_variants(src, tgt, [(12, "argmax", False), (4, "argmax", False)])
    fresh = make_aligner("embedding", model_dir=me5_dir, layer=12, method="argmax", progress=False)
    assert deep[(12, "argmax", False)] == fresh.align(src, tgt)
    assert deep[(4, "argmax", False)] == aligner.align(src, tgt)


def test_embedding_aligner_equals_simalign_on_real_pairs(embedding_aligner, simalign_aligner, lambert):
    """The first 60 real Lambert pairs, all three of simalign's methods: identical links on every pair (the
    simalign package aligns pair by pair, ~0.5 s each; all 400 pairs: the slow test below)."""
    eng, spa, _ = lambert
    _compare(embedding_aligner, simalign_aligner, eng[:60], spa[:60], ["argmax", "itermax", "match"])
    assert isinstance(embedding_aligner, Aligner) and isinstance(simalign_aligner, Aligner)
    assert embedding_aligner.cache_key()["layer"] == 8


@pytest.mark.slow
def test_embedding_aligner_equals_simalign_on_all_400_pairs(embedding_aligner, simalign_aligner, lambert):
    eng, spa, _ = lambert
    _compare(embedding_aligner, simalign_aligner, eng, spa, ["argmax", "itermax", "match"])


@pytest.mark.slow
def test_embedding_aligner_aer_on_lambert(embedding_aligner, lambert):
    eng, spa, gold = lambert
    results = embedding_aligner.align_variants(eng, spa, [(8, "itermax", False), (8, "itermax", True)])
    aer = alignment_scores(results[(8, "itermax", False)], gold)["aer"]
    assert 0.15 < aer < 0.30  # simalign: 0.213 (results/alignment/lambert_epps_aer.csv)
    assert alignment_scores(results[(8, "itermax", True)], gold)["aer"] < 0.30
