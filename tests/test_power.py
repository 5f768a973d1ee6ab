"""Minimum detectable effect: hand-computed cases, monotonicity, a simulation, and the aggregate-folder table."""

import csv
import json
import math

import numpy as np
import pytest
from results_fixture import make_results

from xner.aggregate import aggregate
from xner.power import (
    combined_se,
    main,
    mde,
    mde_table,
    paired_differences,
    power_at,
    se_from_interval,
    seeds_needed,
    simulated_power,
    z_value,
)


def test_known_values_by_hand():
    assert z_value(0.975) == pytest.approx(1.959964, abs=1e-6)
    assert z_value(0.8) == pytest.approx(0.841621, abs=1e-6)
    assert mde(1.0) == pytest.approx(2.8016, abs=1e-4)  # 1.96 + 0.84
    assert mde(0.5, alpha=0.05, power=0.9) == pytest.approx(0.5 * (1.959964 + 1.281552), abs=1e-5)
    assert combined_se(2.0, 4) == pytest.approx(1.0)  # sd 2 over 4 seeds
    assert combined_se(3.0, 9, se_sentences=math.sqrt(3)) == pytest.approx(2.0)  # sqrt(1 + 3)
    assert se_from_interval(-1.96, 1.96) == pytest.approx(1.0, abs=1e-4)
    assert mde(1.0, df=4) == pytest.approx(2.776445 + 0.940965, abs=1e-5)  # t quantiles, 4 df
    assert power_at(mde(1.0), 1.0) == pytest.approx(0.8, abs=1e-3)  # (+ the far tail, 1e-5)
    assert power_at(0.0, 1.0) == pytest.approx(0.05)


def test_mde_and_seeds_are_monotone():
    values = [mde(combined_se(1.3, n, 0.3)) for n in range(2, 40)]
    assert all(a > b for a, b in zip(values, values[1:], strict=False))
    t_values = [mde(combined_se(1.3, n, 0.3), df=n - 1) for n in range(2, 40)]
    assert all(a > b for a, b in zip(t_values, t_values[1:], strict=False))
    assert all(t > z for t, z in zip(t_values, values, strict=True))
    # never below the floor the shared test set sets
    assert values[-1] > mde(0.3)
    needs = [seeds_needed(e, 1.3, 0.3) for e in (0.9, 1.0, 1.5, 2.0, 3.0)]
    assert all(a >= b for a, b in zip(needs, needs[1:], strict=False))
    # consistency: the seeds needed for the MDE of n seeds is n
    for n in (3, 5, 12, 20):
        assert seeds_needed(mde(combined_se(1.3, n, 0.3)) + 1e-9, 1.3, 0.3) == n


def test_no_number_of_seeds_beats_the_test_set_noise():
    assert seeds_needed(1.0, sd_seeds=1.0, se_sentences=0.5) is None  # 1.0 / 2.80 < 0.5
    assert seeds_needed(1.0, sd_seeds=1.0, se_sentences=0.3) is not None
    with pytest.raises(ValueError, match="alpha and power"):
        seeds_needed(1.0, 1.0, power=1.0)
    with pytest.raises(ValueError, match="negative"):
        mde(-1.0)


def test_simulation_on_normal_data_agrees():
    sd, n, tau = 1.4, 8, 0.35
    se = combined_se(sd, n, tau)
    effect = mde(se)
    assert simulated_power(effect, sd, n, tau) == pytest.approx(0.80, abs=0.015)
    assert simulated_power(-effect, sd, n, tau, seed=1) == pytest.approx(0.80, abs=0.015)
    assert simulated_power(0.0, sd, n, tau, seed=2) == pytest.approx(0.05, abs=0.01)
    # half the MDE: the analytic power curve
    assert simulated_power(effect / 2, sd, n, tau, seed=3) == pytest.approx(
        power_at(effect / 2, se), abs=0.015
    )
    # with the seed SD estimated from the runs themselves (as in a real analysis), many seeds: close to 80%
    assert simulated_power(
        mde(combined_se(sd, 40, tau)), sd, 40, tau, seed=4, estimate_sd=True
    ) == pytest.approx(0.80, abs=0.03)


