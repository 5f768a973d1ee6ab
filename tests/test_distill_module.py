"""DistillModule with a tiny teacher trained on real CoNLL-2003 sentences."""

import logging
import shutil
from functools import partial

import lightning as L
import pytest
import torch

from xner.data.datamodule import NERDataModule
from xner.distill.module import DistillModule
from xner.lit.loading import load_checkpoint_module
from xner.lit.tagger import TaggerModule
from xner.tasks.train import prepare_distillation

ADAMW = partial(torch.optim.AdamW, lr=5e-3)


def quiet_trainer(**kwargs) -> L.Trainer:
    kwargs.setdefault("enable_checkpointing", False)
    return L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, **kwargs)


def datamodule(encoder, labelled=True, n=300):
    return NERDataModule(
        str(encoder),
        train={"ref": "conll2003::train", "limit": n, "labelled": labelled},
        val=None,
        test={"eng": {"ref": "conll2003::test", "limit": 100}},
        batch_size=16,
    )


@pytest.fixture(scope="module")
def teacher_ckpt(tmp_path_factory, tiny_encoder, data_dir):
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("teacher")
    module = TaggerModule(str(tiny_encoder), freeze_embeddings=True, optimizer=ADAMW)
    trainer = quiet_trainer(max_epochs=1, enable_checkpointing=False, default_root_dir=out)
    trainer.fit(module, datamodule(tiny_encoder))
    trainer.save_checkpoint(out / "teacher.ckpt")
    return out / "teacher.ckpt"


def student(teacher_ckpt, tmp_path, **distill):
    return DistillModule(
        str(teacher_ckpt),
        distill=distill,
        student={"init": "teacher_layers", "layers": [2]},
        optimizer=ADAMW,
        cache_dir=str(tmp_path / "cache"),
    )


def fit(module, dm, ckpt_path=None, **trainer_kwargs) -> L.Trainer:
    """As train.py does: the module gets the training split explicitly (teacher cache), then fits."""
    prepare_distillation(module, dm)
    trainer = quiet_trainer(**trainer_kwargs)
    trainer.fit(module, dm, ckpt_path=ckpt_path)
    return trainer


def first_batch(module, dm):
    fit(module, dm, max_steps=1)
    return next(iter(dm.train_dataloader()))


def test_student_is_initialised_from_teacher_layers(teacher_ckpt, tmp_path):
    module = student(teacher_ckpt, tmp_path, depth=1)
    teacher = module.teacher
    assert module.student.num_layers == 1 and teacher.num_layers == 2
    assert torch.equal(
        module.student.encoder.encoder.layer[0].attention.self.query.weight,
        teacher.encoder.encoder.layer[1].attention.self.query.weight,
    )
    assert module.layer_map == [(1, 2)]
    assert "teacher" not in dict(module.named_children()) and "_teacher" not in dict(module.named_children())


def test_gradients_reach_only_the_student(teacher_ckpt, tmp_path, data_dir, tiny_encoder):
    module = student(teacher_ckpt, tmp_path, depth=1, attention_weight=1.0, teacher_mode="online")
    batch = first_batch(module, datamodule(tiny_encoder, labelled=False))
    module.zero_grad()
    terms = module.distillation_losses(batch)
    assert set(terms) == {"kd", "hidden", "attention", "total"}
    terms["total"].backward()
    assert all(p.grad is None and not p.requires_grad for p in module.teacher.parameters())
    grads = [p.grad for p in module.student.parameters() if p.requires_grad]
    assert grads and all(g is not None for g in grads)
    optimised = {
        id(p) for group in module.configure_optimizers()["optimizer"].param_groups for p in group["params"]
    }
    assert not optimised & {id(p) for p in module.teacher.parameters()}


def test_cached_and_online_teacher_give_the_same_loss(teacher_ckpt, tmp_path, tiny_encoder):
    values = {}
    for mode in ("cached", "online"):
        torch.manual_seed(0)
        module = student(teacher_ckpt, tmp_path, depth=1, attention_weight=1.0, teacher_mode=mode)
        batch = first_batch(module, datamodule(tiny_encoder, labelled=False))
        module.eval()  # no dropout: the same student on the same batch
        with torch.no_grad():
            values[mode] = {k: v.item() for k, v in module.distillation_losses(batch).items()}
    for key in ("kd", "hidden", "attention", "total"):
        assert values["cached"][key] == pytest.approx(values["online"][key], rel=2e-3, abs=1e-4), key


