"""Which words of a sentence look like a name and should pass through MT untranslated.

Rule-based MT translates every word it knows, names included: Apertium turns "Lobo" into "Wolf", "San Carlos
de Bariloche" into "Saint Carlos of Bariloche" and "Zaragoza" into "Saragossa", and the English NER model then
sees a name that is not in the target sentence. Kept verbatim (Apertium's ``apertium-notrans``: the words go
through as a blank), the name reaches the English model as written.

What looks like a name, with no NER model and no language-specific lists:

- a *capitalised* word (first letter upper case) that is not the first word of the sentence;
- up to two short lower-case words (at most 3 letters: "de", "del", "la", "y", "von") between two capitalised
  words join them into one name ("San Carlos de Bariloche", "Trinidad y Tobago");
- the first word of the sentence only when its lower-case form never occurs in lower case in the texts being
  translated together (so "En", "El", "La" stay translatable when "en", "el", "la" occur elsewhere, while
  "Madrid" or "Kaupmannahöfn" at the start are kept). Scripts without case are never protected.

The functions are pure: whitespace tokens in, ``(start, end)`` token spans out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

# Longest lower-case word that may join two capitalised ones, and how many of them in a row.
MAX_CONNECTOR_LEN = 3
MAX_CONNECTORS = 2


def _first_letter(token: str) -> str | None:
    return next((c for c in token if c.isalpha()), None)


def is_capitalised(token: str) -> bool:
    """Whether the first letter of ``token`` is upper case (``False`` for tokens without letters or case)."""
    first = _first_letter(token)
    return first is not None and first.isupper()


def is_connector(token: str) -> bool:
    """A short lower-case word that may sit inside a name ("de", "del", "la", "y", "von", "al")."""
    return token.isalpha() and token.islower() and len(token) <= MAX_CONNECTOR_LEN


def lowercase_vocabulary(sentences: Iterable[Sequence[str]]) -> set[str]:
    """Every token that occurs written in lower case (first letter lower case) in ``sentences``."""
    vocab: set[str] = set()
    for tokens in sentences:
        for token in tokens:
            first = _first_letter(token)
            if first is not None and first.islower():
                vocab.add(token)
    return vocab


def name_runs(tokens: Sequence[str], lowercase: set[str]) -> list[tuple[int, int]]:
    """The spans of ``tokens`` that look like names (see the module docstring), in order, non-overlapping.

    Args:
        tokens: one sentence, whitespace-tokenised.
        lowercase: tokens seen in lower case in the texts translated together
            (:func:`lowercase_vocabulary`); decides whether a capitalised first word is a name.

    Returns:
        ``(start, end)`` token spans, ``end`` exclusive; every span starts and ends with a capitalised word.
    """
    first = next((i for i, t in enumerate(tokens) if _first_letter(t) is not None), None)
    name_like = [
        is_capitalised(t) and (i != first or t.lower() not in lowercase) for i, t in enumerate(tokens)
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
            while j < n and j - end < MAX_CONNECTORS and is_connector(tokens[j]):
                j += 1
            if j > end and j < n and name_like[j]:
                end = j + 1
                continue
            break
        runs.append((i, end))
        i = end
    return runs
