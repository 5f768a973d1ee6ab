"""Turn word-level sentences into subword tensors: the first subword of each word carries the label.

Every word that loses its label (cut by ``max_length`` or tokenised to nothing) is counted in
:class:`EncodingStats`, so truncation never goes unnoticed; at prediction time such words are tagged ``O``
and the count is reported with the metrics.
"""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset, Sampler

from xner.labels import LabelSet
from xner.types import Sentence

IGNORE_INDEX = -100


@dataclass
class EncodingStats:
    """Words that received no subword position (truncated, or empty after tokenisation)."""

    sentences: int = 0
    words: int = 0
    truncated_words: int = 0
    truncated_sentences: int = 0
    empty_words: int = 0

    def merge(self, other: EncodingStats) -> EncodingStats:
        """Sum two stats."""
        return EncodingStats(*(a + b for a, b in zip(vars(self).values(), vars(other).values(), strict=True)))


@dataclass
class Encoded:
    """One sentence as model input.

    Attributes:
        input_ids: subword ids including special tokens.
        labels: label id at each word's first subword, ``IGNORE_INDEX`` elsewhere (all ignored if unlabelled).
        word_starts: subword position of each word's first subword, ``-1`` for words with none.
    """

    input_ids: list[int]
    labels: list[int]
    word_starts: list[int]


def nfc_words(sentences: Sequence[Sentence]) -> list[list[str]]:
    """The sentences' words in Unicode NFC, as every tokenizer call on words gets them.

    NFC joins letters and separate combining accents (MasakhaNER Yoruba is written decomposed); the XLM-R
    normaliser cannot compose them, so decomposed text would cost ~23% more, rarer subwords.
    """
    return [[unicodedata.normalize("NFC", w) for w in s.tokens] for s in sentences]


