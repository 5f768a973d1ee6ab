"""Intrinsic translate-test evaluation of every projection method against gold target tags.

    .venv/bin/python scripts/eval_projection.py --source-model <English TaggerModule ckpt> --out results/projection

For each gold-labelled target set: translate it into English with Apertium, label the English with the source
model, align, project back onto the original target words with each method, and score against the gold tags
(PER/ORG/LOC; CoNLL-2002 MISC -> O). Model transfer (the source model applied to the target text directly) is
the baseline. Writes ``intrinsic.csv`` (F1 with 95% bootstrap intervals, projection rates, drops), and
``comparisons.csv`` (paired bootstrap of each method against model transfer and against the heuristic, on the
same sentences), and prints a markdown table. Each method also appears combined with model transfer
(``transfer_fill:<method>``: transfer's entities, gaps filled from the projection; ``projection_fill:<method>``:
the reverse; :mod:`xner.pipeline.ensemble`). With ``--analysis``, also ``analysis/<set>_<method>.md``: one
cause per gold and predicted entity, and the causes where model transfer and projection disagree
(:mod:`xner.pipeline.analysis`).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import time
from pathlib import Path

from xner.data.registry import load_split
from xner.labels import tags_to_spans
from xner.lit.loading import load_checkpoint_module
from xner.metrics import count_entities, scores_from_counts
from xner.pipeline import analysis
from xner.pipeline.ensemble import ENSEMBLES, ensemble
from xner.pipeline.project import simple_tokenize
from xner.pipeline.run import Pipeline
from xner.predict import predict_words
from xner.stats import bootstrap_f1, paired_bootstrap

# (set, Apertium pair into English, pair from English or None where Apertium has none)
SETS = {
    "conll2002:spa:test": ("spa-eng", "eng-spa"),
    "wikiann:spa:test": ("spa-eng", "eng-spa"),
    "wikiann:eus:test": ("eu-en", None),
    "wikiann:isl:test": ("isl-eng", None),
}
METHODS = ("heuristic", "heuristic_bt", "matching_ilp", "matching_greedy")
TYPES = ["PER", "ORG", "LOC"]


def method_options(method: str, has_from_english: bool) -> dict | None:
    """Projection options; ``None`` when the method needs MT that does not exist for the language."""
    if method == "heuristic_bt" and not has_from_english:
        return None
    if method.startswith("matching"):
        weights = (
            {"align": 0.5, "ner": 0.5, "translation": 1.0} if has_from_english else {"align": 0.5, "ner": 0.5}
        )
        return {"weights": weights}
    return {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source-model", required=True)
    parser.add_argument("--sets", nargs="*", default=list(SETS))
    parser.add_argument("--limit", type=int, default=2000, help="first N sentences of each set (None: all)")
    parser.add_argument("--aligner-layer", type=int, default=8)
    parser.add_argument("--aligner-method", default="itermax")
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--out", default="results/projection")
    parser.add_argument("--analysis", action="store_true", help="also write error-analysis tables")
    parser.add_argument(
        "--keep-names",
        action="store_true",
        help="also run every method with names kept verbatim through Apertium (<method>+keep_names rows, "
        "compared with the plain method on the same sentences)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    module = load_checkpoint_module(args.source_model)
    rows, comparisons = [], []
    for ref in args.sets:
        to_en, from_en = SETS[ref]
        gold, _ = load_split(ref, limit=args.limit)
        gold_tags = [s.tags for s in gold]
        counts = {}
        start = time.perf_counter()
        transfer = [p.tags for p in predict_words(module, gold, progress=False)]
        counts["model_transfer"] = count_entities(gold_tags, transfer, TYPES)
        rows.append(
            row(
                ref,
                "model_transfer",
                counts["model_transfer"],
                args.resamples,
                {"seconds": round(time.perf_counter() - start, 1)},
            )
        )
        variants = [(m, False) for m in METHODS] + ([(m, True) for m in METHODS] if args.keep_names else [])
        for base, keep in variants:
            method = f"{base}+keep_names" if keep else base
            options = method_options(base, from_en is not None)
            if options is None:
                rows.append(
                    {"set": ref, "method": method, "note": "n/a: Apertium has no English->target pair"}
                )
                continue
            spec = {
                "direction": "translate_test",
                "data": ref,
                "lang": ref.split(":")[1],
                "method": base,
                "to_english": {"kind": "apertium", "pair": to_en, **({"keep_names": True} if keep else {})},
                "from_english": {"kind": "apertium", "pair": from_en} if from_en else {},
                "aligner": {"kind": "embedding", "layer": args.aligner_layer, "method": args.aligner_method},
                "projection": options,
                "source_model": args.source_model,
                "limit": args.limit,
            }
            pipeline = Pipeline(spec, progress=False)
            result = pipeline.run()
            predicted = [s.tags for s in result.sentences]
            counts[method] = count_entities(gold_tags, predicted, TYPES)
            proj = result.meta["projection"]
            extra = {
                "projection_rate": round(proj["projection_rate"], 4),
                "source_entities": proj["source_entities"],
                "dropped": json.dumps(proj["dropped"]),
                "objective_sum": result.meta.get("objective_sum"),
                "seconds": result.meta["timings_s"]["total"],
                "weights": json.dumps(options.get("weights", {})),
            }
            rows.append(row(ref, method, counts[method], args.resamples, extra))
            print(f"{ref} {method}: F1 {rows[-1]['f1']:.1f} {rows[-1]['f1_ci95']}", flush=True)
            for kind in ENSEMBLES:  # the two taggings combined (xner.pipeline.ensemble)
                merged = [ensemble(kind, t, p) for t, p in zip(transfer, predicted, strict=True)]
                counts[f"{kind}:{method}"] = count_entities(gold_tags, merged, TYPES)
                rows.append(row(ref, f"{kind}:{method}", counts[f"{kind}:{method}"], args.resamples, {}))
            if args.analysis:
                write_analysis(
                    out / "analysis" / f"{ref.replace(':', '_')}_{method}.md", pipeline, predicted, transfer
                )
        for method, c in counts.items():
            # a +keep_names variant is also compared with its plain method: the fix's before/after
            plain = method.removesuffix("+keep_names") if method.endswith("+keep_names") else None
            for ref_method in ("model_transfer", "heuristic", *([plain] if plain else [])):
                if method == ref_method or ref_method not in counts:
                    continue
                cmp = paired_bootstrap(c, counts[ref_method], resamples=args.resamples)
                comparisons.append(
                    {
                        "set": ref,
                        "method": method,
                        "reference": ref_method,
                        "delta": cmp.delta,
                        "ci_low": cmp.low,
                        "ci_high": cmp.high,
                        "p_value": cmp.p_value,
                        "significant": cmp.significant,
                    }
                )
    write(out / "intrinsic.csv", rows)
    write(out / "comparisons.csv", comparisons)
    print(markdown(rows))


def write_analysis(path: Path, pipeline: Pipeline, predicted: list, transfer: list) -> None:
    """The error analysis of one method on one set, from the stages ``pipeline.run()`` cached (no rebuild).

    The links are the aligner's (heuristic_bt refines them inside the method, so its alignment causes are
    approximate); drop reasons are replayed exactly for ``heuristic`` and inferred from the links otherwise.
    """
    spec, gold = pipeline.spec, pipeline.inputs()[0]
    translations, t_key = pipeline.translate([" ".join(s.tokens) for s in gold], spec.to_english, None)
    english = [simple_tokenize(t) for t in translations]
    labelled, l_key = pipeline.label(english, t_key)
    links, _ = pipeline.align(english, [list(s.tokens) for s in gold], l_key)
    heuristic = {
        k: v for k, v in spec.projection.items() if k in ("max_gap", "only_i", "length_ratio", "top_k")
    }
    records = []
    for k, g in enumerate(gold):
        tags = labelled[k]["tags"]
        drops = None
        if spec.method == "heuristic":
            drops = analysis.heuristic_drop_reasons(tags_to_spans(tags), links[k], len(g), **heuristic)
        records.append(
            analysis.SentenceRecord(
                g.tokens, g.tags, predicted[k], english[k], tags, links[k], transfer[k], None, drops, g.id
            )
        )
    causes = analysis.analyze(records, TYPES)
    comparison = analysis.compare_with_transfer(records, causes)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        analysis.markdown_table(analysis.summarize(causes))
        + "\n\n"
        + analysis.comparison_table(comparison)
        + "\n"
    )


def row(ref: str, method: str, counts, resamples: int, extra: dict) -> dict:
    scores = scores_from_counts(counts)
    ci = bootstrap_f1(counts, resamples=resamples)
    return {
        "set": ref,
        "method": method,
        "sentences": scores["sentences"],
        "f1": scores["f1"],
        "f1_ci95": f"[{ci.low:.1f}, {ci.high:.1f}]",
        "precision": scores["precision"],
        "recall": scores["recall"],
        **{f"f1_{t}": scores["per_type"][t]["f1"] for t in TYPES},
        **extra,
    }


def write(path: Path, rows: list[dict]) -> None:
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def markdown(rows: list[dict]) -> str:
    sets = list(dict.fromkeys(r["set"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    lines = ["| method | " + " | ".join(sets) + " |", "| --- |" + " --- |" * len(sets)]
    for m in methods:
        cells = []
        for s in sets:
            hit = next((r for r in rows if r["set"] == s and r["method"] == m), None)
            cells.append("n/a" if hit is None or "f1" not in hit else f"{hit['f1']:.1f} {hit['f1_ci95']}")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
