"""Machine translation behind one protocol: Apertium (offline, rule-based), HF seq2seq models, files.

Every translator has a ``name``, ``translate(texts) -> list[str]`` (one output per input, input order) and
``cache_key()`` (a JSON-able dict of everything that determines the output). :class:`CachedTranslator` wraps
any of them with a content-addressed per-sentence cache on disk, so a re-run only translates new sentences.

Apertium (:class:`ApertiumTranslator`) — how sentence boundaries are kept (see DESIGN.md, "Machine
translation offline"): one sentence per line is *not* safe, the transfer rules can move words between lines.
So each sentence is Apertium-stream-escaped, terminated by ``\\n\\0``, and the pair's pipeline (printed by
``apertium-wblank-mode -z MODE``) runs in null-flush mode, where every stage flushes and resets at ``\\0``.
The output is split on ``\\0``; the engine appends a few extra empty chunks, which are checked to be empty.
The ``apertium`` wrapper script itself is not used: its deformatters (``apertium-destxt``,
``apertium-deshtml``) drop the ``\\0`` separators. Instead this module is its own deformatter/reformatter:

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

Unknown words: the pipeline runs with the generator option ``-n`` (what ``apertium -u`` passes), so no
``*word`` / ``#word`` / ``@word`` marks are printed; any mark that still appears is stripped and counted.
Output whitespace is normalised (runs of spaces collapsed, ends stripped): Apertium leaves double spaces
where it deletes words.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from tqdm.auto import tqdm

from xner.paths import cache_dir
from xner.pipeline.cache import canonical_json

log = logging.getLogger(__name__)

__all__ = [
    "ApertiumError",
    "ApertiumTranslator",
    "CachedTranslator",
    "FileTranslator",
    "HFSeq2SeqTranslator",
    "TRANSLATORS",
    "TranslationCache",
    "Translator",
    "apertium_package_for",
    "installed_apertium_pairs",
    "make_translator",
    "resolve_apertium_mode",
]


@runtime_checkable
class Translator(Protocol):
    """A machine translator: one output string per input string, in input order."""

    name: str

    def translate(self, texts: Sequence[str]) -> list[str]:
        """Translate ``texts``; returns exactly ``len(texts)`` strings in input order."""
        ...

    def cache_key(self) -> dict:
        """A JSON-able dict of everything that determines the output (engine, model, options, versions)."""
        ...


def _show_progress(progress: bool | None) -> bool:
    """``None`` means: show a bar only when stderr is a terminal."""
    if progress is None:
        return sys.stderr.isatty()
    return progress


# --------------------------------------------------------------------------------------------- Apertium

APERTIUM_DATA_DIR = Path(os.environ.get("APERTIUM_DATADIR", "/usr/share/apertium"))

# ISO 639-1 <-> 639-3 for the languages of the Debian pairs (mode names mix both styles).
_ISO1_TO_3 = {"en": "eng", "es": "spa", "ca": "cat", "gl": "glg", "eo": "epo", "eu": "eus"}
_ISO3_TO_1 = {v: k for k, v in _ISO1_TO_3.items()}

# Debian package per (unordered) language pair, with the directions each one installs (DESIGN.md).
_DEBIAN_PACKAGES: dict[frozenset[str], tuple[str, tuple[str, ...]]] = {
    frozenset({"eng", "spa"}): ("apertium-eng-spa", ("eng-spa", "spa-eng")),
    frozenset({"eng", "cat"}): ("apertium-eng-cat", ("eng-cat", "cat-eng")),
    frozenset({"eng", "glg"}): ("apertium-en-gl", ("en-gl", "gl-en")),
    frozenset({"eng", "epo"}): ("apertium-eo-en", ("en-eo", "eo-en")),
    frozenset({"eng", "eus"}): ("apertium-eu-en", ("eu-en",)),
    frozenset({"spa", "cat"}): ("apertium-spa-cat", ("spa-cat", "cat-spa")),
}

# Apertium stream specials; escaped with a backslash in text (DESIGN.md's list, all verified needed).
_STREAM_SPECIAL = re.compile(r"([\\\[\]^$/@<>{}])")
_DIGITS = re.compile(r"\d+")
# Paired inline tags in html mode: <name attrs> ... </name>.
_HTML_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9:_-]*)((?:\s[^<>]*)?)>")
_UNKNOWN_MARKS = "*#@"


class ApertiumError(RuntimeError):
    """Apertium is missing, a pair is not installed, or the engine's output cannot be trusted."""


