"""One table of the error analysis: the share of each cause among gold entities, per set and method, and among
the entities model transfer gets right and the projection gets wrong.

    .venv/bin/python results/projection/analysis_summary.py      # reads analysis/*.md, writes analysis/summary.md

The per-method files are written by ``scripts/eval_projection.py --analysis`` (xner.pipeline.analysis).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from xner.pipeline.analysis import GOLD_CAUSES

HERE = Path(__file__).resolve().parent / "analysis"
CAUSES = GOLD_CAUSES  # in the table's column order


def read(path: Path) -> tuple[dict[str, float], dict[str, float]]:
    """Gold cause shares (%) and the shares among 'transfer right, projection wrong' from one analysis file."""
    gold, lost = {}, {}
    for line in path.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0] in CAUSES and cells[1]:
            gold[cells[0]] = float(cells[2])
        if len(cells) == 4 and cells[0] == "transfer right, projection wrong":
            lost[cells[1]] = float(cells[3])
    return gold, lost


def main() -> None:
    """Write analysis/summary.md."""
    rows = defaultdict(dict)
    for path in sorted(HERE.glob("*.md")):
        if path.name == "summary.md":
            continue
        rows[path.stem] = read(path)
    short = ["correct", "span", "dropped", "align", "MT name", "English NER"]
    lines = [
        "Share of gold entities by cause (%), then the causes among the entities model transfer tags right and",
        "the projection does not (%). Decision order and definitions: xner/pipeline/analysis.py.",
        "",
        "| set / method | " + " | ".join(short) + " | lost to MT name | lost to English NER | lost to span |",
        "| --- | " + " | ".join("---:" for _ in short) + " | ---: | ---: | ---: |",
    ]
    for stem, (gold, lost) in rows.items():
        lines.append(
            f"| {stem} | "
            + " | ".join(f"{gold.get(c, 0.0):.1f}" for c in CAUSES)
            + f" | {lost.get('mt_changed_name', 0.0):.1f} | {lost.get('source_ner_missed_or_mistyped', 0.0):.1f}"
            f" | {lost.get('span_convention', 0.0):.1f} |"
        )
    (HERE / "summary.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
