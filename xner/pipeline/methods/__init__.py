"""Projection methods: the protocol (:class:`ProjectionMethod`), the registry, and the built-in methods.

Importing this package registers ``heuristic``, ``heuristic_bt``, ``markers``, ``matching_ilp`` and
``matching_greedy``. A new method is one module that subclasses :class:`ProjectionMethod` and calls
:func:`register` (see docs/architecture.md, "Add a projection method").
"""

# The built-ins register themselves on import; this (alphabetical) order is the order the CLI lists them.
from xner.pipeline.methods import heuristic, markers, matching  # noqa: F401
from xner.pipeline.methods.base import (
    Needs,
    ProjectionMethod,
    SentencePair,
    TranslationInput,
    get_method,
    method_names,
    register,
    sum_counts,
    unregister,
)
from xner.pipeline.methods.matching import SCORE_KINDS

__all__ = [
    "SCORE_KINDS",
    "Needs",
    "ProjectionMethod",
    "SentencePair",
    "TranslationInput",
    "get_method",
    "method_names",
    "register",
    "sum_counts",
    "unregister",
]
