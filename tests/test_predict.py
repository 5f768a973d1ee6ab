"""Tag your own text: the word tokenizer, overlapping windows, IOB2 repair and predict.py end to end."""

import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from xner.labels import repair_iob2
from xner.predict import WordPrediction, plan_windows, predict_words
from xner.tasks.predict import InputLine, build_record, predict
from xner.text_tokenize import token_offsets, tokenize
from xner.types import Sentence

ROOT = Path(__file__).resolve().parent.parent
ENTITY_KEYS = {"type", "start", "end", "token_start", "token_end", "text", "score"}


# ------------------------------------------------------------------------------------------- tokenizer
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Dr. Smith moved to the U.S. in 1999, paying $1,000.50 (3.14% more).",
            "Dr. | Smith | moved | to | the | U.S. | in | 1999 | , | paying | $ | 1,000.50 | ( | 3.14 | % | more | ) | .",
        ),
        (
            "I don't think Britain's PM saw https://example.com/a_(b)/c?x=1. Mail jane.doe+x@mail.co.uk!",
            "I | do | n't | think | Britain | 's | PM | saw | https://example.com/a_(b)/c?x=1 | . | Mail | "
            "jane.doe+x@mail.co.uk | !",
        ),
        (
            "J. K. Rowling's state-of-the-art COVID-19 book... Really?! Jan. 5 at 12:30, said no.",
            "J. | K. | Rowling | 's | state-of-the-art | COVID-19 | book | ... | Really | ? | ! | Jan. | 5 | at | "
            "12:30 | , | said | no | .",
        ),
        # decomposed Yoruba accents and Devanagari vowel signs are word characters, not cuts
        ("Adébáyọ̀ lọ sí Èkó.", "Adébáyọ̀ | lọ | sí | Èkó | ."),
        ("हिन्दी भाषा में नाम।", "हिन्दी | भाषा | में | नाम | ।"),
        ("O'Neil's ng'ombe @user #tag\u200bx\x07y", "O'Neil | 's | ng'ombe | @user | #tag | x | y"),
        (
            "(see www.bbc.co.uk). students' «text»—dash",
            "( | see | www.bbc.co.uk | ) | . | students | ' | « | text | » | — | dash",
        ),
    ],
)
def test_tokenize_splits_like_conll_and_keeps_offsets(text, expected):
    tokens = tokenize(text)
    assert " | ".join(t.text for t in tokens) == expected
    assert all(text[t.start : t.end] == t.text for t in tokens)


def test_tokenize_offsets_round_trip_on_any_text():
    rng = random.Random(0)
    alphabet = "ab Z9.,'-:/@#()\u00a0\u0301\t\u200bé€!?"
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        tokens = tokenize(text)
        assert all(text[t.start : t.end] == t.text for t in tokens)
        assert all(a.end <= b.start for a, b in zip(tokens, tokens[1:], strict=False))
        # only whitespace and invisible characters are left out
        covered = {i for t in tokens for i in range(t.start, t.end)}
        assert all(text[i] in " \t\u00a0\u200b" for i in range(len(text)) if i not in covered)


def test_token_offsets_index_the_joined_words():
    words = ["New", "York", "!"]
    joined = " ".join(words)
    assert [joined[a:b] for a, b in token_offsets(words)] == words


# ------------------------------------------------------------------------------------------- windows
def test_short_sentence_is_one_window():
    assert plan_windows([1, 2, 3], budget=6).windows == [(0, 3)]
    assert plan_windows([], budget=6).windows == [(0, 0)]


def test_windows_cover_every_word_within_budget():
    rng = random.Random(1)
    for _ in range(200):
        lengths = [rng.choice([0, 1, 1, 2, 3, 7]) for _ in range(rng.randint(1, 120))]
        budget, stride = rng.randint(3, 20), rng.choice([None, 1, 2, 5])
        plan = plan_windows(lengths, budget, stride)
        assert plan.windows[0][0] == 0 and plan.windows[-1][1] == len(lengths)
        for (lo, hi), (lo2, hi2) in zip(plan.windows, plan.windows[1:], strict=False):
            assert lo < lo2 <= hi < hi2  # moving forward, overlapping or touching: no word skipped
        for lo, hi in plan.windows:
            assert sum(lengths[lo:hi]) <= budget or hi - lo == 1
        for w, k in enumerate(plan.owner):
            assert plan.windows[k][0] <= w < plan.windows[k][1]


def test_each_word_takes_the_window_where_it_has_most_context():
    plan = plan_windows([1] * 20, budget=10, stride=5)
    assert plan.windows == [(0, 10), (5, 15), (10, 20)]
    # word 6 is 4 from the first window's cut but 1 from the second's start: the first window wins
    assert plan.owner[6] == 0 and plan.owner[8] == 1 and plan.owner[12] == 1 and plan.owner[14] == 2
    assert plan.owner[:5] == [0] * 5 and plan.owner[15:] == [2] * 5


def test_a_word_longer_than_the_window_gets_one_of_its_own():
    plan = plan_windows([2, 50, 2, 2], budget=8)
    assert (1, 2) in plan.windows and plan.windows[-1][1] == 4


