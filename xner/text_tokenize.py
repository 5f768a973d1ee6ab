"""A Unicode-aware word tokenizer for raw text that keeps character offsets.

The rules follow the CoNLL-2003 / Penn Treebank conventions the taggers were trained on, so that words in
raw text are cut the way the training data was:

- punctuation is split off words, a run of one repeated mark (``...``, ``--``, ``!!``) stays one token;
- URLs (``https://...``, ``www....``) and e-mail addresses are single tokens (trailing sentence
  punctuation is split off them), so are ``@mentions`` and ``#hashtags``;
- numbers keep their decimal and thousands separators (``3.14``, ``1,000``, ``1.000.000``, ``12:30``,
  ``1/2``);
- dotted abbreviations (``U.S.``, ``e.g.``), a short list of common abbreviations (``Dr.``, ``Inc.``,
  ``Jan.``) and initials before a capitalised word (``J. K. Rowling``) keep their period;
- hyphenated words (``state-of-the-art``, ``COVID-19``) are one token;
- English clitics are split as in the Penn Treebank (``don't`` -> ``do n't``, ``Britain's`` ->
  ``Britain 's``); other apostrophes stay inside the word (``O'Neil``, Swahili ``ng'ombe``).

Letters, combining marks and digits of every script count as word characters (``\\p{L}\\p{M}\\p{N}``), so
decomposed accents (Yoruba ``ọ̀``) and Indic vowel signs never cut a word. Offsets index the original string:
``text[token.start:token.end] == token.text`` always holds, nothing is normalised or dropped except
whitespace and invisible control characters.
"""

from __future__ import annotations

from dataclasses import dataclass

# `regex` (a dependency of transformers) has Unicode property classes; the stdlib `re` has no \p{M}, and its
# \w misses combining marks, which would split decomposed Yoruba or Hindi words.
import regex

_WC = r"\p{L}\p{M}\p{N}_"  # word characters of every script
WORD_CHAR = rf"[{_WC}]"
_URL = r"(?:[a-z][a-z0-9+.-]*://|www\.)[^\s<>\"]+"
_EMAIL = rf"{WORD_CHAR}(?:[{_WC}.+-]*{WORD_CHAR})?@{WORD_CHAR}+(?:[.-]{WORD_CHAR}+)*\.\p{{L}}{{2,}}"
_DOTTED = r"(?:\p{L}\.){2,}"  # U.S., e.g., i.e., U.S.A.
# words: runs of word characters joined by hyphens or apostrophes, or digits joined by . , : /
_JOINER = r"(?:[-\u2010\u2011'\u2019]|(?<=\p{N})[.,:/](?=\p{N}))"
_WORD = rf"{WORD_CHAR}+(?:{_JOINER}{WORD_CHAR}+)*"
_HANDLE = rf"[@#]{WORD_CHAR}+"
_PUNCT = rf"(?P<mark>[^\s{_WC}])(?P=mark)*"  # one mark, or a run of the same mark
_TOKEN = regex.compile(
    rf"(?P<url>{_URL})|(?P<email>{_EMAIL})|(?P<dotted>{_DOTTED})|(?P<word>{_WORD})|(?P<handle>{_HANDLE})"
    rf"|(?P<punct>{_PUNCT})",
    regex.IGNORECASE,
)
# Characters that separate tokens without being one: whitespace, C0/C1 controls, zero-width space, BOM.
_SKIP = regex.compile(r"[\s\p{Cc}\u200b\u2060\ufeff]+")
_CLITIC = regex.compile(r"(?:n['\u2019]t|['\u2019](?:s|re|ve|ll|d|m))$", regex.IGNORECASE)
_URL_TRAILING = ".,;:!?'\"\u2019\u201d"

_CLOSERS = {")": "(", "]": "[", "}": "{"}

# Abbreviations that keep their period wherever they stand ...
ABBREVIATIONS = frozenset(
    """
    mr mrs ms dr prof sr jr st mt ft gen col lt sgt capt cmdr adm gov sen rep pres rev hon
    inc ltd co corp bros plc llc dept univ assn approx vs etc cf ave blvd
    """.split()
)
# ... and those that do only before a number ("Jan. 5", "No. 10"), being ordinary words elsewhere ("said no.").
ABBREVIATIONS_BEFORE_NUMBER = frozenset(
    """
    no nos vol vols fig figs p pp art sec ch
    jan feb mar apr jun jul aug sep sept oct nov dec
    """.split()
)
_FOLLOWING_NUMBER = regex.compile(r"\s*\p{N}")
_FOLLOWING_CAPITAL = regex.compile(r"\s+\p{Lu}")


@dataclass(frozen=True)
class Token:
    """A token and its character offsets: ``text[start:end] == token.text``."""

    text: str
    start: int
    end: int


def tokenize(text: str) -> list[Token]:
    """Split raw text into word tokens with character offsets (rules in the module docstring).

    Args:
        text: one sentence or paragraph (newlines count as whitespace).

    Returns:
        The tokens in order; every non-space, visible character belongs to exactly one token.
    """
    tokens: list[Token] = []
    pos, n = 0, len(text)
    while pos < n:
        skip = _SKIP.match(text, pos)
        if skip:
            pos = skip.end()
            continue
        match = _TOKEN.match(text, pos)
        if match is None:  # cannot happen: _PUNCT takes any character _SKIP leaves; guard against a loop
            tokens.append(Token(text[pos], pos, pos + 1))
            pos += 1
            continue
        kind, start, end = match.lastgroup, match.start(), match.end()
        if kind == "url":
            end = _trim_url(text, start, end)
        elif kind == "word":
            end = _abbreviation_end(text, start, end)
            clitic = _CLITIC.search(text, start, end)
            if clitic and clitic.start() > start and end == match.end():
                tokens.append(Token(text[start : clitic.start()], start, clitic.start()))
                start = clitic.start()
        tokens.append(Token(text[start:end], start, end))
        pos = end
    return tokens


def _trim_url(text: str, start: int, end: int) -> int:
    """End of a URL without trailing sentence punctuation or a closing bracket it did not open."""
    while end > start + 1:
        last = text[end - 1]
        unopened = last in _CLOSERS and text.count(_CLOSERS[last], start, end) < text.count(last, start, end)
        if last not in _URL_TRAILING and not unopened:
            break
        end -= 1
    return end


def _abbreviation_end(text: str, start: int, end: int) -> int:
    """Extend a word by its period when it is an abbreviation, or an initial before a capitalised word."""
    if end >= len(text) or text[end] != ".":
        return end
    word = text[start:end]
    lower = word.lower()
    if lower in ABBREVIATIONS:
        return end + 1
    if lower in ABBREVIATIONS_BEFORE_NUMBER and _FOLLOWING_NUMBER.match(text, end + 1):
        return end + 1
    if len(word) == 1 and word.isupper() and _FOLLOWING_CAPITAL.match(text, end + 1):
        return end + 1
    return end


def token_offsets(tokens: list[str] | tuple[str, ...]) -> list[tuple[int, int]]:
    """Character offsets of pre-tokenised words in ``" ".join(tokens)``."""
    offsets, pos = [], 0
    for tok in tokens:
        offsets.append((pos, pos + len(tok)))
        pos += len(tok) + 1
    return offsets
