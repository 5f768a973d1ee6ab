"""The paper-scale translate-test configs (configs/projection_eval): every one composes, every language has a
well-formed NLLB-200 code, and the NLLB evaluation runs end to end with tiny stand-ins for NLLB-200 (a random
seq2seq model), mBERT (a tiny encoder) and the English source model (a HF directory, the "hub name" path)."""

from __future__ import annotations

import csv
import importlib.util
import json
import re
from pathlib import Path

import pytest
import torch

from xner.data.registry import DataRef, dataset_info
from xner.export.convert import ExportError, from_hf_model, load_hub_tagger, to_hf_model
from xner.pipeline.intrinsic import (
    EvalConfigError,
    eval_methods,
    eval_sets,
    load_eval_config,
    method_options,
    resolve_data,
)
from xner.pipeline.label import CheckpointLabeller, HubLabeller, make_labeller

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs" / "projection_eval"
SHIPPED = sorted(CONFIGS.glob("*.yaml"))  # evaluations; shared bases live in base/
FLORES = re.compile(r"[a-z]{3}_[A-Z][a-z]{3}")
LABELS = ["B-PER", "O", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-MISC", "I-MISC"]  # not xner's order


def _nllb_codes() -> set[str] | None:
    try:
        from transformers.models.nllb.tokenization_nllb import FAIRSEQ_LANGUAGE_CODES
    except ImportError:
        return None
    return set(FAIRSEQ_LANGUAGE_CODES)


def _script():
    spec = importlib.util.spec_from_file_location("eval_projection", ROOT / "scripts" / "eval_projection.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------------------------------------ configs


def test_shipped_configs_are_the_four_evaluations():
    assert [p.stem for p in SHIPPED] == [
        "apertium",
        "apertium_dev",
        "masakhaner2_nllb",
        "wikiann_xtreme_nllb",
    ]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_shipped_config_composes(path: Path):
    cfg = load_eval_config(path)
    sets = eval_sets(cfg, path.name)
    methods = eval_methods(cfg, path.name)
    assert set(methods) == {"heuristic", "heuristic_bt", "matching_ilp", "matching_greedy"}
    assert "source_model" in cfg and cfg["aligner"]["kind"] == "embedding"
    for s in sets:
        ref = DataRef.parse(s.ref)
        assert ref.lang == s.lang and ref.split == ("dev" if path.stem.endswith("_dev") else "test")
        dataset_info(ref.dataset)  # a registered dataset
        assert s.to_english["kind"] == cfg["translator"]["kind"]
    if cfg["translator"]["kind"] != "hf":
        return
    # the NLLB evaluations: one model, both directions, a FLORES-200 code that NLLB-200 knows for every language
    codes = _nllb_codes()
    assert cfg["translator"]["model_name_or_path"] == "facebook/nllb-200-3.3B"
    assert cfg["aligner"]["model_dir"] == "google-bert/bert-base-multilingual-cased"
    assert (cfg["aligner"]["layer"], cfg["aligner"]["method"]) == (8, "softmax")
    assert cfg["aligner"]["softmax_threshold"] == 0.001 and cfg["limit"] is None
    for s in sets:
        code = s.to_english["src_lang"]
        assert FLORES.fullmatch(code) and s.to_english["tgt_lang"] == "eng_Latn"
        assert s.from_english == {**s.to_english, "src_lang": "eng_Latn", "tgt_lang": code}
        assert codes is None or code in codes, code
        assert method_options("heuristic_bt", {}, bool(s.from_english)) == {}
    langs = [s.lang for s in sets]
    assert len(set(langs)) == len(langs)
    if path.stem == "masakhaner2_nllb":  # 20 languages less the two NLLB-200 lacks
        assert len(sets) == 18 and not {"bbj", "pcm"} & set(langs)
    else:  # XTREME's 40 PAN-X languages less English, each with its hub configuration
        assert len(sets) == 39 and "eng" not in langs
        assert all(s.hub["hf"] == "unimelb-nlp/wikiann" and len(s.hub["config"]) == 2 for s in sets)
        # character-split sets reach MT unspaced; every other set with spaces
        assert {s.lang for s in sets if s.join == ""} == {"jpn", "zho"}
        assert all(s.join in ("", " ") for s in sets)


def test_apertium_config_reports_missing_directions_as_na():
    cfg = load_eval_config(CONFIGS / "apertium.yaml")
    sets = {s.ref: s for s in eval_sets(cfg, "apertium.yaml")}
    assert list(sets) == ["conll2002:spa:test", "wikiann:spa:test", "wikiann:eus:test", "wikiann:isl:test"]
    assert sets["wikiann:eus:test"].from_english == {} and cfg["limit"] == 2000
    dev = load_eval_config(CONFIGS / "apertium_dev.yaml")  # the same evaluation on the dev splits
    assert {k: v for k, v in dev.items() if k != "sets"} == {k: v for k, v in cfg.items() if k != "sets"}
    assert [r.replace(":dev", ":test") for r in dev["sets"]] == list(sets)
    matching = cfg["methods"]["matching_ilp"]
    assert method_options("heuristic_bt", {}, False) is None
    assert method_options("matching_ilp", matching, False) == {"weights": {"align": 0.5, "ner": 0.5}}


def test_config_errors_name_the_set_and_the_fix(tmp_path: Path):
    cfg = load_eval_config(CONFIGS / "masakhaner2_nllb.yaml", ["device=cpu"])
    assert cfg["translator"]["device"] == "cpu"  # the one device knob reaches the translator and the aligner
    with pytest.raises(EvalConfigError, match=r"sets\.masakhaner2:bbj:test: no language code.*bbj"):
        eval_sets({**cfg, "sets": {"masakhaner2:bbj:test": {}}}, "x.yaml")
    with pytest.raises(EvalConfigError, match="does not match code_pattern"):
        eval_sets({**cfg, "sets": {"masakhaner2:hau:test": {"code": "hau"}}}, "x.yaml")
    with pytest.raises(EvalConfigError, match="has no sets.*masakhaner2:hau:test"):
        eval_sets(cfg, "x.yaml", ["masakhaner2:pcm:test"])
    with pytest.raises(EvalConfigError, match="unknown fields"):
        eval_sets({**cfg, "sets": {"masakhaner2:hau:test": {"code": "hau_Latn", "nllb": 1}}}, "x.yaml")
    with pytest.raises(EvalConfigError, match="unknown"):
        eval_methods({"methods": {"heuristics": {}}}, "x.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("sets: {}\nbeams: 4\n")
    with pytest.raises(EvalConfigError, match=r"bad.yaml: unknown fields \['beams'\]"):
        load_eval_config(bad)


def test_missing_data_names_the_file_and_how_to_get_it(tmp_path: Path):
    cfg = load_eval_config(CONFIGS / "masakhaner2_nllb.yaml")
    (xho,) = eval_sets(cfg, "m.yaml", ["masakhaner2:xho:test"])
    with pytest.raises(FileNotFoundError, match="masakhane-io/masakhane-ner"):
        resolve_data(xho, tmp_path)


def test_hub_fallback_reads_the_hub_split_when_the_file_is_absent(tmp_path: Path):
    datasets = pytest.importorskip("datasets")
    from xner.data.registry import load_split

    names = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]  # WikiANN's class ids
    features = datasets.Features(
        {
            "tokens": datasets.Sequence(datasets.Value("string")),
            "ner_tags": datasets.Sequence(datasets.ClassLabel(names=names)),
        }
    )
    rows = {"tokens": [["Thabo", "woon", "in", "Kaapstad"]], "ner_tags": [[1, 0, 0, 5]]}
    saved = tmp_path / "wikiann_af"
    datasets.DatasetDict({"test": datasets.Dataset.from_dict(rows, features=features)}).save_to_disk(saved)
    cfg = load_eval_config(CONFIGS / "wikiann_xtreme_nllb.yaml", [f"hub.hf={saved}"])
    (afr,) = eval_sets(cfg, "w.yaml", ["wikiann:afr:test"])
    data = resolve_data(afr, tmp_path)  # no wikiann/afr under this data dir
    assert data == {**cfg["hub"], "config": "af", "lang": "afr"}
    (sentence,), _ = load_split(data)
    assert sentence.tags == ("B-PER", "O", "O", "B-LOC") and sentence.lang == "afr"


# ------------------------------------------------------------------------------------------------ source model


def _tiny_hf_tagger(out_dir: Path, encoder_dir: Path) -> Path:
    """A random token-classification model over the tiny encoder, labels in a non-xner order: a stand-in for
    an English NER model on the hub."""
    from transformers import AutoConfig, AutoModelForTokenClassification, AutoTokenizer

    config = AutoConfig.from_pretrained(
        encoder_dir,
        num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)),
        label2id={label: k for k, label in enumerate(LABELS)},
    )
    torch.manual_seed(0)
    AutoModelForTokenClassification.from_config(config).save_pretrained(out_dir)
    AutoTokenizer.from_pretrained(encoder_dir).save_pretrained(out_dir)
    return out_dir


