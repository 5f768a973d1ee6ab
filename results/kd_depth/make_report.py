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
    "E_tsn": "E. Setswana, a gold shift: students distilled on MasakhaNER 2.0 tsn train text, tested on news "
    "(MasakhaNER 2.0) vs government web pages (NCHLT, gold)",
    "B_swa_confirm": "Confirmatory test (declared in CONFIRMATORY.md before it ran): Swahili uniform depth 3 vs "
    "depth 0, 20 new seeds, news vs WikiANN swa test",
}
SCORE_NAMES = {
    "strict": "strict F1 (exact spans; a prediction on a gold span the label mapping removed is a false positive)",
    "dontcare": "don't-care F1 (a prediction overlapping a gold span the label mapping removed, e.g. MasakhaNER "
    "DATE or NCHLT MISC, is neither a true nor a false positive)",
}


def read(path: Path, score: str | None = None) -> list[dict]:
    """Rows of a CSV; with ``score``, only that score's rows (aggregates made before the ``score`` column
    existed are strict)."""
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    return rows if score is None else [r for r in rows if r.get("score", "strict") == score]


def scores_in(path: Path) -> list[str]:
    """The scores an aggregate folder holds, strict first."""
    found = {r.get("score", "strict") for r in read(path / "summary.csv")}
    return [s for s in ("strict", "dontcare") if s in found]


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
        "run_dir": run_dir.name,  # the run dirs are not committed: no path of this machine
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
    "E_tsn": "tsn_news->tsn_gov",
    "B_swa_confirm": "swa_news->swa_wiki",
}


