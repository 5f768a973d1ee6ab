"""Error breakdown, partial-match F1 and the predictions files they read."""

import csv

import pytest

from xner.errors import classify, count_partial, error_breakdown, main, partial_matches
from xner.io.conll import ConllFormatError, read_predictions, read_predictions_file, removed_tags, write_conll
from xner.metrics import scores_from_counts
from xner.types import Sentence, Span


def test_each_category_on_hand_made_pairs():
    gold = {
        Span(0, 2, "PER"),  # predicted exactly
        Span(3, 5, "ORG"),  # predicted as ORG over 3-6: boundary
        Span(7, 8, "LOC"),  # predicted as PER, same word: type
        Span(9, 11, "LOC"),  # predicted as ORG over 10-12: boundary+type
        Span(13, 14, "PER"),  # nothing predicted there: missed
    }
    pred = {
        Span(0, 2, "PER"),
        Span(3, 6, "ORG"),
        Span(7, 8, "PER"),
        Span(10, 12, "ORG"),
        Span(15, 17, "LOC"),  # no gold there: spurious
    }
    gold_cat, pred_cat = classify(gold, pred)
    assert gold_cat == {
        Span(0, 2, "PER"): "exact",
        Span(3, 5, "ORG"): "boundary",
        Span(7, 8, "LOC"): "type",
        Span(9, 11, "LOC"): "boundary+type",
        Span(13, 14, "PER"): "missed",
    }
    assert pred_cat == {
        Span(0, 2, "PER"): "exact",
        Span(3, 6, "ORG"): "boundary",
        Span(7, 8, "PER"): "type",
        Span(10, 12, "ORG"): "boundary+type",
        Span(15, 17, "LOC"): "spurious",
    }


def test_one_to_many_overlaps_take_the_best_relation_and_use_nothing_up():
    # one gold LOC split into two LOC predictions: one boundary error among gold, two among predictions
    gold_cat, pred_cat = classify({Span(0, 4, "LOC")}, {Span(0, 2, "LOC"), Span(2, 4, "LOC")})
    assert list(gold_cat.values()) == ["boundary"] and sorted(pred_cat.values()) == ["boundary", "boundary"]
    # one LOC prediction merging a gold LOC and a gold ORG: same type beats another type
    gold_cat, pred_cat = classify({Span(0, 2, "LOC"), Span(2, 4, "ORG")}, {Span(0, 4, "LOC")})
    assert gold_cat == {Span(0, 2, "LOC"): "boundary", Span(2, 4, "ORG"): "boundary+type"}
    assert pred_cat == {Span(0, 4, "LOC"): "boundary"}
    # a gold ORG overlapped by a PER and a LOC prediction: boundary+type; each prediction the same
    gold_cat, pred_cat = classify({Span(0, 4, "ORG")}, {Span(0, 1, "PER"), Span(1, 4, "LOC")})
    assert list(gold_cat.values()) == ["boundary+type"]
    assert set(pred_cat.values()) == {"boundary+type"}


def test_partial_f1_on_a_known_case():
    gold = [["B-PER", "I-PER", "I-PER", "O", "B-LOC", "O", "B-ORG"]]
    pred = [["B-PER", "B-PER", "O", "O", "B-ORG", "O", "B-ORG"]]
    # partial: one of the two PER predictions matches the gold PER (each gold at most once), the ORG at 6
    # matches exactly, the ORG on the gold LOC does not (another type): 2 of 4 predicted, 2 of 3 gold
    counts = count_partial(gold, pred, ["PER", "ORG", "LOC"])
    s = scores_from_counts(counts)
    assert counts.tp.sum() == 2 and counts.pred.sum() == 4 and counts.gold.sum() == 3
    assert s["precision"] == 50.0 and s["recall"] == pytest.approx(200 / 3)
    assert s["f1"] == pytest.approx(2 * 50 * (200 / 3) / (50 + 200 / 3))
    assert s["per_type"]["PER"]["recall"] == 100.0 and s["per_type"]["PER"]["precision"] == 50.0
    assert scores_from_counts(error_breakdown(gold, pred).strict)["f1"] == pytest.approx(100 * 2 / 7)


def test_partial_matching_is_one_to_one_and_exact_first():
    # PER 0-2 could take either gold PER; the exact gold 2-3 goes to the exact prediction
    pairs = partial_matches({Span(0, 2, "PER"), Span(2, 3, "PER")}, {Span(1, 2, "PER"), Span(2, 3, "PER")})
    assert sorted(pairs, key=lambda p: p[0].start) == [
        (Span(0, 2, "PER"), Span(1, 2, "PER")),
        (Span(2, 3, "PER"), Span(2, 3, "PER")),
    ]
    assert partial_matches({Span(0, 4, "PER")}, {Span(0, 1, "PER"), Span(2, 4, "PER")}) == [
        (Span(0, 4, "PER"), Span(0, 1, "PER"))
    ]