def test_hub_tagger_is_the_inverse_of_the_export(tmp_path: Path, tiny_encoder: Path):
    from transformers import AutoModelForTokenClassification

    hf_dir = _tiny_hf_tagger(tmp_path / "hf", tiny_encoder)
    model = AutoModelForTokenClassification.from_pretrained(hf_dir).eval()
    classifier, label_set = from_hf_model(model, "tiny")
    assert label_set.labels == ("O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-MISC", "I-MISC")
    ids, mask = torch.tensor([[2, 10, 11, 12, 3]]), torch.ones(1, 5, dtype=torch.long)
    with torch.no_grad():
        theirs = model(input_ids=ids, attention_mask=mask).logits
        mine = classifier(ids, mask).logits
        back = to_hf_model(classifier, label_set.labels)(input_ids=ids, attention_mask=mask).logits
    order = [LABELS.index(label) for label in label_set.labels]
    assert torch.allclose(mine, theirs[..., order], atol=1e-5) and torch.allclose(back, mine, atol=1e-5)
    tagger = load_hub_tagger(str(hf_dir), "cpu")
    assert tagger.hparams.encoder == str(hf_dir) and tagger.label_set.labels == label_set.labels
    model.config.id2label = {k: f"LABEL_{k}" for k in range(len(LABELS))}
    with pytest.raises(ExportError, match="needs IOB2 labels"):
        from_hf_model(model, "tiny")


