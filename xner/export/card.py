"""The model card of an export: what the model was trained on, how, and how well, from its run dir."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from xner.data.registry import DataRef, dataset_info
from xner.distill.student import resolve_teacher_layers

log = logging.getLogger(__name__)

# The parts of a run's resolved config that say how the model was made (not where its logs went).
CONFIG_KEYS = ("task_name", "seed", "teacher_ckpt", "data", "model", "trainer")
DROPPED_KEYS = {
    "data": ("_target_", "data_dir", "num_workers", "seed"),
    "model": ("cache_dir",),
}
TRAINER_KEYS = ("max_epochs", "max_steps", "precision", "gradient_clip_val", "accumulate_grad_batches")


@dataclass
class RunInfo:
    """What a run dir tells about a checkpoint.

    Attributes:
        run_dir: the run dir found (``None``: the checkpoint stands alone).
        config: the run's resolved config, or ``None``.
        config_source: where ``config`` came from.
        metrics: the run's ``metrics.json`` record, or ``None``.
        looked_in: directories searched.
    """

    run_dir: Path | None = None
    config: dict | None = None
    config_source: str | None = None
    metrics: dict | None = None
    looked_in: list[Path] = field(default_factory=list)


def find_run_info(ckpt: str | Path, run_dir: str | Path | None = None) -> RunInfo:
    """Read ``metrics.json`` (its ``config``) or ``.hydra/config.yaml`` of the run that wrote ``ckpt``.

    Training runs keep checkpoints in ``<run dir>/checkpoints/``; the run dir is that folder's parent (or the
    checkpoint's own folder), unless ``run_dir`` names it.
    """
    ckpt = Path(ckpt)
    candidates = [Path(run_dir)] if run_dir else []
    if ckpt.parent.name == "checkpoints":
        candidates.append(ckpt.parent.parent)
    candidates.append(ckpt.parent)
    info = RunInfo(looked_in=candidates)
    for cand in candidates:
        metrics_file, hydra_file = cand / "metrics.json", cand / ".hydra" / "config.yaml"
        if not (metrics_file.is_file() or hydra_file.is_file()):
            continue
        info.run_dir = cand
        if metrics_file.is_file():
            info.metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
            if isinstance(info.metrics.get("config"), dict):
                info.config, info.config_source = info.metrics["config"], "metrics.json"
        if info.config is None and hydra_file.is_file():
            info.config, info.config_source = _hydra_config(hydra_file), ".hydra/config.yaml"
        break
    return info


def _hydra_config(path: Path) -> dict:
    """The saved config, each value resolved where it can be outside the run (``${hydra:...}`` cannot)."""
    cfg = OmegaConf.load(path)

    def walk(raw: Any, key: str) -> Any:
        if isinstance(raw, dict):
            return {k: walk(v, f"{key}.{k}" if key else str(k)) for k, v in raw.items()}
        if isinstance(raw, list):
            return [walk(v, f"{key}[{i}]") for i, v in enumerate(raw)]
        if isinstance(raw, str) and "${" in raw:
            try:
                return OmegaConf.to_container(
                    OmegaConf.create({"v": OmegaConf.select(cfg, key)}), resolve=True
                )["v"]
            except Exception:  # noqa: BLE001 - resolvers of the run (hydra:, env) are absent here
                return raw
        return raw

    return walk(OmegaConf.to_container(cfg, resolve=False), "")


def public(value: Any) -> Any:
    """``value`` with the home directory written as ``~`` in every string (cards are shared)."""
    home = str(Path.home())
    if isinstance(value, str):
        return "~" + value[len(home) :] if home != "/" and value.startswith(home) else value
    if isinstance(value, Mapping):
        return {k: public(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [public(v) for v in value]
    return value


def relevant_config(config: Mapping) -> dict:
    """The config parts a card shows: data, model, the training length and precision."""
    out = {}
    for key in CONFIG_KEYS:
        if config.get(key) is None:
            continue
        value = config[key]
        if isinstance(value, Mapping):
            value = {k: v for k, v in value.items() if k not in DROPPED_KEYS.get(key, ())}
            if key == "trainer":
                value = {k: v for k, v in value.items() if k in TRAINER_KEYS and v is not None}
            if not value:
                continue
        out[key] = value
    return public(out)


def split_refs(spec: Any) -> list[str]:
    """Data references named by a split spec (string, mapping with ``ref``, or a translate-train pipeline)."""
    if spec is None:
        return []
    if isinstance(spec, str):
        return [spec]
    if isinstance(spec, Mapping):
        if "pipeline" in spec:
            return split_refs(spec["pipeline"].get("data"))
        if "ref" in spec:
            return [str(spec["ref"])]
        try:
            return [str(DataRef.coerce(spec))]
        except TypeError:
            return []
    return []


def describe_split(spec: Any) -> str:
    """A split spec in words (``conll2003::train``, ``masakhaner2:swa:train (first 3000 sentences, ...)``)."""
    if spec is None:
        return "none"
    if isinstance(spec, Mapping) and "pipeline" in spec:
        p = spec["pipeline"]
        return (
            f"`{p.get('data')}` machine-translated into {p.get('lang')} with entity labels projected "
            f"({p.get('direction')}, method {p.get('method')})"
        )
    refs = split_refs(spec)
    text = f"`{refs[0]}`" if refs else f"`{spec}`"
    notes = []
    if isinstance(spec, Mapping):
        if spec.get("limit"):
            notes.append(f"first {spec['limit']} sentences")
        if spec.get("labelled") is False:
            notes.append("labels not used")
    return text + (f" ({', '.join(notes)})" if notes else "")


def _language_and_dataset(ref_text: str) -> tuple[str | None, str | None]:
    try:
        ref = DataRef.parse(ref_text)
        info = dataset_info(ref.dataset)
    except (ValueError, KeyError):
        return None, None
    return ref.lang or info.fixed_lang, info.hf_path


def front_matter(config: Mapping | None, teacher_config: Mapping | None, student: bool) -> str:
    """The card's YAML header: languages and datasets of training and test data, tags, library."""
    refs: list[str] = []
    langs: list[str] = []
    # a student's own training and test data, plus what its teacher learnt from (not where it was tested)
    for cfg, with_tests in ((teacher_config, False), (config, True)):
        data = (cfg or {}).get("data") or {}
        refs += split_refs(data.get("train"))
        if isinstance(data.get("train"), Mapping) and "pipeline" in data["train"]:
            langs.append(str(data["train"]["pipeline"].get("lang")))
        for spec in (data.get("test") or {}).values() if with_tests else ():
            refs += split_refs(spec)
    datasets = []
    for ref in refs:
        lang, hf_path = _language_and_dataset(ref)
        langs += [lang] if lang else []
        datasets += [hf_path] if hf_path else []
    meta: dict[str, Any] = {}
    if langs:
        meta["language"] = list(dict.fromkeys(langs))
    meta["library_name"] = "transformers"
    meta["pipeline_tag"] = "token-classification"
    meta["tags"] = ["token-classification", "ner", "xner"] + (["knowledge-distillation"] if student else [])
    if datasets:
        meta["datasets"] = list(dict.fromkeys(datasets))
    meta["metrics"] = ["f1", "precision", "recall"]
    return "---\n" + OmegaConf.to_yaml(OmegaConf.create(meta)) + "---\n"


