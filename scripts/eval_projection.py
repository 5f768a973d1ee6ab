"""Intrinsic translate-test evaluation of every projection method against gold target tags.

    .venv/bin/python scripts/eval_projection.py --source-model <English TaggerModule ckpt> --out results/projection
    .venv/bin/python scripts/eval_projection.py --config configs/projection_eval/masakhaner2_nllb.yaml \
        --source-model <English NER model: hub name or dir> --out results/projection_masakhaner2_nllb

One config per evaluation (``configs/projection_eval/``; fields: :mod:`xner.pipeline.intrinsic`) names the
sets, each one's MT, the aligner, the methods and their options. The default, ``apertium.yaml``, is the four
Apertium sets of ``results/projection``; ``masakhaner2_nllb.yaml`` and ``wikiann_xtreme_nllb.yaml`` are the
paper's evaluations with NLLB-200-3.3B, for a machine with a GPU and a network (README, "Paper-scale
translate-test"). ``--source-model``, ``--sets``, ``--limit``, ``--resamples`` and ``--aligner-*`` override the
config; ``--override key=value`` (Hydra syntax, repeatable) changes any other field.

For each gold-labelled target set: translate it into English, label the English with the source model (an
xner checkpoint, or a HF token-classification model by hub name or directory), align, project back onto the
original target words with each method, and score against the gold tags (PER/ORG/LOC; CoNLL-2002 MISC and
MasakhaNER DATE -> O). Model transfer (the source model applied to the target text directly) is the baseline;
a method whose MT direction does not exist (heuristic_bt without English->target MT) gets an n/a row. Writes
``intrinsic.csv`` (F1 with 95% bootstrap intervals, projection rates, drops), ``comparisons.csv`` (paired
bootstrap of each method against model transfer and against the heuristic, on the same sentences),
``config.json`` (the composed config and where each set was read from), and prints a markdown table. Each
method also appears combined with model transfer (``transfer_fill:<method>``: transfer's entities, gaps
filled from the projection; ``projection_fill:<method>``: the reverse; :mod:`xner.pipeline.ensemble`). With
``--analysis``, also ``analysis/<set>_<method>.md``: one cause per gold and predicted entity, and the causes
where model transfer and projection disagree (:mod:`xner.pipeline.analysis`).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from xner.data.registry import load_split
from xner.labels import tags_to_spans
from xner.metrics import count_entities, scores_from_counts
from xner.pipeline import analysis
from xner.pipeline.ensemble import ENSEMBLES, ensemble
from xner.pipeline.intrinsic import (
    EvalConfigError,
    eval_methods,
    eval_sets,
    load_eval_config,
    method_options,
    resolve_data,
)
from xner.pipeline.label import make_labeller
from xner.pipeline.names import snap_to_names
from xner.pipeline.project import simple_tokenize
from xner.pipeline.run import Pipeline
from xner.stats import bootstrap_f1, paired_bootstrap
from xner.tables import write_csv

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "projection_eval" / "apertium.yaml"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; options left unset keep the config's values."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="evaluation config (YAML)")
    parser.add_argument("--source-model", help="English NER model: xner .ckpt, HF model dir or hub name")
    parser.add_argument("--sets", nargs="*", help="only these sets of the config (refs)")
    parser.add_argument(
        "--limit",
        type=_limit,
        default=argparse.SUPPRESS,
        help="first N sentences of each set ('all': every one)",
    )
    parser.add_argument("--aligner-layer", type=int)
    parser.add_argument("--aligner-method")
    parser.add_argument("--resamples", type=int)
    parser.add_argument("--override", action="append", default=[], help="KEY=VALUE (Hydra), repeatable")
    parser.add_argument("--out", default="results/projection")
    parser.add_argument("--analysis", action="store_true", help="also write error-analysis tables")
    parser.add_argument(
        "--keep-names",
        nargs="*",
        default=[],
        choices=["capitalised", "uninflected"],
        help="also run every method with names kept verbatim through Apertium under these policies "
        "(<method>+keep_<policy> rows, compared with the plain method on the same sentences)",
    )
    parser.add_argument(
        "--snap",
        action="store_true",
        help="also score every tagging (model transfer included) with entities widened to the name-like run "
        "they lie in (<method>+snap rows; xner.pipeline.names.snap_to_names)",
    )
    return parser.parse_args(argv)


def _limit(text: str) -> int | None:
    return None if text.lower() in ("all", "none", "null") else int(text)


def load_config(args: argparse.Namespace) -> dict:
    """The composed config with the command line's overrides applied.

    Raises:
        EvalConfigError: no source model in the config or on the command line.
    """
    cfg = load_eval_config(args.config, args.override)
    for key, value in (("source_model", args.source_model), ("resamples", args.resamples)):
        if value is not None:
            cfg[key] = value
    if "limit" in vars(args):  # given: 'all' is None, so absence is told apart by SUPPRESS
        cfg["limit"] = args.limit
    cfg["aligner"] = dict(cfg.get("aligner") or {})
    for key, value in (("layer", args.aligner_layer), ("method", args.aligner_method)):
        if value is not None:
            cfg["aligner"][key] = value
    if not cfg.get("source_model"):
        raise EvalConfigError(
            f"{args.config}: no source model; pass --source-model <xner .ckpt, HF model dir or hub name> "
            "(or set XNER_SOURCE_MODEL)"
        )
    return cfg


def main(argv: list[str] | None = None) -> None:
    """Run the evaluation a config describes and write its tables."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    cfg = load_config(args)
    sets = eval_sets(cfg, str(args.config), args.sets)
    methods = eval_methods(cfg, str(args.config))
    types = list(cfg.get("types") or ["PER", "ORG", "LOC"])
    limit, resamples = cfg.get("limit"), cfg.get("resamples", 1000)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    labeller = make_labeller(cfg["source_model"])  # one model for transfer, every label stage and target NER
    sources = {s.ref: resolve_data(s) for s in sets}  # a missing file fails now, not hours into the run
    rows, comparisons = [], []
    for evalset in sets:
        ref, data = evalset.ref, sources[evalset.ref]
        if data != ref:
            print(f"{ref}: not under the data dir, reading {data}", flush=True)
        gold, _ = load_split(data, limit=limit)
        gold_tags = [s.tags for s in gold]
        counts = {}
        start = time.perf_counter()
        words = [list(s.tokens) for s in gold]
        transfer = [r["tags"] for r in labeller(words, progress=False)]
        counts["model_transfer"] = count_entities(gold_tags, transfer, types)
        seconds = {"seconds": round(time.perf_counter() - start, 1)}
        rows.append(row(ref, "model_transfer", counts["model_transfer"], resamples, seconds, types))
        snap = {
            "words": words,
            "gold_tags": gold_tags,
            "lang": evalset.lang,
            "resamples": resamples,
            "types": types,
        }
        if args.snap:
            rows.append(snapped_row(ref, "model_transfer", transfer, counts, **snap))
        variants = [(m, None) for m in methods] + [(m, k) for k in args.keep_names for m in methods]
        for base, keep in variants:
            method = f"{base}+keep_{keep}" if keep else base
            options = method_options(base, methods[base], bool(evalset.from_english))
            to_english = dict(evalset.to_english)
            if keep:
                to_english["keep_names"] = keep
            note = _not_applicable(options, to_english, keep)
            if note:
                rows.append({"set": ref, "method": method, "note": note})
                continue
            spec = {
                "direction": "translate_test",
                "data": data,
                "lang": evalset.lang,
                "method": base,
                "to_english": to_english,
                "from_english": evalset.from_english,
                "aligner": cfg["aligner"],
                "projection": options,
                "source_model": str(cfg["source_model"]),
                "limit": limit,
                "join_words": evalset.join,
            }
            pipeline = Pipeline(spec, progress=False, labeller=labeller)
            result = pipeline.run()
            predicted = [s.tags for s in result.sentences]
            counts[method] = count_entities(gold_tags, predicted, types)
            proj = result.meta["projection"]
            extra = {
                "projection_rate": round(proj["projection_rate"], 4),
                "source_entities": proj["source_entities"],
                "dropped": json.dumps(proj["dropped"]),
                "objective_sum": result.meta.get("objective_sum"),
                "seconds": result.meta["timings_s"]["total"],
                "weights": json.dumps(options.get("weights", {})),
            }
            rows.append(row(ref, method, counts[method], resamples, extra, types))
            print(f"{ref} {method}: F1 {rows[-1]['f1']:.1f} {rows[-1]['f1_ci95']}", flush=True)
            if args.snap:
                rows.append(snapped_row(ref, method, predicted, counts, **snap))
            for kind in (
                ENSEMBLES if keep is None else ()
            ):  # the two taggings combined (xner.pipeline.ensemble)
                merged = [ensemble(kind, t, p) for t, p in zip(transfer, predicted, strict=True)]
                counts[f"{kind}:{method}"] = count_entities(gold_tags, merged, types)
                rows.append(row(ref, f"{kind}:{method}", counts[f"{kind}:{method}"], resamples, {}, types))
            if args.analysis:
                write_analysis(
                    out / "analysis" / f"{ref.replace(':', '_')}_{method}.md",
                    pipeline,
                    predicted,
                    transfer,
                    types,
                )
        comparisons += compare(ref, counts, resamples)
    write_csv(out / "intrinsic.csv", rows)
    write_csv(out / "comparisons.csv", comparisons)
    # a local model is named by file name and content hash, never by a path of this machine
    model = str(cfg["source_model"])
    named = {
        "source_model": Path(model).name if Path(model).exists() else model,
        "source_model_key": labeller.cache_key(),
    }
    (out / "config.json").write_text(
        json.dumps({**cfg, **named, "data_sources": sources}, indent=2, default=str) + "\n"
    )
    print(markdown(rows))


