"""The local sweep runner: a run counts as complete only when it exits 0 and wrote metrics.json."""

import json
import textwrap

import pytest
import yaml

from xner.objective import check_metric_name, metric_values, optimized_value
from xner.sweep import main, run_sweep

# A stand-in for train.py: `behave=ok` writes metrics.json into hydra.run.dir, `behave=silent` exits 0
# without it (what an interrupted run used to do), `behave=fail` exits 1.
PROGRAM = textwrap.dedent(
    """
    import json, pathlib, sys
    args = dict(a.split("=", 1) for a in sys.argv[1:])
    run_dir = pathlib.Path(args["hydra.run.dir"])
    run_dir.mkdir(parents=True, exist_ok=True)
    if args["behave"] == "fail":
        sys.exit(1)
    if args["behave"] == "ok":
        (run_dir / "metrics.json").write_text(json.dumps({"extra": args.get("extra")}))
    """
)


def write_sweep(tmp_path, behaviours):
    program = tmp_path / "fake_train.py"
    program.write_text(PROGRAM)
    sweep = {
        "name": "fake",
        "program": str(program),
        "method": "grid",
        "command": ["${env}", "${interpreter}", "${program}", "${args_no_hyphens}"],
        "parameters": {"behave": {"values": behaviours}},
    }
    path = tmp_path / "fake.yaml"
    path.write_text(yaml.safe_dump(sweep))
    return path


def records(root):
    return [json.loads(line) for line in (root / "runs.jsonl").read_text().splitlines()]


def test_sweep_records_completion_and_fails_on_incomplete_runs(tmp_path, capsys):
    path = write_sweep(tmp_path, ["ok", "silent", "fail"])
    assert main([str(path), "--out", str(tmp_path / "out"), "--", "extra=1"]) == 1
    (root,) = (tmp_path / "out" / "fake").iterdir()
    got = {r["params"]["behave"]: r for r in records(root)}
    assert {k: (r["returncode"], r["complete"]) for k, r in got.items()} == {
        "ok": (0, True),
        "silent": (0, False),
        "fail": (1, False),
    }
    assert json.loads((root / "0" / "metrics.json").read_text()) == {"extra": "1"}  # the -- override
    err = capsys.readouterr().err
    assert "1 of 3 runs complete" in err
    assert "run 1 exited 0 but wrote no metrics.json" in err and "run 2 exited with 1" in err
    assert "run 0 " not in err


def test_sweep_of_complete_runs_exits_zero(tmp_path, capsys):
    path = write_sweep(tmp_path, ["ok", "ok"])
    result = run_sweep(path, out=tmp_path / "out")
    assert [r["complete"] for r in result.records] == [True, True] and not result.incomplete
    assert main([str(path), "--out", str(tmp_path / "out")]) == 0
    assert "2 of 2 runs complete" in capsys.readouterr().out


def test_dry_run_runs_nothing(tmp_path):
    path = write_sweep(tmp_path, ["fail"])
    assert main([str(path), "--out", str(tmp_path / "out"), "--dry-run"]) == 0
    assert not (tmp_path / "out").exists()


def test_help_shows_extra_overrides(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "[-- key=value ...]" in out and "Exit status" in out


# A train record as xner.tasks.train.train returns it (the parts the objective reads).
RECORD = {
    "val": {"eng_news": 88.0},
    "splits": {
        "eng_news": {"f1": 90.0, "precision": 91.0, "f1_dontcare": 90.5, "gold_entities": 5648,
                     "f1_ci95": [89.0, 91.0], "per_type": {"PER": {"f1": 95.0}}},
        "swa_wiki": {"f1": 41.0, "precision": 40.0, "f1_dontcare": 47.0, "gold_entities": 800,
                     "f1_ci95": [39.0, 43.0], "per_type": {"PER": {"f1": 60.0}}},
    },
}  # fmt: skip


def test_optimized_metric_returns_the_named_metric():
    assert optimized_value(RECORD, None) == 90.0  # null: the first test split's f1
    assert optimized_value(RECORD, "test/swa_wiki/f1") == 41.0
    assert optimized_value(RECORD, "test/swa_wiki/f1_dontcare") == 47.0
    assert optimized_value(RECORD, "test/swa_wiki/f1_PER") == 60.0
    assert optimized_value(RECORD, "val/eng_news/f1") == 88.0
    assert optimized_value({"splits": {}}, None) is None


def test_optimized_metric_unknown_name_lists_the_available_ones():
    with pytest.raises(ValueError, match="test/swa_wiki/f1_dontcare") as err:
        optimized_value(RECORD, "test/swa_wiki/F1")
    assert "gold_entities" not in str(err.value)  # counts and intervals are not metrics to optimise
    assert "f1_ci95" not in str(err.value)
    assert set(metric_values(RECORD)) >= {
        "test/eng_news/precision",
        "test/swa_wiki/f1_PER",
        "val/eng_news/f1",
    }


def test_optimized_metric_name_is_checked_before_training():
    check_metric_name(None, [])
    check_metric_name("test/swa_wiki/f1", ["eng_news", "swa_wiki"])
    check_metric_name("val/eng_news/f1", ["swa_wiki"])
    with pytest.raises(ValueError, match="no test split 'swa_news'"):
        check_metric_name("test/swa_news/f1", ["eng_news", "swa_wiki"])
    with pytest.raises(ValueError, match="expected test/<split>/<score>"):
        check_metric_name("swa_wiki/f1", ["swa_wiki"])
