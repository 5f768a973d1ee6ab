import csv
import json
import shutil
from pathlib import Path

import pytest
from results_fixture import make_results

from xner.aggregate import aggregate, find_runs, main
from xner.aggregate_plots import figure
from xner.completeness import IncompleteResults


def read(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


def test_aggregate_depth_sweep(tmp_path):
    make_results(tmp_path / "runs")
    assert len(find_runs([tmp_path / "runs"])) == 9
    written = aggregate(
        [tmp_path / "runs"],
        "distill.depth",
        tmp_path / "out",
        series=["distill.map"],
        pairs=[("swa_news", "swa_wiki")],
        baseline={"distill.depth": "0"},
        resamples=300,
    )
    runs = read(written["runs"])
    assert len(runs) == 18 and {r["distill.depth"] for r in runs} == {"0", "2", "6"}
    summary = read(written["summary"])
    f1 = {(r["distill.depth"], r["split"]): r for r in summary if r["metric"] == "f1"}
    assert all(int(r["runs"]) == 3 for r in f1.values())
    assert float(f1[("6", "swa_wiki")]["mean"]) > float(f1[("0", "swa_wiki")]["mean"]) + 10
    drops = {r["distill.depth"]: float(r["mean"]) for r in summary if r["metric"] == "drop"}
    assert drops["6"] < drops["2"] < drops["0"]
    comparisons = read(written["comparisons"])
    wiki = {r["distill.depth"]: r for r in comparisons if r["split"] == "swa_wiki"}
    assert wiki["6"]["significant"] == "True" and float(wiki["6"]["delta"]) > 0
    news = {r["distill.depth"]: r for r in comparisons if r["split"] == "swa_news"}
    assert news["6"]["significant"] == "False"  # same erase rate in-domain: no real difference
    drop_cmp = {r["distill.depth"]: r for r in comparisons if r["metric"] == "drop"}
    assert float(drop_cmp["6"]["delta"]) < 0 and drop_cmp["6"]["significant"] == "True"
    assert written["plot_f1"].is_file() and written["plot_drop"].is_file()
    # the plots show the summary: one line per split, at the depths, through the means, with std error bars
    plotted = [
        {**r, "mean": float(r["mean"]), "std": float(r["std"])} for r in summary if r["score"] == "strict"
    ]
    for metric, splits in (("f1", ["swa_news", "swa_wiki"]), ("drop", ["swa_news->swa_wiki"])):
        fig = figure(plotted, "distill.depth", ["distill.map"], metric, "t")
        lines = {c.get_label(): c for c in fig.axes[0].containers}
        assert sorted(lines) == [f"map=uniform: {s}" for s in splits]
        for split in splits:
            rows = sorted((r for r in plotted if r["metric"] == metric and r["split"] == split),
                          key=lambda r: int(r["distill.depth"]))  # fmt: skip
            xs, ys = lines[f"map=uniform: {split}"].lines[0].get_data()
            assert list(xs) == [0.0, 2.0, 6.0] and list(ys) == pytest.approx([r["mean"] for r in rows])
            bars = lines[f"map=uniform: {split}"].lines[2][0].get_segments()
            assert [b[1][1] - b[0][1] for b in bars] == pytest.approx([2 * r["std"] for r in rows])
    assert figure(plotted, "distill.depth", ["distill.map"], "no_such_metric", "t") is None


def test_runs_are_named_relative_to_the_input_root(tmp_path):
    # two roots (e.g. seeds 1,2 from one machine, 3 from another): named from their common parent
    make_results(tmp_path / "a" / "B_swa", depths=(0, 2), seeds=(1, 2), n_news=20, n_wiki=20)
    make_results(tmp_path / "b" / "B_swa", depths=(0, 2), seeds=(3,), n_news=20, n_wiki=20)
    written = aggregate(
        [tmp_path / "a" / "B_swa", tmp_path / "b" / "B_swa"], "distill.depth", tmp_path / "out"
    )
    names = {r["run"] for r in read(written["runs"])}
    assert "a/B_swa/depth0_seed1" in names and "b/B_swa/depth2_seed3" in names and len(names) == 6
    spec = json.loads(written["spec"].read_text())
    assert Path(spec["root"]).resolve() == tmp_path.resolve() and not Path(spec["root"]).is_absolute()
    assert sorted(spec["runs"]) == sorted(names) and all(
        Path(spec["root"], n, "metrics.json").is_file() for n in names
    )
    summary = read(written["summary"])
    assert {r["runs"] for r in summary} == {"3"}  # same relative names in both roots do not merge runs


def test_a_cell_with_a_missing_seed_is_refused(tmp_path, caplog):
    make_results(tmp_path / "runs", n_news=20, n_wiki=20)
    shutil.rmtree(tmp_path / "runs" / "depth2_seed3")
    with pytest.raises(IncompleteResults, match=r"cell \(distill.depth=2\) has 2 of 3 runs") as err:
        aggregate([tmp_path / "runs"], "distill.depth", tmp_path / "out")
    assert "--allow-incomplete" in str(err.value) and "--expect-runs" in str(err.value)
    assert not (tmp_path / "out" / "runs.csv").exists()

    written = aggregate([tmp_path / "runs"], "distill.depth", tmp_path / "out", allow_incomplete=True)
    runs = {r["distill.depth"]: r["runs"] for r in read(written["summary"]) if r["split"] == "swa_wiki"}
    assert runs == {"0": "3", "2": "2", "6": "3"}
    assert "has 2 of 3 runs" in caplog.text
    assert json.loads(written["spec"].read_text())["incomplete"] == ["cell (distill.depth=2) has 2 of 3 runs"]

    with pytest.raises(IncompleteResults, match="has 3 of 4 runs"):  # every cell short of --expect-runs
        aggregate([tmp_path / "runs"], "distill.depth", tmp_path / "out", expect_runs=4)
    assert aggregate([tmp_path / "runs"], "distill.depth", tmp_path / "out", expect_runs=2)


def test_unfinished_run_dirs_are_refused(tmp_path, capsys):
    make_results(tmp_path / "runs", n_news=20, n_wiki=20)
    killed = tmp_path / "runs" / "depth6_seed4"
    (killed / ".hydra").mkdir(parents=True)
    (killed / "checkpoints").mkdir()
    args = [str(tmp_path / "runs"), "--x", "distill.depth", "--out", str(tmp_path / "out")]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert f"unfinished run (no metrics.json): {killed}" in err and "cell (" not in err
    assert main([*args, "--allow-incomplete"]) == 0
    assert len(read(tmp_path / "out" / "runs.csv")) == 18
