"""Core value types shared across xner.

Spans use Python slice conventions: ``Span(start, end, label)`` covers words ``start .. end - 1``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Span:
    """An entity mention over word positions ``[start, end)``."""

    start: int
    end: int
    label: str

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.end:
            raise ValueError(f"Span needs 0 <= start < end, got start={self.start}, end={self.end}")

    def __len__(self) -> int:
        return self.end - self.start

    def overlaps(self, other: Span) -> bool:
        """Whether the two spans share at least one word."""
        return self.start < other.end and other.start < self.end


@dataclass(frozen=True)
class Sentence:
    """A tokenised sentence with optional word-level tags (IOB2 unless stated otherwise).

    Attributes:
        tokens: the words.
        tags: one tag per word, or ``None`` for unlabelled text.
        id: a stable identifier, e.g. ``"masakhaner2/swa/test:17"`` (file-relative index).
        lang: ISO 639-3 language code.
        domain: free-text domain name (``news``, ``wikipedia``, ...).
        meta: free-form extra information (not compared).
        ignore_spans: gold entities that a label mapping removed from ``tags`` (their original types, e.g.
            MasakhaNER ``DATE``), filled by :func:`xner.data.registry.load_split`. The don't-care score
            (:func:`xner.metrics.count_entities` with ``ignore``) neither rewards nor penalises a prediction
            that overlaps one of them.
    """

    tokens: tuple[str, ...]
    tags: tuple[str, ...] | None = None
    id: str = ""
    lang: str = ""
    domain: str = ""
    meta: dict = field(default_factory=dict, compare=False, hash=False)
    ignore_spans: tuple[Span, ...] = ()

    def __post_init__(self) -> None:
        # Normalise lists to tuples so sentences stay hashable and immutable.
        object.__setattr__(self, "tokens", tuple(self.tokens))
        object.__setattr__(self, "ignore_spans", tuple(self.ignore_spans))
        for span in self.ignore_spans:
            if span.end > len(self.tokens):
                raise ValueError(
                    f"Sentence {self.id or '<no id>'}: ignore span {span} reaches past its {len(self.tokens)} "
                    "words; ignore spans must lie inside the sentence."
                )
        if self.tags is not None:
            object.__setattr__(self, "tags", tuple(self.tags))
            if len(self.tags) != len(self.tokens):
                raise ValueError(
                    f"Sentence {self.id or '<no id>'}: {len(self.tokens)} tokens but {len(self.tags)} tags; "
                    "every token needs exactly one tag."
                )

    def __len__(self) -> int:
        return len(self.tokens)

    def with_tags(
        self,
        tags: tuple[str, ...] | list[str] | None,
        ignore_spans: tuple[Span, ...] | list[Span] | None = None,
    ) -> Sentence:
        """Return a copy with other tags (e.g. predictions or a label mapping).

        Args:
            tags: the new tags (``None`` for unlabelled text).
            ignore_spans: new don't-care spans; ``None`` keeps this sentence's.
        """
        keep = self.ignore_spans if ignore_spans is None else ignore_spans
        return Sentence(self.tokens, tags, self.id, self.lang, self.domain, dict(self.meta), keep)
