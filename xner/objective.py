"""The value ``train.py`` returns to a Hydra sweeper: the metric named by ``optimized_metric``.

Names follow the metrics the LightningModules log (and W&B sweep YAMLs name), read from the run's metrics
record (``metrics.json``):

- ``test/<split>/<score>``: a score of test split ``<split>`` (a key of ``data.test``); ``<score>`` is one of
  the split's F1/precision/recall scores (``f1``, ``precision``, ``recall``, ``f1_dontcare``, ``f1_partial``,
  ...) or ``f1_<TYPE>`` for one entity type (``f1_PER``);
- ``val/<split>/f1``: the last validation F1 of validation split ``<split>``.

``optimized_metric: null`` keeps the old rule: the first test split's ``f1`` (so the order of ``data.test``
decides), ``None`` when nothing was tested.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

STAGES = ("test", "val")
_SCORE_PREFIXES = ("f1", "precision", "recall")


def metric_values(record: Mapping[str, Any]) -> dict[str, float]:
    """Every metric of a train record that ``optimized_metric`` can name, with its value.

    Args:
        record: the record :func:`xner.tasks.train.train` returns (and writes as ``metrics.json``).
    """
    out: dict[str, float] = {}
    for split, scores in (record.get("splits") or {}).items():
        for key, value in scores.items():
            # scores only: counts such as gold_entities are numbers too, but nothing to optimise
            if (
                key.startswith(_SCORE_PREFIXES)
                and isinstance(value, int | float)
                and not isinstance(value, bool)
            ):
                out[f"test/{split}/{key}"] = float(value)
        for etype, per_type in (scores.get("per_type") or {}).items():
            out[f"test/{split}/f1_{etype}"] = float(per_type["f1"])
    for split, f1 in (record.get("val") or {}).items():
        out[f"val/{split}/f1"] = float(f1)
    return out


def optimized_value(record: Mapping[str, Any], name: str | None) -> float | None:
    """The value of metric ``name`` in ``record`` (``None``: the first test split's F1).

    Args:
        record: a train record (see :func:`metric_values`).
        name: ``test/<split>/<score>``, ``val/<split>/f1`` or ``None``.

    Returns:
        The metric's value; ``None`` when ``name`` is ``None`` and the run tested nothing.

    Raises:
        ValueError: ``name`` is not a metric of this record (the message lists the ones it has).
    """
    if name is None:
        splits = record.get("splits") or {}
        return float(next(iter(splits.values()))["f1"]) if splits else None
    values = metric_values(record)
    if name not in values:
        raise ValueError(
            f"optimized_metric={name!r} is not a metric of this run; it has: {', '.join(values) or 'none'}"
        )
    return values[name]


def check_metric_name(name: str | None, test_splits: Iterable[str] | None) -> None:
    """Fail before training when ``name`` cannot name a metric: wrong form or an unknown test split.

    Args:
        name: the configured ``optimized_metric``.
        test_splits: the names of the run's test splits (``data.test``'s keys); ``None`` skips that check.

    Raises:
        ValueError: the name does not have the form ``<test|val>/<split>/<score>`` or names a test split
            that ``data.test`` does not have.
    """
    if name is None:
        return
    parts = str(name).split("/")
    if len(parts) != 3 or parts[0] not in STAGES or not all(parts):
        raise ValueError(
            f"optimized_metric={name!r}: expected test/<split>/<score> (e.g. test/eng_news/f1), "
            "val/<split>/f1, or null for the first test split's f1"
        )
    if parts[0] == "test" and test_splits is not None and parts[1] not in (splits := list(test_splits)):
        raise ValueError(f"optimized_metric={name!r}: no test split {parts[1]!r}; data.test has {splits}")
