"""Linear CKA: its invariances, its value for unrelated representations, and bad input."""

import numpy as np
import pytest
import torch

from xner.cka import linear_cka


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_identical_representations_give_one(rng):
    x = rng.normal(size=(200, 16))
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)


def test_invariant_to_orthogonal_rotation_and_isotropic_scaling(rng):
    x = rng.normal(size=(300, 24)) + 5.0  # an offset too: columns are centred
    q, _ = np.linalg.qr(rng.normal(size=(24, 24)))
    assert linear_cka(x, x @ q) == pytest.approx(1.0, abs=1e-10)
    assert linear_cka(x, 1e-6 * x) == pytest.approx(1.0, abs=1e-10)
    assert linear_cka(x, 1e8 * (x @ q) + 3.0) == pytest.approx(1.0, abs=1e-10)
    # invariance of the value, not just of the maximum: rotate and scale one side of a non-trivial pair
    y = x[:, :8] @ rng.normal(size=(8, 12)) + rng.normal(size=(300, 12))
    base = linear_cka(x, y)
    assert 0.1 < base < 0.99
    assert linear_cka(7.5 * x @ q, y) == pytest.approx(base, rel=1e-10)


def test_different_widths_and_embedding_into_a_wider_space(rng):
    x = rng.normal(size=(150, 8))
    padded = np.concatenate([x, np.zeros((150, 24))], axis=1)  # an isometry into 32 dimensions
    assert linear_cka(x, padded) == pytest.approx(1.0, abs=1e-12)


def test_independent_random_representations_are_near_zero(rng):
    x, y = rng.normal(size=(4000, 32)), rng.normal(size=(4000, 48))
    value = linear_cka(x, y)
    assert 0.0 <= value < 0.05  # about sqrt(32 * 48) / 4000 = 0.01
    assert linear_cka(rng.normal(size=(500, 32)), rng.normal(size=(500, 32))) < 0.2


def test_symmetric_and_in_unit_interval(rng):
    x = rng.normal(size=(100, 10))
    y = np.tanh(x @ rng.normal(size=(10, 6))) + 0.5 * rng.normal(size=(100, 6))
    assert linear_cka(x, y) == pytest.approx(linear_cka(y, x), rel=1e-12)
    assert 0.0 <= linear_cka(x, y) <= 1.0


def test_accepts_torch_tensors_of_any_float_dtype(rng):
    x = rng.normal(size=(64, 8))
    y = x @ rng.normal(size=(8, 5))
    expected = linear_cka(x, y)
    assert linear_cka(torch.tensor(x, dtype=torch.float32), torch.tensor(y)) == pytest.approx(
        expected, rel=1e-5
    )


def test_bad_input_says_what_is_wrong(rng):
    with pytest.raises(ValueError, match="same examples"):
        linear_cka(rng.normal(size=(10, 3)), rng.normal(size=(11, 3)))
    with pytest.raises(ValueError, match="2-d matrix"):
        linear_cka(rng.normal(size=(10, 3, 2)), rng.normal(size=(10, 3)))
    with pytest.raises(ValueError, match="constant"):
        linear_cka(np.ones((10, 3)), rng.normal(size=(10, 3)))
    with pytest.raises(ValueError, match="non-finite"):
        linear_cka(np.full((10, 3), np.nan), rng.normal(size=(10, 3)))
    with pytest.raises(ValueError, match="at least 2"):
        linear_cka(rng.normal(size=(1, 3)), rng.normal(size=(1, 3)))


