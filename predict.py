"""Tag your own text: ``python predict.py ckpt_path=... input=my_text.txt [output_format=conll]``."""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="configs", config_name="predict")
def main(cfg: DictConfig) -> None:
    from xner.tasks.predict import predict  # noqa: PLC0415 - keep --help fast

    predict(cfg)


if __name__ == "__main__":
    main()
