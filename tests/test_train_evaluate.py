"""End to end through the real entry points: train.py then evaluate.py on real data with a tiny encoder."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from xner.io.conll import read_predictions_file
from xner.lit.loading import load_checkpoint_module
from xner.lit.tagger import WORD_EMBEDDING_KEY, TaggerModule

ROOT = Path(__file__).resolve().parent.parent


def run(script: str, *overrides: str, cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, str(ROOT / script), *overrides], cwd=cwd, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, tiny_encoder, data_dir):
    out = tmp_path_factory.mktemp("train")
    run(
        "train.py",
        f"model.encoder={tiny_encoder}",
        f"paths.data_dir={data_dir}",
        f"hydra.run.dir={out}",
        "model.freeze_embeddings=false",
        "model.optimizer.lr=5e-3",
        "trainer.max_epochs=3",
        "data.train={ref: 'conll2003::train', limit: 2000}",
        "data.val={ref: 'conll2003::dev', limit: 300}",
        "~data.test",
        "+data.test={eng_news: {ref: 'conll2003::test', limit: 300}, "
        "swa_news: {ref: 'masakhaner2:swa:test', limit: 200}}",
        cwd=ROOT,
    )
    return out


def test_train_writes_metrics_and_learns(trained_run):
    metrics = json.loads((trained_run / "metrics.json").read_text())
    eng = metrics["splits"]["eng_news"]
    assert eng["sentences"] == 300 and eng["support"] == 619
    assert eng["f1"] > 20, "a tiny encoder trained 3 epochs on 2k real sentences should find some entities"
    assert set(eng["per_type"]) == {"PER", "ORG", "LOC"}
    assert metrics["splits"]["swa_news"]["dropped_entities"]["DATE"] > 0  # the mapping is reported
    assert metrics["peak_rss_mb"] > 0 and metrics["timings_s"]["fit"] > 0
    assert (trained_run / "checkpoints" / "best.ckpt").is_file()


def test_evaluate_reproduces_training_test_scores(trained_run, tmp_path, data_dir):
    out = tmp_path / "eval"
    run(
        "evaluate.py",
        f"ckpt_path={trained_run / 'checkpoints' / 'best.ckpt'}",
        f"paths.data_dir={data_dir}",
        f"hydra.run.dir={out}",
        "~data.test",
        "+data.test={eng_news: {ref: 'conll2003::test', limit: 300}, swa_news: {ref: 'masakhaner2:swa:test', limit: 200}}",
        cwd=ROOT,
    )
    trained = json.loads((trained_run / "metrics.json").read_text())["splits"]
    evaluated = next(iter(json.loads((out / "metrics.json").read_text())["checkpoints"].values()))
    for split in ("eng_news", "swa_news"):
        assert evaluated[split]["f1"] == pytest.approx(trained[split]["f1"])
    lines = (out / "predictions" / "ckpt" / "eng_news.conll").read_text().splitlines()
    assert len(lines[0].split()) == 4  # word, gold, predicted, removed gold entities
    swa = evaluated["swa_news"]
    # DATE entities removed by the mapping are the don't-care spans; ignoring predictions on them can only
    # raise precision, and the gold entities are the same in both modes
    assert swa["removed_gold_spans"] == swa["dropped_entities"]["DATE"] > 0
    assert swa["precision_dontcare"] >= swa["precision"] and swa["recall_dontcare"] == swa["recall"]
    assert swa["predicted_dontcare"] == swa["predicted"] - swa["ignored_predictions_dontcare"]
    assert swa["f1_dontcare_ci95"][0] <= swa["f1_dontcare"] <= swa["f1_dontcare_ci95"][1]
    assert set(swa["per_type_dontcare"]) == {"PER", "ORG", "LOC"} and swa["f1_partial"] >= swa["f1"]
    removed = read_predictions_file(out / "predictions" / "ckpt" / "swa_news.conll").removed_spans()
    assert sum(map(len, removed)) == swa["removed_gold_spans"]
    assert "eng_news" in (out / "metrics.csv").read_text()
    assert (out / "f1_by_split.png").stat().st_size > 5000


def test_evaluate_reports_drops_and_compares_checkpoints(trained_run, tmp_path, data_dir):
    import csv

    ckpt = trained_run / "checkpoints" / "best.ckpt"
    out = tmp_path / "eval2"
    run(
        "evaluate.py",
        f"ckpt_path=[{ckpt},{ckpt}]",
        f"paths.data_dir={data_dir}",
        f"hydra.run.dir={out}",
        "eval_splits=swa",
        "data.test_limit=150",
        "bootstrap.resamples=200",
        cwd=ROOT,
    )
    with open(out / "robustness.csv") as handle:
        drops = list(csv.DictReader(handle))
    assert len(drops) == 2 and drops[0]["in_domain"] == "swa_news" and drops[0]["out_of_domain"] == "swa_wiki"
    for mode in ("dontcare", "strict"):
        d = drops[0]
        assert float(d[f"drop_{mode}"]) == pytest.approx(
            float(d[f"f1_{mode}_in"]) - float(d[f"f1_{mode}_out"])
        )
    with open(out / "comparisons.csv") as handle:
        same = list(csv.DictReader(handle))
    assert {r["split"] for r in same} == {"swa_news", "swa_wiki"}
    assert all(float(r["delta"]) == 0 and r["significant"] == "False" for r in same)  # a model vs itself
    assert all(float(r["delta_dontcare"]) == 0 for r in same)
    with open(out / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["language"] for r in rows} == {"swa"} and rows[0]["label_map"] == "DATE->O"
    assert float(rows[0]["f1_ci_low"]) <= float(rows[0]["f1"]) <= float(rows[0]["f1_ci_high"])
    news = next(r for r in rows if r["split"] == "swa_news")
    assert (
        float(news["f1_dontcare_ci_low"]) <= float(news["f1_dontcare"]) <= float(news["f1_dontcare_ci_high"])
    )
    assert int(news["removed_gold_spans"]) > 0 and {"f1_dontcare_PER", "f1_partial"} <= set(news)
    # metrics.json's robustness uses the don't-care F1 of the splits
    record = json.loads((out / "metrics.json").read_text())
    ckpt_splits = next(iter(record["checkpoints"].values()))
    assert record["robustness"][0]["f1_dontcare_in"] == ckpt_splits["swa_news"]["f1_dontcare"]
    with open(out / "errors.csv") as handle:
        errors = list(csv.DictReader(handle))
    overall = [r for r in errors if r["split"] == "swa_news" and r["type"] == "all"]
    assert len(overall) == 2  # one per checkpoint
    gold_sides = ("exact", "boundary_gold", "type_gold", "boundary_type_gold", "missed")
    assert (
        sum(int(overall[0][c]) for c in gold_sides)
        == int(overall[0]["gold_entities"])
        == int(news["support"])
    )


def test_checkpoint_leaves_out_frozen_embeddings(tmp_path, me5_dir):
    module = TaggerModule(str(me5_dir))
    ckpt = {"state_dict": module.state_dict()}
    module.on_save_checkpoint(ckpt)
    assert WORD_EMBEDDING_KEY not in ckpt["state_dict"]
    size = sum(t.numel() for t in ckpt["state_dict"].values())
    assert size < 25_000_000  # 21M transformer + head params, not the 96M embedding matrix
    torch.save(
        {**ckpt, "hyper_parameters": dict(module.hparams), "pytorch-lightning_version": "2.6.6"},
        tmp_path / "m.ckpt",
    )
    reloaded = load_checkpoint_module(tmp_path / "m.ckpt")
    assert torch.equal(reloaded.state_dict()[WORD_EMBEDDING_KEY], module.state_dict()[WORD_EMBEDDING_KEY])


def test_missing_model_dir_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="has no config.json.*make setup"):
        TaggerModule(str(tmp_path / "no-model"))


def test_load_non_xner_checkpoint(tmp_path):
    torch.save({"state_dict": {}}, tmp_path / "x.ckpt")
    with pytest.raises(ValueError, match="not an xner checkpoint"):
        load_checkpoint_module(tmp_path / "x.ckpt")
    with pytest.raises(FileNotFoundError, match="not found"):
        load_checkpoint_module(tmp_path / "missing.ckpt")


def test_train_false_tests_the_given_checkpoint(trained_run, tmp_path, tiny_encoder, data_dir):
    # train=false used to test a randomly initialised model; it must score the checkpoint's weights
    out = tmp_path / "retest"
    run(
        "train.py",
        "train=false",
        f"ckpt_path={trained_run / 'checkpoints' / 'best.ckpt'}",
        f"model.encoder={tiny_encoder}",
        f"paths.data_dir={data_dir}",
        f"hydra.run.dir={out}",
        "~data.test",
        "+data.test={eng_news: {ref: 'conll2003::test', limit: 300}}",
        cwd=ROOT,
    )
    trained = json.loads((trained_run / "metrics.json").read_text())["splits"]["eng_news"]
    assert json.loads((out / "metrics.json").read_text())["splits"]["eng_news"]["f1"] == pytest.approx(
        trained["f1"]
    )


def test_bad_test_split_fails_before_training(tmp_path, tiny_encoder, data_dir):
    out = tmp_path / "typo"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "train.py"),
            f"model.encoder={tiny_encoder}",
            f"paths.data_dir={data_dir}",
            f"hydra.run.dir={out}",
            "~data.test",
            "+data.test={swa_wiki: 'wikiann:swa:tset'}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0 and "No split 'tset'" in proc.stderr
    assert "Epoch 0" not in proc.stderr and not (out / "checkpoints").exists()  # failed before fitting


# ------------------------------------------------------------------------------ projected data, an artifact


def test_translate_train_experiment_extends_the_pipeline_config():
    """experiment=translate_train reads configs/pipeline/spa_translate_train.yaml instead of a copy: the spec
    the task gets is the one the pipeline CLI builds from that file (so the two share cache entries)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    from xner.pipeline.run import load_spec

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose(
            config_name="train",
            overrides=["experiment=translate_train", "projection=markers", "data.train.pipeline.limit=40"],
        )
    GlobalHydra.instance().clear()
    spec = OmegaConf.to_container(cfg.data.train.pipeline, resolve=True)
    pipeline_yaml = ROOT / "configs" / "pipeline" / "spa_translate_train.yaml"
    assert spec == load_spec(pipeline_yaml, ["method=markers", "limit=40"])
    assert set(cfg.data.train) == {"pipeline"}


