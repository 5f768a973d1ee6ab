"""Which words of a sentence look like a name, without an NER model; and projected spans snapped to them.

Two uses. **Names kept verbatim through MT** (:class:`~xner.pipeline.translate.ApertiumTranslator`'s
``keep_names``): rule-based MT translates every word it knows, names included: Apertium turns "Lobo" into "Wolf", "San Carlos
de Bariloche" into "Saint Carlos of Bariloche" and "Zaragoza" into "Saragossa", and the English NER model then
sees a name that is not in the target sentence. Kept verbatim (Apertium's ``apertium-notrans``: the words go
through as a blank), the name reaches the English model as written.

What looks like a name, with no NER model:

- a *capitalised* word (first letter upper case) that is not the first word of the sentence;
- up to two of the language's name connectors (:data:`CONNECTORS`: Spanish "de", "del", "la", "y") between
  two capitalised words join them into one name ("San Carlos de Bariloche", "Trinidad y Tobago"); languages
  that mark these relations by case endings (Basque, Icelandic) have none, and a short verb or preposition
  between two names must not join them ("Jón bjó í Kaupmannahöfn");
- the first word of the sentence only when its lower-case form never occurs in lower case in the texts being
  translated together (so "En", "El", "La" stay translatable when "en", "el", "la" occur elsewhere, while
  "Madrid" or "Kaupmannahöfn" at the start are kept). Scripts without case are never protected.

**Span conventions** (:func:`snap_to_names`): a projected entity that covers only part of a name ("Beom Seok"
of "Oh Beom Seok", "Moldavia" of "División Nacional de Moldavia") is widened to the whole name, when no other
entity touches that name.

The functions are pure: whitespace tokens in, ``(start, end)`` token spans out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from xner.labels import spans_to_tags, tags_to_spans

# How many connectors in a row may join two capitalised words ("de la", "de los").
MAX_CONNECTORS = 2
# Lower-case words that occur inside names, per ISO 639-3 language (a pair's source side); others have none.
CONNECTORS: dict[str, frozenset[str]] = {
    "spa": frozenset({"de", "del", "la", "las", "los", "el", "y", "e"}),
    "cat": frozenset({"de", "del", "la", "les", "els", "el", "i"}),
    "glg": frozenset({"de", "da", "do", "das", "dos", "e"}),
    "eng": frozenset({"of", "the", "and", "de", "von", "van", "da", "del"}),
}


def _first_letter(token: str) -> str | None:
    return next((c for c in token if c.isalpha()), None)


def is_capitalised(token: str) -> bool:
    """Whether the first letter of ``token`` is upper case (``False`` for tokens without letters or case)."""
    first = _first_letter(token)
    return first is not None and first.isupper()


def lowercase_vocabulary(sentences: Iterable[Sequence[str]]) -> set[str]:
    """Every token that occurs written in lower case (first letter lower case) in ``sentences``."""
    vocab: set[str] = set()
    for tokens in sentences:
        for token in tokens:
            first = _first_letter(token)
            if first is not None and first.islower():
                vocab.add(token)
    return vocab


def name_runs(
    tokens: Sequence[str],
    lowercase: set[str],
    exclude: Iterable[int] = (),
    connectors: frozenset[str] = frozenset(),
) -> list[tuple[int, int]]:
    """The spans of ``tokens`` that look like names (see the module docstring), in order, non-overlapping.

    Args:
        tokens: one sentence, whitespace-tokenised.
        lowercase: tokens seen in lower case in the texts translated together
            (:func:`lowercase_vocabulary`); decides whether a capitalised first word is a name.
        exclude: token indices never treated as name-like (e.g. :func:`inflected_proper_nouns`).
        connectors: lower-case words that may join two name-like words (:data:`CONNECTORS`).

    Returns:
        ``(start, end)`` token spans, ``end`` exclusive; every span starts and ends with a capitalised word.
    """
    first = next((i for i, t in enumerate(tokens) if _first_letter(t) is not None), None)
    skip = set(exclude)
    name_like = [
        is_capitalised(t) and (i != first or t.lower() not in lowercase) and i not in skip
        for i, t in enumerate(tokens)
    ]
    runs: list[tuple[int, int]] = []
    i, n = 0, len(tokens)
    while i < n:
        if not name_like[i]:
            i += 1
            continue
        end = i + 1
        while end < n:
            if name_like[end]:
                end += 1
                continue
            # connectors extend the run only when a name-like word follows them
            j = end
            while j < n and j - end < MAX_CONNECTORS and tokens[j] in connectors:
                j += 1
            if j > end and j < n and name_like[j]:
                end = j + 1
                continue
            break
        runs.append((i, end))
        i = end
    return runs


def _split_unescaped(text: str, sep: str) -> list[str]:
    parts, buf, i = [], [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            buf.append(text[i + 1])
            i += 2
            continue
        if text[i] == sep:
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(text[i])
        i += 1
    parts.append("".join(buf))
    return parts


def inflected_proper_nouns(analysis: str, tokens: Sequence[str]) -> set[int]:
    """Token indices that Apertium's morphological analyser reads as an *inflected* proper noun.

    An inflected name ("Bilboko" = Bilbo + genitive, "Reykjavíkur" = Reykjavík, genitive) is better left to
    the MT, which turns the case ending into an English preposition ("of Bilbao"); kept verbatim, the English
    model sees a form it does not know. A lexical unit counts when every analysis of it is a proper noun
    (``<np>``) whose lemma differs from the surface form; a multiword unit marks all its tokens.

    Args:
        analysis: the analyser's output for ``" ".join(tokens)`` (``^surface/lemma<tags>/...$`` units).
        tokens: the sentence's whitespace tokens.
    """
    starts, pos = [], 0
    for token in tokens:
        starts.append(pos)
        pos += len(token) + 1
    marked: set[int] = set()
    offset, i, n = 0, 0, len(analysis)
    while i < n:
        c = analysis[i]
        if c == "\\" and i + 1 < n:
            offset, i = offset + 1, i + 2
        elif c == "^":
            j = i + 1
            while j < n and not (analysis[j] == "$" and analysis[j - 1] != "\\"):
                j += 1
            surface, *readings = _split_unescaped(analysis[i + 1 : j], "/")
            lemmas = [r.split("<", 1)[0] for r in readings if "<np>" in r]
            if readings and len(lemmas) == len(readings) and all(lem != surface for lem in lemmas):
                marked.update(k for k, s in enumerate(starts) if offset <= s < offset + len(surface))
            offset, i = offset + len(surface), j + 1
        else:
            offset, i = offset + 1, i + 1
    return marked


def snap_to_runs(tags: Sequence[str], runs: Sequence[tuple[int, int]]) -> tuple[list[str], int]:
    """Widen each entity lying strictly inside a name run to the whole run, if no other entity overlaps it.

    Args:
        tags: IOB2 tags of one sentence.
        runs: its name runs (:func:`name_runs`).

    Returns:
        The new tags and how many entities were widened.
    """
    spans = tags_to_spans(list(tags))
    out, widened = [], 0
    for span in spans:
        run = next(((a, b) for a, b in runs if a <= span.start and span.end <= b), None)
        alone = run is not None and not any(
            o is not span and o.start < run[1] and o.end > run[0] for o in spans
        )
        if alone and (span.start, span.end) != run:
            span = type(span)(run[0], run[1], span.label)
            widened += 1
        out.append(span)
    return spans_to_tags(out, len(tags)), widened


def snap_to_names(
    sentences: Sequence[Sequence[str]], tags: Sequence[Sequence[str]], lang: str
) -> tuple[list[list[str]], Counter[str]]:
    """:func:`snap_to_runs` over a set of sentences, with the name runs of ``lang`` (ISO 639-3).

    The lower-case vocabulary is the set's own (see :func:`name_runs`); ``Counter`` counts
    ``entities_widened`` and ``sentences_changed``.
    """
    lowercase = lowercase_vocabulary(sentences)
    connectors = CONNECTORS.get(lang, frozenset())
    out, counts = [], Counter()
    for tokens, sentence_tags in zip(sentences, tags, strict=True):
        new, widened = snap_to_runs(sentence_tags, name_runs(tokens, lowercase, (), connectors))
        counts["entities_widened"] += widened
        counts["sentences_changed"] += bool(widened)
        out.append(new)
    return out, counts
