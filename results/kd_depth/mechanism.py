"""Mechanism check: does matching hidden states keep the student's representations closer to the teacher's
out of domain, and does that closeness go with a smaller domain-shift drop?

    .venv/bin/python results/kd_depth/mechanism.py <runs>/B_swa [<runs45>/B_swa] --pair swa_news:swa_wiki \\
        --out results/kd_depth/B_swa/mechanism [--sentences 500] [--teacher-ckpt <ckpt>]

For every finished student run under the given roots (``metrics.json`` + ``checkpoints/final.ckpt``) and its
teacher (``teacher_ckpt`` of the run's config, or ``--teacher-ckpt``), on the first ``--sentences``
sentences of the in-domain and of the out-of-domain test split (the specs in the run's ``data.test``,
encoded with the teacher's tokenizer), it computes linear CKA (:func:`xner.cka.linear_cka`) between
first-subword word vectors of each student hidden state and a teacher hidden state (0 = embeddings):

- ``reference`` rows, for every run: student layer ``i`` (``0..L_s``) with teacher layer
  ``round(i * L_t / L_s)``, the pairs the uniform map uses at full depth (depth ``L_s``). Every run, depth 0
  included, so gets one CKA per student layer on the same pairs, and the top pair ``(L_s, L_t)`` is
  CKA(last layer);
- ``mapped`` marks pairs the run was distilled on (its layer map); a mapped pair outside the reference
  (``map=last``/``skip``/``explicit``) gets a row of its own.

Written into ``--out``: ``cka.csv`` (one row per run, layer pair and domain), ``drops.csv`` (per run: the
student's drop ``F1_in - F1_out`` from its metrics.json, the teacher's drop on the same two test sets, their
difference and ratio, CKA(last) in and out of domain), ``cka_last_vs_depth.png`` (mean ± std over seeds),
``drop_vs_cka.png`` (student drop minus teacher drop vs out-of-domain CKA(last), one point per run, coloured
by depth; Pearson and Spearman correlations printed and kept in ``correlations.json``), and
``mechanism_cache.json``: per-run results, so a rerun computes only new or changed runs.

The teacher's F1 on a split comes from ``<teacher run>/metrics.json`` when it was tested on the same set
(same ref and number of sentences), else it is evaluated here (:func:`xner.predict.predict_words`, strict
entity F1 over the teacher's types; cached), or left empty with ``--no-teacher-eval``.

Cost on 2 CPU cores: the teacher runs once per split and invocation; a 12-layer me5-small teacher takes
about 0.2 s per Swahili news sentence there (shared cores), a 6-layer student about half, so 500 sentences
per split cost about one and a half minutes per student; the cache makes reruns free. ``--sentences`` trades precision for
time (CKA of the same pair on fewer words is noisier and, being biased, a little higher).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import os
import statistics
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from scipy.stats import pearsonr, spearmanr
from transformers import AutoTokenizer

from xner.cka import layer_pairs, linear_cka, word_representations
from xner.data.encoding import encode_sentences
from xner.data.registry import DataRef, load_split
from xner.lit.loading import load_checkpoint_module
from xner.metrics import count_entities, f1_from_counts
from xner.predict import predict_words

log = logging.getLogger("mechanism")
CACHE_VERSION = 1
DOMAINS = ("in", "out")


def find_runs(roots: Sequence[str | Path]) -> tuple[list[Path], list[Path]]:
    """Finished distillation runs under ``roots``, and run dirs with a metrics.json but no final.ckpt."""
    runs, skipped = [], []
    for root in roots:
        for path in sorted(Path(root).resolve().rglob("metrics.json")):
            record = json.loads(path.read_text())
            if not record.get("splits") or "distill" not in record.get("config", {}):
                continue
            (runs if (path.parent / "checkpoints" / "final.ckpt").is_file() else skipped).append(path.parent)
    return runs, skipped


def split_spec(spec: Any) -> tuple[str, dict]:
    """``(ref, load options)`` of a ``data.test`` entry: ``"ds:lang:split"`` or ``{ref: ..., limit: ...}``."""
    if isinstance(spec, str):
        return spec, {}
    options = dict(spec)
    if "ref" in options:
        return str(options.pop("ref")), options
    ref = DataRef.coerce(options)
    return str(ref), {k: v for k, v in options.items() if k not in ("dataset", "lang", "split", "subset")}


def load_sentences(spec: Any, limit: int | None, data_dir: str | None, types: Sequence[str]) -> list:
    """The first ``limit`` sentences of a test split, mapped and filtered as the training run read them."""
    ref, options = split_spec(spec)
    if limit is not None:
        options["limit"] = min(limit, options.get("limit") or limit)
    sentences, _ = load_split(ref, data_dir, keep_types=list(types), **options)
    return sentences


def planned_teacher_layers(info: dict, teacher_layers: int) -> set[int]:
    """Teacher hidden states a run's pairs need, read from its checkpoint's header (no model built)."""
    path = Path(info["run"]) / "checkpoints" / "final.ckpt"
    header = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    student_layers = int(header["hyper_parameters"]["student_config"]["num_hidden_layers"])
    mapped = header.get("layer_map")
    if mapped is None:  # not recorded: every teacher layer, to be safe
        return set(range(teacher_layers + 1))
    return {t for _, t, _, _ in layer_pairs(student_layers, teacher_layers, mapped)}


class Analysis:
    """Models, sentences, encodings and teacher states shared by the runs of one invocation."""

    def __init__(self, args: argparse.Namespace, cache: dict):
        self.args, self.cache = args, cache
        self.memo: dict[tuple, Any] = {}

    def _memo(self, key: tuple, make):
        if key not in self.memo:
            self.memo[key] = make()
        return self.memo[key]

    def teacher(self, ckpt: str):
        """The teacher module (loaded once)."""
        if not Path(ckpt).is_file():
            raise FileNotFoundError(f"teacher checkpoint {ckpt} not found: pass --teacher-ckpt <path>")
        return self._memo(("teacher", ckpt), lambda: load_checkpoint_module(ckpt))

    def sentences(self, info: dict, split: str, limit: int | None, types: Sequence[str]) -> list:
        """The first ``limit`` sentences of the run's test split ``split`` (loaded once)."""
        spec, data_dir = info["specs"][split], self.args.data_dir or info["data_dir"]
        key = ("sentences", json.dumps(spec, sort_keys=True), limit, data_dir, tuple(types))
        return self._memo(key, lambda: load_sentences(spec, limit, data_dir, types))

    def encode(self, encoder: str, sentences: list, key: tuple) -> tuple[list, int]:
        """Sentences encoded with ``encoder``'s tokenizer (once per key); cut words are logged."""

        def make():
            tokenizer = AutoTokenizer.from_pretrained(encoder)
            encoded, stats = encode_sentences(sentences, tokenizer, None, self.args.max_length)
            if stats.truncated_words or stats.empty_words:
                log.info(
                    "%s: %d words cut, %d empty: no CKA row", key, stats.truncated_words, stats.empty_words
                )
            return encoded, tokenizer.pad_token_id

        return self._memo(("encoded", encoder, *key), make)

    def run(self, info: dict, teacher_layers: set[int]) -> dict:
        """CKA rows of one student run (both domains)."""
        teacher = self.teacher(info["teacher_ckpt"])
        student = load_checkpoint_module(Path(info["run"]) / "checkpoints" / "final.ckpt")
        l_s, l_t = student.student.num_layers, teacher.model.num_layers
        pairs = layer_pairs(l_s, l_t, student.layer_map)
        rows = []
        for domain, split in zip(DOMAINS, info["pair"], strict=True):
            sentences = self.sentences(info, split, self.args.sentences, teacher.label_set.types)
            key = (json.dumps(info["specs"][split], sort_keys=True), self.args.sentences)
            t_encoded, t_pad = self.encode(teacher.hparams.encoder, sentences, key)
            states_key = ("states", info["teacher_ckpt"], *key)
            if states_key not in self.memo:  # the teacher runs once per split
                layers = sorted(teacher_layers)
                self.memo[states_key] = word_representations(
                    teacher, t_encoded, t_pad, layers, self.args.batch_size
                )
            t_states, t_present = self.memo[states_key]
            # a student with its own tokenizer: words are compared where both models have a first subword
            encoded, pad = self.encode(student.hparams.encoder, sentences, key)
            s_states, s_present = word_representations(
                student, encoded, pad, sorted({p[0] for p in pairs}), self.args.batch_size
            )
            both = s_present & t_present
            keep_s, keep_t = both[s_present], both[t_present]
            for s, t, is_mapped, is_reference in pairs:
                rows.append(
                    {
                        "domain": domain,
                        "split": split,
                        "student_layer": s,
                        "teacher_layer": t,
                        "mapped": is_mapped,
                        "reference": is_reference,
                        "words": int(both.sum()),
                        "cka": linear_cka(s_states[s][keep_s], t_states[t][keep_t]),
                    }
                )
        return {
            "student_layers": l_s,
            "teacher_layers": l_t,
            "layer_map": [list(p) for p in student.layer_map],
            "rows": rows,
        }

    def teacher_f1(self, info: dict, split: str) -> tuple[float | None, str]:
        """The teacher's F1 on the student's test set ``split``: from its metrics.json, evaluated, or none."""
        student_split = info["splits"].get(split, {})
        ckpt = Path(info["teacher_ckpt"])
        for path in (ckpt.parent.parent / "metrics.json", ckpt.parent / "metrics.json"):
            if path.is_file():
                splits = json.loads(path.read_text()).get("splits", {})
                ref = student_split.get("ref") or split_spec(info["specs"][split])[0]
                same = [
                    (name != split, s["f1"])  # the same split name first
                    for name, s in splits.items()
                    if s.get("ref") == ref and s.get("sentences") == student_split.get("sentences")
                ]
                if same:
                    return min(same)[1], "teacher metrics.json"
                break
        if self.args.no_teacher_eval:
            return None, "missing"
        stat = ckpt.stat()
        key = f"{ckpt}|{stat.st_size}|{stat.st_mtime_ns}|{json.dumps(info['specs'][split], sort_keys=True)}"
        key += f"|{student_split.get('sentences')}"
        if key not in self.cache["teacher_eval"]:
            teacher = self.teacher(str(ckpt))
            sentences = self.sentences(info, split, student_split.get("sentences"), teacher.label_set.types)
            log.info("evaluating the teacher on %s (%d sentences)", split, len(sentences))
            with torch.no_grad():
                preds = predict_words(teacher, sentences, batch_size=self.args.batch_size, progress=False)
            counts = count_entities(
                [s.tags for s in sentences], [p.tags for p in preds], teacher.label_set.types
            )
            self.cache["teacher_eval"][key] = {"f1": f1_from_counts(counts), "sentences": len(sentences)}
        return self.cache["teacher_eval"][key]["f1"], "evaluated here"


