import torch
from transformers import AutoTokenizer

from xner.data.encoding import (
    IGNORE_INDEX,
    LengthBucketBatchSampler,
    PadCollator,
    encode_sentences,
    gather_word_starts,
)
from xner.labels import LabelSet
from xner.types import Sentence


def test_first_subword_carries_label(me5_dir):
    tok = AutoTokenizer.from_pretrained(me5_dir)
    sent = Sentence(["Nelson", "Mandela", "visited", "Johannesburg"], ["B-PER", "I-PER", "O", "B-LOC"])
    (enc,), stats = encode_sentences([sent], tok, LabelSet(["PER", "ORG", "LOC"]), 128)
    pieces = tok.convert_ids_to_tokens(enc.input_ids)
    assert pieces[0] == "<s>" and pieces[-1] == "</s>"
    for word, pos in zip(sent.tokens, enc.word_starts, strict=True):
        assert pieces[pos].startswith("▁") and word.lower().startswith(pieces[pos].lstrip("▁").lower()[:2])
    labelled = [(p, lab) for p, lab in enumerate(enc.labels) if lab != IGNORE_INDEX]
    assert [p for p, _ in labelled] == enc.word_starts
    assert [lab for _, lab in labelled] == [1, 2, 0, 5]
    assert stats.truncated_words == 0


def test_truncation_is_counted(tiny_encoder):
    tok = AutoTokenizer.from_pretrained(tiny_encoder)
    sent = Sentence(["the"] * 20, ["O"] * 20)
    (enc,), stats = encode_sentences([sent], tok, LabelSet(["PER"]), max_length=10)
    assert len(enc.input_ids) == 10
    assert stats.truncated_words == 12 and stats.truncated_sentences == 1
    assert enc.word_starts[8:] == [-1] * 12


def test_collator_pads_dynamically():
    batch = PadCollator(pad_token_id=1)(
        [
            {"input_ids": [0, 5, 2], "labels": [-100, 3, -100], "word_starts": [1], "index": 4},
            {"input_ids": [0, 2], "labels": [-100, -100], "word_starts": [-1], "index": 7},
        ]
    )
    assert batch["word_starts"].tolist() == [[1], [-1]]
    assert batch["input_ids"].tolist() == [[0, 5, 2], [0, 2, 1]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["labels"][1].tolist() == [-100, -100, -100] and batch["index"].tolist() == [4, 7]


def test_gather_word_starts_takes_first_subwords_and_zeros_missing_words():
    values = torch.arange(2 * 4 * 3, dtype=torch.float).reshape(2, 4, 3)
    starts = torch.tensor([[1, 3], [0, -1]])
    rows = gather_word_starts(values, starts)
    assert rows.shape == (2, 2, 3)
    assert rows[0].tolist() == [values[0, 1].tolist(), values[0, 3].tolist()]
    assert rows[1].tolist() == [values[1, 0].tolist(), [0.0, 0.0, 0.0]]
    # one sentence alone (no batch dimension) gives the same rows
    assert torch.equal(gather_word_starts(values[1], starts[1]), rows[1])


def test_length_buckets_cover_every_item_once():
    lengths = [(i * 37) % 101 for i in range(1000)]
    sampler = LengthBucketBatchSampler(lengths, batch_size=16, seed=3, pool_batches=5)
    batches = list(sampler)
    assert len(batches) == len(sampler)
    assert sorted(i for b in batches for i in b) == list(range(1000))
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)
    assert spread < 25  # random batches would spread ~95
    sampler.set_epoch(1)
    assert list(sampler) != batches
