"""Text helpers shared by alignment refinement, markers and matching: tokenising, normalising, fuzzy finding."""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Sequence


def is_punct(ch: str) -> bool:
    """Whether a character is Unicode punctuation (category P*)."""
    return unicodedata.category(ch).startswith("P")


# An elided article/preposition glued to the next word: d'Alemanya, l'ONU, qu'il, dell'Italia. Elision happens
# before a vowel, h or a capitalised name, which keeps English contractions (don't, we're) whole.
_ELISION = re.compile(r"^([^\W\d_]{1,4})['’](?=[aeiouyhàáâäèéêëìíîïòóôöùúûü]|[^\W\d_])", re.IGNORECASE)


def _elision_length(word: str) -> int:
    m = _ELISION.match(word)
    if m is None or not m.group(1).islower():
        return 0
    nxt = word[m.end()]
    if nxt.lower() in "aeiouyhàáâäèéêëìíîïòóôöùúûü" or nxt.isupper():
        return m.end()
    return 0


def simple_tokenize(text: str) -> list[str]:
    """Split text into words: whitespace, then punctuation peeled off word edges.

    Rules (kept simple and predictable, so marker and string matching stay explainable):

    - split on whitespace;
    - a chunk made only of punctuation stays one token (``...``, ``--``, ``»``);
    - otherwise leading and trailing punctuation characters are split off one by one, runs of the same
      character staying together (``dijo...`` → ``dijo ...``); a final ``.`` stays when the word has another
      ``.`` inside (``U.S.``, ``S.A.``);
    - a lowercase elided article/preposition (up to 4 letters plus apostrophe, before a vowel, ``h`` or a
      capital) is split off: ``d'Alemanya`` → ``d' Alemanya``, ``l'ONU`` → ``l' ONU``, ``dell'Italia``;
      capitalised ones are kept (``O'Neill``, ``D'Angelo``, so a sentence-initial ``L'Espagne`` stays
      whole) and so are English contractions (``don't``, ``we're``).
    """
    tokens: list[str] = []
    for chunk in text.split():
        if all(is_punct(c) for c in chunk):
            tokens.append(chunk)
            continue
        lead: list[str] = []
        while chunk and is_punct(chunk[0]):
            k = 1
            while k < len(chunk) and chunk[k] == chunk[0]:
                k += 1
            lead.append(chunk[:k])
            chunk = chunk[k:]
        trail: list[str] = []
        while chunk and is_punct(chunk[-1]):
            k = len(chunk) - 1
            while k > 0 and chunk[k - 1] == chunk[-1]:
                k -= 1
            if chunk[k:] == "." and k > 0 and chunk[k - 1].isalpha() and "." in chunk[:k]:
                break  # abbreviation: U.S., S.A.
            trail.append(chunk[k:])
            chunk = chunk[:k]
        tokens.extend(lead)
        if chunk:
            cut = _elision_length(chunk)
            if cut:
                tokens.append(chunk[:cut])
                chunk = chunk[cut:]
            tokens.append(chunk)
        tokens.extend(reversed(trail))
    return tokens


def normalize_text(text: str) -> str:
    """Casefold and collapse whitespace (NFKC first), the comparison form for entity strings."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def char_similarity(a: str, b: str) -> float:
    """Character-level similarity in [0, 1]: difflib's ratio ``2·matches / (len a + len b)``.

    Compared after :func:`normalize_text`; two empty strings score 0 (an empty string matches nothing).
    """
    a, b = normalize_text(a), normalize_text(b)
    if not a or not b:
        return 0.0
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def find_string_span(
    target_tokens: Sequence[str],
    text: str,
    fuzzy_threshold: float = 0.8,
) -> list[tuple[int, int, float]]:
    """Where ``text`` occurs in the target words: exact token matches, else fuzzy n-gram matches.

    Exact: the casefolded tokens of ``text`` (:func:`simple_tokenize`) equal a run of target words. Fuzzy
    (only when there is no exact match): every target n-gram with ``n`` in ``len ± 1`` whose
    :func:`char_similarity` to ``text`` is at least ``fuzzy_threshold``.

    Returns:
        ``(start, end, similarity)`` triples (exclusive ends), best similarity first, then leftmost;
        similarity 1.0 marks exact matches. Empty when nothing matches or ``text`` has no words.
    """
    words = [normalize_text(w) for w in simple_tokenize(text)]
    if not words:
        return []
    norm = [normalize_text(t) for t in target_tokens]
    n, m = len(words), len(norm)
    exact = [(s, s + n, 1.0) for s in range(m - n + 1) if norm[s : s + n] == words]
    if exact:
        return exact
    joined = " ".join(words)
    found: list[tuple[int, int, float]] = []
    for length in (n - 1, n, n + 1):
        if length < 1:
            continue
        for s in range(m - length + 1):
            sim = char_similarity(" ".join(norm[s : s + length]), joined)
            if sim >= fuzzy_threshold:
                found.append((s, s + length, sim))
    found.sort(key=lambda f: (-f[2], f[0], f[1]))
    return found
