"""JSON lines: one JSON object per line (projected sets, stage-cache entries, prediction output)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line number, object)`` for each non-blank line of ``path``.

    Raises:
        ValueError: a line that is not a JSON object (file and line number given).
    """
    path = Path(path)
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{line_no}: not valid JSON ({err})") from err
            if not isinstance(record, dict):
                raise ValueError(f"{path}:{line_no}: expected a JSON object, found {type(record).__name__}")
            yield line_no, record
