"""Train and test an xner model: ``python train.py experiment=model_transfer``."""

import hydra
from omegaconf import DictConfig, OmegaConf


@hydra.main(version_base="1.3", config_path="configs", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Train, test, and return ``optimized_metric``'s value (what a Hydra sweeper optimises)."""
    from xner.objective import check_metric_name, optimized_value  # noqa: PLC0415 - keep --help fast
    from xner.tasks.train import train  # noqa: PLC0415 - keep --help and tab completion fast

    name = cfg.get("optimized_metric")
    test = OmegaConf.select(cfg, "data.test")
    # a misspelt metric fails now, not after training
    check_metric_name(name, list(test) if isinstance(test, DictConfig) else [] if test is None else None)
    record = train(cfg)
    return optimized_value(record, name)


if __name__ == "__main__":
    main()
