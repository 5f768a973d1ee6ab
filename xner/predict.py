"""Batched inference with a trained xner module on word-tokenised sentences.

A sentence longer than the model's window (``max_length`` subwords, special tokens included) is tagged in
overlapping windows of whole words (:func:`plan_windows`); each word takes its prediction from the window in
which it has the most context on its nearer side, so no word is left untagged. Words that tokenise to no
subword at all (some control or format characters) are tagged ``O`` and counted.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import AutoTokenizer

from xner.data.encoding import PadCollator, encode_sentences, gather_word_starts, nfc_words
from xner.models.tagger import usable_positions
from xner.types import Sentence


@dataclass
class WordPrediction:
    """Predicted tags and label probabilities per word.

    Attributes:
        tags: the argmax tag of each word (not repaired to valid IOB2; see :func:`xner.labels.repair_iob2`).
        probs: label probabilities per word, ``[words, labels]``; rows of words without a subword are zero.
        windows: how many windows the sentence was tagged in (1: it fitted the model's window).
        empty_words: words that tokenised to no subword and were tagged ``O``.
    """

    tags: list[str]
    probs: np.ndarray
    windows: int = 1
    empty_words: int = 0


@dataclass(frozen=True)
class WindowPlan:
    """Overlapping windows over one sentence's words.

    Attributes:
        windows: ``(start, end)`` word ranges, in order; consecutive windows overlap and together cover every
            word.
        owner: for each word, the index of the window whose prediction it takes.
    """

    windows: list[tuple[int, int]]
    owner: list[int]


def plan_windows(lengths: Sequence[int], budget: int, stride: int | None = None) -> WindowPlan:
    """Cut a sentence into overlapping windows of whole words that fit ``budget`` subwords.

    A window takes as many whole words as fit; the next one starts at the first word at least ``stride``
    subwords after the previous start, or later where needed to reach the first word not yet covered (but
    never past the previous end, so no word is skipped and every window adds at least one word); the last
    window is moved left to end at the sentence end with a full budget of context. A single word longer than
    the budget gets a window of its own (its first subword, which carries the prediction, still fits).

    Each word is owned by the window where its distance to the nearer *cut* edge, in subwords, is largest
    (the sentence's own start and end are not cuts: nothing is missing beyond them); ties go to the earlier
    window.

    Args:
        lengths: subwords per word (0 for words that tokenise to nothing).
        budget: subwords per window without special tokens (``max_length`` minus the special tokens).
        stride: subwords between the starts of consecutive windows (default: half the budget).

    Raises:
        ValueError: a budget or stride below 1.
    """
    if budget < 1:
        raise ValueError(f"window budget must be >= 1 subword, got {budget}; raise max_length")
    stride = max(1, budget // 2) if stride is None else stride
    if stride < 1:
        raise ValueError(f"stride must be >= 1 subword, got {stride}")
    n = len(lengths)
    offsets = [0]
    for length in lengths:
        offsets.append(offsets[-1] + length)
    total = offsets[-1]
    if total <= budget:
        return WindowPlan([(0, n)], [0] * n)
    windows: list[tuple[int, int]] = []
    lo = 0
    while True:
        hi = lo + 1  # always at least one word, even one longer than the budget
        while hi < n and offsets[hi + 1] - offsets[lo] <= budget:
            hi += 1
        windows.append((lo, hi))
        if hi >= n:
            break
        # the next start: `stride` subwords on, but late enough for the first uncovered word (hi) to fit
        nxt = max(
            bisect.bisect_left(offsets, offsets[lo] + stride, lo + 1, n),
            bisect.bisect_left(offsets, offsets[hi + 1] - budget, lo + 1, hi + 1),
        )
        nxt = min(nxt, hi)
        if total - offsets[nxt] <= budget:
            # the rest fits: end with a window reaching back as far as the budget allows (most context)
            last = bisect.bisect_left(offsets, total - budget, lo + 1, nxt + 1)
            windows.append((last, n))
            break
        lo = nxt
    owner, best = [0] * n, [-1.0] * n
    for k, (lo, hi) in enumerate(windows):
        for w in range(lo, hi):
            left = float("inf") if lo == 0 else offsets[w] - offsets[lo]
            right = float("inf") if hi == n else offsets[hi] - offsets[w + 1]
            if min(left, right) > best[w]:
                owner[w], best[w] = k, min(left, right)
    return WindowPlan(windows, owner)


def model_max_length(module, tokenizer=None) -> int:
    """The longest input the module's encoder takes, special tokens included (512 when nothing says)."""
    limits = []
    tokenizer = tokenizer or AutoTokenizer.from_pretrained(module.hparams.encoder)
    if 0 < int(tokenizer.model_max_length) < 10**6:  # HF uses a huge number for "not set"
        limits.append(int(tokenizer.model_max_length))
    for sub in module.modules():
        positions = usable_positions(getattr(sub, "config", None))
        if positions is not None:
            limits.append(positions)
    return min(limits) if limits else 512


def word_lengths(sentences: Sequence[Sentence], tokenizer, batch_size: int = 1000) -> list[list[int]]:
    """Subwords per word (no special tokens), tokenised as :func:`xner.data.encoding.encode_sentences` does."""
    out = []
    for lo in range(0, len(sentences), batch_size):
        chunk = sentences[lo : lo + batch_size]
        words = nfc_words(chunk)
        # verbose=False: sentences longer than the model are expected here (they get windows)
        batch = tokenizer(words, is_split_into_words=True, add_special_tokens=False, verbose=False)
        for k, sent in enumerate(chunk):
            counts = [0] * len(sent)
            for wid in batch.word_ids(k):
                if wid is not None:
                    counts[wid] += 1
            out.append(counts)
    return out


@torch.inference_mode()
def predict_words(
    module,
    sentences: Sequence[Sentence],
    batch_size: int = 64,
    max_length: int = 512,
    progress: bool | None = None,
    *,
    stride: int | None = None,
    bf16: bool = False,
) -> list[WordPrediction]:
    """Tag sentences with a TaggerModule or DistillModule (argmax at each word's first subword).

    Sentences longer than ``max_length`` subwords are tagged in overlapping windows (:func:`plan_windows`);
    ``WordPrediction.windows`` says how many. Words with no subword get ``O`` and zero probabilities
    (``WordPrediction.empty_words``).

    Args:
        module: the model; inputs go to the device of its parameters.
        sentences: word-tokenised sentences (tags are ignored).
        batch_size: windows per forward pass (sorted by length, so little padding).
        max_length: subwords per window, special tokens included.
        progress: show a progress bar (``None``: only on a terminal).
        stride: subwords between consecutive window starts (default: half a window).
        bf16: run the forward pass under bfloat16 autocast.
    """
    module.eval()
    tokenizer = AutoTokenizer.from_pretrained(module.hparams.encoder)
    budget = max_length - tokenizer.num_special_tokens_to_add(pair=False)
    plans = [plan_windows(lengths, budget, stride) for lengths in word_lengths(sentences, tokenizer)]
    pieces = [(i, lo, hi) for i, plan in enumerate(plans) for lo, hi in plan.windows]
    encoded, _ = encode_sentences(
        [Sentence(sentences[i].tokens[lo:hi]) for i, lo, hi in pieces], tokenizer, None, max_length
    )
    collate = PadCollator(tokenizer.pad_token_id)
    order = sorted(range(len(encoded)), key=lambda k: len(encoded[k].input_ids))
    device = next(module.parameters()).device
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()
    piece_probs: list[np.ndarray | None] = [None] * len(encoded)
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
                    "input_ids": encoded[k].input_ids,
                    "labels": encoded[k].labels,
                    "index": k,
                    "word_starts": (),
                }
                for k in idx
            ]
        )
        with autocast:
            logits = module(batch["input_ids"].to(device), batch["attention_mask"].to(device)).logits
        probs = torch.softmax(logits.float(), -1).cpu()
        for row, k in enumerate(idx):
            starts = torch.tensor(encoded[k].word_starts, dtype=torch.long)
            piece_probs[k] = gather_word_starts(probs[row], starts).numpy()
    return _assemble(sentences, plans, pieces, encoded, piece_probs, module.label_set.labels)


def _assemble(sentences, plans, pieces, encoded, piece_probs, labels) -> list[WordPrediction]:
    """Each word's prediction from the window that owns it."""
    first_piece: dict[int, int] = {}
    for k, (i, _, _) in enumerate(pieces):
        first_piece.setdefault(i, k)
    out = []
    for i, (sent, plan) in enumerate(zip(sentences, plans, strict=True)):
        word_probs = np.zeros((len(sent), len(labels)), dtype=np.float32)
        has_start = np.zeros(len(sent), dtype=bool)
        for w, win in enumerate(plan.owner):
            k = first_piece[i] + win
            local = w - pieces[k][1]
            word_probs[w] = piece_probs[k][local]
            has_start[w] = encoded[k].word_starts[local] >= 0
        tags = [labels[a] if ok else "O" for a, ok in zip(word_probs.argmax(-1), has_start, strict=True)]
        out.append(WordPrediction(tags, word_probs, len(plan.windows), int((~has_start).sum())))
    return out
