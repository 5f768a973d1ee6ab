from transformers import AutoTokenizer

from xner.data.encoding import IGNORE_INDEX, LengthBucketBatchSampler, PadCollator, encode_sentences
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
    assert batch["word_mask"].tolist() == [[False, True, False], [False, False, False]]
    assert batch["input_ids"].tolist() == [[0, 5, 2], [0, 2, 1]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["labels"][1].tolist() == [-100, -100, -100] and batch["index"].tolist() == [4, 7]


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
