"""Strict CoNLL reading and writing.

Format: one word per line, columns separated by whitespace, the word first and the tag last, a blank line
between sentences. ``-DOCSTART-`` lines (document boundaries) are skipped. Anything else that does not fit
raises :class:`ConllFormatError` naming the file and line, so broken data never trains a model silently.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from xner.labels import TAG_PATTERN, spans_to_tags, tags_to_spans
from xner.types import Sentence, Span

# Columns are separated by ASCII spaces and tabs only: str.split() would also cut at a no-break space
# (U+00A0) or other Unicode spaces *inside* a word ("New\xa0York" -> "New" + a stray column).
_COLUMN_SEP = re.compile(r"[ \t]+")


class ConllFormatError(ValueError):
    """A CoNLL file does not follow the expected format."""

    def __init__(self, path: str | Path, line_no: int | None, message: str):
        where = f"{path}:{line_no}" if line_no is not None else str(path)
        super().__init__(f"{where}: {message}")
        self.path, self.line_no = str(path), line_no


def read_conll(
    path: str | Path,
    *,
    allowed_tags: Iterable[str] | None = None,
    id_prefix: str | None = None,
    lang: str = "",
    domain: str = "",
    labelled: bool = True,
) -> list[Sentence]:
    """Read a CoNLL file into sentences.

    Args:
        path: the file.
        allowed_tags: when given, any other tag raises (e.g. the dataset's declared label set).
        id_prefix: prefix of sentence ids (default: the file path); ids are ``<prefix>:<index>``.
        lang: language code stored on each sentence.
        domain: domain name stored on each sentence.
        labelled: ``False`` reads one column (words only) and returns sentences without tags.

    Raises:
        FileNotFoundError: the file does not exist.
        ConllFormatError: a malformed line, an invalid or unknown tag, or a file without sentences.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CoNLL file not found: {path}. Check paths.data_dir (env XNER_DATA).")
    allowed = set(allowed_tags) if allowed_tags is not None else None
    prefix = id_prefix if id_prefix is not None else str(path)
    sentences: list[Sentence] = []
    tokens: list[str] = []
    tags: list[str] = []

    def flush() -> None:
        if tokens:
            sentences.append(
                Sentence(tokens, tags if labelled else None, f"{prefix}:{len(sentences)}", lang, domain)
            )
            tokens.clear()
            tags.clear()

    for line_no, raw in _numbered_lines(path):
        line = raw.rstrip("\n").rstrip("\r")
        if line_no == 1:
            line = line.lstrip("\ufeff")
        if not line.strip(" \t"):
            flush()
            continue
        columns = _COLUMN_SEP.split(line.strip(" \t"))
        if columns[0] == "-DOCSTART-":
            flush()
            continue
        if not labelled:
            tokens.append(columns[0])
            continue
        if len(columns) < 2:
            raise ConllFormatError(
                path,
                line_no,
                f"expected '<word> <tag>' but found {line!r} (one column). "
                "Each non-blank line needs a word and a tag separated by whitespace.",
            )
        tag = columns[-1]
        if not TAG_PATTERN.match(tag):
            raise ConllFormatError(
                path, line_no, f"malformed tag {tag!r} in {line!r}: expected 'O' or 'B-TYPE'/'I-TYPE'."
            )
        if allowed is not None and tag not in allowed:
            raise ConllFormatError(
                path,
                line_no,
                f"unknown tag {tag!r}; allowed tags are {sorted(allowed)}. "
                "Fix the file or declare the type in the dataset's label set / label_map.",
            )
        tokens.append(columns[0])
        tags.append(tag)
    flush()
    if not sentences:
        raise ConllFormatError(path, None, "no sentences found (empty file?).")
    return sentences


def _numbered_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Lines of a UTF-8 file with their 1-based numbers; a bad byte raises naming the line and column."""
    with path.open("rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            try:
                yield line_no, raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise ConllFormatError(
                    path,
                    line_no,
                    f"byte {raw[err.start : err.start + 1]!r} at column {err.start + 1} is not valid UTF-8 "
                    f"({raw[: err.start].decode('utf-8', 'replace')!r} precedes it). Re-encode the file as "
                    "UTF-8, e.g. `iconv -f latin1 -t utf-8 in.txt > out.txt`.",
                ) from None


def write_conll(
    path: str | Path, sentences: Sequence[Sentence], extra_columns: Sequence[Sequence[Sequence[str]]] = ()
) -> None:
    """Write sentences (word, tag[, extra columns...]) atomically.

    Args:
        path: output file; parent directories are created.
        sentences: sentences with tags (untagged sentences are written with ``O``).
        extra_columns: per column, per sentence, per word values (e.g. predicted tags), written after the tag.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for col in extra_columns:
        if len(col) != len(sentences):
            raise ValueError(f"extra column has {len(col)} sentences, expected {len(sentences)}")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            for k, sent in enumerate(sentences):
                tags = sent.tags or ("O",) * len(sent)
                cols = [c[k] for c in extra_columns]
                for c in cols:
                    if len(c) != len(sent):
                        raise ValueError(
                            f"sentence {sent.id}: extra column has {len(c)} values for {len(sent)} words"
                        )
                for i, (tok, tag) in enumerate(zip(sent.tokens, tags, strict=True)):
                    out.write(" ".join([tok, tag, *(c[i] for c in cols)]) + "\n")
                out.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


PREDICTION_COLUMNS = ("word", "gold", "predicted", "removed")


@dataclass
class PredictionsFile:
    """The columns of a predictions file, per sentence.

    Attributes:
        words: the words.
        gold: gold tags after the split's label mapping (what strict F1 is scored against).
        pred: predicted tags.
        removed: the optional 4th column: the gold entities the label mapping removed, with their original
            types (``B-DATE I-DATE``), ``O`` elsewhere; ``None`` for 3-column files.
    """

    words: list[list[str]]
    gold: list[list[str]]
    pred: list[list[str]]
    removed: list[list[str]] | None = None

    def removed_spans(self) -> list[tuple[Span, ...]] | None:
        """The removed gold entities per sentence (don't-care spans), or ``None`` without the 4th column."""
        if self.removed is None:
            return None
        return [tuple(tags_to_spans(tags)) for tags in self.removed]


def removed_tags(sentence: Sentence) -> list[str]:
    """The 4th column of a predictions file: ``sentence.ignore_spans`` as IOB2 tags (``O`` elsewhere)."""
    return spans_to_tags(sentence.ignore_spans, len(sentence))


def read_predictions_file(path: str | Path) -> PredictionsFile:
    """Read a predictions file written by xner: ``word gold predicted [removed]`` per line.

    Files with 3 columns (older runs) and with 4 are both read; every line of one file needs the same number.

    Raises:
        ConllFormatError: a line with another number of columns, or a malformed tag.
    """
    path = Path(path)
    rows: list[list[list[str]]] = [[]]
    width = None
    with path.open(encoding="utf-8") as handle:
        for line_no, raw in enumerate(handle, start=1):
            cols = raw.split()
            if not cols:
                if rows[-1]:
                    rows.append([])
                continue
            if len(cols) not in (3, 4) or (width is not None and len(cols) != width):
                expected = "'word gold predicted [removed]'" if width is None else f"{width} columns"
                raise ConllFormatError(
                    path,
                    line_no,
                    f"expected {expected} as on the lines before, found {raw.strip()!r}",
                )
            for tag in cols[1:]:
                if not TAG_PATTERN.match(tag):
                    raise ConllFormatError(path, line_no, f"malformed tag {tag!r} in {raw.strip()!r}")
            width = len(cols)
            rows[-1].append(cols)
    if not rows[-1]:
        rows.pop()
    columns = [[[c[i] for c in sent] for sent in rows] for i in range(width or 3)]
    return PredictionsFile(*columns[:3], columns[3] if width == 4 else None)


def read_predictions(path: str | Path) -> tuple[list[list[str]], list[list[str]], list[list[str]]]:
    """Read a predictions file written by xner (``word gold predicted [removed]`` per line).

    Returns:
        Words, gold tags and predicted tags, per sentence (the optional 4th column is read by
        :func:`read_predictions_file`).
    """
    data = read_predictions_file(path)
    return data.words, data.gold, data.pred
