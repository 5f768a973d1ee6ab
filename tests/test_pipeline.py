"""Pipelines end to end on real parts: Apertium, the embedding aligner on multilingual-e5-small, real data."""

import json
import shutil
from pathlib import Path

import pytest

from xner.labels import spans_to_tags, tags_to_spans
from xner.metrics import count_entities, scores_from_counts
from xner.pipeline.cache import StageCache
from xner.pipeline.methods import Needs, ProjectionMethod, SentencePair, get_method, register, unregister
from xner.pipeline.project import ProjectionResult, ProjectionStats, normalize_text
from xner.pipeline.run import Pipeline, PipelineSpec, load_spec

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
    assert "entity_translations" in stages(cache)
    # every entity lands in exactly one refinement outcome, and the counts reach meta.json
    refined = bt.meta["refinement_counts"]
    outcomes = sum(refined.get(k, 0) for k in ("exact", "fuzzy", "unmatched", "empty_translation"))
    assert outcomes == bt.meta["projection"]["source_entities"] > 0
    assert refined["exact"] > 0


def test_bt_refinement_repairs_a_broken_alignment(cache, data_dir, me5_dir, monkeypatch):
    """With every alignment emptied, heuristic projects nothing; heuristic_bt recovers entities by string."""
    monkeypatch.setenv("XNER_MODEL_DIR", str(me5_dir))

    def no_links(self, src, tgt, upstream):
        return [set() for _ in src], "no-links"

    monkeypatch.setattr(Pipeline, "align", no_links)
    plain = Pipeline(spec(method="heuristic"), data_dir, cache, progress=False).run().meta
    bt = Pipeline(spec(method="heuristic_bt"), data_dir, cache, progress=False).run().meta
    n = plain["projection"]["source_entities"]
    assert plain["projection"]["projected"] == 0 and plain["projection"]["dropped"] == {"unaligned": n}
    found = bt["refinement_counts"].get("exact", 0) + bt["refinement_counts"].get("fuzzy", 0)
    assert 0 < bt["projection"]["projected"] <= found
    assert bt["projection"]["dropped"]["unaligned"] == n - found  # only the entities found in no way stay


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
    with pytest.raises(FileNotFoundError, match="pipeline stage"):
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
    gold = Pipeline(spec(data="conll2002:spa:test", limit=30), data_dir, cache).inputs()[0]
    # the score is that of the projected tags against the gold, PER/ORG/LOC
    expected = scores_from_counts(
        count_entities([g.tags for g in gold], [s.tags for s in run.sentences], ["PER", "ORG", "LOC"])
    )
    assert intrinsic["sentences"] == 30 and intrinsic["f1"] == pytest.approx(expected["f1"])
    assert intrinsic["predicted"] == sum(len(tags_to_spans(s.tags)) for s in run.sentences)
    assert intrinsic["f1_ci95"][0] <= intrinsic["f1"] <= intrinsic["f1_ci95"][1]
    # the original Spanish words are kept, so predictions line up with the gold sentence by sentence
    assert [len(s.tokens) for s in run.sentences] == [
        len(s.tokens)
        for s in Pipeline(spec(data="conll2002:spa:test", limit=30), data_dir, cache).inputs()[0]
    ]