def test_bad_window_settings_are_refused():
    with pytest.raises(ValueError, match="raise max_length"):
        plan_windows([1, 2], budget=0)
    with pytest.raises(ValueError, match="stride"):
        plan_windows([1, 2, 3], budget=2, stride=0)


# ------------------------------------------------------------------------------------------- records
def test_record_repairs_iob2_counts_it_and_scores_entities():
    text = "Ada Lovelace met Bob in Paris"
    tokens = tokenize(text)
    line = InputLine(text, [t.text for t in tokens], [(t.start, t.end) for t in tokens])
    tags = ["I-PER", "I-PER", "O", "B-PER", "O", "I-LOC"]  # two invalid I- tags
    probs = np.full((6, 3), 0.1, dtype=np.float32)
    probs[:, 0] = [0.6, 0.8, 0.9, 0.7, 0.9, 0.5]
    record, repaired = build_record(line, WordPrediction(tags, probs))
    assert repaired == 2 and record["tags"] == ["B-PER", "I-PER", "O", "B-PER", "O", "B-LOC"]
    ada, bob, paris = record["entities"]
    assert set(ada) == ENTITY_KEYS
    assert (ada["text"], ada["start"], ada["end"], ada["token_start"], ada["token_end"]) == (
        "Ada Lovelace",
        0,
        12,
        0,
        2,
    )
    assert ada["score"] == pytest.approx(0.7) and bob["score"] == pytest.approx(0.7)
    assert paris["type"] == "LOC" and text[paris["start"] : paris["end"]] == "Paris"


# ------------------------------------------------------------------------------------------- tiny model
@pytest.fixture(scope="module")
def noisy_ckpt(tiny_tagger_ckpt, long_words, tmp_path_factory) -> Path:
    """The tiny tagger with a random head on standardised word states: it predicts every label, invalid
    IOB2 sequences included.

    (The briefly trained tiny tagger tags everything ``O``, which would leave entities and repairs untested.)
    """
    import torch
    from transformers import AutoTokenizer

    from xner.lit.loading import load_checkpoint_module

    module = load_checkpoint_module(tiny_tagger_ckpt)
    tokenizer = AutoTokenizer.from_pretrained(module.hparams.encoder)
    enc = tokenizer([long_words[:300]], is_split_into_words=True, return_tensors="pt")
    with torch.no_grad():
        states = module.model.encoder(enc["input_ids"], enc["attention_mask"]).last_hidden_state[0]
    mean, std = states.mean(0), states.std(0) + 1e-6
    weight = 2 * torch.randn(
        len(module.label_set), states.shape[1], generator=torch.Generator().manual_seed(0)
    )
    ckpt = torch.load(tiny_tagger_ckpt, map_location="cpu", weights_only=True)
    ckpt["state_dict"]["model.head.weight"] = weight / std
    ckpt["state_dict"]["model.head.bias"] = -(weight / std) @ mean
    path = tmp_path_factory.mktemp("noisy") / "noisy.ckpt"
    torch.save(ckpt, path)
    return path


@pytest.fixture(scope="module")
def tagger(noisy_ckpt):
    from xner.lit.loading import load_checkpoint_module

    return load_checkpoint_module(noisy_ckpt)


@pytest.fixture(scope="module")
def long_words(data_dir) -> list[str]:
    """700 real words: CoNLL-2003 test sentences run together."""
    from xner.data.registry import load_split

    sentences, _ = load_split("conll2003::test", data_dir, limit=200)
    words = [w for s in sentences for w in s.tokens]
    assert len(words) >= 700
    return words[:700]


@pytest.mark.parametrize("max_length", [512, 64])
def test_long_sentence_is_tagged_in_windows_like_each_window_alone(tagger, long_words, max_length):
    # the tiny encoder's tokenizer is word-level: one subword per word, 700 words > 512 positions
    pred = predict_words(tagger, [Sentence(long_words)], max_length=max_length, progress=False)[0]
    assert pred.windows > 1 and pred.empty_words == 0 and len(pred.tags) == 700
    assert (pred.probs.sum(-1) > 0.99).all()  # every word has a real prediction, none defaulted to O
    plan = plan_windows([1] * 700, budget=max_length - 2)
    assert len(plan.windows) == pred.windows
    alone = predict_words(
        tagger,
        [Sentence(long_words[lo:hi]) for lo, hi in plan.windows],
        max_length=max_length,
        progress=False,
    )
    for w, k in enumerate(plan.owner):
        local = w - plan.windows[k][0]
        assert pred.tags[w] == alone[k].tags[local]
        np.testing.assert_allclose(pred.probs[w], alone[k].probs[local], atol=1e-4)


def test_sentences_that_fit_are_tagged_as_before(tagger, long_words):
    sents = [Sentence(long_words[i : i + n]) for i, n in ((0, 30), (40, 5), (50, 400))]
    preds = predict_words(tagger, sents, batch_size=2, progress=False)
    assert [p.windows for p in preds] == [1, 1, 1]
    one_by_one = [predict_words(tagger, [s], progress=False)[0] for s in sents]
    for a, b in zip(preds, one_by_one, strict=True):
        assert a.tags == b.tags