def run_info(run: Path, pair: tuple[str, str], teacher_override: str | None) -> dict:
    """What the analysis needs from a run's metrics.json."""
    record = json.loads((run / "metrics.json").read_text())
    cfg = record["config"]
    specs = (cfg.get("data") or {}).get("test") or {}
    missing = [s for s in pair if s not in specs or s not in record["splits"]]
    if missing:
        raise ValueError(
            f"{run}: no test split {missing} in metrics.json (splits: {sorted(record['splits'])})"
        )
    distill, data_dir = cfg["distill"], (cfg.get("data") or {}).get("data_dir")
    return {
        "run": str(run),
        "pair": list(pair),
        "specs": {s: specs[s] for s in pair},
        "splits": record["splits"],
        "depth": int(distill.get("depth", 0)),
        "map": distill.get("map", "uniform"),
        "attention_weight": float(distill.get("attention_weight", 0.0)),
        "seed": cfg.get("seed"),
        "teacher_ckpt": str(teacher_override or cfg.get("teacher_ckpt")),
        # the run's data root where it still exists here, else the default (xner.paths) or --data-dir
        "data_dir": data_dir if data_dir and Path(data_dir).is_dir() else None,
    }


def fingerprint(info: dict, args: argparse.Namespace) -> dict:
    """What a cached result depends on: the checkpoint file, the teacher, the splits and N."""
    files = [Path(info["run"]) / "checkpoints" / "final.ckpt", Path(info["teacher_ckpt"])]
    stats = [[str(f), f.stat().st_size, f.stat().st_mtime_ns] if f.is_file() else str(f) for f in files]
    return {
        "files": stats,
        "specs": info["specs"],
        "sentences": args.sentences,
        "max_length": args.max_length,
    }