def test_paired_differences_pair_by_seed():
    a = {1: 10.0, 2: 12.0, 3: 9.0, 7: 1.0}
    b = {1: 8.0, 2: 13.0, 3: 9.5, 4: 0.0}
    assert paired_differences(a, b) == {1: 2.0, 2: -1.0, 3: -0.5}


@pytest.fixture(scope="module")
def aggregated(tmp_path_factory):
    root = make_results(tmp_path_factory.mktemp("runs"), depths=(0, 2, 6), seeds=(1, 2, 3, 4))
    out = tmp_path_factory.mktemp("agg")
    aggregate(
        [root], "distill.depth", out, series=["distill.map"], pairs=[("swa_news", "swa_wiki")],
        baseline={"distill.depth": "0"}, resamples=300,
    )  # fmt: skip
    return out


def test_table_from_an_aggregate_folder(aggregated):
    rows = mde_table(aggregated, target=2.0)
    assert [(r["distill.depth"], r["pair"]) for r in rows] == [
        ("2", "swa_news->swa_wiki"),
        ("6", "swa_news->swa_wiki"),
    ]
    runs = list(csv.DictReader((aggregated / "runs.csv").open()))
    f1 = {(r["distill.depth"], r["seed"], r["split"]): float(r["f1"]) for r in runs}
    for row in rows:
        diffs = [
            (f1[(row["distill.depth"], s, "swa_news")] - f1[(row["distill.depth"], s, "swa_wiki")])
            - (f1[("0", s, "swa_news")] - f1[("0", s, "swa_wiki")])
            for s in "1234"
        ]
        assert row["n_seeds"] == 4
        assert row["delta_drop"] == pytest.approx(np.mean(diffs), abs=1e-3)
        assert row["sd_diff"] == pytest.approx(np.std(diffs, ddof=1), abs=1e-3)
        assert row["se"] == pytest.approx(math.hypot(row["se_seeds"], row["se_sentences"]))
        assert row["mde_80"] == pytest.approx(2.8016 * row["se"], rel=1e-4)
        assert row["mde_80_t"] > row["mde_80"]
        # the combined SE is the SE the two-level bootstrap itself shows (its interval width), roughly
        assert 0.6 < row["se"] / row["se_two_level_bootstrap"] < 1.6
        assert row["note"] == ""
        need = row["seeds_for_2"]
        assert need == "never" or isinstance(need, int)


def test_cli_writes_the_table_and_refuses_duplicate_seeds(aggregated, tmp_path, capsys):
    out = tmp_path / "mde.csv"
    assert main([str(aggregated), "--target", "1.5", "--out", str(out)]) == 0
    assert "mde_80" in capsys.readouterr().out
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 2 and "seeds_for_1.5" in rows[0]
    # a folder whose runs.csv has two runs with one seed in one group
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "aggregate.json").write_text((aggregated / "aggregate.json").read_text())
    lines = (aggregated / "runs.csv").read_text().splitlines()
    header, first = lines[0], lines[1].split(",")
    first[0] = first[0] + "_copy"
    (broken / "runs.csv").write_text("\n".join([header, *lines[1:], ",".join(first)]) + "\n")
    with pytest.raises(ValueError, match="pairing by seed"):
        mde_table(broken)


def test_missing_sentence_part_is_flagged(aggregated, tmp_path):
    folder = tmp_path / "nocmp"
    folder.mkdir()
    for name in ("aggregate.json", "runs.csv"):
        (folder / name).write_text((aggregated / name).read_text())
    rows = mde_table(folder)
    assert rows and all("leaves out the test sentences" in r["note"] for r in rows)
    assert all(r["se"] == pytest.approx(r["se_seeds"]) for r in rows)
    spec = json.loads((folder / "aggregate.json").read_text())
    spec["baseline"] = None
    (folder / "aggregate.json").write_text(json.dumps(spec))
    with pytest.raises(ValueError, match="no baseline"):
        mde_table(folder)
