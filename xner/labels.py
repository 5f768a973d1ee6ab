"""Label schemes (IOB1, IOB2, BIOES), span conversion, repair and type mapping.

Tags are plain strings: ``"O"`` or ``"<prefix>-<TYPE>"`` with prefix in ``B I E S``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from xner.types import Span

TAG_PATTERN = re.compile(r"^(O|[BIES]-\S+)$")
SCHEMES = ("IOB1", "IOB2", "BIOES")


def split_tag(tag: str) -> tuple[str, str | None]:
    """Split ``"B-PER"`` into ``("B", "PER")`` and ``"O"`` into ``("O", None)``.

    Raises:
        ValueError: if the tag is neither ``O`` nor ``X-TYPE``.
    """
    if tag == "O":
        return "O", None
    if not TAG_PATTERN.match(tag):
        raise ValueError(f"Malformed tag {tag!r}: expected 'O' or '<B|I|E|S>-<TYPE>' such as 'B-PER'.")
    prefix, _, etype = tag.partition("-")
    return prefix, etype


class LabelSet:
    """An ordered IOB2 label vocabulary built from entity types: ``O, B-T1, I-T1, B-T2, ...``."""

    def __init__(self, types: Sequence[str]):
        if len(set(types)) != len(types):
            raise ValueError(f"Duplicate entity types in {list(types)}")
        self.types: tuple[str, ...] = tuple(types)
        self.labels: tuple[str, ...] = ("O",) + tuple(f"{p}-{t}" for t in self.types for p in ("B", "I"))
        self.label2id: dict[str, int] = {lab: i for i, lab in enumerate(self.labels)}

    def __len__(self) -> int:
        return len(self.labels)

    def __contains__(self, tag: str) -> bool:
        return tag in self.label2id

    def __repr__(self) -> str:
        return f"LabelSet({list(self.types)})"

    def encode(self, tags: Sequence[str]) -> list[int]:
        """Map tags to ids; unknown tags raise with the allowed set."""
        try:
            return [self.label2id[t] for t in tags]
        except KeyError as err:
            raise ValueError(
                f"Unknown tag {err.args[0]!r}; this label set allows {list(self.labels)}"
            ) from None

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Map ids back to tags."""
        return [self.labels[i] for i in ids]


def tags_to_spans(tags: Sequence[str], scheme: str = "IOB2") -> list[Span]:
    """Read entity spans from tags, leniently: an ``I-`` that cannot continue starts a new entity.

    This matches how an invalid sequence is repaired by :func:`repair_iob2`, so
    ``spans_to_tags(tags_to_spans(t)) == repair_iob2(t)[0]`` for IOB2 input.

    Args:
        tags: word tags.
        scheme: ``IOB1``, ``IOB2`` or ``BIOES``.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"Unknown scheme {scheme!r}; choose one of {SCHEMES}")
    spans: list[Span] = []
    start, cur = -1, None
    for i, tag in enumerate(tags):
        prefix, etype = split_tag(tag)
        continues = cur is not None and etype == cur and prefix in ("I", "E")
        if scheme == "IOB1":
            # In IOB1, B- only separates two adjacent entities of the same type.
            continues = cur is not None and etype == cur and prefix == "I"
        if continues:
            if scheme == "BIOES" and prefix == "E":
                spans.append(Span(start, i + 1, cur))
                cur = None
            continue
        if cur is not None:
            spans.append(Span(start, i, cur))
            cur = None
        if etype is not None:
            if scheme == "BIOES" and prefix == "S":
                spans.append(Span(i, i + 1, etype))
            else:
                start, cur = i, etype
    if cur is not None:
        spans.append(Span(start, len(tags), cur))
    return spans


def spans_to_tags(spans: Iterable[Span], length: int, scheme: str = "IOB2") -> list[str]:
    """Write spans as tags; overlapping spans raise ``ValueError``."""
    if scheme not in SCHEMES:
        raise ValueError(f"Unknown scheme {scheme!r}; choose one of {SCHEMES}")
    tags = ["O"] * length
    ordered = sorted(spans, key=lambda s: s.start)
    for k, span in enumerate(ordered):
        if span.end > length:
            raise ValueError(f"{span} reaches past the sentence end ({length} words)")
        if any(t != "O" for t in tags[span.start : span.end]):
            raise ValueError(f"{span} overlaps another span")
        for i in range(span.start, span.end):
            tags[i] = f"I-{span.label}"
        if scheme == "IOB2":
            tags[span.start] = f"B-{span.label}"
        elif scheme == "BIOES":
            if len(span) == 1:
                tags[span.start] = f"S-{span.label}"
            else:
                tags[span.start], tags[span.end - 1] = f"B-{span.label}", f"E-{span.label}"
        else:  # IOB1: B- only where the previous span of the same type touches this one
            prev = ordered[k - 1] if k else None
            if prev is not None and prev.end == span.start and prev.label == span.label:
                tags[span.start] = f"B-{span.label}"
    return tags


def convert_scheme(tags: Sequence[str], source: str, target: str) -> list[str]:
    """Convert tags between ``IOB1``, ``IOB2`` and ``BIOES``."""
    return spans_to_tags(tags_to_spans(tags, source), len(tags), target)


def repair_iob2(tags: Sequence[str]) -> tuple[list[str], int]:
    """Make an IOB2 sequence valid: an ``I-X`` not after ``B-X``/``I-X`` becomes ``B-X``.

    Returns:
        The repaired tags and the number of tags changed.
    """
    repaired = spans_to_tags(tags_to_spans(tags, "IOB2"), len(tags), "IOB2")
    return repaired, sum(a != b for a, b in zip(tags, repaired, strict=True))


def map_types(
    tags: Sequence[str], mapping: Mapping[str, str | None], counter: Counter | None = None
) -> list[str]:
    """Rename entity types; a type mapped to ``None`` or ``"O"`` becomes ``O``.

    Types missing from ``mapping`` are kept. Dropped entities are counted per original type in
    ``counter`` (when given) so callers can report what a mapping removed.
    """
    out = []
    for tag in tags:
        prefix, etype = split_tag(tag)
        if etype is None or etype not in mapping:
            out.append(tag)
            continue
        new = mapping[etype]
        if new is None or new == "O":
            out.append("O")
            if counter is not None and prefix in ("B", "S"):
                counter[etype] += 1
        else:
            out.append(f"{prefix}-{new}")
    return out