def metrics_table(info: RunInfo, ckpt: Path) -> str:
    """Strict entity-level scores per test split, or a clear statement that none were found."""
    splits = (info.metrics or {}).get("splits") or {}
    if not splits:
        where = (
            ", ".join(str(public(str(p))) for p in info.looked_in) or "no run dir: no checkpoint path given"
        )
        return (
            f"**No evaluation was found for this checkpoint** (no `metrics.json` with test splits in {where}). "
            "Score it with `python evaluate.py ckpt_path=<checkpoint> eval_splits=eng` before relying on it.\n"
        )
    lines = [
        "Strict entity-level scores (exact span and type, PER/ORG/LOC), from the run's `metrics.json`:",
        "",
        "| split | data | F1 | precision | recall | support | F1 95% CI |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for name, rec in splits.items():
        ci = rec.get("f1_ci95")
        ci_text = f"{ci[0]:.1f}–{ci[1]:.1f}" if isinstance(ci, list | tuple) and len(ci) == 2 else ""
        cells = [
            f"{rec[k]:.1f}" if isinstance(rec.get(k), int | float) else ""
            for k in ("f1", "precision", "recall")
        ]
        lines.append(
            f"| {name} | {rec.get('ref', '')} | {' | '.join(cells)} | {rec.get('support', '')} | {ci_text} |"
        )
    tested = (info.metrics or {}).get("checkpoint")
    if tested and Path(tested).name != ckpt.name:
        lines += [
            "",
            f"Note: these scores were measured on `{Path(tested).name}`; this export is `{ckpt.name}`.",
        ]
    return "\n".join(lines) + "\n"


def _student_source(hparams: Mapping) -> str:
    student = hparams.get("student") or {}
    if student.get("init", "teacher_layers") != "teacher_layers":
        return f"the pretrained encoder `{public(str(student.get('encoder')))}`"
    depth = (hparams.get("student_config") or {}).get("num_hidden_layers")
    try:
        layers = resolve_teacher_layers(
            student.get("layers", "every_other"), hparams["teacher_layers"], depth
        )
    except (KeyError, TypeError, ValueError):
        return f"teacher layers {student.get('layers')}"
    return f"copies of teacher layers {layers} (of {hparams['teacher_layers']}), embeddings and head"


def training_section(
    hparams: Mapping, config: Mapping | None, teacher_config: Mapping | None, kind: str
) -> str:
    """Training data and, for a student, what it was distilled from."""
    data = (config or {}).get("data") or {}
    lines = []
    if kind == "student":
        teacher_data = ((teacher_config or {}).get("data") or {}).get("train")
        lines.append(
            f"- Student distilled from the teacher `{public(str(hparams.get('teacher_ckpt')))}`"
            + (f", itself fine-tuned on {describe_split(teacher_data)}" if teacher_data else "")
            + "."
        )
        lines.append(f"- Student initialised from {_student_source(hparams)}.")
        distill = hparams.get("distill") or {}
        lines.append(
            f"- Distillation: depth {distill.get('depth', 0)} ({distill.get('map', 'uniform')} layer map), "
            f"temperature {distill.get('temperature', 1.0)}, kd weight {distill.get('kd_weight', 1.0)}, "
            f"ce weight {distill.get('ce_weight', 0.0)} (all settings under `model.distill` below)."
        )
        lines.append(f"- Distillation data: {describe_split(data.get('train')) if data else 'not recorded'}.")
    else:
        lines.append(f"- Fine-tuned on {describe_split(data.get('train')) if data else 'data not recorded'}.")
    if data.get("val"):
        lines.append(f"- Model selection on {describe_split(data['val'])}.")
    lines.append(
        f"- Entity types: {', '.join(hparams.get('types') or [])} (IOB2 labels, first subword of each word)."
    )
    return "\n".join(lines) + "\n"


def render_card(
    ckpt: Path,
    module_class: str,
    hparams: Mapping,
    info: RunInfo,
    teacher_info: RunInfo | None,
    export: Mapping,
    tokenizer_words_heuristic: bool,
) -> str:
    """The README.md of an export: front matter, model, training data, config, scores and usage."""
    kind = "student" if "Distill" in module_class else "teacher"
    teacher_config = teacher_info.config if teacher_info else None
    config = info.config
    shown = (
        relevant_config(config)
        if config
        else public({k: v for k, v in hparams.items() if k not in ("student_config", "cache_dir")})
    )
    source = (
        f"the run's {info.config_source}"
        if config
        else "the checkpoint's hyper-parameters (no run config found)"
    )
    title = "Distilled student" if kind == "student" else "Fine-tuned tagger"
    parts = [
        front_matter(config or {"model": hparams}, teacher_config, kind == "student"),
        f"# {title} for named entities ({', '.join(hparams.get('types') or [])})\n",
        f"Exported with `python -m xner.export` from the xner checkpoint `{ckpt.name}` ({module_class}).\n",
        "## Model\n",
        f"- `{export['architecture']}`: {export['layers']} layers, hidden size {export['hidden_size']}, "
        f"{export['parameters'] / 1e6:.1f}M parameters; labels {', '.join(export['labels'])}.",
        f"- Encoder / tokenizer: `{public(str(hparams.get('encoder')))}`.\n",
        "## Training data\n",
        training_section(hparams, config, teacher_config, kind),
        "## xner config\n",
        f"From {source}:\n",
        "```yaml\n" + OmegaConf.to_yaml(OmegaConf.create(shown)) + "```\n",
        "## Evaluation\n",
        metrics_table(info, ckpt),
        USAGE.format(heuristic=HEURISTIC_NOTE if tokenizer_words_heuristic else ""),
    ]
    return "\n".join(parts)


USAGE = """## How to use

xner reads whitespace-separated words and labels each word at its first subword. Give the pipeline words
joined by single spaces; `aggregation_strategy="first"` then takes each word's label from its first subword,
as xner does:

```python
from transformers import pipeline

ner = pipeline("token-classification", model="path/to/this/dir", aggregation_strategy="first")
ner("Rais wa Kenya William Ruto alizuru Nairobi .")
```

Cut each entity's text from the input with its `start` and `end` (its `word` is rebuilt from subwords).
{heuristic}
Word tags exactly as xner predicts and scores them:

```python
import torch
from transformers import AutoModelForTokenClassification, AutoTokenizer

tokenizer = AutoTokenizer.from_pretrained("path/to/this/dir")
model = AutoModelForTokenClassification.from_pretrained("path/to/this/dir").eval()
words = "Rais wa Kenya William Ruto alizuru Nairobi .".split()
enc = tokenizer(words, is_split_into_words=True, truncation=True, return_tensors="pt")
with torch.no_grad():
    best = model(**enc).logits[0].argmax(-1).tolist()
first = {{}}
for position, word in enumerate(enc.word_ids()):
    if word is not None:
        first.setdefault(word, position)
tags = [model.config.id2label[best[first[i]]] if i in first else "O" for i in range(len(words))]
```
"""

HEURISTIC_NOTE = """
This tokenizer does not mark word-internal pieces, so the pipeline finds words by a spacing heuristic: where
it splits a word into a bare `▁` and the rest (some capitalised words, numbers and punctuation), the pipeline
sees two words and may report that word's entity twice, or an entity xner would not. The snippet below gives
xner's word tags exactly.
"""