def test_student_checkpoint_has_no_teacher_and_loads_alone(teacher_ckpt, tmp_path, tiny_encoder):
    module = student(teacher_ckpt, tmp_path, depth=1)
    dm = datamodule(tiny_encoder, labelled=False)
    trainer = fit(module, dm, max_epochs=1, default_root_dir=tmp_path)
    trainer.save_checkpoint(tmp_path / "student.ckpt")
    state = torch.load(tmp_path / "student.ckpt", weights_only=True)["state_dict"]
    assert state and all(k.startswith(("student.", "projections.")) for k in state)
    teacher_size = sum(t.numel() for t in torch.load(teacher_ckpt, weights_only=True)["state_dict"].values())
    assert sum(t.numel() for t in state.values()) < teacher_size
    # the student loads without its teacher
    moved = tmp_path / "elsewhere.ckpt"
    shutil.move(teacher_ckpt, moved)
    try:
        reloaded = load_checkpoint_module(tmp_path / "student.ckpt")
    finally:
        shutil.move(moved, teacher_ckpt)
    batch = next(iter(dm.train_dataloader()))
    module.eval()
    with torch.no_grad():
        a = module(batch["input_ids"], batch["attention_mask"]).logits
        b = reloaded(batch["input_ids"], batch["attention_mask"]).logits
    assert torch.allclose(a, b)


def test_pure_distillation_on_unlabelled_text_learns(teacher_ckpt, tmp_path, tiny_encoder):
    module = student(teacher_ckpt, tmp_path, depth=0)
    dm = datamodule(tiny_encoder, labelled=False)
    trainer = fit(module, dm, max_epochs=2)
    assert all(s.tags is None for s in dm.datasets["train"].sentences)
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
    trainer.test(module, dm, verbose=False)
    assert 0 <= module.eval_results["test"]["eng"]["f1"] <= 100


def test_resumed_run_continues_from_checkpoint(teacher_ckpt, tmp_path, tiny_encoder):
    module = student(teacher_ckpt, tmp_path, depth=1)
    trainer = fit(module, datamodule(tiny_encoder, labelled=False), max_epochs=1, default_root_dir=tmp_path)
    steps = trainer.global_step
    trainer.save_checkpoint(tmp_path / "epoch1.ckpt")
    resumed_module = student(teacher_ckpt, tmp_path, depth=1)
    dm = datamodule(tiny_encoder, labelled=False)
    resumed = fit(resumed_module, dm, tmp_path / "epoch1.ckpt", max_epochs=2, default_root_dir=tmp_path)
    assert resumed.global_step == 2 * steps and resumed.current_epoch == 2


def test_bad_layer_choice_names_the_teacher_depth(teacher_ckpt, tmp_path):
    with pytest.raises(ValueError, match="teacher has layers 1..2"):
        DistillModule(str(teacher_ckpt), student={"init": "teacher_layers", "layers": [3]})
    with pytest.raises(ValueError, match="teacher has 2 layers"):
        DistillModule(
            str(teacher_ckpt),
            distill={"map": "explicit", "pairs": [[1, 5]]},
            student={"init": "teacher_layers", "layers": [2]},
        )


def test_teacher_cache_is_reused_across_depths_and_rebuilt_when_corrupt(
    teacher_ckpt, tmp_path, tiny_encoder, caplog
):
    first = student(teacher_ckpt, tmp_path, depth=1, cache_all_layers=True)
    first_batch(first, datamodule(tiny_encoder, labelled=False))
    entries = list((tmp_path / "cache").glob("*/h*_a*"))
    assert [e.name for e in entries] == ["h0-1-2_a"]  # every teacher layer stored
    other = student(teacher_ckpt, tmp_path, depth=0)
    first_batch(other, datamodule(tiny_encoder, labelled=False))
    assert list((tmp_path / "cache").glob("*/h*_a*")) == entries  # reused, not rebuilt
    # corrupt one array: detected on open and rebuilt
    target = entries[0] / "hidden_2.npy"
    data = bytearray(target.read_bytes())
    data[-1] ^= 0xFF
    target.write_bytes(bytes(data))
    third = student(teacher_ckpt, tmp_path, depth=1)
    with caplog.at_level(logging.WARNING, logger="xner.store"):
        first_batch(third, datamodule(tiny_encoder, labelled=False))
    assert f"teacher cache entry {entries[0]} is corrupt" in caplog.text
    assert "hidden_2.npy does not match its sha256" in caplog.text
    rebuilt = list((tmp_path / "cache").glob("*/h*_a*"))
    assert [e.name for e in rebuilt] == ["h2_a"]
    assert third._teacher_cache.path == rebuilt[0]


