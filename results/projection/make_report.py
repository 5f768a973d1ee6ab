"""Write results/projection/README.md from the committed CSVs (no number is typed by hand).

    .venv/bin/python results/projection/make_report.py

Reads ``intrinsic.csv`` and ``comparisons.csv`` (scripts/eval_projection.py; the same from ``dev/`` for the
check on the dev splits), ``downstream/summary.csv``
(``python -m xner.aggregate`` over the translate-train runs) and ``../alignment/lambert_epps_aer.csv``
(scripts/eval_alignment.py). The commands that made them and the reading are in ``HEADER.md``.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent


def read(path: Path) -> list[dict]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def f1_table(rows: list[dict], methods: list[str]) -> list[str]:
    """One row per method, one column per set: F1, its 95% interval and the projection rate."""
    sets = list(dict.fromkeys(r["set"] for r in rows))
    cell = {(r["method"], r["set"]): r for r in rows}
    lines = ["| method | " + " | ".join(sets) + " |", "| --- |" + " --- |" * len(sets)]
    for method in methods:
        out = [method]
        for name in sets:
            r = cell.get((method, name))
            if r is None or not r["f1"]:
                out.append(r["note"] if r is not None and r["note"] else "n/a")
                continue
            rate = f"; {float(r['projection_rate']):.1%}" if r.get("projection_rate") else ""
            out.append(f"{float(r['f1']):.1f} {r['f1_ci95']}{rate}")
        lines.append("| " + " | ".join(out) + " |")
    return lines


def comparison_table(rows: list[dict], keep) -> list[str]:
    """The paired-bootstrap rows for which ``keep(row)`` holds, each (set, method, reference) once."""
    lines = ["| set | method | reference | delta | 95% CI | p |", "| --- | --- | --- | ---: | --- | ---: |"]
    seen = set()
    for r in rows:
        key = (r["set"], r["method"], r["reference"])
        if key in seen or r["method"] == "model_transfer" or not keep(r):
            continue
        seen.add(key)
        lines.append(
            f"| {r['set']} | {r['method']} | {r['reference']} | {float(r['delta']):+.2f} | "
            f"[{float(r['ci_low']):+.2f}, {float(r['ci_high']):+.2f}] | {float(r['p_value']):.3f} |"
        )
    return lines


def _is_fix(method: str) -> bool:
    """A row of the repairs (+keep_<policy>, +snap) rather than of the methods as published."""
    return "+" in method


def intrinsic_table() -> list[str]:
    rows = read(HERE / "intrinsic.csv")
    methods = list(dict.fromkeys(r["method"] for r in rows))
    comparisons = read(HERE / "comparisons.csv")
    lines = [
        "## Intrinsic translate-test F1 (PER/ORG/LOC, 95% bootstrap interval; projection rate)",
        "",
        *f1_table(rows, [m for m in methods if not _is_fix(m)]),
        "",
        "Paired bootstrap on the same sentences (delta = method - reference, F1 points):",
        "",
        *comparison_table(comparisons, lambda r: not _is_fix(r["method"])),
        "",
    ]
    fixes = [m for m in methods if _is_fix(m)]
    if fixes:
        lines += [
            "## The two repairs on the test sets (exploratory: designed on these sets' error analysis)",
            "",
            "`+keep_<policy>`: names kept verbatim through Apertium; `+snap`: entities widened to the name they",
            "lie in (`model_transfer+snap`: the same repair applied to model transfer).",
            "",
            *f1_table(rows, fixes),
            "",
            "Each repair against what it repairs, against model transfer, and (snapped) against snapped model transfer:",
            "",
            *comparison_table(
                comparisons,
                lambda r: _is_fix(r["method"]) and r["reference"] != "heuristic",
            ),
            "",
        ]
    return lines


def dev_table() -> list[str]:
    """The confirmatory run on the dev splits (hypotheses in DEV_HYPOTHESES.md, declared before it)."""
    if not (HERE / "dev" / "intrinsic.csv").is_file():
        return []
    rows = read(HERE / "dev" / "intrinsic.csv")
    methods = list(dict.fromkeys(r["method"] for r in rows))
    shown = [m for m in methods if ":" not in m]  # the ensembles are in the test tables
    return [
        "## The repairs checked on the dev splits (confirmatory; hypotheses in `DEV_HYPOTHESES.md`)",
        "",
        *f1_table(rows, shown),
        "",
        *comparison_table(
            read(HERE / "dev" / "comparisons.csv"),
            lambda r: _is_fix(r["method"]) and r["reference"] != "heuristic",
        ),
        "",
    ]


def alignment_table() -> list[str]:
    path = HERE.parent / "alignment" / "lambert_epps_aer.csv"
    lines = [
        "## Alignment quality on the Lambert EPPS English-Spanish gold (400 pairs)",
        "",
        "| aligner | layer | method | variant | precision | recall | F1 | AER | links |",
        "| --- | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in read(path):
        lines.append(
            f"| {r['aligner']} | {r['layer']} | {r['method']} | {r['variant']} | {float(r['precision']):.3f} | "
            f"{float(r['recall']):.3f} | {float(r['f1']):.3f} | {float(r['aer']):.3f} | {r['links']} |"
        )
    return [*lines, ""]


def downstream_table() -> list[str]:
    path = HERE / "downstream" / "summary.csv"
    if not path.is_file():
        return []
    values: dict[str, dict[str, str]] = defaultdict(dict)
    splits: list[str] = []
    for r in read(path):
        if r["metric"] not in ("f1", "drop"):
            continue
        name = r["split"] if r["metric"] == "f1" else f"drop {r['split']}"
        splits.append(name)
        values[r["projection"]][name] = f"{float(r['mean']):.1f}"
    splits = list(dict.fromkeys(splits))
    baseline = HERE / "downstream" / "model_transfer.json"
    if baseline.is_file():  # the English model applied to Spanish directly, same recipe and machine
        f1 = json.loads(baseline.read_text())["f1"]
        row = {s: f"{f1[s]:.1f}" for s in splits if s in f1}
        if "spa_news" in f1 and "spa_wiki" in f1:
            row["drop spa_news->spa_wiki"] = f"{f1['spa_news'] - f1['spa_wiki']:.1f}"
        values = {"(model transfer, no projection)": row, **values}
    lines = [
        "## Downstream: me5-small trained on each projected Spanish set (translate-train, one seed)",
        "",
        "| projection | " + " | ".join(splits) + " |",
        "| --- |" + " ---: |" * len(splits),
    ]
    for method, row in values.items():
        lines.append(f"| {method} | " + " | ".join(row.get(s, "") for s in splits) + " |")
    return [*lines, ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model-transfer", type=Path, help="run dir of experiment=model_transfer to compare with"
    )
    args = parser.parse_args()
    if args.model_transfer:
        metrics = json.loads((args.model_transfer / "metrics.json").read_text())
        record = {
            "run_dir": args.model_transfer.name,  # run dirs are not committed: no path of this machine
            "f1": {k: v["f1"] for k, v in metrics["splits"].items()},
        }
        (HERE / "downstream").mkdir(exist_ok=True)
        (HERE / "downstream" / "model_transfer.json").write_text(json.dumps(record, indent=1) + "\n")
    head = (HERE / "HEADER.md").read_text().rstrip() if (HERE / "HEADER.md").is_file() else "# Projection"
    lines = [head, "", *intrinsic_table(), *dev_table(), *downstream_table(), *alignment_table()]
    (HERE / "README.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {HERE / 'README.md'}")


if __name__ == "__main__":
    main()
