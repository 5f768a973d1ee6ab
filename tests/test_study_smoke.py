"""`make study-smoke`: the study's whole code path (teacher, students at each depth/map, aggregation)."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # run_study.sh runs the aggregate from here
SCRIPT = ROOT / "results" / "kd_depth" / "run_study.sh"


def test_study_smoke_runs_every_setting(tmp_path, data_dir):
    # setting E needs NCHLT Setswana: run it where the data dir has it (tests must not depend on which files
    # happen to be there)
    has_nchlt = (data_dir / "nchlt" / "tsn" / "test.txt").is_file()
    env = {
        **os.environ,
        "SMOKE": "1",
        "STUDY_OUT": str(tmp_path / "study"),
        "XNER_DATA": str(data_dir),
        "XNER_CACHE": str(tmp_path / "cache"),
        "SETTINGS": "A B_swa D confirm" + (" E" if has_nchlt else ""),
    }
    proc = subprocess.run([str(SCRIPT)], env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = tmp_path / "study" / "results"
    # the confirmatory cell: depth 0 vs the declared depth on the confirmatory seeds, both scores compared
    with open(results / "B_swa_confirm" / "comparisons.csv") as handle:
        confirm = [r for r in csv.DictReader(handle) if r["metric"] == "drop"]
    assert {(r["score"], r["distill.depth"], r["runs"]) for r in confirm} == {
        ("strict", "1", "2"),
        ("dontcare", "1", "2"),
    }
    if has_nchlt:
        with open(results / "E_tsn" / "summary.csv") as handle:
            assert any(
                r["split"] == "tsn_news->tsn_gov" and r["score"] == "dontcare" for r in csv.DictReader(handle)
            )
    # the mechanism script on the smoke students: CKA per student layer, in and out of domain
    mech = subprocess.run(
        [sys.executable, str(SCRIPT.parent / "mechanism.py"), str(tmp_path / "study" / "B_swa_confirm"),
         "--pair", "swa_news:swa_wiki", "--sentences", "20", "--out", str(tmp_path / "mech")],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert mech.returncode == 0, mech.stderr[-3000:]
    with open(tmp_path / "mech" / "cka.csv") as handle:
        cka = list(csv.DictReader(handle))
    assert {r["domain"] for r in cka} == {"in", "out"} and all(0 <= float(r["cka"]) <= 1 for r in cka)
    for setting, pair in (
        ("A_eng", "eng_news->eng_wiki"),
        ("B_swa", "swa_news->swa_wiki"),
        ("D_swa_wikitext", "swa_news->swa_wiki"),
    ):
        with open(results / setting / "summary.csv") as handle:
            rows = list(csv.DictReader(handle))
        assert {r["distill.depth"] for r in rows} == {"0", "1"}
        assert any(r["split"] == pair and r["metric"] == "drop" for r in rows)
        root = json.loads((results / setting / "aggregate.json").read_text())["root"]
        with open(results / setting / "runs.csv") as handle:  # run dirs relative to the aggregate's root
            assert all(Path(ROOT, root, r["run"], "metrics.json").is_file() for r in csv.DictReader(handle))
        assert (results / setting / "f1_vs_distill_depth.png").is_file()
    with open(results / "B_swa" / "comparisons.csv") as handle:
        compared = {
            (r["distill.map"], r["distill.attention_weight"], r["distill.depth"])
            for r in csv.DictReader(handle)
        }
    assert compared == {("uniform", "0.0000", "1"), ("last", "0.0000", "1"), ("uniform", "1.0000", "1")}
