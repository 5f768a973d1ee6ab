"""The local sweep runner: a run counts as complete only when it exits 0 and wrote metrics.json."""

import json
import textwrap

import pytest
import yaml

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