def test_pipeline_stage_writes_the_artifact_the_datamodule_reads(tmp_path, data_dir, me5_dir, monkeypatch):
    from xner.data.datamodule import NERDataModule
    from xner.tasks.train import projected_training_set

    monkeypatch.setenv("XNER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("XNER_MODEL_DIR", str(me5_dir))
    train = projected_training_set({"pipeline": spec(limit=20)}, str(data_dir))
    meta = json.loads(Path(train["meta"]).read_text())
    assert Path(train["projected"]).is_relative_to(tmp_path / "cache" / "stages")
    dm = NERDataModule(str(me5_dir), train=train, val=None, test={}, data_dir=str(data_dir))
    dm.setup("fit")
    assert len(dm.datasets["train"]) == meta["sentences_out"] == 20
    assert dm.projected_meta["projection"] == meta["projection"]


# --------------------------------------------------------------------------------------------------------
# docs/architecture.md, "Add a projection method", followed end to end


class ExactString(ProjectionMethod):
    """Toy method: an entity goes to the first free target n-gram equal to its own words (casefolded)."""

    name = "toy_exact_string"

    def needs(self, spec) -> Needs:
        return Needs(alignment=False)  # plain translation, no aligner, no model

    def project(self, pair: SentencePair, options) -> ProjectionResult:
        target = [normalize_text(w) for w in pair.target]
        stats, spans, taken = ProjectionStats(), [], [False] * len(target)
        for ent in pair.entities:
            words = [normalize_text(w) for w in pair.source[ent.start : ent.end]]
            n = len(words)
            starts = [s for s in range(len(target) - n + 1) if target[s : s + n] == words]
            free = [s for s in starts if not any(taken[s : s + n])]
            if not free:
                stats.add_dropped(ent.label, "no_exact_string")
                continue
            taken[free[0] : free[0] + n] = [True] * n
            spans.append(type(ent)(free[0], free[0] + n, ent.label))
            stats.add_projected(ent.label)
        spans.sort(key=lambda s: s.start)
        return ProjectionResult(spans_to_tags(spans, len(target)), spans, stats)


@pytest.fixture()
def toy_method():
    method = register(ExactString())
    yield method
    unregister(method.name)


def test_recipe_add_a_projection_method(toy_method, cache, data_dir):
    # one config: the shipped translate-train spec with the method chosen by name
    config = Path(__file__).parents[1] / "configs/pipeline/spa_translate_train.yaml"
    pipeline = Pipeline(
        load_spec(config, ["method=toy_exact_string", "limit=25"]), data_dir, cache, progress=False
    )
    assert pipeline.method is toy_method
    out = pipeline.run()
    proj = out.meta["projection"]
    assert out.meta["sentences_in"] == 25 and "stage_keys" not in out.meta  # no alignment was built
    assert stages(cache) == ["translate"]
    assert (
        proj["projected"] > 0
        and proj["source_entities"] == proj["projected"] + proj["dropped"]["no_exact_string"]
    )
    # what it projected is, word for word, the source entity's text (names Apertium leaves alone)
    sources = Pipeline(load_spec(config, ["limit=25"]), data_dir).inputs()[0]
    for src, tgt in zip(sources, out.sentences, strict=True):
        src_texts = {normalize_text(" ".join(src.tokens[e.start : e.end])) for e in tags_to_spans(src.tags)}
        for span in tags_to_spans(tgt.tags):
            assert normalize_text(" ".join(tgt.tokens[span.start : span.end])) in src_texts


def test_registry_rejects_duplicates_and_lists_methods(toy_method):
    with pytest.raises(ValueError, match="registered already"):
        register(ExactString())
    assert get_method("toy_exact_string") is toy_method
    with pytest.raises(ValueError, match="heuristic_bt"):
        get_method("nope")


def test_translate_test_labels_through_the_given_labeller(toy_method, cache, data_dir):
    """The pipeline labels English with the labeller it is given (no checkpoint, no model code)."""
    calls = []

    class Capitalised:
        def cache_key(self):
            return {"labeller": "capitalised"}

        def __call__(self, sentences, progress=None):
            calls.append(sentences)
            tags = [["B-PER" if w[:1].isupper() and w.isalpha() else "O" for w in s] for s in sentences]
            labels = ["O", "B-PER", "I-PER"]
            return [{"tags": t, "probs": [[1.0, 0.0, 0.0]] * len(t), "labels": labels} for t in tags]

    test_spec = spec(
        direction="translate_test", data="conll2002:spa:test", method="toy_exact_string", limit=10
    )
    out = Pipeline(
        {**test_spec, "source_model": "unused.ckpt"}, data_dir, cache, labeller=Capitalised()
    ).run()
    assert len(calls) == 1 and len(calls[0]) == 10  # the English side, labelled once
    english_entities = sum(len(tags_to_spans(r["tags"])) for r in Capitalised()(calls[0]))
    assert out.meta["projection"]["source_entities"] == english_entities
    assert out.meta["intrinsic"]["sentences"] == 10
    assert stages(cache) == ["label", "translate"]


def test_snap_to_names_widens_projected_entities_and_scores_the_widened_tags(toy_method, cache, data_dir):
    """spec.snap_to_names post-processes every projected sentence with xner.pipeline.names.snap_to_names."""
    from xner.pipeline.names import snap_to_names

    class FirstCapitalised:  # tags only the first capitalised word of each English sentence
        def cache_key(self):
            return {"labeller": "first-capitalised"}

        def __call__(self, sentences, progress=None):
            out = []
            for s in sentences:
                first = next((i for i, w in enumerate(s) if i and w[:1].isupper() and w.isalpha()), None)
                tags = ["B-PER" if i == first else "O" for i in range(len(s))]
                out.append(
                    {"tags": tags, "probs": [[1.0, 0.0, 0.0]] * len(s), "labels": ["O", "B-PER", "I-PER"]}
                )
            return out

    base = {
        **spec(direction="translate_test", data="conll2002:spa:test", method="toy_exact_string", limit=40),
        "source_model": "unused.ckpt",
    }
    plain = Pipeline(base, data_dir, cache, labeller=FirstCapitalised()).run()
    snapped = Pipeline({**base, "snap_to_names": True}, data_dir, cache, labeller=FirstCapitalised()).run()
    words = [list(s.tokens) for s in plain.sentences]
    expected, counts = snap_to_names(words, [s.tags for s in plain.sentences], "spa")
    assert [list(s.tags) for s in snapped.sentences] == expected
    assert snapped.meta["snapped_to_names"] == dict(counts) and counts["entities_widened"] > 0
    assert "snapped_to_names" not in plain.meta
    assert snapped.meta["intrinsic"] != plain.meta["intrinsic"]  # scored on the widened tags


def test_join_words_is_the_text_mt_gets(toy_method, cache, data_dir, tmp_path):
    """spec.join_words: "" gives MT the words unspaced (character-split sets such as WikiANN zh/ja)."""
    from xner.pipeline.run import Pipeline as P

    base = {
        **spec(direction="translate_test", data="conll2002:spa:test", method="toy_exact_string", limit=3),
        "source_model": "unused.ckpt",
    }
    gold = P(base, data_dir, cache).inputs()[0]
    table = tmp_path / "unspaced.tsv"  # translations keyed by the unspaced text only
    table.write_text("".join(f"{''.join(s.tokens)}\tsome English text\n" for s in gold), encoding="utf-8")
    unspaced = {**base, "to_english": {"kind": "file", "path": str(table)}, "join_words": ""}

    class Nothing:
        def cache_key(self):
            return {"labeller": "nothing"}

        def __call__(self, sentences, progress=None):
            return [{"tags": ["O"] * len(s), "probs": [[1.0]] * len(s), "labels": ["O"]} for s in sentences]

    out = P(unspaced, data_dir, cache, labeller=Nothing()).run()
    assert out.meta["sentences_in"] == 3 and P(unspaced, data_dir, cache).texts(gold)[0] == "".join(
        gold[0].tokens
    )
    with pytest.raises(KeyError):  # the default joins with spaces: those texts are not in the table
        P({**unspaced, "join_words": " "}, data_dir, cache, labeller=Nothing()).run()
