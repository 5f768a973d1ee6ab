"""Apertium's stream format: this package's own deformatter and reformatter for plain text and flat HTML.

The ``apertium`` wrapper script is not used: its deformatters (``apertium-destxt``, ``apertium-deshtml``) drop
the ``\\0`` separators that keep sentences apart (see :mod:`xner.pipeline.translate.apertium`). So:

- ``markup="none"``: the input is plain text; ``\\ [ ] ^ $ / @ < > { }`` are backslash-escaped on the way in
  and un-escaped on the way out.
- ``markup="html"``: the input is an HTML fragment with paired inline tags such as ``<b id="3">…</b>``
  (entities like ``&amp;`` are decoded; all other text is literal). Each element becomes an Apertium
  *word-bound blank* ``[[t:N]]…[[/]]``, which the engine attaches to every word inside and carries through
  lexical transfer and reordering (like ``apertium -f html`` with Transfuse installed; the plain
  ``apertium-deshtml`` superblanks stay in place and miss reordering). The output text is HTML-escaped again
  and the original tags are written back around the words that carry them; pieces of one element separated
  only by whitespace are merged (``<b id="1">Werner</b> <b id="1">Zwingmann</b>`` -> one element), pieces
  that ended up apart stay split, and elements whose words were all dropped are counted (``markup_lost``).

Unknown-word marks (``*word`` / ``#word`` / ``@word``) that still appear in the output are stripped and
counted. Output whitespace is normalised (runs of spaces collapsed, ends stripped): Apertium leaves double
spaces where it deletes words.
"""

from __future__ import annotations

import html
import re
from collections import Counter
from typing import Any

# Apertium stream specials; escaped with a backslash in text (each one verified to need it).
_STREAM_SPECIAL = re.compile(r"([\\\[\]^$/@<>{}])")
# Paired inline tags in html mode: <name attrs> ... </name>.
_HTML_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9:_-]*)((?:\s[^<>]*)?)>")
_UNKNOWN_MARKS = "*#@"


class ApertiumError(RuntimeError):
    """Apertium is missing, a pair is not installed, or the engine's output cannot be trusted."""


def escape_stream(text: str) -> str:
    """Backslash-escape Apertium's stream specials in plain text."""
    return _STREAM_SPECIAL.sub(r"\\\1", text)


def collapse(text: str) -> str:
    """Collapse runs of whitespace to one space and strip the ends."""
    return " ".join(text.split())


class Markup:
    """One html-mode sentence: stream text with word-bound blanks, and the tags to write back."""

    def __init__(self, stream: str, tags: list[tuple[str, str]], plain: str):
        self.stream, self.tags, self.plain = stream, tags, plain


def deformat_html(text: str, where: str) -> Markup:
    """HTML fragment -> Apertium stream with ``[[t:N]]…[[/]]`` word-bound blanks (N indexes ``tags``)."""
    out: list[str] = []
    plain: list[str] = []
    tags: list[tuple[str, str]] = []
    pos = 0
    open_tag: tuple[str, str, int] | None = None  # (name, tag text, start index in out)
    for m in _HTML_TAG.finditer(text):
        chunk = html.unescape(text[pos : m.start()])
        out.append(escape_stream(chunk))
        plain.append(chunk)
        pos = m.end()
        closing, name = m.group(1) == "/", m.group(2).lower()
        if not closing:
            if open_tag is not None:
                raise ValueError(
                    f"{where}: nested tag {m.group(0)!r} inside {open_tag[1]!r}; html markup must be flat "
                    '(non-overlapping, non-nested elements such as <b id="k">…</b>).'
                )
            open_tag = (name, m.group(0), len(out))
            continue
        if open_tag is None or open_tag[0] != name:
            raise ValueError(f"{where}: closing tag {m.group(0)!r} without a matching opening tag.")
        inner = "".join(out[open_tag[2] :])
        del out[open_tag[2] :]
        if inner.strip():
            # Leading/trailing spaces go outside the blank so it binds to words only.
            lead = inner[: len(inner) - len(inner.lstrip())]
            trail = inner[len(inner.rstrip()) :]
            out.append(f"{lead}[[t:{len(tags)}]]{inner.strip()}[[/]]{trail}")
            tags.append((open_tag[1], m.group(0)))
        else:
            # An empty element has no word to follow: keep it in place as a superblank.
            out.append(inner + "[" + escape_stream(open_tag[1] + m.group(0)) + "]")
        open_tag = None
    if open_tag is not None:
        raise ValueError(f"{where}: tag {open_tag[1]!r} is never closed.")
    chunk = html.unescape(text[pos:])
    out.append(escape_stream(chunk))
    plain.append(chunk)
    return Markup(collapse("".join(out)), tags, "".join(plain))


