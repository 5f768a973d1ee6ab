"""Pre-translated text (TSV or JSONL) as a translator."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path


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
        return {
            "engine": "file",
            "path": str(self.path.resolve()),
            "sha256": self._sha256,
        }

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