def _not_applicable(options: dict | None, to_english: dict, keep: str | None) -> str | None:
    """Why a method cannot run on a set (its n/a row's note), or ``None``."""
    if options is None:
        if to_english.get("kind") == "apertium":
            return "n/a: Apertium has no English->target pair"
        return "n/a: no English->target translator"
    if keep and to_english.get("kind") != "apertium":
        return "n/a: keep_names needs Apertium"
    return None


def compare(ref: str, counts: dict, resamples: int) -> list[dict]:
    """Paired bootstrap of each method against model transfer and the heuristic (same sentences)."""
    comparisons = []
    for method, c in counts.items():
        # a variant (+keep_<policy>, +snap) is also compared with what it varies: the fix's before/after; a
        # snapped projection also with snapped model transfer
        parent = method.rsplit("+", 1)[0] if "+" in method else None
        snapped = "model_transfer+snap" if method.endswith("+snap") else None
        for ref_method in dict.fromkeys(("model_transfer", "heuristic", *filter(None, (parent, snapped)))):
            if method == ref_method or ref_method not in counts:
                continue
            cmp = paired_bootstrap(c, counts[ref_method], resamples=resamples)
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
    return comparisons


def write_analysis(path: Path, pipeline: Pipeline, predicted: list, transfer: list, types: list[str]) -> None:
    """The error analysis of one method on one set, from the stages ``pipeline.run()`` cached (no rebuild).

    The links are the aligner's (heuristic_bt refines them inside the method, so its alignment causes are
    approximate); drop reasons are replayed exactly for ``heuristic`` and inferred from the links otherwise.
    """
    spec, gold = pipeline.spec, pipeline.inputs()[0]
    translations, t_key = pipeline.translate(pipeline.texts(gold), spec.to_english, None)
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
    causes = analysis.analyze(records, types)
    comparison = analysis.compare_with_transfer(records, causes)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        analysis.markdown_table(analysis.summarize(causes))
        + "\n\n"
        + analysis.comparison_table(comparison)
        + "\n"
    )


def snapped_row(
    ref: str, method: str, tags: list, counts: dict, *, words, gold_tags, lang, resamples, types
) -> dict:
    """The ``<method>+snap`` row, its counts added to ``counts``: the tagging with entities widened to their
    names (:func:`xner.pipeline.names.snap_to_names`)."""
    snapped, n = snap_to_names(words, tags, lang)
    counts[f"{method}+snap"] = count_entities(gold_tags, snapped, types)
    widened = {"entities_widened": n["entities_widened"]}
    return row(ref, f"{method}+snap", counts[f"{method}+snap"], resamples, widened, types)


def row(ref: str, method: str, counts, resamples: int, extra: dict, types: list[str]) -> dict:
    """One ``intrinsic.csv`` row: F1 with its bootstrap interval, precision, recall, F1 per type, extras."""
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
        **{f"f1_{t}": scores["per_type"][t]["f1"] for t in types},
        **extra,
    }


def markdown(rows: list[dict]) -> str:
    """F1 and interval per method (rows) and set (columns)."""
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
