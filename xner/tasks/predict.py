"""The prediction task: tag your own text with a trained checkpoint.

Input (``input_format``, inferred from the file name when null: ``.conll`` is CoNLL, anything else text):

- ``text``: raw text, one sentence or paragraph per line, cut into words by :func:`xner.text_tokenize.tokenize`;
- ``tokens``: pre-tokenised text, one sentence per line, words separated by spaces or tabs;
- ``conll``: a CoNLL file (the first column is the word; any other columns are ignored).

Output (``output_format``): ``conll`` (``word<TAB>tag``, a blank line between sentences) or ``jsonl`` (one
object per input line: ``text``, ``tokens``, ``offsets``, ``tags`` and ``entities``, each entity with
``type``, ``start``/``end`` (character offsets into ``text``: the line itself for raw text, the words joined
by single spaces otherwise), ``token_start``/``token_end`` (word positions, end exclusive), ``text`` and
``score``). An entity's ``score`` is the mean, over its words, of the probability the model gave the word's
predicted tag at its first subword (before the IOB2 repair below).

Predicted tags are repaired to valid IOB2 (an ``I-X`` that does not continue an ``X`` entity becomes
``B-X``) and the repairs are counted. Sentences longer than the model's window are tagged in overlapping
windows (:func:`xner.predict.plan_windows`). The counts go to the log and to ``predict_summary.json`` in the
run dir.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig

from xner.io.conll import read_conll
from xner.labels import repair_iob2, tags_to_spans
from xner.lit.loading import load_checkpoint_module
from xner.precision import resolve_precision
from xner.predict import WordPrediction, model_max_length, predict_words
from xner.tasks.common import (
    peak_rss_mb,
    require_setting,
    resolved_config,
    seed_and_threads,
    timer,
    write_json,
)
from xner.text_tokenize import token_offsets, tokenize
from xner.types import Sentence

log = logging.getLogger(__name__)

INPUT_FORMATS = ("text", "tokens", "conll")
OUTPUT_FORMATS = ("conll", "jsonl")
# words in `tokens` input are separated by ASCII spaces and tabs only, as in CoNLL files: a no-break space
# may sit inside a word
_TOKEN_SEP = re.compile(r"[ \t]+")


@dataclass
class InputLine:
    """One input sentence: its text and words with their character offsets into that text."""

    text: str
    tokens: list[str]
    offsets: list[tuple[int, int]]


def predict(cfg: DictConfig) -> dict:
    """Tag ``cfg.input`` with ``cfg.ckpt_path`` and write ``cfg.output``; returns the run summary."""
    example = "e.g. python predict.py ckpt_path=logs/demo/runs/<run>/checkpoints/best.ckpt input=my_text.txt"
    require_setting(cfg, "ckpt_path", f"predict.py needs ckpt_path=<a trained checkpoint>, {example}")
    require_setting(
        cfg, "input", f"predict.py needs input=<a text, tokens or .conll file, or - for stdin>, {example}"
    )
    seed_and_threads(cfg)
    out_dir = Path(cfg.paths.output_dir)
    timings: dict = {}
    input_format = infer_input_format(str(cfg.input), cfg.get("input_format"))
    output_format = str(cfg.get("output_format") or "jsonl")
    if output_format not in OUTPUT_FORMATS:
        raise ValueError(f"output_format={output_format!r}; choose one of {OUTPUT_FORMATS}")
    output = Path(cfg.output) if cfg.get("output") else out_dir / f"predictions.{output_format}"
    with timer(timings, "read"):
        lines = read_input(str(cfg.input), input_format)
    device = pick_device(str(cfg.trainer.get("accelerator", "cpu")))
    precision = str(resolve_precision(cfg.trainer.get("precision", "32-true"), device.type))
    bf16 = "bf16" in precision
    if not bf16 and precision.startswith("16"):
        log.warning(
            "trainer.precision=%s: predict.py runs fp16 models in fp32; use bf16-mixed for autocast",
            precision,
        )
    with timer(timings, "load"):
        module = load_checkpoint_module(cfg.ckpt_path).to(device)
    max_length = int(cfg.get("max_length") or model_max_length(module))
    tagged = [k for k, line in enumerate(lines) if line.tokens]
    with timer(timings, "predict"):
        preds = predict_words(
            module,
            [Sentence(lines[k].tokens) for k in tagged],
            batch_size=int(cfg.get("batch_size") or 32),
            max_length=max_length,
            progress=cfg.get("progress"),
            stride=cfg.get("stride"),
            bf16=bf16,
        )
    by_line: dict[int, WordPrediction] = dict(zip(tagged, preds, strict=True))
    records, repaired = [], 0
    for k, line in enumerate(lines):
        record, changed = build_record(line, by_line.get(k))
        records.append(record)
        repaired += changed
    write_output(output, records, output_format)
    entities = Counter(e["type"] for r in records for e in r["entities"])
    summary = {
        "task": cfg.task_name,
        "run_dir": str(out_dir),
        "checkpoint": str(cfg.ckpt_path),
        "input": str(cfg.input),
        "input_format": input_format,
        "output": str(output),
        "output_format": output_format,
        "sentences": len(tagged),
        "blank_lines": len(lines) - len(tagged),
        "words": sum(len(p.tags) for p in preds),
        "repaired_tags": repaired,
        "windowed_sentences": sum(p.windows > 1 for p in preds),
        "windows": sum(p.windows for p in preds),
        "empty_words": sum(p.empty_words for p in preds),
        "entities": sum(entities.values()),
        "entities_by_type": dict(sorted(entities.items())),
        "max_length": max_length,
        "stride": cfg.get("stride"),
        "device": str(device),
        "bf16": bf16,
        "timings_s": timings,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "config": resolved_config(cfg),
    }
    write_json(out_dir / "predict_summary.json", summary)
    log.info(
        "Tagged %d sentences (%d words, %d entities) into %s. Repaired %d tags to valid IOB2; %d sentences "
        "longer than max_length=%d subwords were tagged in overlapping windows; %d words without subwords "
        "were tagged O; %d blank lines. Summary: %s",
        summary["sentences"],
        summary["words"],
        summary["entities"],
        output,
        repaired,
        summary["windowed_sentences"],
        max_length,
        summary["empty_words"],
        summary["blank_lines"],
        out_dir / "predict_summary.json",
    )
    return summary


def infer_input_format(path: str, declared: str | None) -> str:
    """The declared input format, or ``conll`` for ``*.conll`` files and ``text`` otherwise."""
    if declared:
        if declared not in INPUT_FORMATS:
            raise ValueError(f"input_format={declared!r}; choose one of {INPUT_FORMATS} (or null to infer)")
        return declared
    return "conll" if path.lower().endswith(".conll") else "text"


def pick_device(accelerator: str) -> torch.device:
    """The device for ``trainer.accelerator`` (``cpu``, ``gpu``/``cuda`` or ``auto``)."""
    accelerator = accelerator.lower()
    if accelerator == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if accelerator in ("gpu", "cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError(
                f"trainer.accelerator={accelerator} but no CUDA device is visible; use trainer=default (CPU)."
            )
        return torch.device("cuda")
    if accelerator == "cpu":
        return torch.device("cpu")
    raise ValueError(f"trainer.accelerator={accelerator!r} is not supported here; use cpu, gpu or auto.")


def read_input(path: str, input_format: str) -> list[InputLine]:
    """Read sentences in ``input_format`` from ``path`` (``-`` reads standard input; not for CoNLL).

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not UTF-8 (names the line), or CoNLL is asked of standard input.
    """
    if input_format == "conll":
        if path == "-":
            raise ValueError("input=- (standard input) takes text or tokens; write CoNLL to a file.")
        return [
            InputLine(" ".join(s.tokens), list(s.tokens), token_offsets(s.tokens))
            for s in read_conll(path, labelled=False)
        ]
    out = []
    for line_no, line in enumerate(_text_lines(path), start=1):
        line = line.rstrip("\r\n")
        if line_no == 1:
            line = line.lstrip("\ufeff")
        if input_format == "text":
            tokens = tokenize(line)
            out.append(InputLine(line, [t.text for t in tokens], [(t.start, t.end) for t in tokens]))
        else:
            words = [w for w in _TOKEN_SEP.split(line.strip(" \t")) if w]
            out.append(InputLine(" ".join(words), words, token_offsets(words)))
    return out


def _text_lines(path: str) -> list[str]:
    if path == "-":
        return sys.stdin.read().splitlines()
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(
            f"Input file {file} not found (input=<path to a text, tokens or .conll file>)."
        )
    lines = []
    with file.open("rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            try:
                lines.append(raw.decode("utf-8"))
            except UnicodeDecodeError as err:
                raise ValueError(
                    f"{file}:{line_no}: byte {raw[err.start : err.start + 1]!r} at column {err.start + 1} is "
                    "not valid UTF-8. Re-encode the file, e.g. `iconv -f latin1 -t utf-8 in.txt > out.txt`."
                ) from None
    return lines


def build_record(line: InputLine, pred: WordPrediction | None) -> tuple[dict, int]:
    """The JSONL record of one line (IOB2-repaired tags and scored entities) and the number of repairs."""
    if pred is None:  # a blank line
        return {"text": line.text, "tokens": [], "offsets": [], "tags": [], "entities": []}, 0
    tags, changed = repair_iob2(pred.tags)
    confidence = pred.probs.max(-1)  # the probability of each word's predicted (argmax) tag
    entities = []
    for span in tags_to_spans(tags):
        start, end = line.offsets[span.start][0], line.offsets[span.end - 1][1]
        entities.append(
            {
                "type": span.label,
                "start": start,
                "end": end,
                "token_start": span.start,
                "token_end": span.end,
                "text": line.text[start:end],
                "score": round(float(confidence[span.start : span.end].mean()), 4),
            }
        )
    record = {
        "text": line.text,
        "tokens": line.tokens,
        "offsets": [list(o) for o in line.offsets],
        "tags": tags,
        "entities": entities,
    }
    return record, changed


def write_output(path: Path, records: list[dict], output_format: str) -> None:
    """Write the records as JSONL (one per input line) or CoNLL (blank lines are left out)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as out:
        for record in records:
            if output_format == "jsonl":
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
            elif record["tokens"]:
                out.writelines(f"{w}\t{t}\n" for w, t in zip(record["tokens"], record["tags"], strict=True))
                out.write("\n")
    tmp.replace(path)