def test_fit_without_the_training_inputs_is_refused(teacher_ckpt, tmp_path, tiny_encoder):
    """A cached-mode student never falls back to the online teacher silently."""
    module = student(teacher_ckpt, tmp_path, depth=1)
    with pytest.raises(RuntimeError, match="prepare_training"):
        quiet_trainer(max_steps=1).fit(module, datamodule(tiny_encoder, labelled=False))


def test_teacher_cache_holds_the_teachers_outputs_on_the_given_sentences(
    teacher_ckpt, tmp_path, tiny_encoder
):
    """The cache is built from explicit inputs (sentences, tokenizer, max length): its rows are the teacher's
    word logits on exactly those sentences, whatever DataModule later serves them."""
    from transformers import AutoTokenizer

    from xner.data.encoding import PadCollator, encode_sentences, gather_word_starts
    from xner.data.registry import load_split

    module = student(teacher_ckpt, tmp_path, depth=1)
    tokenizer = AutoTokenizer.from_pretrained(tiny_encoder)
    sentences = load_split("conll2003::train", limit=12)[0]
    cache = module.teacher_cache(sentences, tokenizer, 16)  # short: some words are cut off
    assert len(cache) == 12
    encoded, _ = encode_sentences(sentences, tokenizer, None, 16)
    items = [
        {"input_ids": e.input_ids, "labels": e.labels, "word_starts": e.word_starts, "index": i}
        for i, e in enumerate(encoded)
    ]
    batch = PadCollator(tokenizer.pad_token_id)(items)
    with torch.no_grad():
        logits = module.teacher(batch["input_ids"], batch["attention_mask"]).logits
    expected = gather_word_starts(logits, batch["word_starts"])
    cached, present = cache.batch_word_logits(list(range(12)), batch["word_starts"].shape[1])
    assert torch.equal(
        present, torch.arange(present.shape[1]) < torch.tensor([len(s) for s in sentences])[:, None]
    )
    torch.testing.assert_close(cached, expected * present[..., None], atol=2e-3, rtol=2e-3)  # stored as fp16
    assert any(-1 in e.word_starts for e in encoded)


def test_recipe_add_a_distillation_loss(teacher_ckpt, tmp_path, tiny_encoder, monkeypatch):
    """docs/architecture.md, "Add a distillation loss": a function registered in HIDDEN_LOSSES is chosen by
    distill.hidden_loss and is what the student is trained with at the mapped layers."""
    from xner.distill import losses

    calls = []

    def hidden_l1(student_h, teacher_h, mask):  # the recipe's example: mean absolute error on real tokens
        calls.append((student_h.shape, teacher_h.shape))
        return ((student_h - teacher_h).abs().mean(-1) * mask).sum() / mask.sum().clamp_min(1)

    monkeypatch.setitem(losses.HIDDEN_LOSSES, "l1", hidden_l1)
    module = student(teacher_ckpt, tmp_path, depth=1, hidden_loss="l1", kd_weight=0.0, hidden_weight=1.0)
    dm = datamodule(tiny_encoder, labelled=False, n=64)
    fit(module, dm, max_steps=2)
    assert len(calls) == 2  # once per training step, at the one mapped layer pair
    assert all(s == t for s, t in calls)
    with pytest.raises(ValueError, match="mse, cosine, pkd, l1"):  # an unknown name lists the registered ones
        student(teacher_ckpt, tmp_path, depth=1, hidden_loss="l2")
