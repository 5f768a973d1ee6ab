import csv

from results_fixture import make_results

from xner.aggregate import aggregate, find_runs


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
    assert written["plot_f1"].stat().st_size > 10_000 and written["plot_drop"].is_file()
