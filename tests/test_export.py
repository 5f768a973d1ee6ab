"""Export to a Hugging Face model directory: the same logits, and the same entities through the HF pipeline."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
from test_distill_module import ADAMW, datamodule, quiet_trainer
from transformers import AutoModelForTokenClassification, AutoTokenizer, pipeline

from xner.data.encoding import encode_sentences
from xner.data.registry import load_split
from xner.distill.module import DistillModule
from xner.export import (
    ExportError,
    export_module,
    pipeline_word_mismatches,
    token_classifier_of,
    verify_export,
)
from xner.export import convert as export_convert
from xner.export.__main__ import main
from xner.export.card import find_run_info, relevant_config
from xner.labels import tags_to_spans
from xner.lit.loading import load_checkpoint_module
from xner.predict import predict_words

SCORES = {"f1": 61.25, "precision": 60.0, "recall": 62.5, "support": 4946, "f1_ci95": [58.5, 64.0]}


@pytest.fixture(scope="module")
def sentences(data_dir):
    """20 real English test sentences of at least 5 words."""
    found, _ = load_split("conll2003::test", data_dir, limit=200)
    return [s for s in found if len(s.tokens) >= 5][:20]


@pytest.fixture(scope="module")
def run_ckpt(tmp_path_factory, tiny_tagger_ckpt) -> Path:
    """The tiny tagger as a training run leaves it: checkpoints/best.ckpt beside metrics.json."""
    run = tmp_path_factory.mktemp("run")
    (run / "checkpoints").mkdir()
    ckpt = run / "checkpoints" / "best.ckpt"
    ckpt.symlink_to(tiny_tagger_ckpt)
    config = {
        "task_name": "model_transfer",
        "seed": 7,
        "data": {
            "train": "conll2003::train",
            "val": "conll2003::dev",
            "test": {"eng_news": "conll2003::test", "swa_news": "masakhaner2:swa:test"},
            "types": ["PER", "ORG", "LOC"],
        },
        "model": {"_target_": "xner.lit.tagger.TaggerModule", "dropout": 0.1},
        "trainer": {"max_epochs": 2, "default_root_dir": str(run)},
        "paths": {"log_dir": str(run)},
    }
    splits = {"eng_news": {**SCORES, "ref": "conll2003::test"}}
    record = {"checkpoint": str(ckpt), "splits": splits, "config": config}
    (run / "metrics.json").write_text(json.dumps(record), encoding="utf-8")
    return ckpt


@pytest.fixture(scope="module")
def student_ckpt(tmp_path_factory, tiny_tagger_ckpt, tiny_encoder) -> Path:
    """A 1-layer student of the tiny tagger (its layer 2), distilled for two steps, saved alone."""
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("student")
    module = DistillModule(
        str(tiny_tagger_ckpt),
        distill={"depth": 0, "teacher_mode": "online"},
        student={"init": "teacher_layers", "layers": [2]},
        optimizer=ADAMW,
        cache_dir=str(out / "cache"),
    )
    trainer = quiet_trainer(max_steps=2)
    trainer.fit(module, datamodule(tiny_encoder, labelled=False, n=64))
    trainer.save_checkpoint(out / "student.ckpt")
    return out / "student.ckpt"


def with_entities(module, sentences):
    """The module with a random head on standardised word states, so that it predicts every label (invalid
    IOB2 sequences included): the briefly trained tiny tagger tags everything ``O``, and the entity comparison
    must be able to fail."""
    classifier = token_classifier_of(module)
    ids, mask, _ = module_logits(module, AutoTokenizer.from_pretrained(module.hparams.encoder), sentences)
    with torch.no_grad():
        states = classifier.encoder(input_ids=ids, attention_mask=mask).last_hidden_state[mask.bool()]
        mean, std = states.mean(0), states.std(0) + 1e-6
        weight = (
            2 * torch.randn(classifier.head.weight.shape, generator=torch.Generator().manual_seed(0)) / std
        )
        classifier.head.weight.copy_(weight)
        classifier.head.bias.copy_(-weight @ mean)
    return module


def module_logits(module, tokenizer, sentences) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Input ids, mask and the module's logits for sentences encoded as xner encodes them."""
    encoded, _ = encode_sentences(sentences, tokenizer, None, max_length=128)
    width = max(len(e.input_ids) for e in encoded)
    ids = torch.full((len(encoded), width), tokenizer.pad_token_id)
    for row, e in enumerate(encoded):
        ids[row, : len(e.input_ids)] = torch.tensor(e.input_ids)
    mask = (torch.arange(width)[None] < torch.tensor([len(e.input_ids) for e in encoded])[:, None]).long()
    with torch.no_grad():
        return ids, mask, module.eval()(ids, mask).logits


