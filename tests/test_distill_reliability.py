"""Distillation failures that used to crash deep inside the run: a data tokenizer other than the teacher's, and
a half-written teacher-cache manifest."""

import logging
import shutil
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from test_distill_module import ADAMW, fit, student  # the same tiny student recipe
from transformers import AutoTokenizer

from xner.data.datamodule import NERDataModule
from xner.data.encoding import encode_sentences
from xner.data.registry import load_split
from xner.distill.student import vocabulary_difference
from xner.distill.teacher_cache import TeacherCache, find_entry, get_or_build_teacher_cache
from xner.lit.tagger import TaggerModule
from xner.models.tagger import TokenClassifier, load_encoder
from xner.models.tiny import build_tiny_encoder

CONFIGS = str(Path(__file__).resolve().parent.parent / "configs")


def quiet_trainer(**kwargs) -> L.Trainer:
    return L.Trainer(
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        **kwargs,
    )


def datamodule(tokenizer) -> NERDataModule:
    return NERDataModule(
        str(tokenizer),
        train={"ref": "conll2003::train", "limit": 64, "labelled": False},
        val=None,
        test={},
        batch_size=16,
    )


@pytest.fixture(scope="module")
def teacher_ckpt(tmp_path_factory, tiny_encoder, data_dir) -> Path:
    """A TaggerModule on the tiny encoder, trained for two steps (its outputs need not be good)."""
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("reliability_teacher")
    trainer = quiet_trainer(max_steps=2)
    trainer.fit(TaggerModule(str(tiny_encoder), optimizer=ADAMW), datamodule(tiny_encoder))
    trainer.save_checkpoint(out / "teacher.ckpt")
    return out / "teacher.ckpt"


@pytest.fixture(scope="module")
def other_encoders(tmp_path_factory, data_dir) -> dict[str, Path]:
    """Tiny encoders whose vocabularies differ from ``tiny_encoder``'s (4000 words of CoNLL-2003 train):
    built from the dev split, so the training words have other ids."""
    out = tmp_path_factory.mktemp("other_encoders")
    dev, _ = load_split("conll2003::dev", data_dir)
    words = [w for s in dev for w in s.tokens]
    return {
        # ids past the teacher's 4000 embedding rows (41 in the first 64 training sentences): the old IndexError
        "larger": build_tiny_encoder(out / "larger", words, vocab_size=6000),
        # as many ids, other words behind them: no crash, the teacher would silently read the wrong rows
        "same_size": build_tiny_encoder(out / "same_size", words, vocab_size=4000),
    }


def composed(overrides: list[str]):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


# ------------------------------------------------------------------------------------ the data's tokenizer


@pytest.mark.parametrize("experiment", ["kd_depth", "kd_base"])
def test_kd_experiments_take_the_data_tokenizer_from_the_teacher(experiment, teacher_ckpt, tiny_encoder):
    cfg = composed([f"experiment={experiment}", f"teacher_ckpt={teacher_ckpt}"])
    assert instantiate(cfg.data).tokenizer_name == str(tiny_encoder)  # config -> DataModule
    overridden = composed([f"experiment={experiment}", f"teacher_ckpt={teacher_ckpt}", "data.tokenizer=/tok"])
    assert overridden.data.tokenizer == "/tok"
    pretrained = composed(
        [
            f"experiment={experiment}",
            f"teacher_ckpt={teacher_ckpt}",
            "model.student.init=pretrained",
            "model.student.encoder=/student",
        ]
    )
    assert instantiate(pretrained.data).tokenizer_name == "/student"  # a pretrained student reads its own ids


@pytest.mark.parametrize("teacher_mode", ["cached", "online"])
@pytest.mark.parametrize("vocabulary", ["larger", "same_size"])
def test_data_with_another_vocabulary_fails_before_the_teacher_runs(
    vocabulary, teacher_mode, teacher_ckpt, other_encoders, tiny_encoder, tmp_path
):
    other = other_encoders[vocabulary]
    module = student(teacher_ckpt, tmp_path, depth=1, teacher_mode=teacher_mode)
    with pytest.raises(ValueError) as caught:
        fit(module, datamodule(other), max_steps=1)
    message = str(caught.value)
    assert f"data.tokenizer={other} does not have the vocabulary of the teacher's tokenizer" in message
    assert f"Fix: set data.tokenizer={tiny_encoder}, or leave data.tokenizer out" in message
    assert str(teacher_ckpt) in message
    assert not list((tmp_path / "cache").glob("*/h*_a*"))  # failed before running the teacher