def _split_pair(pair: str) -> tuple[str, str, str]:
    """``'en-es'`` / ``'eng-spa_valencia'`` -> (src, tgt, variant suffix incl. ``_``)."""
    m = re.fullmatch(r"([a-z]{2,3})-([a-z]{2,3})((?:[_-][A-Za-z0-9_]+)?)", pair.strip())
    if not m:
        raise ValueError(
            f"Apertium pair {pair!r} is not of the form SRC-TGT (e.g. 'en-es', 'eng-spa', 'eng-cat_valencia')."
        )
    return m.group(1), m.group(2), m.group(3)


def apertium_package_for(pair: str) -> str | None:
    """The Debian package that installs an Apertium pair (either direction), or ``None`` when unknown."""
    src, tgt, _ = _split_pair(pair)
    key = frozenset({_ISO1_TO_3.get(src, src), _ISO1_TO_3.get(tgt, tgt)})
    entry = _DEBIAN_PACKAGES.get(key)
    return entry[0] if entry else None


def installed_apertium_pairs(data_dir: str | Path | None = None) -> list[str]:
    """The Apertium modes (translation directions) installed, e.g. ``["eng-spa", "spa-eng"]``; empty if none.

    Reads the modes directory (what ``apertium -l`` lists) instead of running Apertium, so it cannot hang.

    Args:
        data_dir: Apertium's data directory (default ``$APERTIUM_DATADIR`` or ``/usr/share/apertium``).
    """
    modes = Path(data_dir or APERTIUM_DATA_DIR) / "modes"
    return sorted(p.stem for p in modes.glob("*.mode")) if modes.is_dir() else []


def resolve_apertium_mode(pair: str, data_dir: str | Path | None = None) -> Path:
    """Find the mode file of ``pair``, accepting ISO 639-1 (``en-es``) and 639-3 (``eng-spa``) names.

    Args:
        pair: translation direction, e.g. ``"en-es"``, ``"eng-spa"``, ``"spa-eng"``, ``"eng-cat_valencia"``.
        data_dir: Apertium's data directory (default ``$APERTIUM_DATADIR`` or ``/usr/share/apertium``).

    Raises:
        ApertiumError: no such mode installed; the message names the Debian package to install, or says
            that no Debian package provides this direction.
    """
    modes = Path(data_dir or APERTIUM_DATA_DIR) / "modes"
    src, tgt, variant = _split_pair(pair)
    srcs = [src, _ISO1_TO_3.get(src, _ISO3_TO_1.get(src, src))]
    tgts = [tgt, _ISO1_TO_3.get(tgt, _ISO3_TO_1.get(tgt, tgt))]
    tried = list(dict.fromkeys(f"{s}-{t}{variant}" for s in srcs for t in tgts))
    for name in tried:
        if (modes / f"{name}.mode").is_file():
            return modes / f"{name}.mode"
    installed = installed_apertium_pairs(data_dir)
    have = f"Installed modes in {modes}: {', '.join(installed)}." if installed else f"No modes in {modes}."
    src3, tgt3 = _ISO1_TO_3.get(src, src), _ISO1_TO_3.get(tgt, tgt)
    entry = _DEBIAN_PACKAGES.get(frozenset({src3, tgt3}))
    if entry and any(d.split("-")[0] in (src, src3, _ISO3_TO_1.get(src3)) for d in entry[1]):
        fix = f"Install it with `apt-get install apertium {entry[0]}`."
    elif entry:
        fix = f"{entry[0]} only translates {', '.join(entry[1])}; no Debian package provides {pair}."
    else:
        fix = "No Debian package is known for this pair; see `apt-cache search apertium`."
    raise ApertiumError(f"Apertium pair {pair!r} not found (tried {', '.join(tried)}). {fix} {have}")


def _escape_stream(text: str) -> str:
    return _STREAM_SPECIAL.sub(r"\\\1", text)


def _collapse(text: str) -> str:
    return " ".join(text.split())


class _Markup:
    """One html-mode sentence: stream text with word-bound blanks, and the tags to write back."""

    def __init__(self, stream: str, tags: list[tuple[str, str]], plain: str):
        self.stream, self.tags, self.plain = stream, tags, plain


