"""Apertium (offline, rule-based MT) as a :class:`~xner.pipeline.translate.Translator`: pairs and the engine.

How sentence boundaries are kept: one sentence per line is *not* safe, the transfer rules can move words
between lines. So each sentence is Apertium-stream-escaped, terminated by ``\\n\\0``, and the pair's
pipeline (printed by ``apertium-wblank-mode -z MODE``) runs in null-flush mode, where every stage flushes and
resets at ``\\0``. The output is split on ``\\0``; the engine appends a few extra empty chunks, which are
checked to be empty. The ``apertium`` wrapper script is not used (its deformatters drop the ``\\0``
separators); :mod:`xner.pipeline.translate.apertium_stream` is the deformatter/reformatter instead.

Unknown words: the pipeline runs with the generator option ``-n`` (what ``apertium -u`` passes), so no
``*word`` / ``#word`` / ``@word`` marks are printed; any mark that still appears is stripped and counted.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from tqdm.auto import tqdm

from xner.pipeline.names import (
    CONNECTORS,
    inflected_proper_nouns,
    lowercase_vocabulary,
    name_runs,
)
from xner.pipeline.translate.apertium_stream import (
    ApertiumError,
    Markup,
    collapse,
    deformat_html,
    escape_stream,
    parse_stream,
    reformat,
)
from xner.pipeline.translate.base import show_progress

log = logging.getLogger(__name__)

APERTIUM_DATA_DIR = Path(os.environ.get("APERTIUM_DATADIR", "/usr/share/apertium"))

_DIGITS = re.compile(r"\d+")
KEEP_NAMES = ("none", "capitalised", "uninflected")  # the keep_names policies (True means "capitalised")

# ISO 639-1 <-> 639-3 for the languages of the Debian pairs (mode names mix both styles).
_ISO1_TO_3 = {
    "en": "eng",
    "es": "spa",
    "ca": "cat",
    "gl": "glg",
    "eo": "epo",
    "eu": "eus",
    "is": "isl",
    "mk": "mkd",
}
_ISO3_TO_1 = {v: k for k, v in _ISO1_TO_3.items()}

# Debian package per (unordered) language pair and the directions (modes) it installs; apertium-eu-en,
# apertium-isl-eng and apertium-mkd-eng translate into English only (translate-test).
_DEBIAN_PACKAGES: dict[frozenset[str], tuple[str, tuple[str, ...]]] = {
    frozenset({"eng", "spa"}): ("apertium-eng-spa", ("eng-spa", "spa-eng")),
    frozenset({"eng", "cat"}): ("apertium-eng-cat", ("eng-cat", "cat-eng")),
    frozenset({"eng", "glg"}): ("apertium-en-gl", ("en-gl", "gl-en")),
    frozenset({"eng", "epo"}): ("apertium-eo-en", ("en-eo", "eo-en")),
    frozenset({"eng", "eus"}): ("apertium-eu-en", ("eu-en",)),
    frozenset({"spa", "cat"}): ("apertium-spa-cat", ("spa-cat", "cat-spa")),
    frozenset({"eng", "isl"}): ("apertium-isl-eng", ("isl-eng",)),
    frozenset({"eng", "mkd"}): ("apertium-mkd-eng", ("mkd-eng",)),
    frozenset({"eng", "hbs"}): ("apertium-hbs-eng", ("hbs-eng", "eng-hbs")),
}


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


class ApertiumTranslator:
    """Debian Apertium run as a subprocess, one process per batch, sentence boundaries guaranteed.

    See the module docstring for how sentences are kept apart and :mod:`xner.pipeline.translate.apertium_stream`
    for how markup is carried. Statistics of the last :meth:`translate` call are in ``stats`` (``sentences``,
    ``empty_inputs``, ``batches``, ``surplus_chunks``, ``digit_mismatch``, ``unknown_marks_stripped``,
    ``markup_lost``, ``whitespace_normalised``); mismatched digits are logged, not fatal: Apertium rewrites some
    numbers (``19th century`` -> ``siglo XIX``; 2 of the 14,042 CoNLL-2003 train sentences).

    Args:
        pair: direction, ``"en-es"`` or ``"eng-spa"`` style (see :func:`resolve_apertium_mode`).
        markup: ``"none"`` for plain text, ``"html"`` for HTML fragments with paired inline tags.
        batch_size: sentences per engine run (each run reloads the transducers, ~0.1-0.5 s).
        progress: tqdm bar over batches; ``None`` shows it only on a terminal.
        data_dir: Apertium's data directory (default ``$APERTIUM_DATADIR`` or ``/usr/share/apertium``).
        keep_names: pass words that look like names through untranslated, as Apertium's ``apertium-notrans``
            does (each name goes through the engine as a blank): ``"capitalised"`` (or ``True``) keeps every
            name-like run (:mod:`xner.pipeline.names`); ``"uninflected"`` leaves out the words
            the pair's analyser reads as inflected proper nouns ("Bilboko", "Reykjavíkur"), whose case
            endings the MT turns into English prepositions. Plain text only; counted in ``stats`` as
            ``kept_names``, ``kept_words`` and ``inflected_names_translated``.

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
        keep_names: str | bool = "none",
    ):
        keep_names = {True: "capitalised", False: "none", None: "none"}.get(keep_names, keep_names)  # type: ignore[call-overload]
        if keep_names not in KEEP_NAMES:
            raise ValueError(f"keep_names must be one of {', '.join(KEEP_NAMES)}, got {keep_names!r}")
        if markup not in ("none", "html"):
            raise ValueError(f"markup must be 'none' or 'html', got {markup!r}")
        if keep_names != "none" and markup != "none":
            raise ValueError(
                "keep_names works on plain text (markup='none'); in html mode wrap the words to keep in "
                "elements of your own instead."
            )
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
        self.keep_names = keep_names
        src = _split_pair(self.pair)[0]
        self._connectors = CONNECTORS.get(_ISO1_TO_3.get(src, src), frozenset())  # of the source language
        self.name = (
            f"apertium-{self.pair}"
            + ("-html" if markup == "html" else "")
            + ("" if keep_names == "none" else f"-keep-{keep_names}")
        )
        self.stats: Counter[str] = Counter()
        self.last_seconds = 0.0  # wall time of the last translate() call
        self._script: str | None = None
        self._key: dict | None = None

    def _pipeline(self) -> str:
        if self._script is None:
            res = subprocess.run(
                ["apertium-wblank-mode", "-z", str(self.mode_file)],
                capture_output=True,
                text=True,
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
            if self.keep_names != "none":  # only when on, so that caches of plain translations stay valid
                self._key["keep_names"] = f"{self.keep_names}-v2"
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
        prepared: list[Markup] = []
        keeping = self.keep_names != "none"
        lowercase = lowercase_vocabulary(t.split() for t in texts) if keeping else set()
        inflected = self._inflected_names(texts) if self.keep_names == "uninflected" else {}
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"input {i}: expected str, got {type(text).__name__}")
            if "\0" in text:
                raise ValueError(f"input {i} contains a NUL character, which Apertium uses as separator.")
            if not text.strip():
                self.stats["empty_inputs"] += 1
                continue
            if collapse(text) != text:
                self.stats["whitespace_normalised"] += 1
            if self.markup == "html":
                prepared.append(deformat_html(text, f"input {i}"))
            elif keeping:
                stream = self._stream_keeping_names(text, lowercase, inflected.get(i, set()))
                prepared.append(Markup(stream, [], text))
            else:
                prepared.append(Markup(escape_stream(collapse(text)), [], text))
            todo.append(i)
        batches = [
            range(s, min(s + self.batch_size, len(todo))) for s in range(0, len(todo), self.batch_size)
        ]
        start = time.perf_counter()
        bar = tqdm(
            batches,
            desc=f"apertium {self.pair}",
            unit="batch",
            disable=not show_progress(self.progress),
        )
        for b, batch in enumerate(bar):
            outputs = self._run_batch([prepared[j].stream for j in batch], b)
            for j, chunk in zip(batch, outputs, strict=True):
                item = prepared[j]
                pieces = parse_stream(chunk, item.plain, self.stats)
                text, plain = reformat(pieces, item.tags if self.markup == "html" else None)
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

    def _stream_keeping_names(self, text: str, lowercase: set[str], inflected: set[int]) -> str:
        """Plain text -> stream in which each name-like run is a superblank, which the engine copies as is."""
        tokens = text.split()
        parts = [escape_stream(t) for t in tokens]
        self.stats["inflected_names_translated"] += len(inflected)
        for start, end in reversed(name_runs(tokens, lowercase, inflected, self._connectors)):
            parts[start:end] = ["[" + escape_stream(" ".join(tokens[start:end])) + "]"]
            self.stats["kept_names"] += 1
            self.stats["kept_words"] += end - start
        return " ".join(parts)

    def _inflected_names(self, texts: Sequence[str]) -> dict[int, set[int]]:
        """Per input index, the tokens the pair's analyser (the pipeline's first stage) reads as inflected names."""
        analyser = "set -o pipefail\n" + self._pipeline().split("\n", 1)[1].split(" | ", 1)[0]
        todo = [i for i, t in enumerate(texts) if t.strip()]
        out: dict[int, set[int]] = {}
        for s in range(0, len(todo), self.batch_size):
            batch = todo[s : s + self.batch_size]
            streams = [escape_stream(collapse(texts[i])) for i in batch]
            chunks, _ = self._run_script(analyser, streams, f"analyser batch {s // self.batch_size}")
            for i, chunk in zip(batch, chunks, strict=True):
                out[i] = inflected_proper_nouns(chunk.strip("\n"), texts[i].split())
        return out

    def _run_batch(self, streams: list[str], batch_no: int) -> list[str]:
        chunks, surplus = self._run_script(self._pipeline(), streams, f"batch {batch_no}")
        self.stats["surplus_chunks"] += surplus
        return chunks

    def _run_script(self, script: str, streams: list[str], what: str) -> tuple[list[str], int]:
        """Run an engine script over null-separated streams: exactly one output chunk per stream (checked),
        and the number of empty surplus chunks the engine appended."""
        data = "".join(s + "\n\0" for s in streams).encode("utf-8")
        env = {**os.environ, "LC_ALL": "C.UTF-8"}
        res = subprocess.run(
            ["bash", "-c", script, "apertium-pipeline", "-n", ""],
            input=data,
            capture_output=True,
            env=env,
        )
        stderr = res.stderr.decode("utf-8", "replace").strip()
        if res.returncode != 0:
            raise ApertiumError(
                f"Apertium {self.pair} failed on {what} (rc={res.returncode}): {stderr[-2000:]}"
            )
        if stderr:
            # e.g. eng-cat's harmless "index > limit" transfer warning.
            log.debug("Apertium %s stderr on %s: %s", self.pair, what, stderr[-2000:])
        chunks = res.stdout.decode("utf-8").split("\0")
        if len(chunks) < len(streams):
            raise ApertiumError(
                f"Apertium {self.pair} returned {len(chunks)} chunks for {len(streams)} sentences in {what}; "
                f"sentence boundaries were lost. stderr: {stderr[-2000:]!r}"
            )
        surplus = chunks[len(streams) :]
        if any(c.strip() for c in surplus):
            raise ApertiumError(
                f"Apertium {self.pair} returned {len(chunks)} chunks for {len(streams)} sentences in {what} "
                f"and the surplus is not empty ({[c for c in surplus if c.strip()][:3]!r}); "
                "outputs cannot be matched to inputs."
            )
        return chunks[: len(streams)], len(surplus)


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
            ["dpkg-query", "-S", str(mode_file)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if owner.returncode == 0 and ":" in owner.stdout:
            pkg = owner.stdout.split(":", 1)[0].strip()
            ver = subprocess.run(
                ["dpkg-query", "-W", "-f=${Version}", pkg],
                capture_output=True,
                text=True,
                timeout=30,
            )
            info.update(package=pkg, version=ver.stdout.strip() or None)
    except (OSError, subprocess.SubprocessError):
        pass
    return info
