"""Tables for terminals, logs and CSV files (no heavy imports, so command-line tools can use them)."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def write_csv(path: str | Path, rows: Sequence[Mapping[str, Any]], float_format: str | None = None) -> None:
    """Write dict rows as CSV; the columns are the union of the rows' keys, in the order first seen.

    Parent folders are created. With no rows nothing is written (a header-less file would only mislead).

    Args:
        path: the CSV file.
        rows: one dict per row; a key missing from a row leaves its cell empty.
        float_format: a format spec for float cells (e.g. ``".4f"``); ``None`` writes Python's ``str``.
    """
    if not rows:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for r in rows:
            if float_format is not None:
                r = {k: format(v, float_format) if isinstance(v, float) else v for k, v in r.items()}
            writer.writerow(r)


def format_table(rows: list[dict], columns: list[str], title: str = "") -> str:
    """A plain-text table: numbers right-aligned with one decimal, text left-aligned.

    Missing values (absent keys, ``None``, ``""``) print as blanks and do not change a column's alignment.

    Args:
        rows: one dict per row.
        columns: the keys to print, in order (also the header).
        title: an optional line above the table.
    """

    def cell(v: Any) -> str:
        if v is None:
            return ""
        return f"{v:.1f}" if isinstance(v, float) else str(v)

    def numeric(c: str) -> bool:
        values = [r.get(c) for r in rows if r.get(c) not in (None, "")]
        return bool(values) and all(isinstance(v, int | float) for v in values)

    body = [[cell(r.get(c, "")) for c in columns] for r in rows]
    right = [numeric(c) for c in columns]
    widths = [max(len(c), *(len(b[i]) for b in body)) if body else len(c) for i, c in enumerate(columns)]

    def line(values: list[str]) -> str:
        return "  ".join(
            v.rjust(w) if r else v.ljust(w) for v, w, r in zip(values, widths, right, strict=True)
        )

    lines = [title] if title else []
    lines += [line(columns), "  ".join("-" * w for w in widths)] + [line(b) for b in body]
    return "\n".join(line_.rstrip() for line_ in lines)