def series_name(r: dict) -> str:
    """``uniform``, ``last``, ``uniform +attn``; depth 0 (logits only) belongs to every series."""
    return "logits only" if r["depth"] == 0 else r["map"] + (" +attn" if r["attention_weight"] > 0 else "")


def correlations(x: Sequence[float], y: Sequence[float]) -> dict:
    """Pearson and Spearman correlation with two-sided p (NaN for fewer than 3 points or no spread)."""
    keys = ("pearson_r", "pearson_p", "spearman_rho", "spearman_p")
    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return {"n": len(x), **dict.fromkeys(keys, math.nan)}
    values = [*pearsonr(x, y), *spearmanr(x, y)]
    return {"n": len(x), **{k: float(v) for k, v in zip(keys, values, strict=True)}}


def plot(drops: list[dict], out: Path, corr: dict) -> list[Path]:
    """CKA(last) vs depth (mean ± std over seeds; in-domain and out-of-domain panels, one line per series,
    each starting at the depth-0 runs), and the drop gap vs out-of-domain CKA(last), one point per run."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    cells: dict[tuple, list[dict]] = defaultdict(list)
    for r in drops:
        cells[(series_name(r), r["depth"])].append(r)
    names = sorted({s for s, d in cells if d != 0}) or ["logits only"]
    markers = {name: "os^vDP"[k % 6] for k, name in enumerate(names)}
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, domain in zip(axes, DOMAINS, strict=True):
        for k, name in enumerate(names):
            depths = sorted({d for s, d in cells if s == name or d == 0})
            values = [
                [r[f"cka_last_{domain}"] for r in cells[(name, d) if d else ("logits only", 0)]]
                for d in depths
            ]
            means = [statistics.fmean(v) for v in values]
            stds = [statistics.stdev(v) if len(v) > 1 else 0.0 for v in values]
            ax.errorbar(depths, means, yerr=stds, marker=markers[name], color=f"C{k}", capsize=3, label=name)
        ax.set(
            title=f"{domain}-domain test sentences".replace("out-", "out-of-"), xlabel="distillation depth"
        )
        ax.set_xticks(sorted({d for _, d in cells}))
    axes[0].set_ylabel("linear CKA, last student vs last teacher layer")
    axes[0].legend(fontsize=8)
    paths = [out / "cka_last_vs_depth.png"]
    fig.tight_layout()
    fig.savefig(paths[0], dpi=150)
    plt.close(fig)
    usable = [r for r in drops if r["drop_minus_teacher"] is not None]
    if usable:
        fig, ax = plt.subplots(figsize=(6, 4.5))
        colours = {d: f"C{k}" for k, d in enumerate(sorted({r["depth"] for r in usable}))}
        for r in usable:
            marker = markers.get(series_name(r), "o")
            ax.scatter(
                r["cka_last_out"],
                r["drop_minus_teacher"],
                color=colours[r["depth"]],
                marker=marker,
                edgecolors="k",
            )
        for d, colour in colours.items():
            ax.scatter([], [], color=colour, edgecolors="k", label=f"depth {d}")
        ax.legend(fontsize=8)
        ax.set(
            xlabel="CKA(last layer), out-of-domain sentences",
            ylabel="student drop - teacher drop (F1 points)",
            title=f"Pearson r {corr['pearson_r']:.2f}, Spearman rho {corr['spearman_rho']:.2f} (n={corr['n']})",
        )
        fig.tight_layout()
        paths.append(out / "drop_vs_cka.png")
        fig.savefig(paths[-1], dpi=150)
        plt.close(fig)
    return paths


def write_csv(path: Path, rows: list[dict]) -> None:
    """Dict rows with the union of their keys as columns (floats with 4 decimals)."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
        writer.writeheader()
        writer.writerows({k: f"{v:.4f}" if isinstance(v, float) else v for k, v in r.items()} for r in rows)


