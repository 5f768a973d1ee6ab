"""Evaluate checkpoints on named domain splits: ``python evaluate.py ckpt_path=... [eval_splits=swa]``.

The work is :func:`xner.tasks.evaluate.evaluate`: it checks ``ckpt_path`` first (and says how to give one),
then logs each split's progress while testing.
"""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="configs", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    from xner.tasks.evaluate import evaluate  # noqa: PLC0415 - keep --help fast

    evaluate(cfg)


if __name__ == "__main__":
    main()
