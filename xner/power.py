"""Minimum detectable effect (MDE) of a seed-paired comparison, and the seeds a target effect needs.

The comparison is the one ``xner.aggregate`` makes against a baseline: runs of two groups paired by seed,
``D_k = drop_A(seed k) - drop_B(seed k)`` (``drop = F1_in - F1_out``) for ``k = 1..n``, the estimate
``delta = mean_k D_k``, decided by a two-level paired bootstrap (seed pairs resampled, and test sentences
resampled within runs). Its standard error has the two parts that bootstrap resamples::

    SE^2 = s_D^2 / n + SE_sent^2

- ``s_D``: the sample standard deviation (``ddof=1``) of the paired differences over seeds (training
  randomness; what resampling seed pairs measures);
- ``SE_sent``: the standard error of ``delta`` over test-sentence samples with the runs fixed (what
  resampling sentences measures), read from the sentences-only bootstrap interval of ``delta`` as
  ``(high - low) / (2 z_{1 - (1 - level) / 2})``.

The sum is the law of total variance for the two-level bootstrap (``Var = E[Var(. | sentences)] +
Var(E[. | sentences])``), up to the bootstrap's own ``(n - 1) / n`` factor on the seed part. Then, two-sided
at level ``alpha`` and power ``1 - beta``::

    MDE = (z_{1 - alpha/2} + z_{1 - beta}) * SE          (2.80 * SE for alpha 0.05, power 0.8)

and the seeds needed for a target effect ``E``: the smallest ``n`` with ``MDE(n) <= E``::

    n = ceil(s_D^2 / ((E / (z_{1 - alpha/2} + z_{1 - beta}))^2 - SE_sent^2))

(none when ``E / (z + z) <= SE_sent``: the shared test set alone is too noisy, and more seeds cannot help).

Assumptions: ``delta`` is approximately normal (the percentile bootstrap assumes as much); the two variance
parts are independent; ``s_D`` under the alternative is the observed one; ``SE_sent`` does not shrink with
more seeds (every seed is scored on the same test sentences, so their sampling error is shared; the
run-specific part of it does average out, so this is conservative). With 3-5 seeds the normal quantiles are
optimistic: :func:`mde` also takes ``df`` for Student-t quantiles (the table reports both, ``df = n - 1``).

    python -m xner.power results/kd_depth/B_swa [--target 1.5] [--out mde.csv]

reads an ``xner.aggregate`` output folder (``aggregate.json``, ``runs.csv``, ``comparisons.csv``) and prints,
per (series, x) against the baseline and per (in, out) pair: seeds paired, the observed delta of the drop,
its SE parts, the MDE at the chosen power (normal and t), and the seeds a ``--target`` effect would need.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from statistics import NormalDist

import numpy as np

from xner.aggregate_compare import baseline_group
from xner.tables import write_csv

_NORMAL = NormalDist()


def z_value(q: float) -> float:
    """The standard normal ``q``-quantile."""
    return _NORMAL.inv_cdf(q)


def _quantile(q: float, df: float | None) -> float:
    if df is None:
        return z_value(q)
    if df <= 0:
        raise ValueError(f"t quantiles need df > 0, got {df}")
    from scipy.stats import t  # noqa: PLC0415 - only for the optional t correction

    return float(t.ppf(q, df))


def _check_levels(alpha: float, power: float) -> None:
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError(f"alpha and power must lie in (0, 1), got alpha={alpha}, power={power}")


def mde(se: float, alpha: float = 0.05, power: float = 0.8, df: float | None = None) -> float:
    """Minimum detectable effect of a two-sided test: ``(q_{1 - alpha/2} + q_{power}) * se``.

    Args:
        se: standard error of the estimate.
        alpha: two-sided significance level.
        power: the wanted probability of rejecting when the true effect equals the MDE.
        df: Student-t degrees of freedom (``None``: normal quantiles).
    """
    _check_levels(alpha, power)
    if se < 0:
        raise ValueError(f"a standard error cannot be negative, got {se}")
    return (_quantile(1 - alpha / 2, df) + _quantile(power, df)) * se


def combined_se(sd_seeds: float, n: int, se_sentences: float = 0.0) -> float:
    """``sqrt(sd_seeds^2 / n + se_sentences^2)``: the SE of a mean over ``n`` seed-paired differences."""
    if n < 1:
        raise ValueError(f"need at least one seed pair, got n={n}")
    return math.sqrt(sd_seeds**2 / n + se_sentences**2)


def se_from_interval(low: float, high: float, level: float = 0.95) -> float:
    """The SE a normal ``level`` interval ``[low, high]`` implies: ``(high - low) / (2 z)``."""
    if high < low:
        raise ValueError(f"interval bounds in the wrong order: [{low}, {high}]")
    return (high - low) / (2 * z_value(1 - (1 - level) / 2))


def power_at(effect: float, se: float, alpha: float = 0.05) -> float:
    """Probability that the two-sided z-test rejects when the true effect is ``effect``."""
    if se <= 0:
        raise ValueError(f"power needs a positive standard error, got {se}")
    z = z_value(1 - alpha / 2)
    shift = abs(effect) / se
    return _NORMAL.cdf(shift - z) + _NORMAL.cdf(-shift - z)


def seeds_needed(
    effect: float, sd_seeds: float, se_sentences: float = 0.0, alpha: float = 0.05, power: float = 0.8
) -> int | None:
    """The fewest seed pairs whose MDE is at most ``effect`` (``None`` when no number of seeds suffices).

    Args:
        effect: the target effect (its sign is ignored).
        sd_seeds: standard deviation of the paired differences over seeds.
        se_sentences: the test-sentence part of the SE (fixed: more seeds do not shrink it).
        alpha: two-sided significance level.
        power: the wanted power.
    """
    _check_levels(alpha, power)
    room = (abs(effect) / (z_value(1 - alpha / 2) + z_value(power))) ** 2 - se_sentences**2
    if room <= 0:
        return None
    return max(2, math.ceil(sd_seeds**2 / room - 1e-12))


def paired_differences(a: Mapping[object, float], b: Mapping[object, float]) -> dict[object, float]:
    """``a[seed] - b[seed]`` for every seed in both (the runs of two groups paired by seed)."""
    return {seed: a[seed] - b[seed] for seed in sorted(set(a) & set(b), key=str)}


def simulated_power(
    effect: float,
    sd_seeds: float,
    n: int,
    se_sentences: float = 0.0,
    alpha: float = 0.05,
    simulations: int = 20000,
    seed: int = 0,
    estimate_sd: bool = False,
) -> float:
    """Rejection rate of the two-sided test on synthetic normal data (to check the formulas).

    Each simulated study draws ``n`` paired differences ``D_k ~ N(effect, sd_seeds^2)`` and one shared
    test-set error ``e ~ N(0, se_sentences^2)`` added to all of them; it rejects when
    ``|mean(D)| / SE > z_{1 - alpha/2}``, with ``SE`` from the true ``sd_seeds`` or, with ``estimate_sd``,
    from the simulated sample's own standard deviation (as an analysis of real runs must).
    """
    rng = np.random.default_rng(seed)
    d = rng.normal(effect, sd_seeds, size=(simulations, n)) + rng.normal(0, se_sentences, (simulations, 1))
    sd = d.std(axis=1, ddof=1) if estimate_sd else np.full(simulations, sd_seeds)
    se = np.sqrt(sd**2 / n + se_sentences**2)
    return float(np.mean(np.abs(d.mean(axis=1)) / se > z_value(1 - alpha / 2)))


# ---------------------------------------------------------------- tables from xner.aggregate output
def _read_csv(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except ValueError:
        return None


def mde_table(
    folder: str | Path,
    alpha: float = 0.05,
    power: float = 0.8,
    target: float | None = None,
    pairs: Sequence[tuple[str, str]] | None = None,
    baseline: Mapping[str, str] | None = None,
) -> list[dict]:
    """One row per (series, x) group against the baseline and per (in, out) pair: the MDE of delta drop.

    Args:
        folder: an ``xner.aggregate`` output folder (``aggregate.json`` and ``runs.csv``; ``comparisons.csv``
            gives the sentence part of the SE; without it that part is left out and the row says so).
        alpha: two-sided significance level.
        power: the wanted power.
        target: an effect size (F1 points) to give the seeds needed for.
        pairs: ``(in, out)`` split pairs (default: those of ``aggregate.json``).
        baseline: ``{key: value}`` of the reference group (default: that of ``aggregate.json``).

    Returns:
        Rows with the group's series and x values, ``pair``, ``baseline``, ``n_seeds`` (seeds in both groups),
        ``delta_drop`` (mean paired difference of the drops), ``sd_diff`` (``s_D``), ``se_seeds``
        (``s_D / sqrt(n)``), ``se_sentences`` (from the sentences-only interval of ``comparisons.csv``),
        ``se`` (both combined), ``se_two_level_bootstrap`` (what the two-level interval's width implies: a
        check on ``se``), ``mde_<power>`` (normal quantiles), ``mde_<power>_t`` (t, ``n - 1`` df), ``note``,
        and with ``target`` ``seeds_for_<target>`` (an int, or ``"never"``).

    Raises:
        FileNotFoundError: no ``runs.csv`` or ``aggregate.json`` in ``folder``.
        ValueError: no baseline given, or two runs of one group with the same seed.
    """
    folder = Path(folder)
    for name in ("aggregate.json", "runs.csv"):
        if not (folder / name).is_file():
            raise FileNotFoundError(
                f"{folder / name} not found: run `python -m xner.aggregate ... --out {folder}`"
            )
    spec = json.loads((folder / "aggregate.json").read_text())
    keys = [*spec.get("series", []), spec["x"]]
    pairs = [tuple(p) for p in (pairs if pairs is not None else spec.get("pairs", []))]
    baseline = baseline if baseline is not None else spec.get("baseline")
    if not baseline:
        raise ValueError(
            f"no baseline in {folder / 'aggregate.json'}: pass baseline={{'distill.depth': '0'}}"
        )
    # group -> seed -> split -> F1
    f1: dict[tuple, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    runs_seen: dict[tuple, str] = {}
    for r in _read_csv(folder / "runs.csv"):
        group, seed = tuple(r.get(k, "") for k in keys), r.get("seed", "")
        previous = runs_seen.setdefault((group, seed, r["split"]), r["run"])
        if previous != r["run"]:
            raise ValueError(
                f"runs {previous} and {r['run']} are both seed {seed} of group {dict(zip(keys, group, strict=True))}: "
                "pairing by seed needs one run per seed and group"
            )
        f1[group][seed][r["split"]] = float(r["f1"])
    comparisons = {}
    if (folder / "comparisons.csv").is_file():
        for c in _read_csv(folder / "comparisons.csv"):
            # strict rows: runs.csv's F1 is strict (aggregates also hold don't-care rows, in a score column)
            if c.get("metric") == "drop" and c.get("score", "strict") == "strict":
                comparisons[(tuple(c.get(k, "") for k in keys), c["split"])] = c
    multiplier = mde(1.0, alpha, power)
    rows = []
    for group in sorted(f1, key=lambda g: tuple(str(v) for v in g)):
        ref = baseline_group(list(f1), keys, group, baseline, keys[:-1])  # the same pairing as the aggregate
        if ref is None or ref == group:
            continue
        for ind, ood in pairs:
            drops = [
                {s: v[ind] - v[ood] for s, v in f1[g].items() if ind in v and ood in v} for g in (group, ref)
            ]
            diffs = list(paired_differences(*drops).values())
            if not diffs:
                continue
            n = len(diffs)
            sd = float(np.std(diffs, ddof=1)) if n > 1 else math.nan
            cmp = comparisons.get((group, f"{ind}->{ood}"), {})
            lo, hi = _float(cmp.get("ci_low_sentences_only")), _float(cmp.get("ci_high_sentences_only"))
            se_sent = se_from_interval(lo, hi) if lo is not None and hi is not None else None
            se = combined_se(sd, n, se_sent or 0.0) if n > 1 else math.nan
            lo2, hi2 = _float(cmp.get("ci_low")), _float(cmp.get("ci_high"))
            se_boot = se_from_interval(lo2, hi2) if lo2 is not None and hi2 is not None else math.nan
            note = "" if se_sent is not None else "no comparisons.csv row: SE leaves out the test sentences"
            row = {
                **dict(zip(keys, group, strict=True)),
                "pair": f"{ind}->{ood}",
                "baseline": " ".join(f"{k}={v}" for k, v in baseline.items()),
                "n_seeds": n,
                "delta_drop": float(np.mean(diffs)),
                "sd_diff": sd,
                "se_seeds": sd / math.sqrt(n) if n > 1 else math.nan,
                "se_sentences": se_sent if se_sent is not None else math.nan,
                "se": se,
                "se_two_level_bootstrap": se_boot,
                f"mde_{round(100 * power)}": multiplier * se,
                f"mde_{round(100 * power)}_t": mde(se, alpha, power, df=n - 1) if n > 1 else math.nan,
                "note": note,
            }
            if target is not None:
                need = seeds_needed(target, sd, se_sent or 0.0, alpha, power) if n > 1 else None
                row[f"seeds_for_{target:g}"] = need if need is not None else "never"
            rows.append(row)
    return rows


def _format(value: object) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def main(argv: list[str] | None = None) -> int:
    """CLI: the MDE table of an ``xner.aggregate`` folder."""
    parser = argparse.ArgumentParser(prog="python -m xner.power", description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", help="an xner.aggregate --out folder")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--power", type=float, default=0.8)
    parser.add_argument("--target", type=float, default=None, help="effect (F1 points) to size seeds for")
    parser.add_argument("--pair", action="append", default=None, help="in:out (default: aggregate.json's)")
    parser.add_argument("--baseline", nargs="*", default=None, help="key=value (default: aggregate.json's)")
    parser.add_argument("--out", default=None, help="also write the table as CSV here")
    args = parser.parse_args(argv)
    pairs = [tuple(p.split(":", 1)) for p in args.pair] if args.pair else None
    baseline = dict(kv.split("=", 1) for kv in args.baseline) if args.baseline else None
    rows = mde_table(args.folder, args.alpha, args.power, args.target, pairs, baseline)
    if not rows:
        print(f"no comparisons against the baseline found in {args.folder}")
        return 1
    columns = [c for c in rows[0] if c != "note"]
    print("\t".join(columns))
    for r in rows:
        print("\t".join(_format(r.get(c, "")) for c in columns) + (f"\t({r['note']})" if r["note"] else ""))
    if args.out:
        write_csv(args.out, rows, ".2f")
        print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
