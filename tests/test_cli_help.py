"""CLIs that teach: --help lists the choices the code knows, errors list the valid values, evaluate.py says
how to give a checkpoint and shows its progress split by split."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from xner.pipeline import __main__ as pipeline_cli
from xner.pipeline.run import DIRECTIONS, METHODS, SCORE_KINDS, Pipeline, PipelineSpec
from xner.pipeline.translate import TRANSLATORS, installed_apertium_pairs
from xner.sweep import DISTRIBUTIONS

ROOT = Path(__file__).resolve().parent.parent
SPEC = {"direction": "translate_train", "data": "conll2003::train", "lang": "spa"}


def run_help(main, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def test_pipeline_help_lists_the_registries(capsys):
    from xner.pipeline.align import ALIGNERS
    from xner.pipeline.align import METHODS as ALIGN_METHODS

    out = run_help(pipeline_cli.main, capsys)
    names = [*METHODS, *DIRECTIONS, *TRANSLATORS, *ALIGNERS, *ALIGN_METHODS, *SCORE_KINDS]
    assert [n for n in names if n not in out] == []
    pairs = installed_apertium_pairs()
    if pairs:  # wrapped lines break only between pair names, so every name is there whole
        assert [p for p in pairs if p not in out] == []
    else:
        assert "none installed (run make setup)" in out


def test_pipeline_help_reads_the_apertium_modes(tmp_path):
    assert "none installed (run make setup)" in pipeline_cli.choices_help(tmp_path / "absent")
    (tmp_path / "modes").mkdir()
    for name in ("eng-spa", "spa-eng", "eng-cat_valencia"):
        (tmp_path / "modes" / f"{name}.mode").write_text("")
    text = pipeline_cli.choices_help(tmp_path)
    assert "eng-cat_valencia, eng-spa, spa-eng" in text and "none installed" not in text


def test_pipeline_cli_reports_a_wrong_choice_without_a_traceback(capsys):
    spec = ROOT / "configs" / "pipeline" / "spa_translate_test.yaml"
    with pytest.raises(SystemExit) as exit_info:
        pipeline_cli.main([str(spec), "method=nope"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "unknown projection method 'nope'" in err and all(m in err for m in METHODS)


def test_sweep_help_shows_the_passthrough_form(capsys):
    from xner.sweep import main

    out = run_help(main, capsys)
    assert "[-- key=value ...]" in out
    assert "python -m xner.sweep sweeps/kd_depth.yaml --dry-run -- teacher_ckpt=" in out


def test_sweep_missing_file_lists_the_sweeps(capsys):
    from xner.sweep import main

    with pytest.raises(SystemExit) as exit_info:
        main(["sweeps/nope.yaml"])
    assert exit_info.value.code == 2
    assert "no sweep file sweeps/nope.yaml" in capsys.readouterr().err


def _choice_errors() -> list[tuple[str, object, list[str]]]:
    """(case, a call that must raise ValueError, the values its message must list)."""
    from xner.aggregate import SCORES, summarise
    from xner.distill.layer_map import STRATEGIES, build_layer_map
    from xner.distill.losses import ATTENTION_LOSSES, HIDDEN_LOSSES
    from xner.distill.module import DistillConfig
    from xner.pipeline.align import ALIGNERS, make_aligner
    from xner.pipeline.translate import HFSeq2SeqTranslator, make_translator
    from xner.sweep import _sample

    weights = {"method": "matching_greedy", "projection": {"weights": {"align": 1, "cosine": 1}}}
    return [
        ("method", lambda: PipelineSpec(**SPEC, method="nope"), list(METHODS)),
        ("direction", lambda: PipelineSpec(**{**SPEC, "direction": "both"}), list(DIRECTIONS)),
        ("score kinds", lambda: PipelineSpec(**SPEC, **weights), list(SCORE_KINDS)),
        ("spec field", lambda: Pipeline({**SPEC, "metod": "x"}), ["direction", "method", "aligner"]),
        ("translator config", lambda: Pipeline(SPEC)._translator({"pair": "eng-spa"}), list(TRANSLATORS)),
        ("translator kind", lambda: make_translator("google"), list(TRANSLATORS)),
        ("hf dtype", lambda: HFSeq2SeqTranslator("m", "en", "es", dtype="fp16"), ["float16", "bfloat16"]),
        ("aligner kind", lambda: make_aligner("fast_align"), list(ALIGNERS)),
        ("distill.map", lambda: DistillConfig(map="random"), list(STRATEGIES)),
        ("layer map", lambda: build_layer_map("random", 1, 6, 12), list(STRATEGIES)),
        ("hidden loss", lambda: DistillConfig(hidden_loss="l1"), list(HIDDEN_LOSSES)),
        ("attention loss", lambda: DistillConfig(attention_loss="l1"), list(ATTENTION_LOSSES)),
        ("aggregate score", lambda: summarise([], "distill.depth", [], [], score="partial"), list(SCORES)),
        (
            "sweep distribution",
            lambda: _sample({"distribution": "normal", "min": 0, "max": 1}, None),
            [*DISTRIBUTIONS],
        ),
    ]


def test_validated_choices_list_their_values():
    missing = {}
    for case, call, values in _choice_errors():
        with pytest.raises(ValueError) as err:
            call()
        absent = [v for v in values if v not in str(err.value)]
        if absent:
            missing[case] = (str(err.value), absent)
    assert missing == {}


def run_evaluate(*overrides: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "evaluate.py"), *overrides],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_evaluate_without_ckpt_path_says_how_to_give_one(tmp_path):
    proc = run_evaluate(f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert proc.returncode == 2
    assert "evaluate.py needs ckpt_path=..., e.g." in proc.stderr
    assert "training runs write checkpoints/best.ckpt in their run dir" in proc.stderr
    assert "Missing mandatory value" not in proc.stderr + proc.stdout
    # with a training run under ./logs, its checkpoint is offered; a missing file is named
    best = tmp_path / "logs" / "model_transfer" / "runs" / "r1" / "checkpoints" / "best.ckpt"
    best.parent.mkdir(parents=True)
    best.write_bytes(b"")
    proc = run_evaluate("ckpt_path=gone.ckpt", f"hydra.run.dir={tmp_path / 'run2'}", cwd=tmp_path)
    assert proc.returncode == 2
    assert "no checkpoint file gone.ckpt" in proc.stderr
    assert "logs/model_transfer/runs/r1/checkpoints/best.ckpt" in proc.stderr


def test_evaluate_logs_progress_per_split(tiny_tagger_ckpt, tmp_path, data_dir):
    out = tmp_path / "eval"
    proc = run_evaluate(
        f"ckpt_path={tiny_tagger_ckpt}",
        f"paths.data_dir={data_dir}",
        f"hydra.run.dir={out}",
        "eval_splits=swa",
        "data.test_limit=20",
        "bootstrap.resamples=20",
        "logger=csv",
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = proc.stdout + proc.stderr
    assert "split 1/2 swa_news (20 sentences" in text and "split 2/2 swa_wiki (20 sentences" in text
    assert "split 2/2 swa_wiki: predicted in" in text and "scored split 2/2 swa_wiki in" in text
    assert "Testing DataLoader" not in text  # no progress bar written into a pipe: the lines stand for it
