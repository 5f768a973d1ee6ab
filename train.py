"""Train and test an xner model: ``python train.py experiment=model_transfer``."""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="configs", config_name="train")
def main(cfg: DictConfig) -> float | None:
    from xner.tasks.train import train  # noqa: PLC0415 - keep --help and tab completion fast

    record = train(cfg)
    # sweepers optimise the returned value: the first test split's F1
    splits = record.get("splits") or {}
    return next(iter(splits.values()))["f1"] if splits else None


if __name__ == "__main__":
    main()
