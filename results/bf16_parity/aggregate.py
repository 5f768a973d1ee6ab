"""Tables of the bf16 parity runs (``run.sh``): training parity and evaluation parity, with paired bootstrap.

    .venv/bin/python results/bf16_parity/aggregate.py <run dir root> <results dir>

Reads the predictions files the runs wrote (word, gold, predicted columns), scores strict entity F1 on
PER/ORG/LOC, and writes ``parity.md`` and ``parity.csv`` into the results dir (run dirs named relatively).
Training parity: the bf16-trained models against the fp32-trained ones of the same seeds, by a two-level
paired bootstrap (test sentences and seeds resampled). Evaluation parity: each fp32-trained model tested in
fp32 and in bf16 on the same sentences.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

from xner.metrics import count_entities, f1_from_counts
from xner.stats import paired_bootstrap

TYPES = ["PER", "ORG", "LOC"]
SPLITS = ["eng_news", "swa_news", "swa_wiki"]


def read_predictions(path: Path) -> tuple[list[list[str]], list[list[str]]]:
    """Gold and predicted tags per sentence from a predictions file (word, gold, predicted, ...)."""
    gold, pred, g, p = [], [], [], []
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            if g:
                gold.append(g)
                pred.append(p)
                g, p = [], []
            continue
        cols = line.split()
        if len(cols) < 3:
            raise ValueError(f"{path}:{line_no}: expected word, gold and predicted columns, got {line!r}")
        g.append(cols[1])
        p.append(cols[2])
    if g:
        gold.append(g)
        pred.append(p)
    return gold, pred


def counts(run_dir: Path, split: str):
    """Entity counts of one split's predictions in a run dir (train.py or evaluate.py layout)."""
    files = sorted(run_dir.glob(f"predictions/{split}.conll")) or sorted(
        run_dir.glob(f"predictions/*/{split}.conll")
    )
    if len(files) != 1:
        raise FileNotFoundError(f"{run_dir}: expected one predictions file for {split}, found {len(files)}")
    gold, pred = read_predictions(files[0])
    return count_entities(gold, pred, TYPES)


def fit_seconds(run_dir: Path) -> float:
    """The run's training time (metrics.json timings)."""
    return float(json.loads((run_dir / "metrics.json").read_text())["timings_s"]["fit"])


def main(root: str, results: str) -> int:
    """Write the tables; returns the exit code."""
    root_dir, out = Path(root), Path(results)
    seeds = sorted(
        int(p.name.rsplit("_s", 1)[1])
        for p in root_dir.glob("train_fp32_s*")
        if (p / "metrics.json").is_file()
    )
    seeds = [s for s in seeds if (root_dir / f"train_bf16_s{s}" / "metrics.json").is_file()]
    if not seeds:
        raise SystemExit(f"no finished fp32/bf16 pairs of runs under {root_dir}")
    rows, lines = [], []
    lines.append(
        f"Seeds {', '.join(map(str, seeds))}; strict entity F1 (PER/ORG/LOC); 95% intervals from 1,000 "
        "paired bootstrap resamples.\n"
    )
    lines.append(
        "### Training parity: trained in bf16 vs trained in fp32 (tested in the trainer's precision)\n"
    )
    lines.append(
        "| split | fp32 F1 per seed | bf16 F1 per seed | mean fp32 | mean bf16 | bf16 - fp32 [95% CI] | p |"
    )
    lines.append("|---|---|---|---|---|---|---|")
    for split in SPLITS:
        a = [counts(root_dir / f"train_bf16_s{s}", split) for s in seeds]
        b = [counts(root_dir / f"train_fp32_s{s}", split) for s in seeds]
        cmp = paired_bootstrap(a, b)
        fa, fb = [f1_from_counts(c) for c in a], [f1_from_counts(c) for c in b]
        lines.append(
            f"| {split} | {', '.join(f'{x:.1f}' for x in fb)} | {', '.join(f'{x:.1f}' for x in fa)} | "
            f"{sum(fb) / len(fb):.1f} | {sum(fa) / len(fa):.1f} | {cmp.delta:+.2f} "
            f"[{cmp.low:+.2f}, {cmp.high:+.2f}] | {cmp.p_value:.2f} |"
        )
        rows.append(
            {
                "comparison": "train bf16 - train fp32",
                "split": split,
                "seeds": len(seeds),
                "f1_a": round(sum(fa) / len(fa), 2),
                "f1_b": round(sum(fb) / len(fb), 2),
                "delta": round(cmp.delta, 2),
                "ci_low": round(cmp.low, 2),
                "ci_high": round(cmp.high, 2),
                "p": round(cmp.p_value, 3),
            }
        )
    fit = {p: [fit_seconds(root_dir / f"train_{p}_s{s}") for s in seeds] for p in ("fp32", "bf16")}
    mean_fit = {p: sum(v) / len(v) for p, v in fit.items()}
    lines.append(
        f"\nTraining time (fit, one epoch, 2 cores): fp32 {mean_fit['fp32']:.0f} s, bf16 {mean_fit['bf16']:.0f} s "
        f"(mean over seeds; {mean_fit['fp32'] / mean_fit['bf16']:.2f}x).\n"
    )
    eval_seeds = [s for s in seeds if (root_dir / f"eval_bf16_s{s}" / "metrics.json").is_file()]
    if eval_seeds:
        lines.append("### Evaluation parity: the fp32-trained models tested in bf16 vs in fp32\n")
        lines.append(
            "| split | seed | F1 fp32 | F1 bf16 | bf16 - fp32 [95% CI] | p | sentences tagged differently |"
        )
        lines.append("|---|---|---|---|---|---|---|")
        for split in SPLITS:
            for s in eval_seeds:
                a, b = (
                    counts(root_dir / f"eval_bf16_s{s}", split),
                    counts(root_dir / f"train_fp32_s{s}", split),
                )
                differ = _differing(root_dir / f"eval_bf16_s{s}", root_dir / f"train_fp32_s{s}", split)
                cmp = paired_bootstrap(a, b)
                lines.append(
                    f"| {split} | {s} | {cmp.f1_b:.2f} | {cmp.f1_a:.2f} | {cmp.delta:+.2f} "
                    f"[{cmp.low:+.2f}, {cmp.high:+.2f}] | {cmp.p_value:.2f} | {differ} of {len(a)} |"
                )
                rows.append(
                    {
                        "comparison": f"eval bf16 - eval fp32 (seed {s})",
                        "split": split,
                        "seeds": 1,
                        "f1_a": round(cmp.f1_a, 2),
                        "f1_b": round(cmp.f1_b, 2),
                        "delta": round(cmp.delta, 2),
                        "ci_low": round(cmp.low, 2),
                        "ci_high": round(cmp.high, 2),
                        "p": round(cmp.p_value, 3),
                    }
                )
    out.mkdir(parents=True, exist_ok=True)
    (out / "parity.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with (out / "parity.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print("\n".join(lines))
    return 0


def _differing(run_a: Path, run_b: Path, split: str) -> int:
    files = [
        sorted(r.glob(f"predictions/{split}.conll")) or sorted(r.glob(f"predictions/*/{split}.conll"))
        for r in (run_a, run_b)
    ]
    (_, pa), (_, pb) = read_predictions(files[0][0]), read_predictions(files[1][0])
    return sum(x != y for x, y in zip(pa, pb, strict=True))


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
