"""Projection pipelines: translate-train and translate-test, stage by stage, each stage cached.

translate-train: labelled English sentences -> MT into the target language -> align -> project the labels ->
a target-language training set (JSONL + ``meta.json``).

translate-test: target sentences -> MT into English -> label the English with a trained xner model -> align
-> project the English entities back onto the *original* target words. The target words never change, so the
projected tags can be scored against the target's gold tags: the intrinsic evaluation of a projection method.

The projection method (:mod:`xner.pipeline.methods`) is looked up once: it says which stages it needs
(:class:`~xner.pipeline.methods.Needs`) and projects one sentence pair at a time; this module builds the
stages, calls it, and assembles the projected sentences, the summed stats and ``meta.json`` in one place.
Labelling with a model goes through a :class:`~xner.pipeline.label.Labeller`.

Stages (``translate``, ``translate_marked``, ``label``, ``align``, ``entity_translations``, ``target_ner``,
and the ``projected_set``) are stored in a
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

import numpy as np

from xner.data.registry import load_split
from xner.labels import tags_to_spans
from xner.pipeline.cache import StageCache, dump_json, dump_jsonl, input_hash, load_json, load_jsonl
from xner.pipeline.label import Labeller, make_labeller
from xner.pipeline.methods import (
    SCORE_KINDS,  # noqa: F401 - re-exported for the CLI and its tests
    ProjectionMethod,
    SentencePair,
    get_method,
    method_names,
    sum_counts,
)
from xner.pipeline.names import snap_to_names
from xner.pipeline.project import ProjectionStats, simple_tokenize
from xner.types import Sentence, Span

log = logging.getLogger(__name__)

DIRECTIONS = ("translate_train", "translate_test")
METHODS = method_names()  # the built-in projection methods (xner.pipeline.methods registers them)
STAGE_VERSION = "1"


@dataclass
class PipelineSpec:
    """A pipeline run, as written in configs (``configs/pipeline/*.yaml``).

    Attributes:
        direction: ``translate_train`` or ``translate_test``.
        data: the input split (``dataset:lang:split``): labelled English for translate-train; target text with
            gold tags for translate-test (the gold is used only for scoring).
        lang: the target language (ISO 639-3).
        method: a registered projection method (:mod:`xner.pipeline.methods`; the built-ins are METHODS).
        from_english: translator config English -> target (translate-train sentences; entity strings).
        to_english: translator config target -> English (translate-test sentences).
        aligner: aligner config (:func:`xner.pipeline.align.make_aligner`).
        projection: the method's options (each method module documents its own).
        source_model: the English NER model: an xner checkpoint, or a Hugging Face token-classification model
            by hub name or directory (:func:`~xner.pipeline.label.make_labeller`). It labels English in
            translate-test, and gives the target-side NER scores of candidate matching.
        limit: use only the first N sentences.
        drop_incomplete: translate-train: leave out sentences where some source entity was not projected.
        join_words: the string between a sentence's words in the text given to MT (``""`` for scripts written
            without spaces whose sets are split into characters, such as WikiANN Chinese and Japanese).
        snap_to_names: widen each projected entity that covers part of a name-like run of target words to the
            whole run (:func:`xner.pipeline.names.snap_to_names`; counted in ``meta["snapped_to_names"]``).
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
    snap_to_names: bool = False
    join_words: str = " "

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, got {self.direction!r}")
        get_method(self.method).check(self)
        if self.direction == "translate_test" and not self.source_model:
            raise ValueError(
                "translate-test needs source_model: the checkpoint of an English xner model (or a Hugging Face "
                "token-classification model by hub name or directory)"
            )


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
        labeller: tags words with a model (translate-test's English, matching's target-side NER); default:
            :func:`~xner.pipeline.label.make_labeller` of ``spec.source_model``, built when first needed.
    """

    def __init__(
        self,
        spec: PipelineSpec | Mapping,
        data_dir: str | Path | None = None,
        cache: StageCache | None = None,
        progress: bool | None = None,
        labeller: Labeller | None = None,
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
        self._labeller = labeller
        self.timings: dict[str, float] = {}
        self._inputs: tuple[list[Sentence], dict] | None = None

    @property
    def method(self) -> ProjectionMethod:
        """The spec's projection method (from the registry)."""
        return get_method(self.spec.method)

    # ------------------------------------------------------------------------------------------ inputs
    def inputs(self) -> tuple[list[Sentence], dict]:
        """The input sentences (with tags) and their split stats."""
        if self._inputs is None:
            sentences, stats = load_split(self.spec.data, self.data_dir, limit=self.spec.limit)
            self._inputs = sentences, asdict(stats)
        return self._inputs

    def texts(self, sentences: Sequence[Sentence]) -> list[str]:
        """The sentences as the text MT gets: their words joined by ``spec.join_words``."""
        return [self.spec.join_words.join(s.tokens) for s in sentences]

    # ------------------------------------------------------------------------------------------ stages
    def _stage(
        self, name: str, config: dict, upstream: str | None, data_hash: str, build, dump=None, load=None
    ):
        start = time.perf_counter()
        value, key = self.cache.get_or_build(
            name, STAGE_VERSION, config, upstream, data_hash, build, dump or dump_json, load or load_json
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
        """Tags and per-word label probabilities from the labeller (cached)."""
        if self._labeller is None:
            self._labeller = make_labeller(self.spec.source_model)
        labeller = self._labeller
        return self._stage(
            name,
            labeller.cache_key(),
            upstream,
            input_hash(sentences),
            lambda: labeller(sentences, progress=self.progress),
        )

    # ------------------------------------------------------------------------------------------ run
    def run(self) -> PipelineOutput:
        """Build every missing stage and return the projected sentences with their record."""
        start = time.perf_counter()
        sentences = self.inputs()[0]
        if self.spec.direction == "translate_train":
            spans = [tags_to_spans(s.tags) for s in sentences]
            out = self._project_all(sentences, spans, *self._train_targets(sentences, spans))
        else:
            out = self._project_all(*self._test_sources(sentences), gold=sentences)
        out.meta["timings_s"] = {**self.timings, "total": round(time.perf_counter() - start, 2)}
        return out

    def _train_targets(self, sentences: list[Sentence], spans: list[list[Span]]):
        """Translate-train: the translations (the method's own input, e.g. marked text, or the plain text)."""
        own = self.method.translation_input(sentences, spans, self.spec)
        if own is not None:
            translations, t_key = self.translate(own.texts, own.translator, None, own.stage)
            return None, translations, t_key
        translations, t_key = self.translate(self.texts(sentences), self.spec.from_english, None)
        return [simple_tokenize(t) for t in translations], None, t_key

    def _test_sources(self, sentences: list[Sentence]):
        """Translate-test: the English translations labelled by the source model are the source side."""
        translations, t_key = self.translate(self.texts(sentences), self.spec.to_english, None)
        english = [simple_tokenize(t) for t in translations]
        labelled, l_key = self.label(english, t_key)
        source = [Sentence(e, r["tags"]) for e, r in zip(english, labelled, strict=True)]
        targets = [list(s.tokens) for s in sentences]
        return source, [tags_to_spans(r["tags"]) for r in labelled], targets, None, l_key

    def _project_all(
        self,
        source: list[Sentence],
        spans: list[list[Span]],
        targets: list[list[str]] | None,
        translations: list[str] | None,
        upstream: str,
        gold: list[Sentence] | None = None,
    ) -> PipelineOutput:
        """Build what the method needs, project every pair, and assemble sentences, stats and meta."""
        spec, method = self.spec, self.method
        needs = method.needs(spec)
        src_tokens = [list(s.tokens) for s in source]
        alignments, a_key = None, None
        if needs.alignment:
            alignments, a_key = self.align(src_tokens, targets, upstream)
            upstream = a_key
        entity_strings = (
            self.entity_translations(source, spans, upstream)[0] if needs.entity_translations else None
        )
        target_ner = self.label(targets, upstream, "target_ner")[0] if needs.target_ner else None
        start = time.perf_counter()
        results = []
        for k, ents in enumerate(spans):
            pair = SentencePair(
                ents,
                src_tokens[k],
                targets[k] if targets is not None else None,
                translations[k] if translations is not None else None,
                alignments[k] if alignments is not None else None,
                entity_strings[k] if entity_strings is not None else None,
                target_ner[k] if target_ner is not None else None,
            )
            results.append(method.project(pair, spec.projection))
        self.timings["project"] = round(time.perf_counter() - start, 2)
        stats = sum((r.stats for r in results), ProjectionStats())
        stats.check()
        out, skipped = [], Counter()
        base = gold if gold is not None else source
        words = [res.tokens if res.tokens is not None else targets[k] for k, res in enumerate(results)]
        tags = [res.tags for res in results]
        snapped = None
        if spec.snap_to_names:
            tags, snapped = snap_to_names(words, tags, spec.lang)
        for k, res in enumerate(results):
            tokens = words[k]
            if not tokens:
                skipped["empty_translation"] += 1
                continue
            if spec.drop_incomplete and gold is None and res.stats.projected < res.stats.source_entities:
                skipped["incomplete_projection"] += 1
                continue
            out.append(Sentence(tokens, tags[k], f"{base[k].id}>{spec.lang}", spec.lang, base[k].domain))
        meta = {
            "spec": asdict(spec),
            "sentences_in": len(source),
            "sentences_out": len(out),
            "skipped_sentences": dict(skipped),
            "projection": stats.to_dict(),
        }
        if snapped is not None:
            meta["snapped_to_names"] = dict(snapped)
        if a_key is not None:
            meta["stage_keys"] = {"align": a_key}
        if method.counts_key:
            meta[method.counts_key] = dict(sum_counts(results))
        objectives = [r.objective for r in results if r.objective is not None]
        if objectives:
            meta["objective_sum"] = float(np.sum(objectives))
        if gold is not None:
            meta["intrinsic"] = self._score(gold, tags)
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
                "Run the pipeline stage first: train.py does (xner.tasks.train.projected_training_set), or `python -m xner.pipeline ...`."
            )
        return _load_output(self.cache.path(key))


def _load_output(directory: Path) -> PipelineOutput:
    records = load_jsonl(directory)
    sentences = [Sentence(r["tokens"], r["tags"], r["id"]) for r in records]
    return PipelineOutput(sentences, json.loads((directory / "meta.json").read_text()))
