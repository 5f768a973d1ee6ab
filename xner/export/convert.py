"""The weight mapping between xner's token classifier and Hugging Face ``*ForTokenClassification`` models.

One direction writes a trained xner module (teacher or distilled student) as a Hugging Face model directory
(:func:`write_hf_directory`); the other reads a HF token-classification model, by hub name or directory,
as an xner tagger (:func:`load_hub_tagger`), e.g. a published English NER model as a pipeline's source model.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn
from transformers import AutoModelForTokenClassification, AutoTokenizer, PreTrainedModel

from xner.data.encoding import encode_sentences
from xner.labels import TAG_PATTERN, LabelSet
from xner.models.tagger import TokenClassifier, usable_positions
from xner.types import Sentence

log = logging.getLogger(__name__)

# Checked after every export: words in several scripts, so that a tokenizer which agrees on English only
# (or a wrongly mapped weight) shows up as different subword ids or logits.
VERIFY_SENTENCES = (
    "The European Commission said on Thursday it disagreed with German advice .",
    "Rais wa Kenya William Ruto alisema Jumanne kwamba serikali itajenga barabara mpya Nairobi .",
    "El señor Peña visitó Cataluña y Ààrẹ Èkó en 2024 .",
)
# Files of a HF model directory that ``--force`` replaces; anything else in the directory is left alone.
HF_FILE_PATTERNS = (
    "*.safetensors",
    "*.safetensors.index.json",
    "*.bin",
    "*.bin.index.json",
    "config.json",
    "generation_config.json",
    "tokenizer*",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.*",
    "merges.txt",
    "*.model",
    "README.md",
    "xner_export.json",
)


class ExportError(RuntimeError):
    """The export cannot be written, or the written model does not reproduce the module."""


def token_classifier_of(module: nn.Module) -> TokenClassifier:
    """The model a module predicts with: a DistillModule's ``student``, a TaggerModule's ``model``.

    Raises:
        ExportError: the module holds no :class:`~xner.models.tagger.TokenClassifier`.
    """
    for name in ("student", "model"):
        candidate = getattr(module, name, None)
        if isinstance(candidate, TokenClassifier):
            return candidate
    raise ExportError(
        f"{type(module).__name__} holds no TokenClassifier as .student or .model; only TaggerModule and "
        "DistillModule checkpoints can be exported"
    )


def to_hf_model(classifier: TokenClassifier, labels: Sequence[str]) -> PreTrainedModel:
    """A ``*ForTokenClassification`` model with the classifier's encoder and head weights.

    The encoder's own config (its ``model_type`` and depth: a student keeps its fewer layers) picks the HF
    class; the encoder weights go to its base model and the linear head to ``classifier``.

    Args:
        classifier: the trained encoder + head.
        labels: label names in head-row order (``O, B-PER, I-PER, ...``).

    Raises:
        ExportError: the HF class of this encoder type lays its weights out differently.
    """
    config = copy.deepcopy(classifier.encoder.config)
    config.id2label = dict(enumerate(labels))
    config.label2id = {label: i for i, label in enumerate(labels)}
    config.classifier_dropout = classifier.dropout.p
    config.architectures = None  # save_pretrained records the class it saves
    model = AutoModelForTokenClassification.from_config(config)
    try:
        model.base_model.load_state_dict(classifier.encoder.state_dict(), strict=True)
    except RuntimeError as err:
        raise ExportError(
            f"the encoder's weights do not fit {type(model).__name__}'s base model: {err}"
        ) from None
    head = getattr(model, "classifier", None)
    if not isinstance(head, nn.Linear) or head.weight.shape != classifier.head.weight.shape:
        raise ExportError(
            f"{type(model).__name__} has no linear `classifier` of shape "
            f"{tuple(classifier.head.weight.shape)}; encoders of type {config.model_type!r} cannot be exported"
        )
    head.load_state_dict(classifier.head.state_dict())
    return model.eval()


def label_set_of(labels: Sequence[str], source: str = "the model") -> LabelSet:
    """The xner label set with exactly the IOB2 labels ``labels`` (in any order).

    Raises:
        ExportError: a label is not ``O``/``B-T``/``I-T``, or a type lacks its ``B-`` or ``I-`` label
            (``source`` names the model in the message).
    """
    bad = [label for label in labels if not TAG_PATTERN.match(label) or label[:2] in ("E-", "S-")]
    types = list(dict.fromkeys(label[2:] for label in labels if label != "O" and label not in bad))
    label_set = LabelSet(types)
    if bad or sorted(labels) != sorted(label_set.labels):
        raise ExportError(
            f"{source} has labels {list(labels)}; an xner tagger needs IOB2 labels: O plus B-T and I-T for "
            "each type T (set config.id2label, e.g. {0: O, 1: B-PER, 2: I-PER, ...})"
        )
    return label_set


def from_hf_model(model: PreTrainedModel, source: str = "the model") -> tuple[TokenClassifier, LabelSet]:
    """The inverse of :func:`to_hf_model`: a HF token-classification model as encoder + linear head.

    The head's rows are put in xner's label order (``O, B-T1, I-T1, ...``); the encoder is the model's base
    model, shared, not copied. The result is checked to give the model's own logits on a probe input, so a
    model with more than a linear head over its base model (a CRF, an MLP head) is refused, not misread.

    Args:
        model: e.g. ``AutoModelForTokenClassification.from_pretrained(name)``.
        source: the model's name, for error messages.

    Returns:
        The classifier (eval mode) and its label set.

    Raises:
        ExportError: the labels are not IOB2, there is no linear ``classifier`` head, or the logits differ.
    """
    config = model.config
    labels = [config.id2label[k] for k in range(config.num_labels)]
    label_set = label_set_of(labels, source)
    head = getattr(model, "classifier", None)
    if not isinstance(head, nn.Linear) or head.out_features != len(labels):
        raise ExportError(
            f"{source} ({type(model).__name__}) has no linear `classifier` with {len(labels)} outputs over its "
            "base model; only such *ForTokenClassification models can be used as xner taggers"
        )
    dropout = getattr(getattr(model, "dropout", None), "p", 0.1)
    classifier = TokenClassifier(model.base_model, len(labels), dropout).to(head.weight.device).eval()
    order = torch.tensor([labels.index(label) for label in label_set.labels], device=head.weight.device)
    # no_grad, not inference_mode: the parameters must stay ordinary tensors (trainable, exportable)
    with torch.no_grad():
        classifier.head.weight.copy_(head.weight[order])
        classifier.head.bias.copy_(head.bias[order])
        probe = torch.arange(1, 9).clamp(max=config.vocab_size - 1).unsqueeze(0).to(head.weight.device)
        mask = torch.ones_like(probe)
        expected = model.eval()(input_ids=probe, attention_mask=mask).logits[..., order]
        found = classifier(probe, mask).logits
    if not torch.allclose(found.float(), expected.float(), atol=1e-4):
        raise ExportError(
            f"{source} ({type(model).__name__}) computes its logits with more than its base model and a linear "
            "`classifier`; it cannot be used as an xner tagger"
        )
    return classifier, label_set


class HubTagger(nn.Module):
    """A HF token-classification model in the form xner's prediction code takes (:func:`xner.predict.
    predict_words`): ``.model`` (the :class:`TokenClassifier`), ``.label_set``, ``.hparams.encoder``.

    Args:
        classifier: from :func:`from_hf_model`.
        label_set: its labels.
        tokenizer_source: hub name or directory of the tokenizer (the model's own).
    """

    def __init__(self, classifier: TokenClassifier, label_set: LabelSet, tokenizer_source: str):
        super().__init__()
        self.model = classifier
        self.label_set = label_set
        self.hparams = SimpleNamespace(encoder=tokenizer_source)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **kwargs):
        """Run the tagger (:class:`~xner.models.tagger.TaggerOutput`)."""
        return self.model(input_ids, attention_mask, **kwargs)


def load_hub_tagger(name_or_path: str, device: str | None = None) -> HubTagger:
    """Load a HF token-classification model (hub name, or a directory with ``config.json``) as an xner tagger.

    Args:
        name_or_path: e.g. an English NER model on the hub, or an :mod:`xner.export` directory.
        device: where to run it; ``None`` picks CUDA when available.

    Raises:
        ExportError: the model cannot serve as a tagger (see :func:`from_hf_model`).
        OSError: transformers cannot find the model (offline without it in the HF cache, or a wrong name).
    """
    model = AutoModelForTokenClassification.from_pretrained(name_or_path)
    classifier, label_set = from_hf_model(model, str(name_or_path))
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return HubTagger(classifier, label_set, str(name_or_path)).to(device).eval()


def check_out_dir(out_dir: str | Path, force: bool) -> Path:
    """Refuse a non-empty output directory unless ``force``.

    Raises:
        ExportError: ``out_dir`` is a file, or a non-empty directory and ``force`` is false.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ExportError(f"{out_dir} is a file; give a directory to write the model into")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not force:
        raise ExportError(
            f"{out_dir} exists and is not empty. Choose a new directory, or pass --force (force=True) to "
            "replace the model files in it"
        )
    return out_dir


def cap_model_max_length(tokenizer, config) -> None:
    """Make the pipeline truncate to the positions the model has (instead of failing on long text)."""
    positions = usable_positions(config)
    if positions is None:
        return
    if not tokenizer.model_max_length or tokenizer.model_max_length > positions:
        tokenizer.model_max_length = positions


def _padded(encoded, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(e.input_ids) for e in encoded)
    ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, e in enumerate(encoded):
        ids[row, : len(e.input_ids)] = torch.tensor(e.input_ids)
        mask[row, : len(e.input_ids)] = 1
    return ids, mask


@torch.inference_mode()
def verify_export(
    classifier: TokenClassifier,
    tokenizer,
    out_dir: str | Path,
    sentences: Sequence[str] = VERIFY_SENTENCES,
    atol: float = 1e-4,
) -> float:
    """Reload the written directory and check it reproduces the classifier: same ids, same logits.

    Args:
        classifier: the module's encoder + head.
        tokenizer: the tokenizer the module was trained with.
        out_dir: the exported directory.
        sentences: whitespace-separated sentences to compare on.
        atol: largest absolute logit difference accepted.

    Returns:
        The largest absolute logit difference found.

    Raises:
        ExportError: the exported tokenizer gives other subword ids, or the exported model other logits.
    """
    words = [Sentence(tuple(s.split())) for s in sentences]
    exported_tokenizer = AutoTokenizer.from_pretrained(out_dir)
    mine, _ = encode_sentences(words, tokenizer, None, max_length=128)
    theirs, _ = encode_sentences(words, exported_tokenizer, None, max_length=128)
    for sentence, a, b in zip(sentences, mine, theirs, strict=True):
        if a.input_ids != b.input_ids or a.word_starts != b.word_starts:
            raise ExportError(
                f"the exported tokenizer encodes {sentence!r} as {b.input_ids}, the module's as {a.input_ids}"
            )
    model = AutoModelForTokenClassification.from_pretrained(out_dir).eval()
    ids, mask = _padded(mine, tokenizer.pad_token_id)
    was_training = classifier.training
    expected = classifier.eval()(ids, mask).logits
    classifier.train(was_training)
    found = model(input_ids=ids, attention_mask=mask).logits
    if found.shape != expected.shape:
        raise ExportError(
            f"the exported model gives logits of shape {tuple(found.shape)}, not {expected.shape}"
        )
    diff = float((found - expected).abs()[mask.bool()].max())
    if not diff <= atol:  # also catches NaN
        raise ExportError(
            f"the exported model's logits differ from the checkpoint's by up to {diff:.3g} (> {atol:g}); "
            "the weights were not mapped faithfully, nothing was written"
        )
    return diff


def write_hf_directory(
    classifier: TokenClassifier,
    labels: Sequence[str],
    tokenizer_source: str,
    out_dir: str | Path,
    card: Callable[[dict], str] | str | None = None,
    provenance: dict | None = None,
    force: bool = False,
    verify: bool = True,
) -> dict:
    """Write model, tokenizer and card into ``out_dir`` (staged beside it, verified, then moved in).

    Args:
        classifier: the encoder + head to export.
        labels: label names in head-row order.
        tokenizer_source: tokenizer name or directory the module was trained with.
        out_dir: target directory (created; must be empty unless ``force``).
        card: README.md text, or a function of the export record that returns it.
        provenance: extra fields for ``xner_export.json``.
        force: replace the model files of a non-empty ``out_dir``.
        verify: reload the staged export and compare its ids and logits with ``classifier``.

    Returns:
        What was written (``xner_export.json``'s content).

    Raises:
        ExportError: ``out_dir`` is not empty without ``force``, the tokenizer cannot be loaded or does not fit
            the embeddings, or verification fails (``out_dir`` is then left untouched).
    """
    out_dir = check_out_dir(out_dir, force)
    try:
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_source)
    except OSError as err:
        raise ExportError(
            f"cannot load the tokenizer {tokenizer_source} the module was trained with ({err}); pass "
            "--tokenizer <name or dir> with the same vocabulary"
        ) from None
    rows = classifier.encoder.get_input_embeddings().num_embeddings
    if len(tokenizer) > rows:
        raise ExportError(
            f"tokenizer {tokenizer_source} has {len(tokenizer)} tokens, the model's embeddings only {rows} "
            "rows: it is not the tokenizer the model was trained with; pass --tokenizer"
        )
    model = to_hf_model(classifier, labels)
    cap_model_max_length(tokenizer, model.config)
    for key in ("is_local", "local_files_only"):  # how it was loaded here, not settings for whoever loads it
        tokenizer.init_kwargs.pop(key, None)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # Staged in the same file system, so a failed check leaves out_dir as it was and the move is a rename.
    stage = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.export-", dir=out_dir.parent))
    try:
        model.save_pretrained(stage)
        tokenizer.save_pretrained(stage)
        record = {
            "architecture": type(model).__name__,
            "labels": list(labels),
            "layers": model.config.num_hidden_layers,
            "hidden_size": model.config.hidden_size,
            "parameters": sum(p.numel() for p in model.parameters()),
            **(provenance or {}),
        }
        if verify:
            record["verified_max_logit_diff"] = verify_export(classifier, tokenizer, stage)
        (stage / "xner_export.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        if card is not None:
            text = card(record) if callable(card) else card
            (stage / "README.md").write_text(text, encoding="utf-8")
        _move_into(stage, out_dir)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return record


def _move_into(stage: Path, out_dir: Path) -> None:
    out_dir.mkdir(exist_ok=True)
    stale = {p for pattern in HF_FILE_PATTERNS for p in out_dir.glob(pattern) if p.is_file()}
    for path in sorted(stale):  # a previous export's shards or weights would be loaded with the new config
        path.unlink()
    kept = sorted(p.name for p in out_dir.iterdir())
    if kept:
        log.warning("kept files in %s that are not part of a model export: %s", out_dir, kept)
    umask = os.umask(0)
    os.umask(umask)
    for path in stage.iterdir():
        path.chmod(0o666 & ~umask)  # some writers create 0600 temp files; a shared model is readable
        os.replace(path, out_dir / path.name)
