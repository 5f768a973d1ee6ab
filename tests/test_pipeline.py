"""Pipelines end to end on real parts: Apertium, the embedding aligner on multilingual-e5-small, real data."""

import json
import shutil
from pathlib import Path

import pytest

from xner.labels import tags_to_spans
from xner.pipeline.cache import StageCache
from xner.pipeline.run import Pipeline, PipelineSpec

pytestmark = pytest.mark.skipif(
    shutil.which("apertium-wblank-mode") is None,
    reason="Apertium not installed (make setup installs it as root)",
)

ALIGNER = {"kind": "embedding", "layer": 8, "method": "itermax"}


def spec(**kw) -> dict:
    base = {
        "direction": "translate_train",
        "data": "conll2003::train",
        "lang": "spa",
        "method": "heuristic",
        "from_english": {"kind": "apertium", "pair": "eng-spa"},
        "to_english": {"kind": "apertium", "pair": "spa-eng"},
        "aligner": ALIGNER,
        "limit": 40,
    }
    return {**base, **kw}


def stages(cache: StageCache) -> list[str]:
    return sorted(json.loads(p.read_text())["stage"] for p in cache.root.glob("*/manifest.json"))


@pytest.fixture()
def cache(tmp_path) -> StageCache:
    return StageCache(tmp_path / "stages")


def test_translate_train_heuristic_and_cache_reuse(cache, data_dir, me5_dir, monkeypatch):
    monkeypatch.setenv("XNER_MODEL_DIR", str(me5_dir))
    out = Pipeline(spec(), data_dir, cache, progress=False).run_and_store()
    meta = out.meta
    assert meta["sentences_in"] == 40 and meta["sentences_out"] == 40
    proj = meta["projection"]
    assert proj["source_entities"] == proj["projected"] + sum(proj["dropped"].values())
    assert proj["projection_rate"] > 0.6, proj
    for s in out.sentences:
        assert len(s.tags) == len(s.tokens) and s.lang == "spa"
        tags_to_spans(s.tags)  # valid tags
    assert stages(cache) == ["align", "projected_set", "translate"]
    # another heuristic setting reuses translation and alignment: only a new projected set is built
    again = Pipeline(spec(projection={"max_gap": 0}), data_dir, cache, progress=False).run_and_store()
    assert stages(cache) == ["align", "projected_set", "projected_set", "translate"]
    assert again.meta["projection"]["source_entities"] == proj["source_entities"]
    # the same spec is read back, not rebuilt; load() finds it without running anything
    loaded = Pipeline(spec(), data_dir, cache).load()
    assert [s.tags for s in loaded.sentences] == [s.tags for s in out.sentences]


def test_markers_and_bt_refinement(cache, data_dir, me5_dir, monkeypatch):
    monkeypatch.setenv("XNER_MODEL_DIR", str(me5_dir))
    markers = Pipeline(spec(method="markers"), data_dir, cache, progress=False).run()
    assert markers.meta["projection"]["projection_rate"] > 0.7
    assert all(len(s.tags) == len(s.tokens) for s in markers.sentences)
    bt = Pipeline(spec(method="heuristic_bt"), data_dir, cache, progress=False).run()
    assert "entity_translations" in stages(cache) or bt.meta["projection"]["source_entities"] > 0


def test_matching_without_ner_model(cache, data_dir, me5_dir, monkeypatch):
    monkeypatch.setenv("XNER_MODEL_DIR", str(me5_dir))
    ilp, greedy = (
        Pipeline(
            spec(method=method, projection={"weights": {"align": 0.5, "translation": 1.0}}),
            data_dir,
            cache,
            progress=False,
        ).run()
        for method in ("matching_ilp", "matching_greedy")
    )
    assert greedy.meta["objective_sum"] <= ilp.meta["objective_sum"] + 1e-9
    assert ilp.meta["projection"]["projection_rate"] > 0.6


def test_spec_errors():
    with pytest.raises(ValueError, match="translate-train only"):
        PipelineSpec(**spec(direction="translate_test", method="markers", source_model="m.ckpt"))
    with pytest.raises(ValueError, match="needs source_model"):
        PipelineSpec(**spec(direction="translate_test"))
    with pytest.raises(ValueError, match="unknown projection method"):
        PipelineSpec(**spec(method="magic"))
    with pytest.raises(ValueError, match="'ner' score needs source_model"):
        PipelineSpec(**spec(method="matching_ilp"))


def test_load_before_build_names_the_command(cache, data_dir):
    with pytest.raises(FileNotFoundError, match="prepare_data"):
        Pipeline(spec(), data_dir, cache).load()


def test_translate_test_scores_against_gold(cache, data_dir, me5_dir, tiny_tagger_ckpt, monkeypatch):
    monkeypatch.setenv("XNER_MODEL_DIR", str(me5_dir))
    run = Pipeline(
        spec(
            direction="translate_test",
            data="conll2002:spa:test",
            source_model=str(tiny_tagger_ckpt),
            limit=30,
        ),
        data_dir,
        cache,
        progress=False,
    ).run()
    intrinsic = run.meta["intrinsic"]
    assert intrinsic["sentences"] == 30 and 0 <= intrinsic["f1"] <= 100
    # the original Spanish words are kept, so predictions line up with the gold sentence by sentence
    assert [len(s.tokens) for s in run.sentences] == [
        len(s.tokens)
        for s in Pipeline(spec(data="conll2002:spa:test", limit=30), data_dir, cache).inputs()[0]
    ]


def test_datamodule_builds_projected_training_set(tmp_path, data_dir, me5_dir, monkeypatch):
    from xner.data.datamodule import NERDataModule

    monkeypatch.setenv("XNER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("XNER_MODEL_DIR", str(me5_dir))
    dm = NERDataModule(
        str(me5_dir), train={"pipeline": spec(limit=20)}, val=None, test={}, data_dir=str(data_dir)
    )
    with pytest.raises(FileNotFoundError):
        dm.setup("fit")  # setup only reads
    dm.prepare_data()
    dm.setup("fit")
    assert len(dm.datasets["train"]) == 20 and dm.pipeline_meta["projection"]["source_entities"] > 0
    assert Path(tmp_path / "cache" / "stages").is_dir()