def test_breakdown_counts_per_type_and_shares_add_up():
    gold = [["B-PER", "I-PER", "O", "B-LOC", "O", "O"], ["B-ORG", "I-ORG", "O"]]
    pred = [["B-PER", "O", "O", "B-ORG", "O", "B-LOC"], ["B-ORG", "I-ORG", "O"]]
    removed = [(Span(4, 6, "DATE"),), ()]
    b = error_breakdown(gold, pred, ["PER", "ORG", "LOC"], ignore=removed)
    rows = {r["type"]: r for r in b.rows()}
    overall = rows["all"]
    assert overall["gold_entities"] == 3 and overall["predicted_entities"] == 4
    gold_sides = ("exact", "boundary_gold", "type_gold", "boundary_type_gold", "missed")
    pred_sides = ("exact", "boundary_pred", "type_pred", "boundary_type_pred", "spurious")
    assert sum(overall[c] for c in gold_sides) == 3 and sum(overall[c] for c in pred_sides) == 4
    assert (overall["exact"], overall["boundary_gold"], overall["type_gold"], overall["spurious"]) == (
        1,
        1,
        1,
        1,
    )
    assert overall["spurious_on_removed"] == 1  # the LOC on the removed DATE
    assert rows["LOC"]["type_gold"] == 1 and rows["ORG"]["type_pred"] == 1 and rows["LOC"]["spurious"] == 1
    assert overall["f1"] == pytest.approx(100 * 2 / 7) and overall["f1_dontcare"] == pytest.approx(
        100 * 2 / 6
    )
    assert overall["f1_partial"] == pytest.approx(100 * 4 / 7)
    text = b.table("t")
    assert "boundary+type" in text and "on removed gold" in text and "f1_dontcare" in text


def test_predictions_files_with_three_and_four_columns(tmp_path):
    sents = [
        Sentence(["Juma", "jana", "Nairobi"], ["B-PER", "O", "B-LOC"], ignore_spans=[Span(1, 2, "DATE")])
    ]
    pred = [["B-PER", "B-LOC", "B-LOC"]]
    write_conll(tmp_path / "four.conll", sents, [pred, [removed_tags(s) for s in sents]])
    write_conll(tmp_path / "three.conll", sents, [pred])
    assert (tmp_path / "four.conll").read_text().splitlines()[1] == "jana O B-LOC B-DATE"
    for name in ("three", "four"):
        words, gold, got = read_predictions(tmp_path / f"{name}.conll")
        assert words == [list(sents[0].tokens)] and gold == [list(sents[0].tags)] and got == pred
    assert read_predictions_file(tmp_path / "three.conll").removed_spans() is None
    assert read_predictions_file(tmp_path / "four.conll").removed_spans() == [(Span(1, 2, "DATE"),)]
    (tmp_path / "mixed.conll").write_text("a O O\nb O O O\n")
    with pytest.raises(ConllFormatError, match="mixed.conll:2: expected 3 columns"):
        read_predictions(tmp_path / "mixed.conll")
    with pytest.raises(ValueError, match="ignore span .* reaches past"):
        Sentence(["a"], ["O"], ignore_spans=[Span(0, 2, "DATE")])


def test_cli_prints_a_table_per_file_and_writes_csv(tmp_path, capsys):
    sents = [
        Sentence(["Juma", "jana", "Nairobi"], ["B-PER", "O", "B-LOC"], ignore_spans=[Span(1, 2, "DATE")])
    ]
    pred = [["B-PER", "B-LOC", "B-ORG"]]
    run_dir = tmp_path / "predictions" / "ckpt"
    write_conll(run_dir / "swa_news.conll", sents, [pred, [removed_tags(s) for s in sents]])
    write_conll(run_dir / "old.conll", sents, [pred])
    assert main([str(tmp_path / "predictions"), "--out", str(tmp_path / "errors.csv")]) == 0
    printed = capsys.readouterr().out
    assert "ckpt/swa_news.conll" in printed and "ckpt/old.conll" in printed and "spurious" in printed
    rows = list(csv.DictReader((tmp_path / "errors.csv").open()))
    news = {r["type"]: r for r in rows if r["split"] == "swa_news"}
    assert news["all"]["exact"] == "1" and news["all"]["type_gold"] == "1" and news["all"]["spurious"] == "1"
    assert news["all"]["spurious_on_removed"] == "1" and float(news["all"]["f1_dontcare"]) == pytest.approx(
        50
    )
    assert [r["f1_dontcare"] for r in rows if r["split"] == "old"] == ["", "", "", ""]  # 3 columns: none
    with pytest.raises(FileNotFoundError, match="neither a predictions file"):
        main([str(tmp_path / "nope")])
