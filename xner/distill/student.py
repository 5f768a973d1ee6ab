"""Build a student encoder (teacher layers or any HF encoder); name and check the tokenizer it reads."""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn
from transformers import AutoConfig, AutoTokenizer

from xner.models.tagger import TokenClassifier, encoder_from_config, load_encoder, transformer_layers

log = logging.getLogger(__name__)


def _layer_list(encoder: nn.Module) -> nn.ModuleList:
    return transformer_layers(
        encoder, "; initialise the student from a pretrained encoder instead (student.init=pretrained)"
    )


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
    encoder = encoder_from_config(config)
    encoder.embeddings.load_state_dict(teacher.encoder.embeddings.state_dict())
    source = _layer_list(teacher.encoder)
    for k, t in enumerate(layers):
        _layer_list(encoder)[k].load_state_dict(source[t - 1].state_dict())
    student = TokenClassifier(encoder, teacher.head.out_features, dropout)
    student.head.load_state_dict(teacher.head.state_dict())
    return student


def student_from_config(config: dict, num_labels: int, dropout: float = 0.1) -> TokenClassifier:
    """Rebuild a student's architecture from its saved config (weights come from the checkpoint)."""
    return TokenClassifier(encoder_from_config(AutoConfig.for_model(**config)), num_labels, dropout)


def student_from_pretrained(
    encoder: str, num_labels: int, dropout: float = 0.1, attn_implementation: str = "sdpa"
) -> TokenClassifier:
    """A student from any HF encoder (its own width; a new head)."""
    return TokenClassifier(load_encoder(encoder, True, attn_implementation), num_labels, dropout)


# Words in several scripts, so that two vocabularies that agree on English still differ here; the data's own
# words are added to this (a word-level tokenizer maps most of these to its unknown token).
PROBE_WORDS = (
    "The European Commission said on Thursday it disagreed with German advice . "
    "Rais wa Kenya alisema Jumanne kwamba serikali itajenga barabara mpya . "
    "Ààrẹ orílẹ̀-èdè Nàìjíríà ṣèbẹ̀wò sí ìlú Èkó . "
    "El señor Peña visitó Cataluña y Andalucía en 2024 . "
    "Москва Київ 北京 東京 القاهرة हिन्दी Ελλάδα 12,345.67 % ( ) @#"
).split()
SPECIAL_IDS = ("pad_token_id", "unk_token_id", "cls_token_id", "sep_token_id", "bos_token_id", "eos_token_id")


def teacher_encoder_dir(teacher_ckpt: str | Path) -> str:
    """The encoder directory (and tokenizer) a TaggerModule checkpoint was trained with.

    Read from the checkpoint's hyper-parameters; the weights are memory-mapped, not read.

    Raises:
        ValueError: the checkpoint records no encoder (it is not a TaggerModule checkpoint).
    """
    header = torch.load(teacher_ckpt, map_location="cpu", weights_only=True, mmap=True)
    try:
        return str(header["hyper_parameters"]["encoder"])
    except (KeyError, TypeError):
        raise ValueError(
            f"{teacher_ckpt} records no encoder in its hyper-parameters, so it is not a TaggerModule "
            "checkpoint; teacher_ckpt must be a trained tagger, e.g. "
            "logs/model_transfer/runs/<run>/checkpoints/best.ckpt"
        ) from None


def student_tokenizer(teacher_ckpt: str | None, student: Mapping | None = None) -> str:
    """The tokenizer a student's data must be encoded with (the kd experiments' default ``data.tokenizer``).

    A student initialised from teacher layers keeps the teacher's embedding matrix, so it reads the teacher's
    subword ids: its tokenizer is the teacher's. A pretrained student (``student.init=pretrained``) reads its
    own encoder's.

    Args:
        teacher_ckpt: checkpoint of the trained teacher (a TaggerModule).
        student: the ``model.student`` settings.

    Raises:
        ValueError: no teacher checkpoint is given, or it is not a TaggerModule checkpoint.
    """
    student = dict(student or {})
    if student.get("init", "teacher_layers") == "pretrained" and student.get("encoder"):
        return str(student["encoder"])
    if not teacher_ckpt:
        raise ValueError(
            "the student's tokenizer is the teacher's, read from teacher_ckpt, which is not set: pass "
            "teacher_ckpt=<model_transfer run>/checkpoints/best.ckpt (or set XNER_TEACHER)"
        )
    return teacher_encoder_dir(teacher_ckpt)


def same_location(a: str | Path, b: str | Path) -> bool:
    """Whether two tokenizer names or directories are the same one (paths compared after resolving)."""
    if str(a) == str(b):
        return True
    pa, pb = Path(a), Path(b)
    return pa.exists() and pb.exists() and pa.resolve() == pb.resolve()


def vocabulary_difference(found, expected, words: Sequence[str] = ()) -> str | None:
    """How two tokenizers map text to ids differently, in words; ``None`` when they agree.

    Compares the vocabulary size, the special-token ids and the ids of :data:`PROBE_WORDS` plus ``words``
    (e.g. the data's first words): what a model's embedding matrix sees, not the tokenizer files' bytes.

    Args:
        found: the tokenizer being checked (e.g. the DataModule's).
        expected: the tokenizer it must agree with.
        words: extra words to compare.
    """
    if len(found) != len(expected):
        return f"its vocabulary has {len(found)} tokens, the expected one {len(expected)}"
    for name in SPECIAL_IDS:
        a, b = getattr(found, name, None), getattr(expected, name, None)
        if a != b:
            return f"its {name} is {a}, the expected tokenizer's {b}"
    probe = list(dict.fromkeys([*PROBE_WORDS, *words]))
    ids_a = found(probe, add_special_tokens=False)["input_ids"]
    ids_b = expected(probe, add_special_tokens=False)["input_ids"]
    for word, a, b in zip(probe, ids_a, ids_b, strict=True):
        if a != b:
            return f"it encodes {word!r} as {a}, the expected tokenizer as {b}"
    return None


def tokenizer_problem(tokenizer, expected: str, rows: int, words: Sequence[str] = ()) -> str | None:
    """How ``tokenizer`` maps text to other ids than the tokenizer at ``expected``; ``None`` when they agree.

    When ``expected`` cannot be loaded (the teacher's encoder dir moved since it was trained), what still can
    be is checked: that the tokenizer's ids fit the model's ``rows`` embedding rows.

    Args:
        tokenizer: the data's tokenizer.
        expected: name or directory of the tokenizer the model reads.
        rows: the model's embedding rows.
        words: the data's own words (a word-level or small vocabulary maps most probe words to unknown).
    """
    try:
        reference = AutoTokenizer.from_pretrained(expected)
    except OSError as err:
        log.warning("cannot load %s to compare data.tokenizer with it (%s)", expected, err)
        size = len(tokenizer)
        return f"it has {size} tokens, the model's embeddings {rows} rows" if size > rows else None
    return vocabulary_difference(tokenizer, reference, words)
