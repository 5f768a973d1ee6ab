"""Write results/kd_depth/README.md from the aggregated CSVs of every setting (no number is typed by hand).

    .venv/bin/python results/kd_depth/make_report.py [--results results/kd_depth]

Per setting: sample sizes and wall times (read from the runs' metrics.json), mean ± std over seeds of F1 per
split with the mean 95% bootstrap interval of a single run, the in-domain -> out-of-domain drop, and the
two-level paired-bootstrap comparisons of every cell against depth 0. The interpretation is kept in
``FINDINGS.md`` (written by a person, quoting these tables) and included verbatim.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
from collections import defaultdict
from pathlib import Path

SETTINGS = {
    "A_eng": "A. English, source-language control: students distilled on CoNLL-2003 train text",
    "B_swa": "B. Swahili, no MT (Wu et al. 2020): students distilled on MasakhaNER 2.0 swa train text",
    "B_yor": "B. Yoruba, no MT: students distilled on MasakhaNER 2.0 yor train text",
    "C_spa": "C. Spanish, translate-train via Apertium: teacher on a projected set, students on CoNLL-2002 spa text",
    "D_swa_wikitext": "D. Swahili, Wikipedia distillation text (WikiANN swa train) instead of news",
}


def read(path: Path) -> list[dict]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def cell_name(r: dict) -> str:
    name = f"{r['distill.map']} d={r['distill.depth']}"
    if float(r.get("distill.attention_weight") or 0) > 0:
        name += " +attn"
    return name


def cell_order(name: str) -> tuple:
    return ("+attn" in name, not name.startswith("uniform"), int(name.split("d=")[1].split()[0]))


def holm(p_values: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (family-wise error over all comparisons of a setting)."""
    order = sorted(range(len(p_values)), key=p_values.__getitem__)
    adjusted, running = [0.0] * len(p_values), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def save_teacher(run_dir: Path, out: Path) -> None:
    """Keep the teacher's per-split F1 and 95% intervals (its run dir is not committed)."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    trimmed = {
        "run_dir": str(run_dir),
        "timings_s": metrics["timings_s"],
        "train_sentences": metrics["train"]["sentences"],
        "splits": {
            name: {
                "f1": s["f1"],
                "f1_ci95": s.get("f1_ci95"),
                "sentences": s["sentences"],
                "ref": s.get("ref"),
            }
            for name, s in metrics["splits"].items()
        },
    }
    out.write_text(json.dumps(trimmed, indent=1) + "\n")


def teacher_section(path: Path) -> list[str]:
    teacher = json.loads(path.read_text())
    lines = [
        "## Teacher",
        "",
        f"me5-small (12 layers) fine-tuned on English CoNLL-2003 train ({teacher['train_sentences']} sentences, "
        f"1 epoch, fit {teacher['timings_s']['fit']:.0f} s); zero-shot F1 with 95% bootstrap interval:",
        "",
        "| split | set | sentences | F1 | 95% CI |",
        "| --- | --- | ---: | ---: | --- |",
    ]
    for name, s in teacher["splits"].items():
        low, high = s["f1_ci95"] or (float("nan"), float("nan"))
        lines.append(f"| {name} | {s['ref']} | {s['sentences']} | {s['f1']:.1f} | [{low:.1f}, {high:.1f}] |")
    return [*lines, ""]


HEADLINE_PAIRS = {
    "A_eng": "eng_news->eng_wiki",
    "B_swa": "swa_news->swa_wiki",
    "B_yor": "yor_news->yor_wiki",
    "D_swa_wikitext": "swa_news->swa_wiki",
    "C_spa": "spa_news->spa_wiki",
}


def headline_section(root: Path) -> list[str]:
    """One table over settings: the news -> Wikipedia drop per cell, and its change against depth 0."""
    keys = [k for k in HEADLINE_PAIRS if (root / k / "summary.csv").is_file()]
    if not keys:
        return []
    drops, deltas, cells = {}, {}, set()
    for key in keys:
        for r in read(root / key / "summary.csv"):
            if r["metric"] == "drop" and r["split"] == HEADLINE_PAIRS[key]:
                drops[(cell_name(r), key)] = f"{float(r['mean']):.1f} ± {float(r['std']):.1f}"
                cells.add(cell_name(r))
        comparisons = root / key / "comparisons.csv"
        for r in read(comparisons) if comparisons.is_file() else []:
            if r["metric"] == "drop" and r["split"] == HEADLINE_PAIRS[key]:
                deltas[(cell_name(r), key)] = f"{float(r['delta']):+.1f} (p {float(r['p_value']):.2f})"
    header = ["cell", *[f"{k}: {HEADLINE_PAIRS[k]}" for k in keys]]
    lines = [
        "## Headline: news -> Wikipedia drop (F1 points; lower = more robust)",
        "",
        "Mean ± std over seeds; in brackets the change against depth 0 with its two-level bootstrap p "
        "(uncorrected; see each setting for Holm-adjusted p and the F1 of both splits).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + " --- |" * len(header),
    ]
    for cell in sorted(cells, key=cell_order):
        row = [cell]
        for key in keys:
            value = drops.get((cell, key), "")
            if (cell, key) in deltas:
                value += f" [{deltas[(cell, key)]}]"
            row.append(value)
        lines.append("| " + " | ".join(row) + " |")
    return [*lines, ""]


def setting_section(key: str, folder: Path, title_prefix: str = "") -> list[str]:
    summary, runs = read(folder / "summary.csv"), read(folder / "runs.csv")
    comparisons = read(folder / "comparisons.csv") if (folder / "comparisons.csv").is_file() else []
    spec = json.loads((folder / "aggregate.json").read_text())
    run_dirs = spec["runs"]
    records = [json.loads((Path(r) / "metrics.json").read_text()) for r in run_dirs]
    fit = [m["timings_s"]["fit"] for m in records]
    test = [m["timings_s"].get("test", 0) for m in records]
    train_sizes = sorted({m["train"]["sentences"] for m in records})
    seeds = sorted({str(m["config"]["seed"]) for m in records})
    lines = [f"## {title_prefix}{SETTINGS.get(key, key)}", ""]
    lines.append(
        f"{len(records)} student runs (seeds {', '.join(seeds)}); distillation text: "
        f"{', '.join(map(str, train_sizes))} sentences, "
        f"{records[0]['config']['trainer']['max_epochs']} epoch(s); wall time per run: fit "
        f"{statistics.median(fit):.0f} s median ({min(fit):.0f}-{max(fit):.0f}), test "
        f"{statistics.median(test):.0f} s median. Plots: `{key}/f1_vs_distill_depth.png`, "
        f"`{key}/drop_vs_distill_depth.png`."
    )
    lines.append("")
    ci = defaultdict(list)
    for r in runs:
        if r["ci_low"]:
            name = cell_name(r)
            ci[(name, r["split"])].append(float(r["ci_high"]) - float(r["ci_low"]))
    cells = sorted({cell_name(r) for r in summary}, key=cell_order)
    splits = list(dict.fromkeys(r["split"] for r in summary if r["metric"] == "f1"))
    pairs = list(dict.fromkeys(r["split"] for r in summary if r["metric"] == "drop"))
    header = ["cell", *splits, *[f"drop {p}" for p in pairs]]
    lines += ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for cell in cells:
        row = [cell]
        for split in splits:
            hit = next(
                r for r in summary if cell_name(r) == cell and r["split"] == split and r["metric"] == "f1"
            )
            width = statistics.mean(ci[(cell, split)]) if ci[(cell, split)] else float("nan")
            row.append(f"{float(hit['mean']):.1f} ± {float(hit['std']):.1f} (CI ±{width / 2:.1f})")
        for pair in pairs:
            hit = next(
                r for r in summary if cell_name(r) == cell and r["split"] == pair and r["metric"] == "drop"
            )
            row.append(f"{float(hit['mean']):.1f} ± {float(hit['std']):.1f}")
        lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        "Mean ± std over seeds; (CI ±w): half-width of a single run's 95% bootstrap interval, averaged "
        "over runs.",
        "",
    ]
    if comparisons:
        lines += [
            "Against depth 0 (two-level paired bootstrap: runs paired by seed, and test sentences; "
            "significant = 95% interval excludes 0; p Holm: adjusted over all comparisons of this setting):",
            "",
            "| cell | split | delta | 95% CI | p | significant | p Holm | p (sentences only) |",
            "| --- | --- | ---: | --- | ---: | --- | ---: | ---: |",
        ]
        adjusted = dict(
            zip(map(id, comparisons), holm([float(r["p_value"]) for r in comparisons]), strict=True)
        )
        for r in sorted(comparisons, key=lambda r: (cell_order(cell_name(r)), r["split"])):
            lines.append(
                f"| {cell_name(r)} | {r['split']} ({r['metric']}) | {float(r['delta']):+.2f} | "
                f"[{float(r['ci_low']):+.2f}, {float(r['ci_high']):+.2f}] | {float(r['p_value']):.3f} | "
                f"{'yes' if r['significant'] == 'True' else 'no'} | {adjusted[id(r)]:.3f} | "
                f"{float(r['p_value_sentences_only']):.3f} |"
            )
        lines.append("")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", default=str(Path(__file__).resolve().parent))
    parser.add_argument(
        "--teacher", type=Path, help="teacher run dir: store its per-split F1 as teacher_eng.json"
    )
    args = parser.parse_args()
    root = Path(args.results)
    if args.teacher:
        save_teacher(args.teacher, root / "teacher_eng.json")
    head = (
        (root / "HEADER.md").read_text()
        if (root / "HEADER.md").is_file()
        else "# Distillation depth vs robustness\n"
    )
    lines = [head.rstrip(), ""]
    findings = root / "FINDINGS.md"
    if findings.is_file():
        lines += [findings.read_text().rstrip(), ""]
    lines += headline_section(root)
    if (root / "teacher_eng.json").is_file():
        lines += teacher_section(root / "teacher_eng.json")
    for key in SETTINGS:
        if (root / key / "summary.csv").is_file():
            lines += setting_section(key, root / key)
    # an earlier run of the same settings with another teacher on other hardware (see HEADER.md)
    for key in SETTINGS:
        if (root / "cpu_replication" / key / "summary.csv").is_file():
            lines += setting_section(key, root / "cpu_replication" / key, "Replication on CPU: ")
    (root / "README.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {root / 'README.md'}")


if __name__ == "__main__":
    main()
