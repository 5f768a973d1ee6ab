"""Build a student encoder: a subset of the teacher's layers, or any other HF encoder."""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence

from torch import nn
from transformers import AutoConfig, AutoModel

from xner.models.tagger import TokenClassifier, load_encoder

log = logging.getLogger(__name__)


def _layer_list(encoder: nn.Module) -> nn.ModuleList:
    """The transformer layer list of a BERT-like encoder (BERT, XLM-R, RoBERTa, ELECTRA)."""
    try:
        return encoder.encoder.layer
    except AttributeError:
        raise TypeError(
            f"{type(encoder).__name__} is not BERT-like (no .encoder.layer); initialise the student "
            "from a pretrained encoder instead (student.init=pretrained)"
        ) from None


def resolve_teacher_layers(
    spec: str | Sequence[int], teacher_layers: int, student_layers: int | None
) -> list[int]:
    """Which teacher layers (1-based) the student copies.

    ``"every_other"`` copies layers 1, 3, 5, ... (DistilBERT's choice: the bottom layer is kept and each
    student layer starts from the lower layer of a teacher pair); ``"bottom"`` the first ``student_layers``;
    a list names them.
    """
    if isinstance(spec, str):
        if spec == "every_other":
            return list(range(1, teacher_layers + 1, 2))
        if spec == "bottom":
            if student_layers is None:
                raise ValueError("student.layers=bottom needs student.num_layers")
            return list(range(1, student_layers + 1))
        raise ValueError(
            f"unknown student layer choice {spec!r}; use every_other, bottom or a list of layers"
        )
    layers = [int(x) for x in spec]
    for t in layers:
        if not 1 <= t <= teacher_layers:
            raise ValueError(f"teacher layer {t} does not exist: the teacher has layers 1..{teacher_layers}")
    return layers


def student_from_teacher(
    teacher: TokenClassifier, layers: Sequence[int], dropout: float = 0.1
) -> TokenClassifier:
    """A student whose embeddings, head and layers are copies of the teacher's ``layers`` (1-based)."""
    config = copy.deepcopy(teacher.encoder.config)
    config.num_hidden_layers = len(layers)
    encoder = (
        AutoModel.from_config(config, add_pooling_layer=False)
        if config.model_type in {"bert", "xlm-roberta", "roberta"}
        else AutoModel.from_config(config)
    )
    encoder.embeddings.load_state_dict(teacher.encoder.embeddings.state_dict())
    source = _layer_list(teacher.encoder)
    for k, t in enumerate(layers):
        _layer_list(encoder)[k].load_state_dict(source[t - 1].state_dict())
    student = TokenClassifier(encoder, teacher.head.out_features, dropout)
    student.head.load_state_dict(teacher.head.state_dict())
    return student


def student_from_config(config: dict, num_labels: int, dropout: float = 0.1) -> TokenClassifier:
    """Rebuild a student's architecture from its saved config (weights come from the checkpoint)."""
    cfg = AutoConfig.for_model(**config)
    kwargs = {"add_pooling_layer": False} if cfg.model_type in {"bert", "xlm-roberta", "roberta"} else {}
    return TokenClassifier(AutoModel.from_config(cfg, **kwargs), num_labels, dropout)


def student_from_pretrained(
    encoder: str, num_labels: int, dropout: float = 0.1, attn_implementation: str = "sdpa"
) -> TokenClassifier:
    """A student from any HF encoder (its own width; a new head)."""
    return TokenClassifier(load_encoder(encoder, True, attn_implementation), num_labels, dropout)
