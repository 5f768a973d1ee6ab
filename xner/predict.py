"""Batched inference with a trained xner module on word-tokenised sentences."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import AutoTokenizer

from xner.data.encoding import PadCollator, encode_sentences
from xner.types import Sentence


@dataclass
class WordPrediction:
    """Predicted tags and label probabilities per word (``[words, labels]``; rows of cut words are zero)."""

    tags: list[str]
    probs: np.ndarray


@torch.inference_mode()
def predict_words(
    module,
    sentences: Sequence[Sentence],
    batch_size: int = 64,
    max_length: int = 512,
    progress: bool | None = None,
) -> list[WordPrediction]:
    """Tag sentences with a TaggerModule or DistillModule (argmax at each word's first subword).

    Words with no subword position (beyond ``max_length``) get ``O`` and zero probabilities.
    """
    module.eval()
    tokenizer = AutoTokenizer.from_pretrained(module.hparams.encoder)
    encoded, _ = encode_sentences([s.with_tags(None) for s in sentences], tokenizer, None, max_length)
    collate = PadCollator(tokenizer.pad_token_id)
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i].input_ids))
    labels = module.label_set.labels
    out: list[WordPrediction | None] = [None] * len(encoded)
    for lo in tqdm(
        range(0, len(order), batch_size),
        desc="tagging",
        unit="batch",
        disable=None if progress is None else not progress,
    ):
        idx = order[lo : lo + batch_size]
        batch = collate(
            [
                {
                    "input_ids": encoded[i].input_ids,
                    "labels": encoded[i].labels,
                    "word_starts": encoded[i].word_starts,
                    "index": i,
                }
                for i in idx
            ]
        )
        probs = torch.softmax(module(batch["input_ids"], batch["attention_mask"]).logits.float(), -1)
        for row, i in enumerate(idx):
            starts = torch.tensor(encoded[i].word_starts, dtype=torch.long)
            word_probs = (probs[row, starts.clamp_min(0)] * (starts >= 0)[:, None]).numpy()
            tags = [
                labels[k] if s >= 0 else "O"
                for k, s in zip(word_probs.argmax(-1), encoded[i].word_starts, strict=True)
            ]
            out[i] = WordPrediction(tags, word_probs)
    return out  # type: ignore[return-value]