class FakePipeline:
    """Stands in for xner.pipeline.run.Pipeline: writes a projected set into a directory like the stage does."""

    runs: list = []

    def __init__(self, spec, data_dir=None):
        from xner.pipeline.cache import StageCache

        self.spec, self.cache = spec, StageCache(FakePipeline.root)

    def output_key(self) -> str:
        return "a" * 64

    def run_and_store(self):
        from types import SimpleNamespace

        entry = self.cache.path(self.output_key())
        entry.mkdir(parents=True, exist_ok=True)
        records = [
            {"id": f"s{i}", "tokens": ["Juan", "vive", str(i)], "tags": ["B-PER", "O", "O"]} for i in range(5)
        ]
        (entry / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        (entry / "meta.json").write_text(json.dumps({"projection": {"projection_rate": 1.0}}))
        FakePipeline.runs.append(self.spec)
        return SimpleNamespace(sentences=records, meta={"projection": {"projection_rate": 1.0}})


def test_train_task_runs_the_pipeline_stage_and_the_datamodule_only_reads(
    tmp_path, tiny_encoder, monkeypatch
):
    from omegaconf import OmegaConf

    import xner.pipeline.run
    from xner.data.datamodule import NERDataModule
    from xner.tasks.train import build_datamodule

    FakePipeline.root, FakePipeline.runs = tmp_path / "stages", []
    monkeypatch.setattr(xner.pipeline.run, "Pipeline", FakePipeline)
    data = {
        "_target_": "xner.data.datamodule.NERDataModule",
        "tokenizer": str(tiny_encoder),
        "train": {"pipeline": {"direction": "translate_train", "lang": "spa"}, "limit": 3},
        "val": None,
        "test": {},
    }
    dm = build_datamodule(OmegaConf.create({"data": data}))
    assert FakePipeline.runs == [
        {"direction": "translate_train", "lang": "spa"}
    ]  # built before the DataModule
    entry = tmp_path / "stages" / ("a" * 64)
    assert dm.train_spec == {
        "projected": str(entry / "data.jsonl"),
        "meta": str(entry / "meta.json"),
        "limit": 3,
    }
    dm.setup("fit")
    train = dm.datasets["train"].sentences
    assert [s.tokens[2] for s in train] == ["0", "1", "2"] and list(train[0].tags) == ["B-PER", "O", "O"]
    assert train[0].id == "s0" and dm.projected_meta == {"projection": {"projection_rate": 1.0}}
    # the DataModule never runs the pipeline itself
    with pytest.raises(ValueError, match="pipeline stage builds"):
        NERDataModule(str(tiny_encoder), train=data["train"], val=None, test={}).setup("fit")
    missing = NERDataModule(
        str(tiny_encoder), train={"projected": str(tmp_path / "none.jsonl")}, val=None, test={}
    )
    with pytest.raises(FileNotFoundError, match="pipeline stage writes it"):
        missing.setup("fit")


# ------------------------------------------------------------------------------ evaluation reads the batch


def test_collect_decodes_from_the_batch_word_starts():
    """Predictions come from the batch's word_starts (no trainer, no dataloader needed); words without a
    subword position (cut off) are tagged O and counted."""
    from xner.labels import LabelSet
    from xner.lit.evaluation import SplitEvaluationMixin

    evaluator = SplitEvaluationMixin()
    evaluator.init_evaluation(LabelSet(["PER"]))  # labels O, B-PER, I-PER
    evaluator._reset_eval("test")
    logits = torch.zeros(2, 4, 3)
    logits[0, 1, 1] = logits[0, 2, 2] = logits[1, 1, 1] = 1.0
    batch = {"index": torch.tensor([7, 3]), "word_starts": torch.tensor([[1, 2, -1], [1, -1, -1]])}
    evaluator.collect("test", batch, logits)
    pending = evaluator._pending["test"][0]
    assert evaluator._word_tags(pending[7], 3) == (["B-PER", "I-PER", "O"], 1)  # third word cut off
    assert evaluator._word_tags(pending[3], 1) == (["B-PER"], 0)  # padding columns are not words
