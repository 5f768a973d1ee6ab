"""Plots of aggregated runs (:mod:`xner.aggregate`): mean ± std over seeds against the swept variable."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def sort_key(value: Any) -> tuple:
    """Order numbers numerically before anything else (as strings)."""
    try:
        return (0, float(value), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(value))


def plot(
    summary: Sequence[dict], x: str, series: Sequence[str], metric: str, path: Path, title: str
) -> Path | None:
    """Save :func:`figure` as ``path``; ``None`` (nothing written) when ``summary`` has no ``metric`` rows."""
    import matplotlib.pyplot as plt  # noqa: PLC0415 - plotting is optional

    fig = figure(summary, x, series, metric, title)
    if fig is None:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def figure(summary: Sequence[dict], x: str, series: Sequence[str], metric: str, title: str):
    """Mean ± std of ``metric`` vs ``x``: one error-bar line per (series, split), labelled with both.

    Args:
        summary: rows of :func:`xner.aggregate.summarise` (``metric``, ``split``, ``mean``, ``std``, keys).
        x: the swept key (the x axis; numeric values are placed by value, others in sorted order).
        series: keys that tell lines apart besides the split.
        metric: the summary metric to plot (``f1``, ``drop``, ...).
        title: the figure title.

    Returns:
        A matplotlib figure (its ``axes[0].containers`` hold the lines, in label order), or ``None`` when
        ``summary`` has no row of ``metric``.
    """
    import matplotlib  # noqa: PLC0415 - plotting is optional

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    lines: dict[str, list[tuple[Any, float, float]]] = defaultdict(list)
    for r in summary:
        if r["metric"] != metric:
            continue
        # "map=uniform, attention_weight=1.0: swa_news->swa_wiki" (the last part of each config key)
        named = ", ".join(f"{k.rsplit('.', 1)[-1]}={r[k]}" for k in series)
        label = f"{named}: {r['split']}" if named else r["split"]
        lines[label].append((r[x], r["mean"], r["std"]))
    if not lines:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    categories = sorted({p[0] for pts in lines.values() for p in pts}, key=sort_key)
    numeric = all(sort_key(c)[0] == 0 for c in categories)
    for label, pts in sorted(lines.items()):
        pts.sort(key=lambda p: sort_key(p[0]))
        xs = [float(p[0]) if numeric else categories.index(p[0]) for p in pts]
        ax.errorbar(xs, [p[1] for p in pts], yerr=[p[2] for p in pts], marker="o", capsize=3, label=label)
    if not numeric:
        ax.set_xticks(range(len(categories)), [str(c) for c in categories])
    elif all(float(c).is_integer() for c in categories):
        ax.set_xticks([float(c) for c in categories])
    ax.set_xlabel(x)
    ax.set_ylabel(
        {"f1": "entity F1 (%)", "drop": "F1 drop in-domain -> out-of-domain (points)"}.get(metric, metric)
    )
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
