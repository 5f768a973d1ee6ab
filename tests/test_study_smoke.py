"""`make study-smoke`: the study's whole code path (teacher, students at each depth/map, aggregation)."""

import csv
import json
import os
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "results" / "kd_depth" / "run_study.sh"


def test_study_smoke_runs_every_setting(tmp_path, data_dir):
    env = {
        **os.environ,
        "SMOKE": "1",
        "STUDY_OUT": str(tmp_path / "study"),
        "XNER_DATA": str(data_dir),
        "XNER_CACHE": str(tmp_path / "cache"),
    }
    proc = subprocess.run([str(SCRIPT)], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = tmp_path / "study" / "results"
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
            assert all(Path(root, r["run"], "metrics.json").is_file() for r in csv.DictReader(handle))
        assert (results / setting / "f1_vs_distill_depth.png").is_file()
    with open(results / "B_swa" / "comparisons.csv") as handle:
        compared = {
            (r["distill.map"], r["distill.attention_weight"], r["distill.depth"])
            for r in csv.DictReader(handle)
        }
    assert compared == {("uniform", "0.0000", "1"), ("last", "0.0000", "1"), ("uniform", "1.0000", "1")}