def test_exported_checkpoint_labels_as_the_checkpoint_does(
    tiny_tagger_ckpt: Path, data_dir: Path, tmp_path: Path
):
    """xner checkpoint -> xner.export -> HF directory -> HubLabeller: the same tags and probabilities."""
    from xner.data.registry import load_split
    from xner.export import export_checkpoint

    export_checkpoint(tiny_tagger_ckpt, tmp_path / "hf")
    words = [list(s.tokens) for s in load_split("conll2003::test", data_dir, limit=20)[0]]
    hub = make_labeller(tmp_path / "hf", device="cpu")
    assert isinstance(hub, HubLabeller) and hub.cache_key()["files_sha256"]["config.json"]
    theirs, mine = CheckpointLabeller(tiny_tagger_ckpt)(words), hub(words)
    assert [r["tags"] for r in mine] == [r["tags"] for r in theirs]
    assert mine[0]["labels"] == theirs[0]["labels"]
    assert all(
        torch.allclose(torch.tensor(a["probs"]), torch.tensor(b["probs"]), atol=2e-4)
        for a, b in zip(mine, theirs, strict=True)
    )


def test_make_labeller_takes_checkpoints_directories_and_hub_names(tmp_path: Path):
    ckpt = tmp_path / "m.ckpt"
    ckpt.write_bytes(b"x")
    assert isinstance(make_labeller(ckpt), CheckpointLabeller)
    hub = make_labeller("some-org/english-ner")
    assert isinstance(hub, HubLabeller) and hub.cache_key() == {"hf_model": "some-org/english-ner"}
    (tmp_path / "hf").mkdir()
    with pytest.raises(FileNotFoundError, match="without config.json"):
        make_labeller(tmp_path / "hf")
    with pytest.raises(FileNotFoundError, match="not found"):
        make_labeller(tmp_path / "missing.ckpt")


# ------------------------------------------------------------------------------------------------ end to end


