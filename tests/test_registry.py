import pytest

from xner.data.registry import DataRef, available_languages, available_splits, load_split


def test_parse_refs():
    assert DataRef.parse("masakhaner2:swa:test") == DataRef("masakhaner2", "swa", "test")
    assert DataRef.parse("crossner.politics:eng:dev") == DataRef("crossner", "eng", "dev", "politics")
    assert str(DataRef.parse("conll2003::train")) == "conll2003::train"
    # the descriptions of file splits in split stats ("file:<lang>:<path>") parse too, for their language
    assert DataRef.parse("file:kik:data/a:b.conll") == DataRef("file", "kik", "data/a:b.conll")
    with pytest.raises(ValueError, match="expected 'dataset"):
        DataRef.parse("masakhaner2-swa")


def test_conll2003_real_counts(data_dir):
    sents, stats = load_split("conll2003::test", data_dir)
    assert stats.sentences == 3453 == len(sents)
    assert stats.entities == {"PER": 1617, "ORG": 1661, "LOC": 1668}
    assert sents[0].lang == "eng" and sents[0].domain == "news"


def test_masakhaner_date_dropped_and_counted(data_dir):
    sents, stats = load_split("masakhaner2:swa:test", data_dir)
    assert stats.dropped_entities["DATE"] > 0
    assert not any("DATE" in t for s in sents for t in s.tags)
    _, raw = load_split("masakhaner2:swa:test", data_dir, label_map="none", keep_types=None)
    assert raw.entities["DATE"] == stats.dropped_entities["DATE"]


def test_crossner_and_wnut_mapped_to_shared_types(data_dir):
    _, stats = load_split("crossner.politics:eng:test", data_dir)
    assert set(stats.entities) == {"PER", "ORG", "LOC"} and "election" in stats.dropped_entities
    _, stats = load_split("wnut17:eng:test", data_dir)
    assert set(stats.entities) == {"PER", "ORG", "LOC"} and set(stats.dropped_entities) == {
        "creative-work",
        "product",
    }


def test_concatenated_splits_and_discovery(data_dir):
    _, stats = load_split("wikiann:yor:train+dev", data_dir)
    assert stats.sentences == 200
    folder = data_dir / "wikiann" / "swa"
    assert available_splits("wikiann:swa:dev", data_dir) == sorted(p.stem for p in folder.glob("*.txt"))
    assert {"swa", "yor", "hau"} <= set(available_languages("masakhaner2", data_dir))


def _fake_data_dir(root, files: dict[str, str]):
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    return root


def test_unlabelled_hides_tags(data_dir):
    sents, _ = load_split("masakhaner2:yor:train", data_dir, labelled=False, limit=5)
    assert len(sents) == 5 and all(s.tags is None for s in sents)


def test_clear_errors(data_dir, tmp_path):
    # a data dir made here, so the message does not depend on which files ../shared/data happens to have
    fake = _fake_data_dir(
        tmp_path / "data", {"wikiann/zzz/train.txt": "a O\n", "wikiann/zzz/dev.txt": "a O\n"}
    )
    with pytest.raises(FileNotFoundError, match=r"splits that exist: \['dev', 'train'\]"):
        load_split("wikiann:zzz:test", fake)
    with pytest.raises(FileNotFoundError, match="Languages of masakhaner2 here"):
        load_split("masakhaner2:xxx:test", data_dir)
    with pytest.raises(KeyError, match="Unknown dataset 'conll2099'"):
        load_split("conll2099::test", data_dir)
    with pytest.raises(FileNotFoundError, match="Data directory .* does not exist.*XNER_DATA"):
        load_split("conll2003::test", tmp_path / "missing")


def test_removed_gold_entities_are_recorded_as_ignore_spans(tmp_path):
    from xner.types import Span

    fake = _fake_data_dir(
        tmp_path / "data",
        {
            # an I-DATE after O is repaired to B-DATE first (as conlleval reads it), then removed
            "masakhaner2/zzz/test.txt": "Juma B-PER\nalikuja O\njana B-DATE\nusiku I-DATE\n\n"
            "leo I-DATE\nNairobi B-LOC\n\nsawa O\n",
            "crossner/eng-zzz/test.txt": "Obama B-politician\nwon O\nthe O\n2008 B-election\nvote I-election\n"
            "in O\nHawaii B-location\n",
        },
    )
    sents, stats = load_split("masakhaner2:zzz:test", fake)
    assert [s.ignore_spans for s in sents] == [(Span(2, 4, "DATE"),), (Span(0, 1, "DATE"),), ()]
    assert sents[0].tags == ("B-PER", "O", "O", "O") and stats.dropped_entities == {"DATE": 2}
    # renamed types are kept, types outside keep_types are removed and recorded with their original type
    sents, stats = load_split("crossner.zzz:eng:test", fake)
    assert sents[0].tags == ("B-PER", "O", "O", "O", "O", "O", "B-LOC")
    assert sents[0].ignore_spans == (Span(3, 5, "election"),) and stats.dropped_entities == {"election": 1}
    # copies keep the spans; no mapping removes nothing; unlabelled text has no gold and no ignore spans
    assert sents[0].with_tags(None).ignore_spans == sents[0].ignore_spans
    raw, _ = load_split("masakhaner2:zzz:test", fake, label_map="none", keep_types=None)
    assert all(s.ignore_spans == () for s in raw)
    hidden, _ = load_split("masakhaner2:zzz:test", fake, labelled=False)
    assert all(s.ignore_spans == () and s.tags is None for s in hidden)