def _deformat_html(text: str, where: str) -> _Markup:
    """HTML fragment -> Apertium stream with ``[[t:N]]…[[/]]`` word-bound blanks (N indexes ``tags``)."""
    out: list[str] = []
    plain: list[str] = []
    tags: list[tuple[str, str]] = []
    pos = 0
    open_tag: tuple[str, str, int] | None = None  # (name, tag text, start index in out)
    for m in _HTML_TAG.finditer(text):
        chunk = html.unescape(text[pos : m.start()])
        out.append(_escape_stream(chunk))
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
            out.append(inner + "[" + _escape_stream(open_tag[1] + m.group(0)) + "]")
        open_tag = None
    if open_tag is not None:
        raise ValueError(f"{where}: tag {open_tag[1]!r} is never closed.")
    chunk = html.unescape(text[pos:])
    out.append(_escape_stream(chunk))
    plain.append(chunk)
    return _Markup(_collapse("".join(out)), tags, "".join(plain))


def _parse_stream(chunk: str, source_plain: str, stats: Counter[str]) -> list[tuple[int | None, str, bool]]:
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


def _reformat(
    pieces: list[tuple[int | None, str, bool]], tags: list[tuple[str, str]] | None
) -> tuple[str, str]:
    """Pieces -> (output text, plain text without markup). ``tags`` is ``None`` in plain mode."""
    if tags is None:
        text = _collapse("".join(p[1] for p in pieces))
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
    return _collapse("".join(out)), _collapse("".join(plain))