def headline_section(root: Path) -> list[str]:
    """One table over settings: the news -> Wikipedia drop per cell, and its change against depth 0."""
    keys = [k for k in HEADLINE_PAIRS if (root / k / "summary.csv").is_file()]
    if not keys:
        return []
    drops, deltas, cells = {}, {}, set()
    for key in keys:
        for r in read(root / key / "summary.csv", "strict"):
            if r["metric"] == "drop" and r["split"] == HEADLINE_PAIRS[key]:
                drops[(cell_name(r), key)] = f"{float(r['mean']):.1f} ± {float(r['std']):.1f}"
                cells.add(cell_name(r))
        comparisons = root / key / "comparisons.csv"
        for r in read(comparisons, "strict") if comparisons.is_file() else []:
            if r["metric"] == "drop" and r["split"] == HEADLINE_PAIRS[key]:
                deltas[(cell_name(r), key)] = f"{float(r['delta']):+.1f} (p {float(r['p_value']):.2f})"
    header = ["cell", *[f"{k}: {HEADLINE_PAIRS[k]}" for k in keys]]
    lines = [
        "## Headline: in-domain -> out-of-domain drop (strict F1 points; lower = more robust)",
        "",
        "News -> Wikipedia (A-D), news -> government (E). Strict F1 in every setting, so the columns compare; "
        "each setting's section also gives the don't-care figures where its runs have them. "
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


def run_stats(folder: Path) -> dict | None:
    """Sizes and wall times of a setting's runs, from their metrics.json when the run dirs are on this machine
    (then kept in ``run_stats.json``, which is committed), else from that file."""
    cached = folder / "run_stats.json"
    spec = json.loads((folder / "aggregate.json").read_text())
    dirs = [Path(spec.get("root", "")) / r for r in spec["runs"]]  # root: relative to the aggregate's cwd
    if dirs and all((d / "metrics.json").is_file() for d in dirs):
        records = [json.loads((d / "metrics.json").read_text()) for d in dirs]
        fit = [m["timings_s"]["fit"] for m in records]
        stats = {
            "runs": len(records),
            "seeds": sorted({str(m["config"]["seed"]) for m in records}, key=lambda s: (len(s), s)),
            "train_sentences": sorted({m["train"]["sentences"] for m in records}),
            "epochs": records[0]["config"]["trainer"]["max_epochs"],
            "fit_s": [statistics.median(fit), min(fit), max(fit)],
            "test_s_median": statistics.median(m["timings_s"].get("test", 0) for m in records),
        }
        cached.write_text(json.dumps(stats, indent=1) + "\n")
        return stats
    return json.loads(cached.read_text()) if cached.is_file() else None


def setting_section(key: str, folder: Path, title_prefix: str = "") -> list[str]:
    lines = [f"## {title_prefix}{SETTINGS.get(key, key)}", ""]
    stats = run_stats(folder)
    if stats:
        (fit, fit_min, fit_max), test = stats["fit_s"], stats["test_s_median"]
        lines.append(
            f"{stats['runs']} student runs (seeds {', '.join(stats['seeds'])}); distillation text: "
            f"{', '.join(map(str, stats['train_sentences']))} sentences, {stats['epochs']} epoch(s); wall time "
            f"per run: fit {fit:.0f} s median ({fit_min:.0f}-{fit_max:.0f}), test "
            f"{test:.0f} s median. Plots: `{key}/f1_vs_distill_depth.png`, "
            f"`{key}/drop_vs_distill_depth.png`."
        )
    else:
        lines.append("(The run dirs are not on this machine; sizes and wall times: see the git history.)")
    lines.append("")
    for score in scores_in(folder):
        lines += score_tables(folder, score)
    return lines


def score_tables(folder: Path, score: str) -> list[str]:
    """The F1/drop table and the comparisons against depth 0 of one score."""
    summary, runs = read(folder / "summary.csv", score), read(folder / "runs.csv")
    comparisons = read(folder / "comparisons.csv", score) if (folder / "comparisons.csv").is_file() else []
    lines = [f"**Scored with {SCORE_NAMES[score]}.**", ""]
    ci = defaultdict(list)
    for r in runs if score == "strict" else []:  # runs.csv keeps the strict intervals
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
            ci_text = f" (CI ±{width / 2:.1f})" if width == width else ""  # NaN: no per-run interval
            row.append(f"{float(hit['mean']):.1f} ± {float(hit['std']):.1f}{ci_text}")
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


def confirm_section(root: Path) -> list[str]:
    """The verdict of the confirmatory test, by the rule declared in CONFIRMATORY.md before it ran."""
    path = root / "B_swa_confirm" / "comparisons.csv"
    if not path.is_file():
        return []
    lines = ["## Confirmatory test: result", ""]
    for score in ("strict", "dontcare"):
        hits = [
            r
            for r in read(path, score)
            if r["metric"] == "drop" and r["split"] == "swa_news->swa_wiki" and cell_name(r) == "uniform d=3"
        ]
        if not hits:
            continue
        r = hits[0]
        low, high, delta = float(r["ci_low"]), float(r["ci_high"]), float(r["delta"])
        verdict = (
            "**confirmed** (the interval lies below 0)"
            if high < 0
            else "**refuted in direction** (the interval lies above 0)"
            if low > 0
            else "**not confirmed** (the interval includes 0)"
        )
        role = "Primary (declared)" if score == "strict" else "Secondary (exploratory)"
        lines.append(
            f"- {role}, {score} F1: delta drop (depth 3 - depth 0) = {delta:+.2f} F1 points, 95% CI "
            f"[{low:+.2f}, {high:+.2f}], two-sided p = {float(r['p_value']):.3f}, {r['runs']} vs "
            f"{r['baseline_runs']} runs: H1 {verdict if score == 'strict' else '(no decision)'}."
        )
    return [*lines, ""]


def mde_section(root: Path) -> list[str]:
    """Minimum detectable effect at 80% power of every depth-vs-0 drop comparison (strict F1)."""
    from xner.power import mde_table  # noqa: PLC0415 - the report's only import from xner

    rows = []
    for key in SETTINGS:
        folder = root / key
        if not (folder / "aggregate.json").is_file():
            continue
        rows += [(key, r) for r in mde_table(folder) if r["pair"] == HEADLINE_PAIRS.get(key)]
    if not rows:
        return []
    lines = [
        "## What the null results rule out: minimum detectable effect (80% power, two-sided 0.05)",
        "",
        "Per comparison against depth 0 of the headline drop (strict F1; the other pairs of setting A: "
        "`python -m xner.power results/kd_depth/A_eng`): seeds paired, observed delta, its standard "
        "error from the seed-to-seed spread of the paired differences and from the test sentences "
        "(`xner.power`; SE^2 = sd^2/n + SE_sent^2), and the smallest true effect the comparison detects with "
        "80% power (normal quantiles; with Student-t quantiles for n - 1 degrees of freedom in brackets). "
        "An effect smaller than the MDE can hide in a null result.",
        "",
        "| setting | cell | pair | seeds | delta drop | SE | MDE 80% |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for key, r in rows:
        lines.append(
            f"| {key} | {cell_name(r)} | {r['pair']} | {r['n_seeds']} | {r['delta_drop']:+.2f} | {r['se']:.2f} | "
            f"{r['mde_80']:.2f} ({r['mde_80_t']:.2f}) |"
        )
    return [*lines, ""]


def mechanism_section(root: Path) -> list[str]:
    """CKA between students and teacher, in and out of domain, per depth (results/kd_depth/mechanism.py)."""
    lines = []
    for folder in sorted((root / "mechanism").glob("*/drops.csv")):
        drops = read(folder)
        corr = json.loads((folder.parent / "correlations.json").read_text())
        by_cell = defaultdict(list)
        for r in drops:  # mechanism.py names the config values without their group
            keys = {
                "distill.map": r["map"],
                "distill.depth": r["depth"],
                "distill.attention_weight": r["attention_weight"],
            }
            by_cell[cell_name(keys)].append(r)
        if not lines:
            lines = [
                "## Mechanism: do deeper students stay closer to the teacher out of domain?",
                "",
                "Linear CKA between the student's last layer and the teacher's last layer on first-subword "
                "word vectors of the first sentences of each test split (`results/kd_depth/mechanism.py`), and "
                "the student's drop minus its teacher's drop on the same two test sets (strict F1). "
                "Mean ± std over seeds.",
                "",
            ]
        lines += [
            f"**{folder.parent.name}** ({corr['pair'][0]} -> {corr['pair'][1]}):",
            "",
            "| cell | runs | CKA in | CKA out | student drop | drop - teacher drop |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for cell in sorted(by_cell, key=cell_order):
            rs = by_cell[cell]

            def ms(key: str, rs: list[dict] = rs) -> str:
                values = [float(r[key]) for r in rs if r.get(key) not in (None, "")]
                if not values:
                    return ""
                sd = statistics.stdev(values) if len(values) > 1 else 0.0
                return (
                    f"{statistics.mean(values):.3f} ± {sd:.3f}"
                    if "cka" in key
                    else f"{statistics.mean(values):.1f} ± {sd:.1f}"
                )

            lines.append(
                f"| {cell} | {len(rs)} | {ms('cka_last_in')} | {ms('cka_last_out')} | {ms('drop')} | "
                f"{ms('drop_minus_teacher')} |"
            )
        c = corr.get("all runs", {})
        if c.get("pearson_r") is not None:
            lines += [
                "",
                f"Across its {c['n']} runs, out-of-domain CKA(last) vs (student drop - teacher drop): Pearson r = "
                f"{c['pearson_r']:.2f} (p {c['pearson_p']:.3f}), Spearman rho = {c['spearman_rho']:.2f} "
                f"(p {c['spearman_p']:.3f}). Plots: `mechanism/{folder.parent.name}/`.",
            ]
        lines.append("")
    return lines


ANNOTATION_SPLITS = [
    ("eng_news", "CoNLL-2003 test (news, in-domain)"),
    ("eng_wiki", "WikiANN eng test (silver)"),
    ("eng_crossner_politics", "CrossNER politics (gold)"),
    ("eng_crossner_science", "CrossNER science (gold)"),
    ("eng_crossner_music", "CrossNER music (gold)"),
    ("eng_crossner_literature", "CrossNER literature (gold)"),
    ("eng_crossner_ai", "CrossNER AI (gold)"),
    ("eng_social", "WNUT-17 (social media, gold)"),
    ("swa_news", "MasakhaNER 2.0 swa test (news)"),
    ("swa_wiki", "WikiANN swa test (silver)"),
    ("tsn_news", "MasakhaNER 2.0 tsn test (news)"),
    ("tsn_gov", "NCHLT tsn (government, gold)"),
]


def annotation_section(root: Path) -> list[str]:
    """The English teacher on every domain split: strict, don't-care and partial-match F1 and the error
    breakdown (copied from its evaluate.py run into ``teacher_eval/``)."""
    folder = root / "teacher_eval"
    if not (folder / "errors.csv").is_file():
        return []
    metrics = {r["split"]: r for r in read(folder / "metrics.csv")}
    errors = {r["split"]: r for r in read(folder / "errors.csv") if r["type"] == "all"}
    lines = [
        "## How much of the drop is annotation? The English teacher on every domain split",
        "",
        "The teacher of settings A, B and E (me5-small fine-tuned on CoNLL-2003) scored by `evaluate.py` on "
        "at most 2,000 sentences of each split (`data.test_limit=2000`; CrossNER, WikiANN swa and the "
        "MasakhaNER sets are smaller). **strict**: exact spans; **don't-care**: predictions overlapping a gold "
        "span of a type the mapping removed (CrossNER misc/event/award/..., MasakhaNER DATE, NCHLT MISC, WNUT "
        "creative-work/product) are neither right nor wrong; **partial**: a prediction overlapping a gold "
        "entity of its type is right (one-to-one). Shares of gold entities: found exactly, found with other "
        "boundaries, with another type, with both wrong, missed; shares of predicted entities: spurious "
        "(overlapping no gold entity), of which on a removed-type gold span.",
        "",
        "| split | set | sentences | strict F1 | don't-care F1 | partial F1 | exact | boundary | type | both "
        "| missed | spurious (on removed) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]

    def share(r: dict, key: str, total: str) -> str:
        n = float(r[total])
        return f"{100 * float(r[key]) / n:.0f}%" if n else ""

    for split, name in ANNOTATION_SPLITS:
        if split not in errors or split not in metrics:
            continue
        e, m = errors[split], metrics[split]
        lines.append(
            f"| {split} | {name} | {m['sentences']} | {float(m['f1']):.1f} | {float(m['f1_dontcare']):.1f} | "
            f"{float(m['f1_partial']):.1f} | {share(e, 'exact', 'gold_entities')} | "
            f"{share(e, 'boundary_gold', 'gold_entities')} | {share(e, 'type_gold', 'gold_entities')} | "
            f"{share(e, 'boundary_type_gold', 'gold_entities')} | {share(e, 'missed', 'gold_entities')} | "
            f"{share(e, 'spurious', 'predicted_entities')} ({share(e, 'spurious_on_removed', 'predicted_entities')}) |"
        )
    return [*lines, ""]


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
    lines += annotation_section(root)
    lines += confirm_section(root)
    lines += mde_section(root)
    lines += mechanism_section(root)
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
