"""Share a trained model: write a Hugging Face model directory (weights, tokenizer, model card).

``python -m xner.export CKPT OUT_DIR`` works for fine-tuned taggers (TaggerModule) and distilled students
(DistillModule, exported alone with its own depth) alike; the result loads with
``AutoModelForTokenClassification`` and ``pipeline("token-classification", ...)``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from transformers import AutoTokenizer

from xner.export.card import RunInfo, find_run_info, public, render_card
from xner.export.convert import (
    VERIFY_SENTENCES,
    ExportError,
    check_out_dir,
    from_hf_model,
    load_hub_tagger,
    to_hf_model,
    token_classifier_of,
    verify_export,
    write_hf_directory,
)

__all__ = [
    "ExportError",
    "export_checkpoint",
    "export_module",
    "from_hf_model",
    "load_hub_tagger",
    "pipeline_word_mismatches",
    "to_hf_model",
    "token_classifier_of",
    "verify_export",
]

log = logging.getLogger(__name__)


def _plain(hparams) -> dict:
    """Hyper-parameters as JSON-like containers (Hydra may have passed DictConfigs)."""
    raw = {
        k: OmegaConf.to_container(v, resolve=True) if isinstance(v, DictConfig) else v
        for k, v in hparams.items()
    }
    return json.loads(json.dumps(raw, default=str))


def pipeline_word_mismatches(tokenizer, sentences=VERIFY_SENTENCES) -> int:
    """Sentences whose words the HF pipeline's spacing heuristic counts differently from the tokenizer.

    Without a continuing-subword prefix (WordPiece's ``##``) the token-classification pipeline starts a new
    word at every token preceded by a space; a word split into a bare ``▁`` and the rest then counts twice.
    """
    model = getattr(getattr(tokenizer, "_tokenizer", None), "model", None)
    if getattr(model, "continuing_subword_prefix", None):
        return 0
    bad = 0
    for text in sentences:
        enc = tokenizer(text, return_offsets_mapping=True, return_special_tokens_mask=True)
        starts = [
            a
            for (a, _), special in zip(enc["offset_mapping"], enc["special_tokens_mask"], strict=True)
            if not special and not (a > 0 and " " not in text[a - 1 : a + 1])
        ]
        bad += len(starts) != len(text.split())
    return bad


def export_module(
    module,
    out_dir: str | Path,
    *,
    ckpt: str | Path | None = None,
    run_dir: str | Path | None = None,
    tokenizer: str | None = None,
    force: bool = False,
    verify: bool = True,
) -> dict:
    """Export a loaded TaggerModule or DistillModule (its student only) as a HF model directory.

    Args:
        module: the trained module.
        out_dir: target directory; must be empty unless ``force``.
        ckpt: the checkpoint the module came from (names it in the card; its run dir gives config and scores).
        run_dir: the training run dir, when it is not the checkpoint's ``../``.
        tokenizer: tokenizer name or dir to ship instead of the one recorded in the module
            (``hparams.encoder``), e.g. when that directory has moved; it must have the same vocabulary.
        force: replace the model files in a non-empty ``out_dir``.
        verify: reload the written directory and compare its logits with the module's.

    Returns:
        The export record (also written as ``xner_export.json``).

    Raises:
        ExportError: see :func:`xner.export.convert.write_hf_directory`.
    """
    check_out_dir(out_dir, force)
    classifier = token_classifier_of(module)
    hparams = _plain(module.hparams)
    module_class = type(module).__name__
    ckpt_path = Path(ckpt) if ckpt else Path("unsaved.ckpt")
    info = find_run_info(ckpt, run_dir) if ckpt else RunInfo()
    teacher_info = None
    if hparams.get("teacher_ckpt") and Path(hparams["teacher_ckpt"]).exists():
        teacher_info = find_run_info(hparams["teacher_ckpt"])
    source = tokenizer or hparams.get("encoder")
    if not source:
        raise ExportError(f"{module_class} records no encoder/tokenizer; pass --tokenizer <name or dir>")
    log.info("run dir: %s (config from %s)", info.run_dir, info.config_source)

    def card(record: dict) -> str:
        heuristic = bool(pipeline_word_mismatches(AutoTokenizer.from_pretrained(source)))
        return render_card(ckpt_path, module_class, hparams, info, teacher_info, record, heuristic)

    provenance = {
        "checkpoint": ckpt_path.name,
        "module": module_class,
        "tokenizer": public(str(source)),
        "config_source": info.config_source,
        "metrics_found": bool((info.metrics or {}).get("splits")),
    }
    return write_hf_directory(
        classifier, module.label_set.labels, str(source), out_dir, card, provenance, force, verify
    )


def export_checkpoint(
    ckpt: str | Path,
    out_dir: str | Path,
    *,
    run_dir: str | Path | None = None,
    tokenizer: str | None = None,
    force: bool = False,
    verify: bool = True,
) -> dict:
    """Load an xner checkpoint (teacher or student) and export it; arguments as :func:`export_module`."""
    from xner.lit.loading import load_checkpoint_module  # noqa: PLC0415 - Lightning loads only when needed

    check_out_dir(out_dir, force)  # refuse before minutes of loading
    module = load_checkpoint_module(ckpt)
    return export_module(
        module, out_dir, ckpt=ckpt, run_dir=run_dir, tokenizer=tokenizer, force=force, verify=verify
    )
