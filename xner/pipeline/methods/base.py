"""The projection-method protocol and its registry.

A projection method is one module (a subclass of :class:`ProjectionMethod`, registered with :func:`register`)
plus one config (its ``projection:`` options). The pipeline asks the method once what it needs
(:meth:`ProjectionMethod.needs`), builds those inputs as cached stages, then calls
:meth:`ProjectionMethod.project` per sentence pair and assembles tags, stats and ``meta.json`` itself.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from xner.pipeline.project import Links, ProjectionResult
from xner.types import Sentence, Span

if TYPE_CHECKING:  # the spec imports this registry to validate its method name
    from xner.pipeline.run import PipelineSpec


@dataclass(frozen=True)
class Needs:
    """The inputs a method asks the pipeline to build (each one a cached stage).

    Attributes:
        alignment: word alignments between source and target words (``align`` stage).
        entity_translations: each source entity's string translated on its own (``entity_translations``).
        target_ner: the tagger (``source_model``) run on the target words (``target_ner``).
    """

    alignment: bool = True
    entity_translations: bool = False
    target_ner: bool = False


@dataclass(frozen=True)
class TranslationInput:
    """Text a method translates instead of the plain source sentences (markers: the marked sentences).

    Attributes:
        texts: one text per source sentence.
        translator: the translator config (``from_english`` with the method's additions).
        stage: the cache stage's name.
    """

    texts: list[str]
    translator: dict
    stage: str


@dataclass
class SentencePair:
    """What a method sees of one sentence pair; the fields it did not ask for (:class:`Needs`) are ``None``.

    Attributes:
        entities: the source entities (exclusive ends).
        source: the source words.
        target: the target words; ``None`` when the method reads them from ``translation``.
        translation: the raw translation of the method's own :class:`TranslationInput`, else ``None``.
        links: ``(source word, target word)`` alignment links.
        entity_translations: one translated string per entity.
        target_ner: the tagger's output on the target words (``tags``, ``probs``, ``labels``).
    """

    entities: list[Span]
    source: list[str]
    target: list[str] | None = None
    translation: str | None = None
    links: Links | None = None
    entity_translations: list[str] | None = None
    target_ner: Mapping[str, Any] | None = None


class ProjectionMethod:
    """Base of a projection method: override :meth:`project`, and the hooks whose defaults do not fit.

    Attributes:
        name: the ``method`` value of a pipeline spec.
        counts_key: the ``meta.json`` key under which the pipeline sums the results' ``method_counts``
            (``None``: the method has none).
    """

    name: str = ""
    counts_key: str | None = None

    def check(self, spec: PipelineSpec) -> None:
        """Raise ``ValueError`` when ``spec`` cannot run with this method (default: every spec can)."""

    def needs(self, spec: PipelineSpec) -> Needs:
        """The inputs this method needs for ``spec`` (default: an alignment only)."""
        return Needs()

    def translation_input(
        self, sentences: Sequence[Sentence], spans: Sequence[Sequence[Span]], spec: PipelineSpec
    ) -> TranslationInput | None:
        """Translate-train: text to translate instead of the plain sentences (default ``None``: plain)."""
        return None

    def project(self, pair: SentencePair, options: Mapping[str, Any]) -> ProjectionResult:
        """Project one sentence pair's entities onto its target words.

        Args:
            pair: the sentence pair with the inputs of :meth:`needs`.
            options: the spec's ``projection`` options.

        Returns:
            Tags over the target words (``tokens`` set when the method produced the target words), stats with
            every entity projected or dropped once, and optional ``method_counts`` / ``objective``.
        """
        raise NotImplementedError


_REGISTRY: dict[str, ProjectionMethod] = {}


def register(method: ProjectionMethod, *, replace: bool = False) -> ProjectionMethod:
    """Add a method to the registry under ``method.name`` (what a spec's ``method`` names).

    Raises:
        ValueError: the name is empty, or taken and ``replace`` is false.
    """
    if not method.name:
        raise ValueError(f"{type(method).__name__} has no name")
    if method.name in _REGISTRY and not replace:
        raise ValueError(f"a projection method named {method.name!r} is registered already")
    _REGISTRY[method.name] = method
    return method


def unregister(name: str) -> None:
    """Remove a method (tests register toy methods and clean up after themselves)."""
    _REGISTRY.pop(name, None)


def get_method(name: str) -> ProjectionMethod:
    """The registered method called ``name``.

    Raises:
        ValueError: no such method; the message lists the registered ones.
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown projection method {name!r}; choose one of {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def method_names() -> tuple[str, ...]:
    """The registered methods' names, in registration order."""
    return tuple(_REGISTRY)


def sum_counts(results: Sequence[ProjectionResult]) -> Counter[str]:
    """The results' ``method_counts`` summed in sentence order (first appearance decides the key order)."""
    total: Counter[str] = Counter()
    for result in results:
        total.update(result.method_counts)
    return total
