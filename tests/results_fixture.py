"""A small, synthetic results tree shaped like a depth sweep (for aggregation and notebook tests).

Runs are made of real xner output files (``metrics.json`` + ``predictions/<split>.conll``); predictions are
gold tags with entities erased at a rate that depends on depth and domain, so the expected trend is known.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from xner.io.conll import write_conll
from xner.metrics import count_entities, scores_from_counts
from xner.stats import bootstrap_f1
from xner.types import Sentence

GOLD = ["B-PER", "I-PER", "O", "B-LOC", "O", "B-ORG", "O"]


def erase(tags: list[str], rate: float, rng: random.Random) -> list[str]:
    """Drop each entity with probability ``rate`` (keeps IOB2 valid)."""
    out, drop = [], False
    for t in tags:
        if t.startswith("B-"):
            drop = rng.random() < rate
        out.append("O" if drop and t != "O" else t)
        if t == "O":
            drop = False
    return out


def make_results(root: Path, depths=(0, 2, 6), seeds=(1, 2, 3), n_news=300, n_wiki=200) -> Path:
    """Write runs ``root/<depth>_<seed>/``; deeper students lose less out of domain (by construction)."""
    for depth in depths:
        for seed in seeds:
            rng = random.Random(1000 * depth + seed)
            run = root / f"depth{depth}_seed{seed}"
            splits = {}
            for split, n, rate in (("swa_news", n_news, 0.2), ("swa_wiki", n_wiki, 0.6 - 0.05 * depth)):
                sents = [
                    Sentence([f"w{i}" for i in range(len(GOLD))], GOLD, id=f"{split}:{k}") for k in range(n)
                ]
                preds = [erase(GOLD, rate, rng) for _ in sents]
                write_conll(run / "predictions" / f"{split}.conll", sents, [preds])
                counts = count_entities([s.tags for s in sents], preds)
                scores = scores_from_counts(counts)
                ci = bootstrap_f1(counts, resamples=200)
                splits[split] = {**scores, "f1_ci95": [ci.low, ci.high]}
            record = {
                "task": "kd_depth",
                "splits": splits,
                "config": {"seed": seed, "distill": {"depth": depth, "map": "uniform"}},
            }
            (run / "metrics.json").write_text(json.dumps(record))
    return root