def pipeline_spans(ner, words: list[str]) -> list[tuple[int, int, str]]:
    """Entities of the HF pipeline on the words joined by spaces, as word spans."""
    starts, pos = [], 0
    for w in words:
        starts.append(pos)
        pos += len(w) + 1

    def word_at(char: int) -> int:
        return max(i for i, s in enumerate(starts) if s <= char)

    found = ner(" ".join(words))
    return sorted((word_at(e["start"]), word_at(e["end"] - 1) + 1, e["entity_group"]) for e in found)


def hf_word_tags(out_dir: Path, words: list[str]) -> list[str]:
    """The model card's exact snippet: each word's tag at its first subword."""
    tokenizer = AutoTokenizer.from_pretrained(out_dir)
    model = AutoModelForTokenClassification.from_pretrained(out_dir).eval()
    enc = tokenizer(words, is_split_into_words=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        best = model(**enc).logits[0].argmax(-1).tolist()
    first: dict[int, int] = {}
    for position, word in enumerate(enc.word_ids()):
        if word is not None:
            first.setdefault(word, position)
    return [model.config.id2label[best[first[i]]] if i in first else "O" for i in range(len(words))]


def assert_same_as_xner(module, out_dir: Path, sentences) -> int:
    """Exported logits equal the module's; pipeline entities and word tags equal predict_words'."""
    ids, mask, expected = module_logits(
        module, AutoTokenizer.from_pretrained(module.hparams.encoder), sentences
    )
    model = AutoModelForTokenClassification.from_pretrained(out_dir).eval()
    with torch.no_grad():
        found = model(input_ids=ids, attention_mask=mask).logits
    assert torch.allclose(found[mask.bool()], expected[mask.bool()], atol=1e-5)
    predictions = predict_words(module, sentences, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the word-level tokenizer's "fallback heuristic" notice
        ner = pipeline("token-classification", model=str(out_dir), aggregation_strategy="first", device="cpu")
        entities = compared = 0
        for sentence, pred in zip(sentences, predictions, strict=True):
            top2 = torch.from_numpy(pred.probs).topk(2, -1).values
            if ((top2[:, 0] - top2[:, 1]) < 1e-4).any():
                continue  # two labels tie: rounding differences of batched and single runs may pick either
            compared += 1
            words = list(sentence.tokens)
            assert hf_word_tags(out_dir, words) == pred.tags
            mine = sorted((s.start, s.end, s.label) for s in tags_to_spans(pred.tags))
            assert pipeline_spans(ner, words) == mine, " ".join(words)
            entities += len(mine)
    assert compared >= 0.75 * len(sentences)
    return entities


def test_tagger_export_reproduces_the_checkpoint(run_ckpt, sentences, tmp_path):
    out = tmp_path / "hf"
    assert main([str(run_ckpt), str(out)]) == 0
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md"} <= {
        p.name for p in out.iterdir()
    }
    module = load_checkpoint_module(run_ckpt)
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["BertForTokenClassification"]
    assert config["id2label"] == {str(i): label for i, label in enumerate(module.label_set.labels)}
    assert_same_as_xner(module, out, sentences)
    card = (out / "README.md").read_text()
    front = card.split("---\n")[1]
    for expected in ("- eng", "- swa", "library_name: transformers", "- token-classification", "- ner"):
        assert expected in front
    assert "eriktks/conll2003" in front and "masakhane/masakhaner2" in front
    assert "| eng_news | conll2003::test | 61.2 | 60.0 | 62.5 | 4946 | 58.5–64.0 |" in card
    assert "Fine-tuned on `conll2003::train`" in card and "seed: 7" in card
    assert "paths:" not in card and "default_root_dir" not in card  # where logs went is not shared
    assert 'aggregation_strategy="first"' in card


@pytest.mark.parametrize("kind", ["tagger", "student"])
def test_pipeline_gives_the_entities_of_predict_words(kind, request, sentences, tmp_path):
    ckpt = request.getfixturevalue("tiny_tagger_ckpt" if kind == "tagger" else "student_ckpt")
    module = with_entities(load_checkpoint_module(ckpt), sentences)
    export_module(module, tmp_path / "hf", ckpt=ckpt)
    assert assert_same_as_xner(module, tmp_path / "hf", sentences) >= 20


def test_student_exports_alone_with_its_own_depth(student_ckpt, tiny_tagger_ckpt, sentences, tmp_path):
    module = load_checkpoint_module(student_ckpt)
    assert isinstance(module, DistillModule) and module.student.num_layers == 1
    record = export_module(module, tmp_path / "hf", ckpt=student_ckpt)
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["num_hidden_layers"] == record["layers"] == 1
    teacher_layers = load_checkpoint_module(tiny_tagger_ckpt).model.num_layers
    assert teacher_layers == 2
    assert_same_as_xner(module, tmp_path / "hf", sentences)
    card = (tmp_path / "hf" / "README.md").read_text()
    assert "- knowledge-distillation" in card and "copies of teacher layers [2] (of 2)" in card
    assert "No evaluation was found" in card


def test_non_empty_out_dir_is_refused_unless_forced(tiny_tagger_ckpt, tmp_path, capsys):
    out = tmp_path / "hf"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main([str(tiny_tagger_ckpt), str(out)]) == 1
    assert "--force" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    (out / "model-00001-of-00002.safetensors").write_text("stale shard")
    assert main([str(tiny_tagger_ckpt), str(out), "--force"]) == 0
    names = {p.name for p in out.iterdir()}
    assert "notes.txt" in names and "config.json" in names and "model-00001-of-00002.safetensors" not in names


def test_a_mismatch_fails_loudly_and_writes_nothing(tiny_tagger_ckpt, tmp_path, monkeypatch):
    module = load_checkpoint_module(tiny_tagger_ckpt)
    classifier = token_classifier_of(module)
    tokenizer = AutoTokenizer.from_pretrained(module.hparams.encoder)
    export_module(module, tmp_path / "hf", verify=False)
    assert verify_export(classifier, tokenizer, tmp_path / "hf") <= 1e-5
    with torch.no_grad():
        classifier.head.bias[1] += 0.01
    with pytest.raises(ExportError, match="logits differ"):
        verify_export(classifier, tokenizer, tmp_path / "hf")
    # a wrong weight mapping is caught before anything reaches the output directory
    real = export_convert.to_hf_model

    def swapped_head(classifier, labels):
        model = real(classifier, labels)
        with torch.no_grad():
            model.classifier.weight.copy_(model.classifier.weight.flip(0))
        return model

    monkeypatch.setattr(export_convert, "to_hf_model", swapped_head)
    with pytest.raises(ExportError, match="logits differ"):
        export_module(module, tmp_path / "other")
    assert not (tmp_path / "other").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging dir left behind


def test_card_warns_about_the_pipeline_word_heuristic_only_where_it_applies(tiny_encoder, me5_dir):
    assert pipeline_word_mismatches(AutoTokenizer.from_pretrained(tiny_encoder)) == 0
    assert pipeline_word_mismatches(AutoTokenizer.from_pretrained(me5_dir)) > 0


def test_run_config_is_read_from_hydra_when_there_is_no_metrics_json(tmp_path):
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / "checkpoints").mkdir()
    (run / ".hydra" / "config.yaml").write_text(
        "seed: 3\ndata:\n  train: masakhaner2:swa:train\n  seed: ${seed}\n"
        "trainer:\n  default_root_dir: ${hydra:runtime.output_dir}\n"
    )
    info = find_run_info(run / "checkpoints" / "last.ckpt")
    assert info.run_dir == run and info.config_source == ".hydra/config.yaml" and info.metrics is None
    assert relevant_config(info.config) == {"seed": 3, "data": {"train": "masakhaner2:swa:train"}}