def encode_sentences(
    sentences: Sequence[Sentence],
    tokenizer,
    label_set: LabelSet | None,
    max_length: int = 128,
    batch_size: int = 1000,
) -> tuple[list[Encoded], EncodingStats]:
    """Tokenise sentences word by word with a fast tokenizer.

    Args:
        sentences: the sentences (tags are used when present and ``label_set`` is given).
        tokenizer: a HF *fast* tokenizer (``word_ids()`` is needed).
        label_set: maps tags to ids; ``None`` encodes unlabelled text.
        max_length: subword limit including special tokens.
        batch_size: sentences per tokenizer call.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError(f"{type(tokenizer).__name__} is not a fast tokenizer; word_ids() is required.")
    encoded: list[Encoded] = []
    stats = EncodingStats()
    for lo in range(0, len(sentences), batch_size):
        chunk = sentences[lo : lo + batch_size]
        words = nfc_words(chunk)
        batch = tokenizer(words, is_split_into_words=True, truncation=True, max_length=max_length)
        for k, sent in enumerate(chunk):
            word_ids = batch.word_ids(k)
            starts = [-1] * len(sent)
            prev = None
            for pos, wid in enumerate(word_ids):
                if wid is not None and wid != prev:
                    starts[wid] = pos
                prev = wid
            labels = [IGNORE_INDEX] * len(word_ids)
            if label_set is not None and sent.tags is not None:
                ids = label_set.encode(sent.tags)
                for wid, pos in enumerate(starts):
                    if pos >= 0:
                        labels[pos] = ids[wid]
            missing = [w for w, p in enumerate(starts) if p < 0]
            last_seen = max((w for w in word_ids if w is not None), default=-1)
            truncated = sum(1 for w in missing if w > last_seen)
            stats.sentences += 1
            stats.words += len(sent)
            stats.truncated_words += truncated
            stats.truncated_sentences += truncated > 0
            stats.empty_words += len(missing) - truncated
            encoded.append(Encoded(batch["input_ids"][k], labels, starts))
    return encoded, stats


def gather_word_starts(values: torch.Tensor, word_starts: torch.Tensor) -> torch.Tensor:
    """Each word's row of ``values`` at its first subword; zeros for words with none (``word_starts < 0``).

    The one place the labelling convention (a word's first subword stands for the word) is applied to
    model outputs: logits, probabilities or hidden states.

    Args:
        values: subword rows, ``[..., T, D]`` (e.g. ``[B, T, D]`` for a batch, ``[T, D]`` for one sentence).
        word_starts: first-subword position of each word, ``[..., W]`` with the same leading shape; ``-1``
            (any negative value) marks a word with no subword (truncated or empty).

    Returns:
        ``[..., W, D]``: row ``w`` is ``values[..., word_starts[w], :]``, or zeros where that is negative.
    """
    index = word_starts.clamp_min(0)[..., None].expand(*word_starts.shape, values.shape[-1])
    return values.gather(-2, index) * (word_starts >= 0)[..., None]


class EncodedDataset(Dataset):
    """Encoded sentences, indexable; keeps the source sentences for decoding predictions."""

    def __init__(self, sentences: Sequence[Sentence], encoded: Sequence[Encoded], name: str = ""):
        if len(sentences) != len(encoded):
            raise ValueError(f"{len(sentences)} sentences but {len(encoded)} encodings")
        self.sentences, self.encoded, self.name = list(sentences), list(encoded), name

    def __len__(self) -> int:
        return len(self.encoded)

    def __getitem__(self, idx: int) -> dict:
        enc = self.encoded[idx]
        return {
            "input_ids": enc.input_ids,
            "labels": enc.labels,
            "word_starts": enc.word_starts,
            "index": idx,
        }

    def lengths(self) -> list[int]:
        """Subword length of each item (for length bucketing)."""
        return [len(e.input_ids) for e in self.encoded]


class PadCollator:
    """Pad a batch to its longest member (dynamic padding)."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, items: Sequence[dict]) -> dict[str, torch.Tensor]:
        width = max(len(it["input_ids"]) for it in items)
        n = len(items)
        input_ids = torch.full((n, width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((n, width), IGNORE_INDEX, dtype=torch.long)
        attention = torch.zeros((n, width), dtype=torch.long)
        for i, it in enumerate(items):
            m = len(it["input_ids"])
            input_ids[i, :m] = torch.tensor(it["input_ids"])
            labels[i, :m] = torch.tensor(it["labels"])
            attention[i, :m] = 1
        n_words = max((len(it.get("word_starts", ())) for it in items), default=0)
        word_starts = torch.full((n, max(1, n_words)), -1, dtype=torch.long)
        for i, it in enumerate(items):
            ws = it.get("word_starts", ())
            word_starts[i, : len(ws)] = torch.tensor(ws, dtype=torch.long)
        index = torch.tensor([it["index"] for it in items], dtype=torch.long)
        # word_starts (-1 = no subword) marks the positions that carry labels, labelled data or not
        return {
            "input_ids": input_ids,
            "attention_mask": attention,
            "labels": labels,
            "word_starts": word_starts,
            "index": index,
        }


class LengthBucketBatchSampler(Sampler[list[int]]):
    """Batches of similar length, in random order: less padding, same data each epoch.

    Indices are shuffled, cut into pools of ``pool_batches`` batches, sorted by length inside each pool and
    batched; the batches are then shuffled. Under distributed training each rank takes every
    ``world_size``-th batch (the batch count is cut to a multiple of ``world_size`` so ranks stay in step).
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        seed: int = 0,
        pool_batches: int = 50,
        shuffle: bool = True,
    ):
        self.lengths, self.batch_size, self.seed = list(lengths), batch_size, seed
        self.pool, self.shuffle, self.epoch = pool_batches * batch_size, shuffle, 0
        self.skip = 0

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle differently each epoch (called by Lightning)."""
        self.epoch = epoch

    def skip_next(self, batches: int) -> None:
        """Leave out the first ``batches`` batches of the next epoch (already trained before a resume).

        The order depends only on ``seed`` and the epoch, so a resumed run sees the batches the interrupted
        run had not reached yet.
        """
        self.skip = batches

    def _batches(self) -> list[list[int]]:
        rng = random.Random(self.seed + self.epoch)
        order = list(range(len(self.lengths)))
        if self.shuffle:
            rng.shuffle(order)
        batches = []
        for lo in range(0, len(order), self.pool):
            pool = sorted(order[lo : lo + self.pool], key=self.lengths.__getitem__)
            batches += [pool[i : i + self.batch_size] for i in range(0, len(pool), self.batch_size)]
        if self.shuffle:
            rng.shuffle(batches)
        rank, world = _dist_rank_world()
        if world > 1:
            batches = batches[: len(batches) - len(batches) % world][rank::world]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        batches, self.skip = self._batches()[self.skip :], 0
        yield from batches
        self.epoch += 1

    def __len__(self) -> int:
        n = -(-len(self.lengths) // self.batch_size)
        rank, world = _dist_rank_world()
        return n // world if world > 1 else n


class ShardedBatchSampler(Sampler[list[int]]):
    """Fixed evaluation batches (sorted by length: little padding), shared out across distributed ranks.

    Rank ``r`` of ``w`` takes batches ``r, r + w, ...``: every sentence is scored exactly once, by one rank
    (ranks may get one batch more or less; evaluation has no gradient sync, so that is safe). The ranks'
    predictions are gathered before scoring (:meth:`xner.lit.evaluation.SplitEvaluationMixin.finish`).
    The rank is read when iterating, after Lightning has set up the process group.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int):
        order = sorted(range(len(lengths)), key=list(lengths).__getitem__)
        self.batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]

    def __iter__(self) -> Iterator[list[int]]:
        rank, world = _dist_rank_world()
        yield from self.batches[rank::world]

    def __len__(self) -> int:
        rank, world = _dist_rank_world()
        return len(self.batches[rank::world])


def _dist_rank_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1