def test_a_copy_of_the_teachers_tokenizer_is_accepted(teacher_ckpt, tiny_encoder, tmp_path):
    copy = shutil.copytree(tiny_encoder, tmp_path / "copy")
    module = student(teacher_ckpt, tmp_path, depth=1)
    assert fit(module, datamodule(copy), max_steps=1).global_step == 1


def test_vocabulary_difference_names_what_differs(tiny_encoder, other_encoders):
    teacher = AutoTokenizer.from_pretrained(tiny_encoder)
    assert vocabulary_difference(teacher, AutoTokenizer.from_pretrained(tiny_encoder)) is None
    larger = vocabulary_difference(AutoTokenizer.from_pretrained(other_encoders["larger"]), teacher)
    assert larger == "its vocabulary has 6000 tokens, the expected one 4000"
    same_size = AutoTokenizer.from_pretrained(other_encoders["same_size"])
    assert len(same_size) == len(teacher)
    assert vocabulary_difference(same_size, teacher, ["the", "EU", "rejects", "German", "call"]).startswith(
        "it encodes "
    )


# ------------------------------------------------------------------------------------ the cache's manifest


@pytest.fixture(scope="module")
def build_kwargs(tiny_encoder, data_dir) -> dict:
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(tiny_encoder)
    sentences, _ = load_split("conll2003::train", data_dir, limit=40)
    encoded, _ = encode_sentences(sentences, tokenizer, None, 64)
    teacher = TokenClassifier(
        load_encoder(str(tiny_encoder), attn_implementation="eager"), 7
    )  # attentions are stored
    return {"teacher": teacher, "encoded": encoded, "pad_token_id": tokenizer.pad_token_id}


def arrays(cache: TeacherCache) -> dict[str, np.ndarray]:
    """Copies of an entry's arrays (the memory maps die with the entry's files)."""
    out = {
        name: np.array(getattr(cache, name))
        for name in ("offsets", "input_ids", "word_offsets", "word_logits")
    }
    out |= {f"hidden_{t}": np.array(a) for t, a in cache.hidden.items()}
    out |= {f"attention_{t}": np.array(a) for t, a in cache.attention.items()}
    return out


DAMAGE = {
    "truncated": lambda text: text[: len(text) // 2],
    "empty": lambda text: "",
    "no_meta": lambda text: '{"files": {}}',
    "not_an_object": lambda text: "[1, 2]",
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_broken_manifest_is_rebuilt_with_the_same_outputs(damage, build_kwargs, tmp_path, caplog):
    root = tmp_path / "teacher" / "key"
    first = get_or_build_teacher_cache(root, [1, 2], [2], build_kwargs)
    before = arrays(first)
    manifest = first.path / "manifest.json"
    manifest.write_text(DAMAGE[damage](manifest.read_text()))
    with caplog.at_level(logging.WARNING, logger="xner.store"):
        rebuilt = get_or_build_teacher_cache(root, [1, 2], [2], build_kwargs)
    assert f"teacher cache entry {first.path} is corrupt" in caplog.text and "manifest.json" in caplog.text
    assert rebuilt.path == first.path and [p.name for p in root.iterdir()] == [first.path.name]
    after = arrays(rebuilt)
    assert (
        before.keys()
        == after.keys()
        == {
            "offsets",
            "input_ids",
            "word_offsets",
            "word_logits",
            "hidden_1",
            "hidden_2",
            "attention_2",
        }
    )
    for name, values in before.items():
        np.testing.assert_array_equal(after[name], values, err_msg=name)
    assert rebuilt.attention_heads == first.attention_heads == 2
    TeacherCache.open(rebuilt.path)  # the rebuilt manifest is whole and matches its files


def test_open_and_find_entry_treat_a_truncated_manifest_as_broken(build_kwargs, tmp_path, caplog):
    root = tmp_path / "key"
    entry = get_or_build_teacher_cache(root, [1], [], build_kwargs).path
    manifest = entry / "manifest.json"
    manifest.write_text(manifest.read_text()[:100])
    with pytest.raises(ValueError, match="unreadable or invalid .*manifest.json: JSONDecodeError"):
        TeacherCache.open(entry)
    with caplog.at_level(logging.WARNING, logger="xner.store"):
        assert find_entry(root, [1], []) is None
    assert "deleting it so it is rebuilt" in caplog.text
    assert not entry.exists() and not list(root.iterdir())  # deleted, no trash left behind