def save_cache(path: Path, cache: dict) -> None:
    """Write the cache atomically (an interrupted run keeps what it finished)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(cache, indent=1))
    os.replace(tmp, path)


def analyse(args: argparse.Namespace) -> dict:
    """Run the analysis; returns the tables, correlations, written paths and the runs computed this time."""
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cache_path = out / "mechanism_cache.json"
    cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    if cache.get("version") != CACHE_VERSION:
        cache = {"version": CACHE_VERSION, "runs": {}, "teacher_eval": {}}
    pair = tuple(args.pair.split(":", 1))
    runs, skipped = find_runs(args.roots)
    for run in skipped:
        log.warning("%s has metrics.json but no checkpoints/final.ckpt: left out", run)
    if not runs:
        raise FileNotFoundError(
            f"no finished distillation runs (metrics.json + final.ckpt) under {args.roots}"
        )
    infos = [run_info(run, pair, args.teacher_ckpt) for run in runs]
    todo = [
        i for i in infos if (cache["runs"].get(i["run"]) or {}).get("fingerprint") != fingerprint(i, args)
    ]
    analysis = Analysis(args, cache)
    teacher_layers: dict[str, set[int]] = defaultdict(set)  # what pending runs need (teacher runs once)
    for info in todo:
        depth = analysis.teacher(info["teacher_ckpt"]).model.num_layers
        teacher_layers[info["teacher_ckpt"]] |= planned_teacher_layers(info, depth)
    for k, info in enumerate(todo, 1):
        log.info("[%d/%d] %s", k, len(todo), info["run"])
        result = analysis.run(info, teacher_layers[info["teacher_ckpt"]])
        cache["runs"][info["run"]] = {"fingerprint": fingerprint(info, args), **result}
        save_cache(cache_path, cache)
    cka_rows, drops = [], []
    for info in infos:
        result = cache["runs"][info["run"]]
        base = {k: info[k] for k in ("run", "depth", "map", "attention_weight", "seed")}
        cka_rows += [{**base, **row} for row in result["rows"]]
        drops.append({**base, **drop_row(info, result, analysis)})
    save_cache(cache_path, cache)  # with any teacher evaluations
    usable = [r for r in drops if r["drop_minus_teacher"] is not None]
    groups = {"all runs": usable, "without attention loss": [r for r in usable if r["attention_weight"] == 0]}
    corr = {
        name: correlations([r["cka_last_out"] for r in rs], [r["drop_minus_teacher"] for r in rs])
        for name, rs in groups.items()
        if name == "all runs" or len(rs) < len(usable)
    }
    write_csv(out / "cka.csv", cka_rows)
    write_csv(out / "drops.csv", drops)
    as_json = {
        name: {k: None if v != v else v for k, v in c.items()} for name, c in corr.items()
    }  # NaN: null
    (out / "correlations.json").write_text(json.dumps({"pair": list(pair), **as_json}, indent=2))
    paths = [
        out / "cka.csv",
        out / "drops.csv",
        out / "correlations.json",
        *plot(drops, out, corr["all runs"]),
    ]
    computed = [i["run"] for i in todo]
    return {"cka": cka_rows, "drops": drops, "correlations": corr, "computed": computed,
            "skipped": [str(s) for s in skipped], "paths": paths}  # fmt: skip


def drop_row(info: dict, result: dict, analysis: Analysis) -> dict:
    """The student's and the teacher's drop on the run's (in, out) pair, and CKA(last) in and out."""
    last_pair = (result["student_layers"], result["teacher_layers"])
    last = {
        r["domain"]: r["cka"] for r in result["rows"] if (r["student_layer"], r["teacher_layer"]) == last_pair
    }
    f1_in, f1_out = (info["splits"][s]["f1"] for s in info["pair"])
    (t_in, source_in), (t_out, source_out) = (analysis.teacher_f1(info, s) for s in info["pair"])
    t_drop = t_in - t_out if t_in is not None and t_out is not None else None
    return {
        "f1_in": f1_in,
        "f1_out": f1_out,
        "drop": f1_in - f1_out,
        "teacher_f1_in": t_in,
        "teacher_f1_out": t_out,
        "teacher_drop": t_drop,
        "teacher_source": "; ".join(sorted({source_in, source_out})),
        "drop_minus_teacher": f1_in - f1_out - t_drop if t_drop is not None else None,
        "drop_ratio": (f1_in - f1_out) / t_drop if t_drop else None,
        "cka_last_in": last["in"],
        "cka_last_out": last["out"],
        "teacher_ckpt": info["teacher_ckpt"],
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("roots", nargs="+", help="run roots (Hydra multirun dirs of student runs)")
    parser.add_argument("--pair", required=True, help="in-domain:out-of-domain test split names")
    parser.add_argument("--out", required=True, help="output folder (the cache lives there too)")
    parser.add_argument("--sentences", type=int, default=500, help="first N sentences of each split")
    parser.add_argument("--teacher-ckpt", default=None, help="override every run's teacher_ckpt")
    parser.add_argument("--data-dir", default=None, help="override the runs' data.data_dir")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=512, help="subword limit (as in evaluation)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-teacher-eval", action="store_true", help="never evaluate the teacher here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    result = analyse(parse_args(argv))
    print(f"{len(result['drops'])} runs ({len(result['computed'])} computed now, the rest cached)")
    for name, c in result["correlations"].items():
        print(
            f"student drop - teacher drop vs CKA(last, out of domain), {name}: n={c['n']}, "
            f"Pearson r={c['pearson_r']:.3f} (p {c['pearson_p']:.3f}), "
            f"Spearman rho={c['spearman_rho']:.3f} (p {c['spearman_p']:.3f})"
        )
    for path in result["paths"]:
        print(f"written: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