class ApertiumTranslator:
    """Debian Apertium run as a subprocess, one process per batch, sentence boundaries guaranteed.

    See the module docstring for how sentences are kept apart and how markup is carried. Statistics of the
    last :meth:`translate` call are in ``stats`` (``sentences``, ``empty_inputs``, ``batches``,
    ``surplus_chunks``, ``digit_mismatch``, ``unknown_marks_stripped``, ``markup_lost``,
    ``whitespace_normalised``); mismatched digits are logged, not fatal: Apertium
    rewrites some numbers (``19th century`` -> ``siglo XIX``; 2 of the 14,042 CoNLL-2003 train sentences).

    Args:
        pair: direction, ``"en-es"`` or ``"eng-spa"`` style (see :func:`resolve_apertium_mode`).
        markup: ``"none"`` for plain text, ``"html"`` for HTML fragments with paired inline tags.
        batch_size: sentences per engine run (each run reloads the transducers, ~0.1-0.5 s).
        progress: tqdm bar over batches; ``None`` shows it only on a terminal.
        data_dir: Apertium's data directory (default ``$APERTIUM_DATADIR`` or ``/usr/share/apertium``).

    Raises:
        ApertiumError: Apertium or the pair is not installed (naming the Debian package to install).
    """

    def __init__(
        self,
        pair: str,
        markup: Literal["none", "html"] = "none",
        batch_size: int = 2000,
        progress: bool | None = None,
        data_dir: str | Path | None = None,
    ):
        if markup not in ("none", "html"):
            raise ValueError(f"markup must be 'none' or 'html', got {markup!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if shutil.which("apertium-wblank-mode") is None:
            raise ApertiumError(
                "apertium-wblank-mode not found on PATH: install Apertium with `apt-get install apertium` "
                "(plus a pair package such as apertium-eng-spa)."
            )
        self.mode_file = resolve_apertium_mode(pair, data_dir)
        self.pair = self.mode_file.stem
        self.markup = markup
        self.batch_size = batch_size
        self.progress = progress
        self.name = f"apertium-{self.pair}" + ("-html" if markup == "html" else "")
        self.stats: Counter[str] = Counter()
        self.last_seconds = 0.0  # wall time of the last translate() call
        self._script: str | None = None
        self._key: dict | None = None

    def _pipeline(self) -> str:
        if self._script is None:
            res = subprocess.run(
                ["apertium-wblank-mode", "-z", str(self.mode_file)], capture_output=True, text=True
            )
            if res.returncode != 0 or not res.stdout.strip():
                raise ApertiumError(
                    f"`apertium-wblank-mode -z {self.mode_file}` failed (rc={res.returncode}): {res.stderr.strip()}"
                )
            # pipefail: a stage failing mid-pipe must fail the run, not just shorten the output.
            self._script = "set -o pipefail\n" + res.stdout
        return self._script

    def cache_key(self) -> dict:
        """Engine, mode, markup, options and the versions of Apertium and of the pair's data."""
        if self._key is None:
            self._key = {
                "engine": "apertium",
                "wrapper_version": 1,
                "mode": self.pair,
                "markup": self.markup,
                "unknown_marks": "none",
                "apertium": _apertium_version(),
                "data": _package_version(self.mode_file),
            }
        return dict(self._key)

    def translate(self, texts: Sequence[str]) -> list[str]:
        """Translate ``texts`` (plain text or HTML fragments, per ``markup``); one output per input.

        Empty or whitespace-only inputs give ``""`` without running the engine (counted ``empty_inputs``).

        Raises:
            ValueError: an input contains ``\\0`` or (html mode) malformed markup; names the input index.
            ApertiumError: the engine failed or returned a chunk count that cannot be matched to the inputs.
        """
        self.stats = Counter()
        results = [""] * len(texts)
        todo: list[int] = []
        prepared: list[_Markup] = []
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"input {i}: expected str, got {type(text).__name__}")
            if "\0" in text:
                raise ValueError(f"input {i} contains a NUL character, which Apertium uses as separator.")
            if not text.strip():
                self.stats["empty_inputs"] += 1
                continue
            if _collapse(text) != text:
                self.stats["whitespace_normalised"] += 1
            if self.markup == "html":
                prepared.append(_deformat_html(text, f"input {i}"))
            else:
                prepared.append(_Markup(_escape_stream(_collapse(text)), [], text))
            todo.append(i)
        batches = [
            range(s, min(s + self.batch_size, len(todo))) for s in range(0, len(todo), self.batch_size)
        ]
        start = time.perf_counter()
        bar = tqdm(
            batches, desc=f"apertium {self.pair}", unit="batch", disable=not _show_progress(self.progress)
        )
        for b, batch in enumerate(bar):
            outputs = self._run_batch([prepared[j].stream for j in batch], b)
            for j, chunk in zip(batch, outputs, strict=True):
                item = prepared[j]
                pieces = _parse_stream(chunk, item.plain, self.stats)
                text, plain = _reformat(pieces, item.tags if self.markup == "html" else None)
                if item.tags:
                    seen = {p[0] for p in pieces if p[0] is not None}
                    self.stats["markup_lost"] += len(set(range(len(item.tags))) - seen)
                if Counter(_DIGITS.findall(item.plain)) != Counter(_DIGITS.findall(plain)):
                    self.stats["digit_mismatch"] += 1
                    log.debug(
                        "Apertium %s changed the digits of input %d: %r -> %r",
                        self.pair,
                        todo[j],
                        item.plain,
                        plain,
                    )
                results[todo[j]] = text
        self.stats["sentences"] = len(texts)
        self.stats["batches"] = len(batches)
        elapsed = time.perf_counter() - start
        self.last_seconds = elapsed
        if todo:
            log.info(
                "Apertium %s: %d sentences in %.1f s (%.0f/s); %s",
                self.pair,
                len(todo),
                elapsed,
                len(todo) / max(elapsed, 1e-9),
                dict(self.stats),
            )
        if self.stats["digit_mismatch"]:
            log.warning(
                "Apertium %s changed the digits of %d of %d sentences (e.g. '19th century' -> 'siglo XIX'); "
                "enable DEBUG logging for %s to see them.",
                self.pair,
                self.stats["digit_mismatch"],
                len(todo),
                __name__,
            )
        return results

    def _run_batch(self, streams: list[str], batch_no: int) -> list[str]:
        data = "".join(s + "\n\0" for s in streams).encode("utf-8")
        env = {**os.environ, "LC_ALL": "C.UTF-8"}
        res = subprocess.run(
            ["bash", "-c", self._pipeline(), "apertium-pipeline", "-n", ""],
            input=data,
            capture_output=True,
            env=env,
        )
        stderr = res.stderr.decode("utf-8", "replace").strip()
        if res.returncode != 0:
            raise ApertiumError(
                f"Apertium {self.pair} failed on batch {batch_no} (rc={res.returncode}): {stderr[-2000:]}"
            )
        if stderr:
            # e.g. eng-cat's harmless "index > limit" transfer warning.
            log.debug("Apertium %s stderr on batch %d: %s", self.pair, batch_no, stderr[-2000:])
        chunks = res.stdout.decode("utf-8").split("\0")
        if len(chunks) < len(streams):
            raise ApertiumError(
                f"Apertium {self.pair} returned {len(chunks)} chunks for {len(streams)} sentences in batch "
                f"{batch_no}; sentence boundaries were lost. stderr: {stderr[-2000:]!r}"
            )
        surplus = chunks[len(streams) :]
        if any(c.strip() for c in surplus):
            raise ApertiumError(
                f"Apertium {self.pair} returned {len(chunks)} chunks for {len(streams)} sentences in batch "
                f"{batch_no} and the surplus is not empty ({[c for c in surplus if c.strip()][:3]!r}); "
                "outputs cannot be matched to inputs."
            )
        self.stats["surplus_chunks"] += len(surplus)
        return chunks[: len(streams)]


