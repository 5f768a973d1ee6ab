"""Your own data: datasets declared in YAML, file and HF splits, and the errors a bad declaration gives.

Every file these tests read is written here (tmp_path), so nothing depends on the shared data.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from xner.data.dataset_config import DATASETS, DatasetConfigError, load_dataset_file, register_dataset
from xner.data.registry import (
    SHARED_TYPES,
    DataRef,
    FileSplit,
    available_languages,
    available_splits,
    dataset_info,
    load_split,
    parse_split_spec,
)
from xner.io.conll import ConllFormatError
from xner.metrics import count_entities, scores_from_counts
from xner.types import Span

CONFIGS = Path(__file__).resolve().parent.parent / "configs"

# Kikuyu-like news with PERS (renamed to PER) and DATE (dropped), and social media with long type names
NEWS = (
    "Kamau B-PERS\nathiire O\nNairobi B-LOC\nmuthenya B-DATE\nwa I-DATE\nkana I-DATE\n\n"
    "Safaricom B-ORG\nya O\nKenya B-LOC\n"
)
SOCIAL = (
    "Wanjiku B-PERSON\nIkinya I-PERSON\nna O\niPhone B-PRODUCT\nkuuma O\nApple B-ORGANIZATION\n\n"
    "Nyeri B-LOCATION\n"
)


@pytest.fixture
def clean_registry():
    """Forget datasets a test registered: the table is process-wide."""
    yield
    DATASETS.reload()


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def own_dataset(tmp_path, monkeypatch, clean_registry) -> Path:
    """A dataset declared only in a YAML of a folder named in $XNER_DATASETS, with its own CoNLL files."""
    write(tmp_path / "corpus" / "kik" / "test.txt", NEWS)
    write(tmp_path / "corpus" / "kik" / "dev.txt", NEWS.split("\n\n")[1])
    decl = {
        "folder": str(tmp_path / "corpus" / "{lang}"),
        "types": ["PERS", "ORG", "LOC", "DATE"],
        "domain": "news",
        "label_map": {"PERS": "PER", "DATE": None},
    }
    write(tmp_path / "datasets" / "kiknews.yaml", yaml.safe_dump(decl))
    monkeypatch.setenv("XNER_DATASETS", str(tmp_path / "datasets"))
    DATASETS.reload()
    return tmp_path


def score(gold, pred, ignore=None) -> float:
    return scores_from_counts(count_entities(gold, pred, SHARED_TYPES, ignore=ignore))["f1"]


def test_builtin_datasets_come_from_yaml():
    assert {
        "conll2003",
        "masakhaner2",
        "masakhaner1",
        "conll2002",
        "wikiann",
        "crossner",
        "nchlt",
        "wnut17",
    } <= set(DATASETS)
    assert DATASETS.source("nchlt").endswith(str(Path("configs", "datasets", "nchlt.yaml")))
    nchlt, wnut = dataset_info("nchlt"), dataset_info("wnut17")
    assert nchlt.types == ("PERS", "ORG", "LOC", "MISC") and nchlt.label_map == {"PERS": "PER", "MISC": None}
    assert wnut.types[-2:] == ("creative-work", "product") and wnut.label_map["group"] == "ORG"
    assert dataset_info("crossner").types is None and dataset_info("conll2003").fixed_lang == "eng"


def test_dataset_declared_in_yaml_loads_and_scores(own_dataset):
    sents, stats = load_split("kiknews:kik:test")
    assert stats.ref == "kiknews:kik:test" and stats.sentences == 2 and stats.path.endswith("test.txt")
    assert stats.entities == {"PER": 1, "LOC": 2, "ORG": 1} and stats.dropped_entities == {"DATE": 1}
    assert sents[0].tags == ("B-PER", "O", "B-LOC", "O", "O", "O")
    assert sents[0].ignore_spans == (Span(3, 6, "DATE"),) and (sents[0].lang, sents[0].domain) == (
        "kik",
        "news",
    )
    assert available_languages("kiknews") == ["kik"] and available_splits("kiknews:kik:test") == [
        "dev",
        "test",
    ]
    gold, ignore = [s.tags for s in sents], [s.ignore_spans for s in sents]
    assert score(gold, gold) == score(gold, gold, ignore) == 100.0
    # a wrong boundary and a missed entity score lower; a prediction on the dropped DATE is don't-care
    pred = [("B-PER", "I-PER", "B-LOC", "B-PER", "O", "O"), ("B-ORG", "O", "O")]
    assert score(gold, pred) < score(gold, pred, ignore) < 100.0
    assert load_split("kiknews:kik:dev")[1].entities == {"ORG": 1, "LOC": 1}


def test_inline_and_file_splits_through_the_datamodule(own_dataset, tmp_path, monkeypatch):
    from xner.data.datamodule import NERDataModule
    from xner.models.tiny import build_tiny_encoder

    write(tmp_path / "work" / "social.conll", SOCIAL)
    monkeypatch.chdir(tmp_path / "work")  # a relative path is relative to the working directory
    words = (line.split()[0] for text in (NEWS, SOCIAL) for line in text.splitlines() if line)
    encoder = build_tiny_encoder(tmp_path / "enc", words)
    inline = {"folder": str(tmp_path / "corpus" / "{lang}"), "types": ["PERS", "ORG", "LOC", "DATE"]}
    social = {
        "path": "social.conll",
        "types": ["PERSON", "ORGANIZATION", "LOCATION", "PRODUCT"],
        "label_map": {"PERSON": "PER", "ORGANIZATION": "ORG", "LOCATION": "LOC", "PRODUCT": None},
        "domain": "social_media",
        "lang": "kik",
    }
    dm = NERDataModule(
        str(encoder),
        train={"ref": "kiknews:kik:dev"},
        val=None,
        test={"news": "inline_news:kik:test", "social": social, "social_1": {**social, "limit": 1}},
        datasets={"inline_news": inline},
        test_limit=5,
    )
    dm.setup()
    assert (
        dataset_info("inline_news").label_map == {}
        and DATASETS.source("inline_news") == "data.datasets.inline_news"
    )
    assert dm.split_stats["news"].entities == {"LOC": 2, "ORG": 1}  # no mapping inline: PERS and DATE dropped
    stats = dm.split_stats["social"]
    assert stats.ref == "file:kik:social.conll" and DataRef.parse(stats.ref).lang == "kik"
    assert stats.entities == {"PER": 1, "ORG": 1, "LOC": 1} and stats.dropped_entities == {"PRODUCT": 1}
    assert dm.split_stats["social_1"].sentences == 1 and len(dm.datasets["train"]) == 1
    sent = dm.datasets["social"].sentences[0]
    assert sent.tags[:2] == ("B-PER", "I-PER") and sent.ignore_spans == (Span(3, 4, "PRODUCT"),)
    assert (sent.lang, sent.domain, sent.id) == ("kik", "social_media", "file:kik:social.conll:0")


def test_file_split_errors_name_the_file_line_and_field(tmp_path):
    bad = write(tmp_path / "bad.conll", "Kamau B-PER\nNairobi B-CITY\n")
    with pytest.raises(ConllFormatError, match=r"bad\.conll:2: unknown tag 'B-CITY'"):
        load_split({"path": str(bad), "types": ["PER", "LOC"]})
    with pytest.raises(
        DatasetConfigError, match=r"bad\.conll\}: field 'types': missing; list the entity types"
    ):
        parse_split_spec({"path": str(bad)})
    with pytest.raises(DatasetConfigError, match=r"field 'label_map': maps 'CITY', which is not in types"):
        parse_split_spec({"path": str(bad), "types": ["PER"], "label_map": {"CITY": "LOC"}})
    with pytest.raises(DatasetConfigError, match=r"field 'lables': unknown key"):
        parse_split_spec({"path": str(bad), "types": None, "lables": {}})
    with pytest.raises(FileNotFoundError, match="relative to the directory the command was started in"):
        load_split({"path": "missing.conll", "types": None})
    # types: null accepts any well-formed tag; keep_types still scores only the shared types
    sents, stats = load_split({"path": str(bad), "types": None, "lang": "kik"})
    assert stats.entities == {"PER": 1} and stats.dropped_entities == {"CITY": 1}
    assert isinstance(parse_split_spec({"path": "x", "types": None})[0], FileSplit)
    with pytest.raises(DatasetConfigError, match=r"field 'limt': unknown key \(did you mean 'limit'\?\)"):
        parse_split_spec({"ref": "conll2003::test", "limt": 5})


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (
            {"folder": "x/{lang}", "types": ["PER"], "domian": "news"},
            r"field 'domian': unknown key \(did you mean",
        ),
        ({"types": ["PER"]}, r"field 'folder': missing; give the folder of the split files"),
        ({"folder": "x"}, r"field 'types': missing; list the entity types .* types: null"),
        ({"folder": "x", "types": "PER, ORG"}, r"field 'types': must be a list such as \[PER, ORG, LOC\]"),
        (
            {"folder": "x", "types": ["B-PER", "I-PER"]},
            r"field 'types': lists entity types, not tags: write 'PER'",
        ),
        ({"folder": "x", "types": ["PER"], "label_map": {"PERS": "PER"}}, r"field 'label_map': maps 'PERS'"),
        ({"folder": "x", "types": ["PER"], "label_map": ["PER"]}, r"field 'label_map': must be a mapping"),
        (
            {"folder": "x/{language}", "types": ["PER"]},
            r"field 'folder': .* only \{lang\} and \{subset\} exist",
        ),
        ({"name": "other", "folder": "x", "types": ["PER"]}, r"field 'name': 'other' differs from 'mine'"),
        ("folder: [x\n", r"not valid YAML"),
        (["folder", "x"], r"a dataset declaration must be a mapping"),
    ],
)
def test_bad_dataset_yaml_names_file_and_field(tmp_path, content, match):
    path = write(tmp_path / "mine.yaml", content if isinstance(content, str) else yaml.safe_dump(content))
    with pytest.raises(DatasetConfigError, match=match) as err:
        load_dataset_file(path)
    assert str(err.value).startswith(str(path))


def test_bad_env_folder_and_registration(tmp_path, monkeypatch, clean_registry):
    monkeypatch.setenv("XNER_DATASETS", str(tmp_path / "nowhere"))
    DATASETS.reload()
    with pytest.raises(FileNotFoundError, match="XNER_DATASETS names .*nowhere"):
        dataset_info("conll2003")
    monkeypatch.delenv("XNER_DATASETS")
    DATASETS.reload()
    with pytest.raises(DatasetConfigError, match=r"data\.datasets\.x: field 'folder': missing"):
        register_dataset({"types": None}, "x", source="data.datasets.x")
    # a later declaration replaces an earlier one (a config overrides a shipped file)
    register_dataset({"folder": "elsewhere/{lang}", "types": ["PER", "ORG", "LOC"]}, "wikiann")
    assert dataset_info("wikiann").folder == "elsewhere/{lang}" and dataset_info("wikiann").domain == ""


def test_example_eval_splits_recipe_runs_as_written(tmp_path, monkeypatch):
    """configs/eval_splits/example_own_language.yaml, composed as evaluate.py does, loads the files it names."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import instantiate

    from xner.models.tiny import build_tiny_encoder

    write(tmp_path / "my_data" / "news" / "kik" / "test.txt", NEWS.replace("PERS", "PER"))
    write(tmp_path / "my_data" / "social" / "kik_test.conll", SOCIAL)
    monkeypatch.chdir(tmp_path)
    encoder = build_tiny_encoder(tmp_path / "enc", NEWS.split() + SOCIAL.split())
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(
            "evaluate", ["eval_splits=example_own_language", "ckpt_path=x"], return_hydra_config=True
        )
    HydraConfig.instance().set_config(cfg)  # ${hydra:runtime.cwd} resolves as in a run
    try:
        dm = instantiate(cfg.data, tokenizer=str(encoder))
        dm.setup("test")
    finally:
        GlobalHydra.instance().clear()
        DATASETS.reload()
    assert list(cfg.robustness.pairs.kik_social) == ["kik_news", "kik_social"]
    assert dm.split_stats["kik_news"].dropped_entities == {"DATE": 1}
    assert dm.split_stats["kik_social"].dropped_entities == {"PRODUCT": 1}


