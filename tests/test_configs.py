"""Every shipped config composes (no launch): experiments, scale-out trainers and launchers."""

from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import get_class

CONFIGS = str(Path(__file__).resolve().parent.parent / "configs")


def composed(name: str, overrides: list[str], hydra_config: bool = False):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        return compose(config_name=name, overrides=overrides, return_hydra_config=hydra_config)


@pytest.mark.parametrize(
    "overrides",
    [
        ["experiment=model_transfer"],
        ["experiment=demo"],
        ["experiment=kd_depth", "teacher_ckpt=t.ckpt", "distill.depth=3", "distill.map=last"],
        ["trainer=ddp"],
        ["trainer=gpu"],
        ["trainer=cpu_bf16"],
        ["trainer=ddp_cpu"],
        ["logger=wandb"],
        ["logger=many"],
        ["debug=default"],
        ["model=hf", "model.encoder=xlm-roberta-base"],
    ],
)
def test_train_configs_compose(overrides):
    cfg = composed("train", overrides)
    assert cfg.data._target_.endswith("NERDataModule") and get_class(cfg.model._target_)
    assert get_class(cfg.trainer._target_)


def test_ddp_trainer_settings():
    cfg = composed("train", ["trainer=ddp", "trainer.devices=8", "trainer.num_nodes=2"])
    assert cfg.trainer.strategy == "ddp" and cfg.trainer.devices == 8 and cfg.trainer.num_nodes == 2


@pytest.mark.parametrize(
    "launcher,target",
    [
        ("slurm", "SlurmLauncher"),
        ("submitit_slurm", "SlurmLauncher"),
        ("joblib", "JoblibLauncher"),
        ("local_parallel", "JoblibLauncher"),
    ],
)
def test_launchers_compose(launcher, target):
    cfg = composed(
        "train", [f"hydra/launcher={launcher}", "experiment=kd_depth", "teacher_ckpt=t.ckpt"], True
    )
    assert cfg.hydra.launcher._target_.endswith(target)
    get_class(cfg.hydra.launcher._target_)  # the plugin is installed and importable


def test_evaluate_configs_compose():
    cfg = composed("evaluate", ["ckpt_path=[a.ckpt,b.ckpt]", "eval_splits=[eng,swa,yor,spa,nld]"])
    assert set(cfg.data.test) >= {
        "eng_news",
        "eng_crossner_ai",
        "swa_wiki",
        "yor_wiki",
        "spa_news",
        "nld_wiki",
    }
    assert cfg.robustness.pairs.swa == ["swa_news", "swa_wiki"] and cfg.data.train is None
    only_swa = composed("evaluate", ["ckpt_path=a.ckpt", "eval_splits=swa"])
    assert set(only_swa.data.test) == {"swa_news", "swa_wiki"}


def test_run_dirs_carry_microseconds():
    from omegaconf import OmegaConf

    cfg = composed("train", [], True)
    run_dir = OmegaConf.to_container(cfg.hydra.run, resolve=False)["dir"]
    sweep_dir = OmegaConf.to_container(cfg.hydra.sweep, resolve=False)["dir"]
    assert run_dir.endswith("%f}") and sweep_dir.endswith("%f}")


def test_pipeline_yaml_loads_with_overrides():
    """configs/pipeline/*.yaml as the CLI and the benchmark read them: overrides win, the spec validates."""
    from xner.pipeline.run import PipelineSpec, load_spec

    root = Path(__file__).resolve().parents[1] / "configs" / "pipeline"
    spec = load_spec(root / "spa_translate_train.yaml", ["method=markers", "limit=5"])
    assert spec["method"] == "markers" and spec["limit"] == 5 and spec["from_english"]["pair"] == "eng-spa"
    assert PipelineSpec(**spec).direction == "translate_train"
    with pytest.raises(ValueError, match="translate-test needs source_model"):
        PipelineSpec(**load_spec(root / "spa_translate_test.yaml", ["source_model=null"]))


EXPERIMENTS = sorted(p.stem for p in Path(CONFIGS, "experiment").glob("*.yaml"))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_names_a_metric_its_run_will_have(experiment):
    from xner.objective import check_metric_name

    cfg = composed("train", [f"experiment={experiment}", "teacher_ckpt=t.ckpt"])
    check_metric_name(cfg.optimized_metric, list(cfg.data.test or {}))
    with pytest.raises(ValueError, match="no test split 'no_such_split'"):
        check_metric_name("test/no_such_split/f1", list(cfg.data.test or {}))


def test_kd_depth_extends_kd_base_with_its_own_settings():
    from omegaconf import OmegaConf

    base = composed("train", ["experiment=kd_base", "teacher_ckpt=t.ckpt"])
    depth = composed("train", ["experiment=kd_depth", "teacher_ckpt=t.ckpt"])
    # Hydra sweepers optimise the metric the W&B sweep of this experiment maximises
    assert list(depth.data.test) == ["eng_news", "swa_news", "swa_wiki"]
    wandb_metric = yaml.safe_load((Path(CONFIGS).parent / "sweeps" / "kd_depth.yaml").read_text())["metric"][
        "name"
    ]
    assert depth.optimized_metric == wandb_metric == "test/swa_wiki/f1"
    assert depth.data.train.ref == "masakhaner2:swa:train" and depth.data.train.labelled is False
    # where kd_depth keeps the defaults kd_base changes
    assert (depth.data.batch_size, base.data.batch_size) == (16, 32)
    assert depth.distill.cache_all_layers is False and base.distill.cache_all_layers is True
    assert depth.keep_last_ckpt is True and base.keep_last_ckpt is False
    assert depth.callbacks.model_checkpoint.save_weights_only is False
    # everything else comes from kd_base
    assert OmegaConf.to_container(depth.model) == OmegaConf.to_container(base.model)
    assert depth.data.tokenizer == base.data.tokenizer and depth.data.val is None
    assert depth.callbacks.model_checkpoint.filename == "final" and depth.num_threads == 2