def parse_stream(chunk: str, source_plain: str, stats: Counter[str]) -> list[tuple[int | None, str, bool]]:
    """Apertium output -> ``(element index or None, text, is_raw_markup)`` pieces, escapes resolved.

    Unknown-word marks (unescaped ``*``/``#``/``@`` starting a word) are stripped and counted; input ``@`` is
    always escaped, so an unescaped one is a mark, while ``*``/``#`` count as marks only when the source has
    no such character.
    """
    pieces: list[tuple[int | None, str, bool]] = []
    buf: list[str] = []
    current: int | None = None
    i, n = 0, len(chunk)

    def flush() -> None:
        if buf:
            pieces.append((current, "".join(buf), False))
            buf.clear()

    while i < n:
        c = chunk[i]
        if c == "\\" and i + 1 < n:
            buf.append(chunk[i + 1])
            i += 2
        elif chunk.startswith("[[", i):
            end = chunk.find("]]", i + 2)
            if end < 0:
                raise ApertiumError(f"unterminated word-bound blank in Apertium output: {chunk!r}")
            content = chunk[i + 2 : end]
            flush()
            if content == "/":
                current = None
            else:
                # Apertium joins the blanks of words it translates as one multiword ("[[t:2; t:2]]").
                if not re.fullmatch(r"t:\d+(?:; ?t:\d+)*", content):
                    raise ApertiumError(
                        f"unexpected word-bound blank [[{content}]] in Apertium output: {chunk!r}"
                    )
                indices = [int(x) for x in re.findall(r"t:(\d+)", content)]
                if len(set(indices)) > 1:  # words of two elements became one: the first element keeps them
                    stats["merged_blanks_of_different_elements"] += 1
                current = indices[0]
            i = end + 2
        elif c == "[":
            # Superblank (an empty element we passed through): its content is literal markup.
            j, raw = i + 1, []
            while j < n and chunk[j] != "]":
                if chunk[j] == "\\" and j + 1 < n:
                    j += 1
                raw.append(chunk[j])
                j += 1
            flush()
            pieces.append((None, "".join(raw), True))
            i = j + 1
        elif (
            c in _UNKNOWN_MARKS
            and (i == 0 or chunk[i - 1].isspace() or chunk[i - 1] == "]")
            and i + 1 < n
            and not chunk[i + 1].isspace()
            and (c == "@" or c not in source_plain)
        ):
            stats["unknown_marks_stripped"] += 1
            i += 1
        else:
            buf.append(c)
            i += 1
    flush()
    return pieces


def reformat(
    pieces: list[tuple[int | None, str, bool]], tags: list[tuple[str, str]] | None
) -> tuple[str, str]:
    """Pieces -> (output text, plain text without markup). ``tags`` is ``None`` in plain mode."""
    if tags is None:
        text = collapse("".join(p[1] for p in pieces))
        return text, text
    # Merge pieces of one element separated only by whitespace (the engine splits multi-word elements).
    groups: list[list[Any]] = []  # [element or None, text, raw]
    for elem, text, raw in pieces:
        if elem is not None:
            k = len(groups) - 1
            while k >= 0 and groups[k][0] is None and not groups[k][2] and not groups[k][1].strip():
                k -= 1
            if k >= 0 and groups[k][0] == elem:
                groups[k][1] += "".join(g[1] for g in groups[k + 1 :]) + text
                del groups[k + 1 :]
                continue
        if groups and groups[-1][0] == elem and elem is None and not raw and not groups[-1][2]:
            groups[-1][1] += text
        else:
            groups.append([elem, text, raw])
    out: list[str] = []
    plain: list[str] = []
    for elem, text, raw in groups:
        if raw:
            out.append(text)
        elif elem is None or elem >= len(tags):
            out.append(html.escape(text, quote=False))
            plain.append(text)
        else:
            lead, body, trail = (
                text[: len(text) - len(text.lstrip())],
                text.strip(),
                text[len(text.rstrip()) :],
            )
            out.append(f"{lead}{tags[elem][0]}{html.escape(body, quote=False)}{tags[elem][1]}{trail}")
            plain.append(text)
    return collapse("".join(out)), collapse("".join(plain))