def test_hf_split_saved_to_disk(tmp_path):
    datasets = pytest.importorskip("datasets")
    from xner.data.registry import load_hf_split

    tags = datasets.ClassLabel(names=["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-DATE", "I-DATE"])
    features = datasets.Features(
        {"tokens": datasets.Sequence(datasets.Value("string")), "ner_tags": datasets.Sequence(tags)}
    )
    rows = {
        "tokens": [["Juma", "Ali", "alikuja", "Nairobi", "jana"], ["Mombasa"]],
        "ner_tags": [[1, 2, 0, 3, 5], [3]],
    }
    saved = tmp_path / "saved"
    datasets.DatasetDict({"test": datasets.Dataset.from_dict(rows, features=features)}).save_to_disk(
        str(saved)
    )
    sents = load_hf_split(str(saved), None, "test", "swa", "news")
    assert sents[0].tags == ("B-PER", "I-PER", "O", "B-LOC", "B-DATE") and sents[1].lang == "swa"
    spec = {"hf": str(saved), "split": "test", "types": ["PER", "LOC", "DATE"], "label_map": {"DATE": None}}
    out, stats = load_split(spec)
    assert stats.entities == {"PER": 1, "LOC": 2} and stats.dropped_entities == {"DATE": 1}
    assert out[0].ignore_spans == (Span(4, 5, "DATE"),)
    with pytest.raises(ValueError, match="row 0 has tag 'B-DATE', not one of types"):
        load_split({**spec, "types": ["PER", "LOC"], "label_map": None})
    with pytest.raises(KeyError, match=r"no split 'train'; splits: \['test'\]"):
        load_split({**spec, "split": "train"})
    # a single saved Dataset with string tags and other column names
    plain = tmp_path / "plain"
    datasets.Dataset.from_dict({"words": [["Juma", "leo"]], "labels": [["B-PER", "O"]]}).save_to_disk(
        str(plain)
    )
    spec = {"hf": str(plain), "types": ["PER"], "tokens_column": "words", "tags_column": "labels"}
    assert load_split(spec)[0][0].tags == ("B-PER", "O")
