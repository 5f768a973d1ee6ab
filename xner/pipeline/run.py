"""Projection pipelines: translate-train and translate-test, stage by stage, each stage cached.

translate-train: labelled English sentences -> MT into the target language -> align -> project the labels ->
a target-language training set (JSONL + ``meta.json``).

translate-test: target sentences -> MT into English -> label the English with a trained xner model -> align
-> project the English entities back onto the *original* target words. The target words never change, so the
projected tags can be scored against the target's gold tags: the intrinsic evaluation of a projection method.

Stages (``translate``, ``entity_translations``, ``label``, ``align``, ``project``) are stored in a
:class:`~xner.pipeline.cache.StageCache`; every key hashes the stage's resolved config, its version, the
upstream stage's key and the input, so changing anything upstream rebuilds exactly what depends on it.
:meth:`Pipeline.run` builds missing stages; :meth:`Pipeline.load` only reads (and names the command to run
when the output is missing).
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from xner.data.registry import load_split
from xner.labels import tags_to_spans
from xner.pipeline import matching
from xner.pipeline.cache import StageCache, dump_jsonl, input_hash, load_jsonl
from xner.pipeline.markers import extract_marked_spans, insert_markers, project_markers
from xner.pipeline.project import (
    ProjectionStats,
    project_heuristic,
    refine_alignment_with_translations,
    simple_tokenize,
)
from xner.types import Sentence, Span

log = logging.getLogger(__name__)

DIRECTIONS = ("translate_train", "translate_test")
METHODS = ("heuristic", "heuristic_bt", "markers", "matching_ilp", "matching_greedy")
SCORE_KINDS = ("align", "ner", "translation")  # the candidate scores matching can fuse (projection.weights)
STAGE_VERSION = "1"


@dataclass
class PipelineSpec:
    """A pipeline run, as written in configs (``configs/pipeline/*.yaml``).

    Attributes:
        direction: ``translate_train`` or ``translate_test``.
        data: the input split (``dataset:lang:split``): labelled English for translate-train; target text with
            gold tags for translate-test (the gold is used only for scoring).
        lang: the target language (ISO 639-3).
        method: heuristic, heuristic_bt, markers (translate-train only), matching_ilp or matching_greedy.
        from_english: translator config English -> target (translate-train sentences; entity strings).
        to_english: translator config target -> English (translate-test sentences).
        aligner: aligner config (:func:`xner.pipeline.align.make_aligner`).
        projection: method options (heuristic: max_gap, only_i, length_ratio, top_k; matching: weights,
            n_proj, max_len, ner_alpha; markers: style; heuristic_bt: fuzzy_threshold).
        source_model: checkpoint of an English xner model: labels English in translate-test, and gives the
            target-side NER scores of candidate matching.
        limit: use only the first N sentences.
        drop_incomplete: translate-train: leave out sentences where some source entity was not projected.
    """

    direction: str
    data: str
    lang: str
    method: str = "heuristic"
    from_english: dict = field(default_factory=dict)
    to_english: dict = field(default_factory=dict)
    aligner: dict = field(default_factory=lambda: {"kind": "embedding", "layer": 8, "method": "itermax"})
    projection: dict = field(default_factory=dict)
    source_model: str | None = None
    limit: int | None = None
    drop_incomplete: bool = False

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, got {self.direction!r}")
        if self.method not in METHODS:
            raise ValueError(f"unknown projection method {self.method!r}; choose one of {', '.join(METHODS)}")
        unknown = sorted(set(self.matching_weights) - set(SCORE_KINDS))
        if self.method.startswith("matching") and unknown:
            raise ValueError(
                f"projection.weights names unknown score kinds {unknown}; the kinds are {', '.join(SCORE_KINDS)}"
            )
        if self.method == "markers" and self.direction == "translate_test":
            raise ValueError(
                "markers make the translation the target sentence, so they exist for translate-train "
                "only; use heuristic, heuristic_bt or matching for translate-test"
            )
        if self.direction == "translate_test" and not self.source_model:
            raise ValueError("translate-test needs source_model: the checkpoint of an English xner model")
        if (
            self.method.startswith("matching")
            and self.matching_weights.get("ner", 0) > 0
            and not self.source_model
        ):
            raise ValueError(
                "matching with an 'ner' score needs source_model (the multilingual NER model run on "
                "the target sentence); set projection.weights.ner=0 to match without it"
            )

    @property
    def matching_weights(self) -> dict[str, float]:
        """Fusion weights of candidate matching (default: the thesis's best, align .5 + ner .5 + translation 1)."""
        return dict(self.projection.get("weights", matching.FUSED_BEST))


def load_spec(path: str | Path, overrides: Sequence[str] = ()) -> dict:
    """Read a pipeline YAML (``configs/pipeline/*.yaml``) with ``key=value`` overrides (OmegaConf dotlist).

    Args:
        path: the YAML file; its fields are those of :class:`PipelineSpec`.
        overrides: e.g. ``["method=matching_ilp", "limit=200"]``.

    Returns:
        The resolved spec as a plain dict, ready for :class:`Pipeline`.
    """
    from omegaconf import OmegaConf  # noqa: PLC0415

    spec = OmegaConf.merge(OmegaConf.load(path), OmegaConf.from_dotlist(list(overrides)))
    return OmegaConf.to_container(spec, resolve=True)


@dataclass
class PipelineOutput:
    """Projected sentences (target words + tags) and the run's record."""

    sentences: list[Sentence]
    meta: dict


class Pipeline:
    """Runs or loads one :class:`PipelineSpec`.

    Args:
        spec: what to run.
        data_dir: the data root.
        cache: the stage cache (default ``$XNER_CACHE/stages``).
        progress: show progress bars (``None``: when attached to a terminal).
    """

    def __init__(
        self,
        spec: PipelineSpec | Mapping,
        data_dir: str | Path | None = None,
        cache: StageCache | None = None,
        progress: bool | None = None,
    ):
        if not isinstance(spec, PipelineSpec):
            unknown = sorted(set(spec) - {f.name for f in fields(PipelineSpec)})
            if unknown:  # a typo would otherwise be a bare TypeError from the dataclass
                raise ValueError(
                    f"unknown pipeline spec fields {unknown}; the fields are "
                    f"{', '.join(f.name for f in fields(PipelineSpec))}"
                )
            spec = PipelineSpec(**dict(spec))
        self.spec = spec
        self.data_dir, self.cache, self.progress = data_dir, cache or StageCache(), progress
        self.timings: dict[str, float] = {}
        self._inputs: tuple[list[Sentence], dict] | None = None

    # ------------------------------------------------------------------------------------------ inputs
    def inputs(self) -> tuple[list[Sentence], dict]:
        """The input sentences (with tags) and their split stats."""
        if self._inputs is None:
            sentences, stats = load_split(self.spec.data, self.data_dir, limit=self.spec.limit)
            self._inputs = sentences, asdict(stats)
        return self._inputs

    @staticmethod
    def _texts(sentences: Sequence[Sentence]) -> list[str]:
        return [" ".join(s.tokens) for s in sentences]

    # ------------------------------------------------------------------------------------------ stages
    def _stage(
        self, name: str, config: dict, upstream: str | None, data_hash: str, build, dump=None, load=None
    ):
        start = time.perf_counter()
        value, key = self.cache.get_or_build(
            name, STAGE_VERSION, config, upstream, data_hash, build, dump or _dump_list, load or _load_list
        )
        self.timings[name] = round(self.timings.get(name, 0) + time.perf_counter() - start, 2)
        return value, key

    def _translator(self, config: dict):
        from xner.pipeline.translate import TRANSLATORS, make_translator  # noqa: PLC0415 - heavy imports on demand

        if not config:
            raise ValueError(
                f"{self.spec.method} on {self.spec.direction} needs a translator config "
                "(from_english / to_english), e.g. {kind: apertium, pair: eng-spa}"
            )
        cfg = dict(config)
        if "kind" not in cfg:
            raise ValueError(f"translator config {cfg} needs a kind, one of {', '.join(TRANSLATORS)}")
        kind = cfg.pop("kind")
        return (
            make_translator(kind, progress=self.progress, **cfg)
            if kind == "apertium"
            else make_translator(kind, **cfg)
        )

    def translate(self, texts: list[str], config: dict, upstream: str | None, name: str = "translate"):
        """Translate texts (cached as a stage)."""
        translator = self._translator(config)
        return self._stage(
            name,
            {"translator": translator.cache_key()},
            upstream,
            input_hash(texts),
            lambda: translator.translate(texts),
        )

    def entity_translations(self, source: list[Sentence], spans: list[list[Span]], upstream: str):
        """Each source entity's string translated on its own into the target language (flat list per sentence)."""
        strings = [
            " ".join(s.tokens[e.start : e.end]) for s, ents in zip(source, spans, strict=True) for e in ents
        ]
        unique = sorted(set(strings))
        translated, key = self.translate(unique, self.spec.from_english, upstream, "entity_translations")
        lookup = dict(zip(unique, translated, strict=True))
        return [
            [lookup[" ".join(s.tokens[e.start : e.end])] for e in ents]
            for s, ents in zip(source, spans, strict=True)
        ], key

    def align(self, src: list[list[str]], tgt: list[list[str]], upstream: str):
        """Word alignments between tokenised pairs (cached)."""
        from xner.pipeline.align import make_aligner  # noqa: PLC0415

        cfg = dict(self.spec.aligner)
        aligner = make_aligner(**cfg)

        def build():
            return [sorted(a) for a in aligner.align(src, tgt)]

        links, key = self._stage(
            "align", {"aligner": aligner.cache_key()}, upstream, input_hash([src, tgt]), build
        )
        return [{(int(i), int(j)) for i, j in a} for a in links], key

    def label(self, sentences: list[list[str]], upstream: str, name: str = "label"):
        """Tags and per-word label probabilities from the source model (cached)."""
        from xner.lit.loading import load_checkpoint_module  # noqa: PLC0415
        from xner.pipeline.cache import file_sha256  # noqa: PLC0415
        from xner.predict import predict_words  # noqa: PLC0415

        model_path = Path(self.spec.source_model)
        config = {"model_sha256": file_sha256(model_path)}

        def build():
            module = load_checkpoint_module(model_path)
            preds = predict_words(module, [Sentence(t) for t in sentences], progress=self.progress)
            return [
                {
                    "tags": p.tags,
                    "probs": np.round(p.probs, 4).tolist(),
                    "labels": list(module.label_set.labels),
                }
                for p in preds
            ]

        return self._stage(name, config, upstream, input_hash(sentences), build)

    # ------------------------------------------------------------------------------------------ run
    def run(self) -> PipelineOutput:
        """Build every missing stage and return the projected sentences with their record."""
        start = time.perf_counter()
        if self.spec.direction == "translate_train":
            out = self._translate_train()
        else:
            out = self._translate_test()
        out.meta["timings_s"] = {**self.timings, "total": round(time.perf_counter() - start, 2)}
        return out

    def _translate_train(self) -> PipelineOutput:
        spec, sentences = self.spec, self.inputs()[0]
        spans = [tags_to_spans(s.tags) for s in sentences]
        data_key = input_hash(sentences)
        if spec.method == "markers":
            return self._markers(sentences, spans, data_key)
        texts = self._texts(sentences)
        translations, t_key = self.translate(texts, spec.from_english, None)
        targets = [simple_tokenize(t) for t in translations]
        return self._project_all(
            sentences,
            spans,
            [list(s.tokens) for s in sentences],
            targets,
            t_key,
            data_key,
            target_lang=spec.lang,
        )

    def _translate_test(self) -> PipelineOutput:
        spec, sentences = self.spec, self.inputs()[0]
        texts = self._texts(sentences)
        translations, t_key = self.translate(texts, spec.to_english, None)
        english = [simple_tokenize(t) for t in translations]
        labelled, l_key = self.label(english, t_key)
        spans = [tags_to_spans(r["tags"]) for r in labelled]
        source = [Sentence(e, r["tags"]) for e, r in zip(english, labelled, strict=True)]
        out = self._project_all(
            source,
            spans,
            english,
            [list(s.tokens) for s in sentences],
            l_key,
            input_hash(sentences),
            target_lang=spec.lang,
            gold=sentences,
        )
        return out

    def _target_ner(self, targets: list[list[str]], upstream: str) -> list[dict] | None:
        if not (self.spec.method.startswith("matching") and self.spec.matching_weights.get("ner", 0) > 0):
            return None
        return self.label(targets, upstream, "target_ner")[0]

    def _project_all(
        self,
        source: list[Sentence],
        spans: list[list[Span]],
        src_tokens: list[list[str]],
        targets: list[list[str]],
        upstream: str,
        data_key: str,
        target_lang: str,
        gold: list[Sentence] | None = None,
    ) -> PipelineOutput:
        spec = self.spec
        alignments, a_key = self.align(src_tokens, targets, upstream)
        needs_entities = spec.method == "heuristic_bt" or (
            spec.method.startswith("matching") and spec.matching_weights.get("translation", 0) > 0
        )
        entity_strings = self.entity_translations(source, spans, a_key)[0] if needs_entities else None
        target_ner = self._target_ner(targets, a_key)
        start = time.perf_counter()
        results, objectives = [], []
        for k, (ents, src, tgt, links) in enumerate(zip(spans, src_tokens, targets, alignments, strict=True)):
            res = self._project_one(k, ents, src, tgt, links, entity_strings, target_ner)
            results.append(res)
            if res.objective is not None:
                objectives.append(res.objective)
        self.timings["project"] = round(time.perf_counter() - start, 2)
        stats = sum((r.stats for r in results), ProjectionStats())
        stats.check()
        out, skipped = [], Counter()
        base = gold if gold is not None else source
        for k, (res, tgt) in enumerate(zip(results, targets, strict=True)):
            if not tgt:
                skipped["empty_translation"] += 1
                continue
            if spec.drop_incomplete and gold is None and res.stats.projected < res.stats.source_entities:
                skipped["incomplete_projection"] += 1
                continue
            out.append(Sentence(tgt, res.tags, f"{base[k].id}>{spec.lang}", target_lang, base[k].domain))
        meta = {
            "spec": asdict(spec),
            "sentences_in": len(source),
            "sentences_out": len(out),
            "skipped_sentences": dict(skipped),
            "projection": stats.to_dict(),
            "stage_keys": {"align": a_key},
        }
        if objectives:
            meta["objective_sum"] = float(np.sum(objectives))
        if gold is not None:
            meta["intrinsic"] = self._score(gold, [r.tags for r in results])
        return PipelineOutput(out, meta)

    def _project_one(self, k, ents, src, tgt, links, entity_strings, target_ner):
        spec, params = self.spec, self.spec.projection
        if spec.method in ("heuristic", "heuristic_bt"):
            if spec.method == "heuristic_bt" and ents:
                links, _ = refine_alignment_with_translations(
                    src, ents, tgt, links, entity_strings[k], params.get("fuzzy_threshold", 0.8)
                )
            return project_heuristic(
                ents,
                links,
                len(tgt),
                max_gap=params.get("max_gap", 1),
                only_i=params.get("only_i", False),
                length_ratio=params.get("length_ratio", 0.8),
                top_k=params.get("top_k"),
            )
        weights = {k2: v for k2, v in spec.matching_weights.items() if v}
        max_len = params.get("max_len", 10)

        def scores(cands):
            out = {}
            if "align" in weights:
                out["align"] = (
                    np.stack([matching.align_scores(e, cands, links) for e in ents])
                    if ents
                    else np.zeros((0, len(cands)))
                )
            if "translation" in weights:
                out["translation"] = (
                    np.stack(
                        [
                            matching.translation_scores(cands, tgt, entity_strings[k][i])
                            for i in range(len(ents))
                        ]
                    )
                    if ents
                    else np.zeros((0, len(cands)))
                )
            if "ner" in weights:
                ner = target_ner[k]
                probs = np.asarray(ner["probs"], dtype=float).reshape(len(tgt), -1)
                row = matching.ner_scores(cands, probs, ner["labels"], None, params.get("ner_alpha", 1.15))
                out["ner"] = np.tile(row, (len(ents), 1))
            return out

        return matching.project_matching(
            ents,
            len(tgt),
            scores,
            weights,
            solver="ilp" if spec.method == "matching_ilp" else "greedy",
            n_proj=params.get("n_proj", 1),
            max_len=max_len,
        )

    def _markers(self, sentences: list[Sentence], spans: list[list[Span]], data_key: str) -> PipelineOutput:
        style = self.spec.projection.get("style", "html")
        marked = [insert_markers(s.tokens, ents, style) for s, ents in zip(sentences, spans, strict=True)]
        config = dict(self.spec.from_english)
        if style == "html":
            config["markup"] = "html"
        translations, t_key = self.translate(marked, config, None, "translate_marked")
        entity_strings = self.entity_translations(sentences, spans, t_key)[0] if style == "bracket" else None
        start = time.perf_counter()
        results, counts = [], Counter()
        for k, (ents, text) in enumerate(zip(spans, translations, strict=True)):
            extraction = extract_marked_spans(text, style, len(ents))
            counts.update(extraction.stats)
            res = project_markers(ents, extraction, entity_strings[k] if entity_strings else None)
            results.append((extraction.tokens, res))
        self.timings["project"] = round(time.perf_counter() - start, 2)
        stats = sum((r.stats for _, r in results), ProjectionStats())
        stats.check()
        out, skipped = [], Counter()
        for k, (tokens, res) in enumerate(results):
            if not tokens:
                skipped["empty_translation"] += 1
                continue
            if self.spec.drop_incomplete and res.stats.projected < res.stats.source_entities:
                skipped["incomplete_projection"] += 1
                continue
            out.append(
                Sentence(
                    tokens,
                    res.tags,
                    f"{sentences[k].id}>{self.spec.lang}",
                    self.spec.lang,
                    sentences[k].domain,
                )
            )
        meta = {
            "spec": asdict(self.spec),
            "sentences_in": len(sentences),
            "sentences_out": len(out),
            "skipped_sentences": dict(skipped),
            "projection": stats.to_dict(),
            "marker_counts": dict(counts),
        }
        return PipelineOutput(out, meta)

    @staticmethod
    def _score(gold: list[Sentence], predicted: list[list[str]]) -> dict:
        from xner.metrics import count_entities, scores_from_counts  # noqa: PLC0415
        from xner.stats import bootstrap_f1  # noqa: PLC0415

        counts = count_entities([g.tags for g in gold], predicted, ["PER", "ORG", "LOC"])
        scores = scores_from_counts(counts)
        ci = bootstrap_f1(counts)
        return {**scores, "f1_ci95": [ci.low, ci.high]}

    # ------------------------------------------------------------------------------------------ outputs
    def output_key(self) -> str:
        """Key of the final output (a hash of the whole spec and the input data): computable without running."""
        return StageCache.key(
            "projected_set", STAGE_VERSION, asdict(self.spec), None, input_hash(self.inputs()[0])
        )

    def run_and_store(self) -> PipelineOutput:
        """Run (or reuse) and store the projected set with its ``meta.json`` as one cache entry."""
        spec_hash = input_hash(self.inputs()[0])

        def dump(value: PipelineOutput, directory: Path) -> None:
            dump_jsonl(
                [{"id": s.id, "tokens": list(s.tokens), "tags": list(s.tags)} for s in value.sentences],
                directory,
            )
            (directory / "meta.json").write_text(json.dumps(value.meta, indent=2, default=str))

        value, _ = self.cache.get_or_build(
            "projected_set", STAGE_VERSION, asdict(self.spec), None, spec_hash, self.run, dump, _load_output
        )
        return value

    def load(self) -> PipelineOutput:
        """Read a stored projected set (no building).

        Raises:
            FileNotFoundError: not built yet; the message gives the command that builds it.
        """
        key = self.output_key()
        if not self.cache.exists(key):
            raise FileNotFoundError(
                f"projected set {key[:12]} for {self.spec.data} -> {self.spec.lang} ({self.spec.method}) is not built. "
                "Run the DataModule's prepare_data (train.py does) or `python -m xner.pipeline ...`."
            )
        return _load_output(self.cache.path(key))


def _dump_list(value: Any, directory: Path) -> None:
    (directory / "data.json").write_text(json.dumps(value))


def _load_list(directory: Path) -> Any:
    return json.loads((directory / "data.json").read_text())


def _load_output(directory: Path) -> PipelineOutput:
    records = load_jsonl(directory)
    sentences = [Sentence(r["tokens"], r["tags"], r["id"]) for r in records]
    return PipelineOutput(sentences, json.loads((directory / "meta.json").read_text()))