def test_words_without_subwords_are_tagged_o_and_counted(tagger):
    # the tiny tokenizer splits on whitespace, so a no-break space alone has no subword
    pred = predict_words(tagger, [Sentence(["Paris", "\u00a0", "is", "big"])], progress=False)[0]
    assert pred.tags[1] == "O" and pred.empty_words == 1 and not pred.probs[1].any()


def _predict_cfg(tmp_path: Path, *overrides: str):
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(ROOT / "configs"), version_base="1.3"):
        # run dir and log dir set here: in-process there is no Hydra run to resolve ${hydra:...}
        return compose(
            "predict",
            [f"paths.output_dir={tmp_path}", f"paths.log_dir={tmp_path}", "progress=false", *overrides],
        )


@pytest.mark.parametrize("input_format", ["tokens", "conll"])
def test_predict_task_tags_tokens_and_conll(noisy_ckpt, tagger, long_words, tmp_path, input_format):
    sentences = [long_words[:12], long_words[12:30], long_words[30:700]]
    if input_format == "tokens":
        path = tmp_path / "in.txt"
        path.write_text("\n".join(" ".join(s) for s in sentences) + "\n", encoding="utf-8")
    else:
        path = tmp_path / "in.conll"
        path.write_text(
            "\n\n".join("\n".join(f"{w} O" for w in s) for s in sentences) + "\n", encoding="utf-8"
        )
    cfg = _predict_cfg(
        tmp_path,
        f"ckpt_path={noisy_ckpt}",
        f"input={path}",
        f"input_format={input_format}" if input_format == "tokens" else "input_format=null",
        "output_format=conll",
        "max_length=128",
        "trainer=default",  # fp32, as predict_words below: counts compared exactly, not within bf16 rounding
    )
    summary = predict(cfg)
    assert summary["input_format"] == input_format and summary["sentences"] == 3
    assert summary["words"] == 700 and summary["windowed_sentences"] == 1 and summary["empty_words"] == 0
    # every invalid I- tag of the raw predictions was repaired, and counted
    raw = predict_words(tagger, [Sentence(s) for s in sentences], max_length=128, progress=False)
    expected = sum(repair_iob2(p.tags)[1] for p in raw)
    assert expected > 0 and summary["repaired_tags"] == expected
    assert json.loads((tmp_path / "predict_summary.json").read_text())["repaired_tags"] == expected
    blocks = (tmp_path / "predictions.conll").read_text(encoding="utf-8").strip("\n").split("\n\n")
    rows = [[line.split("\t") for line in block.split("\n")] for block in blocks]
    assert [[w for w, _ in r] for r in rows] == sentences
    tags = [t for r in rows for _, t in r]
    assert all(t == "O" or t[:2] in ("B-", "I-") for t in tags)
    assert not any(b.startswith("I-") and a[2:] != b[2:] for a, b in zip(["O", *tags], tags, strict=False))


def test_predict_py_tags_raw_text_to_jsonl(noisy_ckpt, long_words, tmp_path):
    lines = [
        "EU rejects German call to boycott British lamb.",
        "",
        "Peter Blackburn met Dr. Smith in the U.S. on Jan. 5, paying $1,000.50.",
        " ".join(long_words),  # a paragraph longer than the model's 512 positions
    ]
    path = tmp_path / "my_text.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "predict.py"),
            f"ckpt_path={noisy_ckpt}",
            f"input={path}",
            f"hydra.run.dir={out}",
            "trainer=cpu_bf16",
            "num_threads=1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    logged = proc.stdout + proc.stderr  # Hydra logs to stdout and <run dir>/predict.log
    assert "Repaired" in logged and "overlapping windows" in logged
    records = [json.loads(x) for x in (out / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(records) == len(lines) and records[1]["tokens"] == []
    assert records[2]["tokens"][:6] == ["Peter", "Blackburn", "met", "Dr.", "Smith", "in"]
    for line, record in zip(lines, records, strict=True):
        assert set(record) == {"text", "tokens", "offsets", "tags", "entities"} and record["text"] == line
        assert len(record["tags"]) == len(record["tokens"]) == len(record["offsets"])
        assert [line[a:b] for a, b in record["offsets"]] == record["tokens"]
        for ent in record["entities"]:
            assert set(ent) == ENTITY_KEYS and 0 < ent["score"] <= 1
            assert line[ent["start"] : ent["end"]] == ent["text"]
            assert record["tags"][ent["token_start"]] == f"B-{ent['type']}"
    summary = json.loads((out / "predict_summary.json").read_text())
    assert summary["bf16"] and summary["sentences"] == 3 and summary["blank_lines"] == 1
    assert summary["repaired_tags"] > 0 and summary["entities"] > 0
    assert summary["windowed_sentences"] == 1 and summary["words"] == sum(len(r["tokens"]) for r in records)
    assert (
        summary["entities"]
        == sum(len(r["entities"]) for r in records)
        == sum(summary["entities_by_type"].values())
    )