def test_nllb_evaluation_end_to_end_with_tiny_models(
    tmp_path: Path, data_dir: Path, tiny_encoder: Path, tiny_seq2seq_builder, monkeypatch
):
    """The MasakhaNER 2.0 NLLB config on 2 languages x 6 sentences: every method, both MT directions."""
    from xner.data.registry import load_split

    sets = ["masakhaner2:hau:test", "masakhaner2:yor:test"]
    words = [w.lower() for s in load_split("conll2003::train", data_dir, limit=300)[0] for w in s.tokens]
    nllb = tiny_seq2seq_builder(tmp_path / "nllb", [*words, "eng_Latn", "hau_Latn", "yor_Latn"])
    source_model = _tiny_hf_tagger(tmp_path / "english_ner", tiny_encoder)
    monkeypatch.setenv("XNER_DATA", str(data_dir))
    monkeypatch.setenv("XNER_CACHE", str(tmp_path / "cache"))  # never the user's stage cache
    overrides = [
        "device=cpu",
        f"translator.model_name_or_path={nllb}",
        "translator.dtype=null",
        "translator.max_length=24",
        "translator.num_beams=2",
        "translator.batch_size=4",
        f"aligner.model_dir={tiny_encoder}",
        "aligner.layer=2",
    ]
    out = tmp_path / "out"
    _script().main(
        ["--config", str(CONFIGS / "masakhaner2_nllb.yaml"), "--source-model", str(source_model)]
        + ["--sets", *sets, "--limit", "6", "--resamples", "50", "--out", str(out), "--snap"]
        + [arg for o in overrides for arg in ("--override", o)]
    )
    rows = list(csv.DictReader((out / "intrinsic.csv").open()))
    scored = {(r["set"], r["method"]): r for r in rows if r["f1"]}
    methods = ["model_transfer", "heuristic", "heuristic_bt", "matching_ilp", "matching_greedy"]
    for ref in sets:
        for method in (
            methods
            + [f"{m}+snap" for m in methods]
            + [f"{k}:{m}" for m in methods[1:] for k in ("transfer_fill", "projection_fill")]
        ):
            r = scored[(ref, method)]
            assert 0.0 <= float(r["f1"]) <= 100.0 and int(r["sentences"]) == 6, r
        assert json.loads(scored[(ref, "matching_ilp")]["weights"])["translation"] == 1.0
    assert len(scored) == len(rows)  # both directions exist for every language: no n/a row
    comparisons = list(csv.DictReader((out / "comparisons.csv").open()))
    assert {(c["set"], c["reference"]) for c in comparisons} >= {(s, "model_transfer") for s in sets}
    # each snapped tagging is compared with itself unsnapped and with snapped model transfer
    pairs = {(c["method"], c["reference"]) for c in comparisons}
    assert {("matching_ilp+snap", "matching_ilp"), ("matching_ilp+snap", "model_transfer+snap")} <= pairs
    recorded = json.loads((out / "config.json").read_text())
    assert recorded["data_sources"] == {s: s for s in sets}
    # a local model is recorded by name and content hash: no path of this machine in the results
    assert (
        recorded["source_model"] == Path(source_model).name and recorded["source_model_key"]["files_sha256"]
    )
    # NLLB's language codes reached the translator, in both directions
    manifests = [json.loads(p.read_text()) for p in (tmp_path / "cache").glob("stages/*/manifest.json")]
    directions = {
        (m["config"]["translator"]["src_lang"], m["config"]["translator"]["tgt_lang"])
        for m in manifests
        if m["stage"] in ("translate", "entity_translations")
    }
    assert {("hau_Latn", "eng_Latn"), ("eng_Latn", "hau_Latn"), ("yor_Latn", "eng_Latn")} <= directions
    labels = [m for m in manifests if m["stage"] == "label"]
    assert labels and all(m["config"]["hf_model"] == "english_ner" for m in labels)


def test_apertium_set_without_english_target_pair_is_an_na_row():
    note = _script()._not_applicable(None, {"kind": "apertium", "pair": "eu-en"}, keep=False)
    assert note == "n/a: Apertium has no English->target pair"
    assert (
        _script()._not_applicable({}, {"kind": "hf"}, keep="capitalised") == "n/a: keep_names needs Apertium"
    )