# ---------------------------------------------------------------- results/kd_depth/mechanism.py, end to end
def _mechanism_script():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "results" / "kd_depth" / "mechanism.py"
    spec = importlib.util.spec_from_file_location("kd_mechanism", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _student_run(run, teacher_ckpt, tiny_encoder, data_dir, seed, f1_in, f1_out, **distill):
    """A fake finished student run: a real 2-layer student checkpoint (one training step) + metrics.json."""
    import json
    from functools import partial

    import lightning as L

    from xner.data.datamodule import NERDataModule
    from xner.distill.module import DistillModule

    torch.manual_seed(seed)
    module = DistillModule(
        str(teacher_ckpt),
        distill={"teacher_mode": "online", **distill},
        student={"init": "teacher_layers", "layers": [1, 2]},
        optimizer=partial(torch.optim.AdamW, lr=5e-3),
    )
    dm = NERDataModule(
        str(tiny_encoder),
        train={"ref": "conll2003::train", "limit": 32, "labelled": False},
        val=None,
        test={},
    )
    trainer = L.Trainer(
        max_steps=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(module, dm)
    (run / "checkpoints").mkdir(parents=True)
    trainer.save_checkpoint(run / "checkpoints" / "final.ckpt", weights_only=True)
    specs = {"eng_news": "conll2003::test", "eng_wiki": {"ref": "wikiann:eng:test", "limit": 150}}
    config = {
        "seed": seed,
        "teacher_ckpt": str(teacher_ckpt),
        "distill": {"map": "uniform", "attention_weight": 0.0, **distill},
        "data": {"test": specs, "data_dir": str(data_dir)},
    }
    splits = {
        "eng_news": {"f1": f1_in, "ref": "conll2003::test", "sentences": 3453},
        "eng_wiki": {"f1": f1_out, "ref": "wikiann:eng:test", "sentences": 150},
    }
    (run / "metrics.json").write_text(json.dumps({"task": "kd_depth", "splits": splits, "config": config}))


@pytest.fixture(scope="module")
def small_teacher_ckpt(tmp_path_factory, tiny_encoder):
    """A TaggerModule checkpoint of the tiny encoder (built as in tests/test_distill_module.py, fewer steps)."""
    from functools import partial

    import lightning as L

    from xner.data.datamodule import NERDataModule
    from xner.lit.tagger import TaggerModule

    torch.manual_seed(0)
    module = TaggerModule(
        str(tiny_encoder), freeze_embeddings=True, optimizer=partial(torch.optim.AdamW, lr=5e-3)
    )
    dm = NERDataModule(str(tiny_encoder), train={"ref": "conll2003::train", "limit": 200}, val=None, test={})
    trainer = L.Trainer(
        max_steps=4,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(module, dm)  # a few steps: the analysis needs a trained checkpoint, not a good tagger
    path = tmp_path_factory.mktemp("teacher") / "teacher.ckpt"
    trainer.save_checkpoint(path)
    return path


def test_mechanism_script_end_to_end(tmp_path, tiny_encoder, small_teacher_ckpt, data_dir):
    import csv
    import json
    import shutil

    mechanism = _mechanism_script()
    teacher_run = tmp_path / "teacher"
    (teacher_run / "checkpoints").mkdir(parents=True)
    teacher_ckpt = teacher_run / "checkpoints" / "best.ckpt"
    shutil.copy(small_teacher_ckpt, teacher_ckpt)
    # the teacher was tested on the in-domain set only: its out-of-domain F1 is evaluated by the script
    teacher_splits = {"eng_news": {"f1": 60.0, "ref": "conll2003::test", "sentences": 3453}}
    (teacher_run / "metrics.json").write_text(json.dumps({"splits": teacher_splits}))
    root = tmp_path / "multirun"
    _student_run(root / "0", teacher_ckpt, tiny_encoder, data_dir, 1, 55.0, 30.0, depth=0)
    _student_run(root / "1", teacher_ckpt, tiny_encoder, data_dir, 1, 56.0, 33.0, depth=1, map="explicit",
                 pairs=[[1, 2]])  # fmt: skip
    (root / "2").mkdir()  # an unfinished run: reported, not analysed
    (root / "2" / "metrics.json").write_text(json.dumps({"splits": {"x": {}}, "config": {"distill": {}}}))
    out = tmp_path / "mechanism"
    argv = [
        str(root),
        "--pair",
        "eng_news:eng_wiki",
        "--out",
        str(out),
        "--sentences",
        "40",
        "--threads",
        "1",
    ]
    result = mechanism.analyse(mechanism.parse_args(argv))
    assert len(result["computed"]) == 2 and result["skipped"] == [str((root / "2").resolve())]

    rows = list(csv.DictReader((out / "cka.csv").open()))
    for run in ("0", "1"):
        for domain in ("in", "out"):
            mine = [r for r in rows if r["run"].endswith(f"multirun/{run}") and r["domain"] == domain]
            reference = {
                (int(r["student_layer"]), int(r["teacher_layer"])) for r in mine if r["reference"] == "True"
            }
            assert reference == {
                (0, 0),
                (1, 1),
                (2, 2),
            }  # one row per student layer, uniform map at full depth
            extra = {
                (int(r["student_layer"]), int(r["teacher_layer"])) for r in mine if r["reference"] == "False"
            }
            assert extra == ({(1, 2)} if run == "1" else set())  # the explicit map's own pair
            mapped = {
                (int(r["student_layer"]), int(r["teacher_layer"])) for r in mine if r["mapped"] == "True"
            }
            assert mapped == ({(1, 2)} if run == "1" else set())
            assert all(0.0 <= float(r["cka"]) <= 1.0 and int(r["words"]) > 100 for r in mine)
    # the embeddings are the teacher's (frozen word embeddings, one step of training): CKA near 1
    assert all(float(r["cka"]) > 0.9 for r in rows if r["student_layer"] == "0")

    drops = list(csv.DictReader((out / "drops.csv").open()))
    assert len(drops) == 2
    for d in drops:
        assert float(d["drop"]) == pytest.approx(float(d["f1_in"]) - float(d["f1_out"]))
        assert float(d["teacher_f1_in"]) == 60.0
        # evaluated once for the teacher: the same F1 in every row, and the teacher's drop is taken from it
        assert d["teacher_f1_out"] == drops[0]["teacher_f1_out"]
        assert float(d["teacher_drop"]) == pytest.approx(60.0 - float(d["teacher_f1_out"]), abs=1e-3)
        assert d["teacher_source"] == "evaluated here; teacher metrics.json"
        assert float(d["drop_minus_teacher"]) == pytest.approx(
            float(d["drop"]) - float(d["teacher_drop"]), abs=1e-3
        )
    assert (out / "cka_last_vs_depth.png").stat().st_size > 0 and (out / "drop_vs_cka.png").stat().st_size > 0
    assert json.loads((out / "correlations.json").read_text())["all runs"]["n"] == 2

    # a rerun computes nothing new; a changed checkpoint is computed again
    again = mechanism.analyse(mechanism.parse_args(argv))
    assert again["computed"] == [] and again["cka"] == result["cka"]
    ckpt = root / "1" / "checkpoints" / "final.ckpt"
    ckpt.write_bytes(ckpt.read_bytes())  # new mtime
    assert len(mechanism.analyse(mechanism.parse_args(argv))["computed"]) == 1
