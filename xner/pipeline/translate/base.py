"""What every translator is (:class:`Translator`), and the progress-bar rule the translators share."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Protocol, runtime_checkable


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


def show_progress(progress: bool | None) -> bool:
    """Whether to show a progress bar; ``None`` means: only when stderr is a terminal."""
    if progress is None:
        return sys.stderr.isatty()
    return progress
