"""A multirun cell, a run dir, a study counts as finished only when every run wrote metrics.json."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from xner.completeness import check_multirun, incomplete_run_dirs, main, multirun_jobs

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "results" / "kd_depth" / "run_study.sh"


@pytest.mark.parametrize(
    ("overrides", "jobs"),
    [
        (["seed=1,2,3", "distill.depth=0,1"], 6),
        (["seed=1,2,3", "distill.depth=0,1", "data.train={ref: 'x', limit: 2}", "distill.map=uniform"], 6),
        (["seed=1", "z='a,b'", "w=[1,2]", "data.val={ref: 'conll2003::dev', limit: 100}"], 1),
        (["-m", "seed=range(1,4)", "y=choice(a,b)", "hydra.sweep.subdir=${hydra.job.num}"], 6),
        (["seed=1,2,3", "seed=7"], 1),  # a later override of a key replaces the earlier one, as in Hydra
        (["+extra=1,2", "teacher_ckpt=/tmp/run-1/checkpoints/best.ckpt"], 2),
    ],
)
def test_multirun_jobs_counts_only_top_level_sweeps(overrides, jobs):
    assert len(multirun_jobs(overrides)) == jobs


def test_multirun_jobs_order_and_refusals():
    assert multirun_jobs(["seed=1,2", "d=0,1", "m=u"])[1] == ["seed=1", "d=1", "m=u"]  # last key fastest
    with pytest.raises(ValueError, match="INTERVAL"):
        multirun_jobs(["lr=interval(0,1)"])
    with pytest.raises(ValueError, match="cannot parse"):
        multirun_jobs(["a=b=c"])


def test_job_numbers_and_overrides_match_a_real_hydra_multirun(tmp_path):
    app = tmp_path / "app.py"
    app.write_text(
        textwrap.dedent(
            """
            import hydra
            @hydra.main(version_base=None, config_path=None)
            def main(cfg):
                pass
            main()
            """
        )
    )
    overrides = [
        "+seed=1,2",
        "+data={ref: 'x', limit: 2}",
        "+d=range(0,2)",
        f"hydra.sweep.dir={tmp_path / 'm'}",
    ]
    subprocess.run(
        [sys.executable, str(app), "-m", *overrides], check=True, capture_output=True, cwd=tmp_path
    )
    jobs = multirun_jobs(overrides)
    assert len(jobs) == 4 and not (tmp_path / "m" / "4").exists()
    for n, job in enumerate(jobs):
        recorded = yaml.safe_load((tmp_path / "m" / str(n) / ".hydra" / "overrides.yaml").read_text())
        assert recorded == [item for item in job if not item.startswith("hydra.")]


def make_job(sweep_dir: Path, n: int, overrides: list[str], finished: bool = True) -> Path:
    job = sweep_dir / str(n)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if finished:
        (job / "metrics.json").write_text("{}")
    return job


def test_check_multirun_names_missing_and_stale_jobs(tmp_path, capsys):
    overrides = ["seed=1,2,3", "distill.depth=0,1", "trainer=cpu", f"hydra.sweep.dir={tmp_path}"]
    jobs = multirun_jobs(overrides)
    for n, job in enumerate(jobs):
        make_job(tmp_path, n, [i for i in job if not i.startswith("hydra.")], finished=n != 4)
    assert check_multirun(tmp_path, overrides).missing == [4]
    (tmp_path / "4" / "metrics.json").write_text("{}")
    status = check_multirun(tmp_path, [*overrides[:2], "trainer=gpu"])  # other fixed values: still complete
    assert status.complete and "6 of 6 jobs finished" in status.report()
    assert main(["check-multirun", str(tmp_path), *overrides]) == 0

    (tmp_path / "3" / "metrics.json").unlink()
    status = check_multirun(tmp_path, overrides)
    assert not status.complete and status.missing == [3]
    assert "job 3 (seed=2 distill.depth=1): no metrics.json in" in status.report()
    assert main(["check-multirun", str(tmp_path), *overrides]) == 1
    assert f"{tmp_path / '3'}" in capsys.readouterr().err
    assert main(["check-multirun", "--quiet", str(tmp_path), *overrides]) == 1
    assert capsys.readouterr() == ("", "")

    # seeds 4,5,6 map onto the same job numbers: finished dirs of other seeds do not count
    status = check_multirun(tmp_path, ["seed=4,5,6", "distill.depth=0,1"])
    assert status.stale == [0, 1, 2, 4, 5] and status.missing == [3]
    assert "finished with other sweep values" in status.report()


def test_check_multirun_refuses_unknown_job_dirs(tmp_path, capsys):
    with pytest.raises(ValueError, match="hydra.sweep.subdir"):
        check_multirun(tmp_path, ["seed=1,2", "hydra.sweep.subdir=job_${hydra.job.num}"])
    assert main(["check-multirun", str(tmp_path), "seed=1,2", "lr=interval(0,1)"]) == 2
    assert "error:" in capsys.readouterr().err
    assert check_multirun(tmp_path / "absent", ["seed=1,2"]).missing == [0, 1]


def test_incomplete_run_dirs(tmp_path):
    make_job(tmp_path / "multi", 0, [])
    unfinished = make_job(tmp_path / "multi", 1, [], finished=False)
    (tmp_path / "teacher" / "checkpoints").mkdir(parents=True)  # killed before any metrics
    (tmp_path / "done" / "checkpoints").mkdir(parents=True)
    (tmp_path / "done" / "metrics.json").write_text("{}")
    (tmp_path / "done" / "sub" / ".hydra").mkdir(parents=True)  # inside a run dir: not searched
    (tmp_path / "other" / "notes").mkdir(parents=True)
    assert incomplete_run_dirs([tmp_path]) == [unfinished, tmp_path / "teacher"]


# A stand-in for train.py that the study script runs (through PY): it makes Hydra-shaped run dirs with a
# metrics.json of two splits, and with FAKE_INTERRUPT_JOB=n it stops at job n as train.py used to when killed:
# exit 0, no metrics.json, the later jobs never run.
FAKE_TRAIN = textwrap.dedent(
    """
    import json, os, pathlib, sys
    import yaml
    from xner.completeness import multirun_jobs

    args = [a for a in sys.argv[1:] if a != "-m"]
    with open(os.environ["FAKE_LOG"], "a") as log:
        log.write(" ".join(sys.argv[1:]) + "\\n")
    values = dict(a.partition("=")[::2] for a in args)
    if "-m" in sys.argv:
        sweep = pathlib.Path(values["hydra.sweep.dir"])
        jobs = [(sweep / str(n), job) for n, job in enumerate(multirun_jobs(args))]
    else:
        jobs = [(pathlib.Path(values["hydra.run.dir"]), args)]
    for n, (run_dir, job) in enumerate(jobs):
        (run_dir / ".hydra").mkdir(parents=True, exist_ok=True)
        task = [j for j in job if not j.startswith("hydra.")]
        (run_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(task))
        (run_dir / "checkpoints").mkdir(exist_ok=True)
        (run_dir / "checkpoints" / "best.ckpt").write_text("")
        if os.environ.get("FAKE_INTERRUPT_JOB") == str(n) and len(jobs) > 1:
            sys.exit(0)
        v = dict(j.partition("=")[::2] for j in job)
        depth = int(v.get("distill.depth", 0))
        split = {"precision": 50.0, "recall": 50.0, "support": 10, "sentences": 5}
        splits = {"swa_news": {**split, "f1": 60.0 + depth}, "swa_wiki": {**split, "f1": 40.0 + 2 * depth}}
        weight = float(v.get("distill.attention_weight", 0))
        distill = {"depth": depth, "map": v.get("distill.map"), "attention_weight": weight}
        config = {"seed": v.get("seed"), "distill": distill}
        (run_dir / "metrics.json").write_text(json.dumps({"splits": splits, "config": config}))
    """
)


@pytest.mark.slow
def test_study_script_marks_and_aggregates_only_complete_cells(tmp_path):
    (tmp_path / "fake_train.py").write_text(FAKE_TRAIN)
    py = tmp_path / "py"
    fake = f'exec {sys.executable} {tmp_path / "fake_train.py"} "$@"'
    py.write_text(
        f'#!/usr/bin/env bash\nif [ "$1" = train.py ]; then shift; {fake}; fi\nexec {sys.executable} "$@"\n'
    )
    py.chmod(0o755)
    env = {
        **os.environ,
        "PY": str(py),
        "SETTINGS": "D",
        "SEEDS": "1,2",
        "DEPTHS": "0,1",
        "STUDY_OUT": str(tmp_path / "study"),
        "RESULTS": str(tmp_path / "results"),
        "FAKE_LOG": str(tmp_path / "train.log"),
    }
    cell = tmp_path / "study" / "D_swa_wikitext"

    def study(**extra):
        return subprocess.run(
            [str(SCRIPT)], env={**env, **extra}, capture_output=True, text=True, timeout=300
        )

    first = study(FAKE_INTERRUPT_JOB="2")  # train.py -m exits 0 with jobs 2 and 3 unfinished
    assert first.returncode == 1, first.stderr
    assert f"no metrics.json in {cell / '2'}" in first.stderr and f"{cell / '3'}" in first.stderr
    assert not (cell / ".complete").exists() and not (tmp_path / "results" / "D_swa_wikitext").exists()

    second = study()  # the incomplete cell runs again; the finished teacher does not
    assert second.returncode == 0, second.stderr
    assert (cell / ".complete").is_file() and all(
        (cell / str(n) / "metrics.json").is_file() for n in range(4)
    )
    calls = (tmp_path / "train.log").read_text().splitlines()
    assert len(calls) == 3 and sum("experiment=model_transfer" in c for c in calls) == 1

    third = study()  # nothing left to run
    assert third.returncode == 0 and "done already" in third.stdout
    assert len((tmp_path / "train.log").read_text().splitlines()) == 3
    out = tmp_path / "results" / "D_swa_wikitext"
    runs = (out / "runs.csv").read_text().splitlines()
    assert len(runs) == 1 + 4 * 2 and all(r.split(",")[0] in {"0", "1", "2", "3"} for r in runs[1:])
    assert json.loads((out / "aggregate.json").read_text())["incomplete"] == []
