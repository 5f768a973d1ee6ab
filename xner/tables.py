"""Plain-text tables for terminals and logs (no heavy imports, so command-line tools can use them)."""

from __future__ import annotations

from typing import Any


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