def _apertium_version() -> str | None:
    try:
        res = subprocess.run(["apertium", "-V"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() or None


def _package_version(mode_file: Path) -> dict:
    """Debian package and version owning the mode file; falls back to the mode file's sha256."""
    info: dict[str, Any] = {"mode_sha256": hashlib.sha256(mode_file.read_bytes()).hexdigest()}
    try:
        owner = subprocess.run(
            ["dpkg-query", "-S", str(mode_file)], capture_output=True, text=True, timeout=30
        )
        if owner.returncode == 0 and ":" in owner.stdout:
            pkg = owner.stdout.split(":", 1)[0].strip()
            ver = subprocess.run(
                ["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True, text=True, timeout=30
            )
            info.update(package=pkg, version=ver.stdout.strip() or None)
    except (OSError, subprocess.SubprocessError):
        pass
    return info


# --------------------------------------------------------------------------------------------- HF seq2seq


_HF_DTYPES = ("float16", "bfloat16", "float32")  # the dtypes a config can name for an HF translator


class HFSeq2SeqTranslator:
    """Any Hugging Face seq2seq model (NLLB-200, M2M100, mBART-50, Marian), batched, GPU when available.

    Language codes: ``tokenizer.src_lang`` is set to ``src_lang`` when the tokenizer has that attribute;
    the target language is forced as the first generated token when the tokenizer knows it (M2M100:
    ``get_lang_id(tgt_lang)``; NLLB / mBART: ``tgt_lang`` is a token such as ``"spa_Latn"``). Marian
    models are single-direction and need neither (a Marian multi-target model needs ``>>spa<<`` prefixes in
    the input text instead). The model is loaded on the first :meth:`translate` call.

    Args:
        model_name_or_path: hub id or local directory.
        src_lang: source language code in the model's convention (``"eng_Latn"`` for NLLB, ``"en"`` for
            M2M100; anything for Marian).
        tgt_lang: target language code, same convention.
        batch_size: sentences per ``generate`` call; sentences are sorted by length to limit padding.
        num_beams: beam width.
        max_length: maximum source and generated length in tokens (longer sources are truncated and counted).
        device: ``"cuda"``, ``"cpu"``, ...; ``None`` picks CUDA when available.
        dtype: ``"float16"``, ``"bfloat16"``, ``"float32"`` or a torch dtype; ``None`` keeps the checkpoint's.
        progress: tqdm bar over batches; ``None`` shows it only on a terminal.
    """

    def __init__(
        self,
        model_name_or_path: str | Path,
        src_lang: str,
        tgt_lang: str,
        batch_size: int = 16,
        num_beams: int = 4,
        max_length: int = 256,
        device: str | None = None,
        dtype: Any = None,
        progress: bool | None = None,
    ):
        if batch_size < 1 or num_beams < 1 or max_length < 1:
            raise ValueError("batch_size, num_beams and max_length must all be >= 1")
        if isinstance(dtype, str) and dtype.removeprefix("torch.") not in _HF_DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(_HF_DTYPES)} (or null), got {dtype!r}")
        self.model_name_or_path = str(model_name_or_path)
        self.src_lang, self.tgt_lang = src_lang, tgt_lang
        self.batch_size, self.num_beams, self.max_length = batch_size, num_beams, max_length
        self._device, self._dtype = device, dtype
        self.progress = progress
        self.name = f"hf-{Path(self.model_name_or_path).name}-{src_lang}-{tgt_lang}"
        self.stats: Counter[str] = Counter()
        self._model: Any = None
        self._tokenizer: Any = None
        self._forced_bos: int | None = None

    def _dtype_name(self) -> str | None:
        if self._dtype is None:
            return None
        return str(self._dtype).removeprefix("torch.")

    def cache_key(self) -> dict:
        """Model (with its revision or local-file fingerprint), languages, decoding options, dtype."""
        return {
            "engine": "hf-seq2seq",
            "model": self.model_name_or_path,
            "model_fingerprint": _model_fingerprint(self.model_name_or_path),
            "src_lang": self.src_lang,
            "tgt_lang": self.tgt_lang,
            "num_beams": self.num_beams,
            "max_length": self.max_length,
            "dtype": self._dtype_name(),
        }

    def _load(self) -> None:
        if self._model is not None:
            return
        import torch  # noqa: PLC0415
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer  # noqa: PLC0415

        device = self._device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = self._dtype
        if isinstance(dtype, str):
            dtype = getattr(torch, dtype.removeprefix("torch."))
        tok = AutoTokenizer.from_pretrained(self.model_name_or_path)
        if hasattr(tok, "src_lang"):
            tok.src_lang = self.src_lang
        kwargs = {"dtype": dtype} if dtype is not None else {}
        model = AutoModelForSeq2SeqLM.from_pretrained(self.model_name_or_path, **kwargs).to(device).eval()
        self._forced_bos = None
        if hasattr(tok, "get_lang_id"):  # M2M100
            self._forced_bos = tok.get_lang_id(self.tgt_lang)
        elif self.tgt_lang in tok.get_vocab():  # NLLB, mBART-50: language codes are tokens
            self._forced_bos = tok.convert_tokens_to_ids(self.tgt_lang)
        else:
            log.info(
                "%s: tokenizer has no language code %r; not forcing a target language (fine for Marian).",
                self.model_name_or_path,
                self.tgt_lang,
            )
        self._model, self._tokenizer, self.device = model, tok, device

    def translate(self, texts: Sequence[str]) -> list[str]:
        """Translate ``texts`` in length-sorted batches; returns one string per input in input order."""
        import torch  # noqa: PLC0415

        self.stats = Counter(sentences=len(texts))
        if not texts:
            return []
        self._load()
        tok, model = self._tokenizer, self._model
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
        results: list[str] = [""] * len(texts)
        batches = [order[s : s + self.batch_size] for s in range(0, len(order), self.batch_size)]
        gen_kwargs: dict[str, Any] = {"num_beams": self.num_beams, "max_length": self.max_length}
        if self._forced_bos is not None:
            gen_kwargs["forced_bos_token_id"] = self._forced_bos
        bar = tqdm(
            batches, desc=f"translate {self.name}", unit="batch", disable=not _show_progress(self.progress)
        )
        with torch.inference_mode():
            for batch in bar:
                src = [texts[i] for i in batch]
                lengths = [len(ids) for ids in tok(src, add_special_tokens=True)["input_ids"]]
                self.stats["truncated"] += sum(n > self.max_length for n in lengths)
                enc = tok(src, return_tensors="pt", padding=True, truncation=True, max_length=self.max_length)
                enc = {k: v.to(model.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
                out = model.generate(**enc, **gen_kwargs)
                for i, text in zip(batch, tok.batch_decode(out, skip_special_tokens=True), strict=True):
                    results[i] = text.strip()
        self.stats["batches"] = len(batches)
        if self.stats["truncated"]:
            log.warning(
                "%s: %d of %d inputs were longer than max_length=%d tokens and were truncated.",
                self.name,
                self.stats["truncated"],
                len(texts),
                self.max_length,
            )
        return results


def _model_fingerprint(name_or_path: str) -> dict | None:
    """Cheap identity of a local model directory: config hash and file sizes (hashing GBs of weights is not).

    Hub ids get ``None``: the name is the identity. Reading the cached snapshot's commit would change the
    key between the first (downloading) run and later ones; use a local directory to pin a revision.
    """
    path = Path(name_or_path)
    if not path.is_dir():
        return None
    files = sorted(p for p in path.iterdir() if p.is_file())
    config = path / "config.json"
    return {
        "config_sha256": hashlib.sha256(config.read_bytes()).hexdigest() if config.is_file() else None,
        "files": {p.name: p.stat().st_size for p in files},
    }


# --------------------------------------------------------------------------------------------- file


class FileTranslator:
    """Pre-translated text looked up by source text.

    Format: TSV, one ``source<TAB>translation`` per line (UTF-8, exactly one tab), or — for a path ending in
    ``.jsonl`` — one ``{"source": ..., "translation": ...}`` object per line (use this when texts contain tabs).
    Lookup by source rather than by line order, so the file works with caching, deduplication and subsets.
    The same source listed twice with different translations is an error.

    Args:
        path: the file.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: a malformed line (file and line number given) or conflicting duplicate sources.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"Translation file not found: {self.path}")
        self.name = f"file-{self.path.name}"
        self.table: dict[str, str] = {}
        jsonl = self.path.suffix == ".jsonl"
        with self.path.open(encoding="utf-8") as handle:
            for line_no, raw in enumerate(handle, start=1):
                line = raw.rstrip("\n").rstrip("\r")
                if not line.strip():
                    continue
                if jsonl:
                    try:
                        rec = json.loads(line)
                        src, tgt = rec["source"], rec["translation"]
                    except (json.JSONDecodeError, KeyError, TypeError) as err:
                        raise ValueError(
                            f"{self.path}:{line_no}: expected a JSON object with 'source' and 'translation' ({err})"
                        ) from err
                else:
                    cols = line.split("\t")
                    if len(cols) != 2:
                        raise ValueError(
                            f"{self.path}:{line_no}: expected 'source<TAB>translation' (2 columns), found "
                            f"{len(cols)}; use a .jsonl file for texts that contain tabs."
                        )
                    src, tgt = cols
                if src in self.table and self.table[src] != tgt:
                    raise ValueError(
                        f"{self.path}:{line_no}: source {src!r} appears again with a different translation."
                    )
                self.table[src] = tgt
        self._sha256 = hashlib.sha256(self.path.read_bytes()).hexdigest()

    def cache_key(self) -> dict:
        """The file's path and content hash."""
        return {"engine": "file", "path": str(self.path.resolve()), "sha256": self._sha256}

    def translate(self, texts: Sequence[str]) -> list[str]:
        """Look up every text.

        Raises:
            KeyError: some texts are not in the file (count and first examples given).
        """
        missing = [t for t in texts if t not in self.table]
        if missing:
            raise KeyError(
                f"{len(missing)} of {len(texts)} texts have no translation in {self.path} "
                f"(first: {missing[:3]!r}). Add 'source<TAB>translation' lines for them."
            )
        return [self.table[t] for t in texts]


# --------------------------------------------------------------------------------------------- cache


class TranslationCache:
    """Content-addressed per-sentence translations in sqlite3, one database per translator key.

    Files: ``root/<sha256(canonical cache_key)[:24]>.sqlite``; rows are keyed by
    ``sha256(canonical cache_key + "\\n" + text)``. sqlite gives atomic, concurrent-safe appends (WAL mode).

    Args:
        root: directory of the databases (default ``xner.paths.cache_dir() / "translations"``).
    """

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else cache_dir() / "translations"

    def db_path(self, key: dict) -> Path:
        """The database file for a translator key."""
        return self.root / f"{hashlib.sha256(canonical_json(key).encode()).hexdigest()[:24]}.sqlite"

    @staticmethod
    def text_key(key: dict, text: str) -> str:
        """sha256 of the translator key and the source text."""
        return hashlib.sha256((canonical_json(key) + "\n" + text).encode()).hexdigest()

    def _connect(self, key: dict) -> sqlite3.Connection:
        self.root.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.db_path(key), timeout=60)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT)")
        conn.execute("CREATE TABLE IF NOT EXISTS tr (h TEXT PRIMARY KEY, source TEXT, translation TEXT)")
        conn.execute("INSERT OR IGNORE INTO meta VALUES ('translator', ?)", (canonical_json(key),))
        conn.commit()
        return conn

    def get_many(self, key: dict, texts: Iterable[str]) -> dict[str, str]:
        """Cached translations of those ``texts`` that are in the cache (text -> translation)."""
        texts = list(dict.fromkeys(texts))
        if not texts or not self.db_path(key).is_file():
            return {}
        found: dict[str, str] = {}
        with closing(self._connect(key)) as conn:
            for s in range(0, len(texts), 500):
                part = {self.text_key(key, t): t for t in texts[s : s + 500]}
                marks = ",".join("?" * len(part))
                for h, tgt in conn.execute(f"SELECT h, translation FROM tr WHERE h IN ({marks})", list(part)):
                    found[part[h]] = tgt
        return found

    def put_many(self, key: dict, pairs: Iterable[tuple[str, str]]) -> None:
        """Store ``(source, translation)`` pairs (one transaction)."""
        rows = [(self.text_key(key, s), s, t) for s, t in pairs]
        with closing(self._connect(key)) as conn, conn:
            conn.executemany("INSERT OR REPLACE INTO tr VALUES (?, ?, ?)", rows)


class CachedTranslator:
    """Wrap a translator with a :class:`TranslationCache`: only texts never translated before reach it.

    Duplicated inputs are translated once. Counters ``hits`` (inputs served from the cache), ``misses``
    (distinct texts sent to the inner translator) and ``duplicates`` accumulate over calls. Misses are
    translated and stored in chunks of ``chunk_size``, so an interrupted run keeps what it finished.

    Args:
        inner: the translator.
        cache: the cache (default: :class:`TranslationCache` under ``cache_dir()``).
        chunk_size: distinct missing texts per inner call and commit.
    """

    def __init__(self, inner: Translator, cache: TranslationCache | None = None, chunk_size: int = 10_000):
        self.inner = inner
        self.cache = cache if cache is not None else TranslationCache()
        self.chunk_size = chunk_size
        self.name = inner.name
        self.hits = self.misses = self.duplicates = 0

    def cache_key(self) -> dict:
        """The inner translator's key (caching does not change the output)."""
        return self.inner.cache_key()

    def translate(self, texts: Sequence[str]) -> list[str]:
        """Translate through the cache; one output per input, input order.

        Raises:
            ApertiumError / ValueError / KeyError: whatever the inner translator raises; a wrong output count
                from it raises ValueError.
        """
        key = self.inner.cache_key()
        unique = list(dict.fromkeys(texts))
        self.duplicates += len(texts) - len(unique)
        found = self.cache.get_many(key, unique)
        missing = [t for t in unique if t not in found]
        self.hits += sum(t in found for t in texts)
        self.misses += len(missing)
        for s in range(0, len(missing), self.chunk_size):
            part = missing[s : s + self.chunk_size]
            out = self.inner.translate(part)
            if len(out) != len(part):
                raise ValueError(f"{self.inner.name} returned {len(out)} translations for {len(part)} texts")
            self.cache.put_many(key, zip(part, out, strict=True))
            found.update(zip(part, out, strict=True))
        new = set(missing)
        log.info(
            "%s: %d texts, %d served from the cache, %d distinct texts translated, %d duplicate inputs",
            self.name,
            len(texts),
            sum(t not in new for t in texts),
            len(missing),
            len(texts) - len(unique),
        )
        return [found[t] for t in texts]


# The translator kinds of pipeline configs (``{kind: apertium, pair: eng-spa}``); `python -m xner.pipeline
# --help` lists these names.
TRANSLATORS: dict[str, type] = {
    "apertium": ApertiumTranslator,
    "hf": HFSeq2SeqTranslator,
    "file": FileTranslator,
}


def make_translator(kind: str, *, cache: bool | str | Path = False, **kwargs: Any) -> Translator:
    """Build a translator from config values.

    Args:
        kind: ``"apertium"`` (:class:`ApertiumTranslator`), ``"hf"`` (:class:`HFSeq2SeqTranslator`) or
            ``"file"`` (:class:`FileTranslator`).
        cache: wrap in :class:`CachedTranslator`; ``True`` uses the default cache root, a path uses that root.
        **kwargs: the chosen class's arguments.

    Raises:
        ValueError: an unknown kind.
    """
    if kind not in TRANSLATORS:
        raise ValueError(f"Unknown translator kind {kind!r}; expected one of {', '.join(TRANSLATORS)}.")
    translator = TRANSLATORS[kind](**kwargs)
    if cache is False or cache is None:
        return translator
    root = None if cache is True else Path(cache)
    return CachedTranslator(translator, TranslationCache(root))
