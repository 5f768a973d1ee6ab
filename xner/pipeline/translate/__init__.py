"""Machine translation behind one protocol: Apertium (offline, rule-based), HF seq2seq models, files.

Every translator has a ``name``, ``translate(texts) -> list[str]`` (one output per input, input order) and
``cache_key()`` (a JSON-able dict of everything that determines the output; the pipeline's stage cache keys
translations by it). Modules:

- :mod:`~xner.pipeline.translate.apertium`: Apertium pairs and the engine, run in null-flush mode so that
  sentence boundaries survive; :mod:`~xner.pipeline.translate.apertium_stream` is its own
  deformatter/reformatter (plain text, or flat HTML whose tags follow the words through reordering);
- :mod:`~xner.pipeline.translate.hf`: any Hugging Face seq2seq model, batched, on a GPU when there is one;
- :mod:`~xner.pipeline.translate.file`: pre-translated text looked up by source text.
"""

from __future__ import annotations

from typing import Any

from xner.pipeline.translate.apertium import (
    APERTIUM_DATA_DIR,
    ApertiumTranslator,
    apertium_package_for,
    installed_apertium_pairs,
    resolve_apertium_mode,
)
from xner.pipeline.translate.apertium_stream import ApertiumError
from xner.pipeline.translate.base import Translator
from xner.pipeline.translate.file import FileTranslator
from xner.pipeline.translate.hf import HFSeq2SeqTranslator

__all__ = [
    "APERTIUM_DATA_DIR",
    "ApertiumError",
    "ApertiumTranslator",
    "FileTranslator",
    "HFSeq2SeqTranslator",
    "TRANSLATORS",
    "Translator",
    "apertium_package_for",
    "installed_apertium_pairs",
    "make_translator",
    "resolve_apertium_mode",
]

# The translator kinds of pipeline configs (``{kind: apertium, pair: eng-spa}``); `python -m xner.pipeline
# --help` lists these names.
TRANSLATORS: dict[str, type] = {
    "apertium": ApertiumTranslator,
    "hf": HFSeq2SeqTranslator,
    "file": FileTranslator,
}


def make_translator(kind: str, **kwargs: Any) -> Translator:
    """Build a translator from config values.

    Args:
        kind: ``"apertium"`` (:class:`ApertiumTranslator`), ``"hf"`` (:class:`HFSeq2SeqTranslator`) or
            ``"file"`` (:class:`FileTranslator`).
        **kwargs: the chosen class's arguments.

    Raises:
        ValueError: an unknown kind.
    """
    if kind not in TRANSLATORS:
        raise ValueError(f"Unknown translator kind {kind!r}; expected one of {', '.join(TRANSLATORS)}.")
    return TRANSLATORS[kind](**kwargs)
