"""Any Hugging Face seq2seq model (NLLB-200, M2M100, mBART-50, Marian) as a translator."""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from xner.pipeline.translate.base import show_progress

log = logging.getLogger(__name__)

_HF_DTYPES = (
    "float16",
    "bfloat16",
    "float32",
)  # the dtypes a config can name for an HF translator

# The last model loaded, shared by every translator of the same model, device and dtype: a translate-test
# run builds a translator per stage, direction and language, and NLLB-200-3.3B takes GBs and tens of seconds
# to load. One entry only: a second large model is not meant to sit beside it on the GPU.
_LOADED: dict[tuple[str, str, str], tuple[Any, Any]] = {}


class HFSeq2SeqTranslator:
    """Any Hugging Face seq2seq model (NLLB-200, M2M100, mBART-50, Marian), batched, GPU when available.

    Language codes: ``tokenizer.src_lang`` is set to ``src_lang`` when the tokenizer has that attribute;
    the target language is forced as the first generated token when the tokenizer knows it (M2M100:
    ``get_lang_id(tgt_lang)``; NLLB / mBART: ``tgt_lang`` is a token such as ``"spa_Latn"``). Marian
    models are single-direction and need neither (a Marian multi-target model needs ``>>spa<<`` prefixes in
    the input text instead). The model is loaded on the first :meth:`translate` call.

    Args:
        model_name_or_path: hub id or local directory.
        src_lang: source language code in the model's convention (``"eng_Latn"`` for NLLB, ``"en"`` for
            M2M100; anything for Marian).
        tgt_lang: target language code, same convention.
        batch_size: sentences per ``generate`` call; sentences are sorted by length to limit padding.
        num_beams: beam width.
        max_length: maximum source and generated length in tokens (longer sources are truncated and counted).
        device: ``"cuda"``, ``"cpu"``, ...; ``None`` picks CUDA when available.
        dtype: ``"float16"``, ``"bfloat16"``, ``"float32"`` or a torch dtype; ``None`` keeps the checkpoint's.
        progress: tqdm bar over batches; ``None`` shows it only on a terminal.
    """

    def __init__(
        self,
        model_name_or_path: str | Path,
        src_lang: str,
        tgt_lang: str,
        batch_size: int = 16,
        num_beams: int = 4,
        max_length: int = 256,
        device: str | None = None,
        dtype: Any = None,
        progress: bool | None = None,
    ):
        if batch_size < 1 or num_beams < 1 or max_length < 1:
            raise ValueError("batch_size, num_beams and max_length must all be >= 1")
        if isinstance(dtype, str) and dtype.removeprefix("torch.") not in _HF_DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(_HF_DTYPES)} (or null), got {dtype!r}")
        self.model_name_or_path = str(model_name_or_path)
        self.src_lang, self.tgt_lang = src_lang, tgt_lang
        self.batch_size, self.num_beams, self.max_length = (
            batch_size,
            num_beams,
            max_length,
        )
        self._device, self._dtype = device, dtype
        self.progress = progress
        self.name = f"hf-{Path(self.model_name_or_path).name}-{src_lang}-{tgt_lang}"
        self.stats: Counter[str] = Counter()
        self._model: Any = None
        self._tokenizer: Any = None
        self._forced_bos: int | None = None

    def _dtype_name(self) -> str | None:
        if self._dtype is None:
            return None
        return str(self._dtype).removeprefix("torch.")

    def cache_key(self) -> dict:
        """Model (with its revision or local-file fingerprint), languages, decoding options, dtype."""
        return {
            "engine": "hf-seq2seq",
            "model": self.model_name_or_path,
            "model_fingerprint": _local_model_fingerprint(self.model_name_or_path),
            "src_lang": self.src_lang,
            "tgt_lang": self.tgt_lang,
            "num_beams": self.num_beams,
            "max_length": self.max_length,
            "dtype": self._dtype_name(),
        }

    def _load(self) -> None:
        if self._model is not None:
            return
        import torch  # noqa: PLC0415
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer  # noqa: PLC0415

        device = self._device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = self._dtype
        if isinstance(dtype, str):
            dtype = getattr(torch, dtype.removeprefix("torch."))
        key = (self.model_name_or_path, str(device), str(dtype))
        if key not in _LOADED:
            _LOADED.clear()  # frees the previous model (unless a translator still holds it)
            tok = AutoTokenizer.from_pretrained(self.model_name_or_path)
            kwargs = {"dtype": dtype} if dtype is not None else {}
            model = AutoModelForSeq2SeqLM.from_pretrained(self.model_name_or_path, **kwargs).to(device).eval()
            _LOADED[key] = (model, tok)
        model, tok = _LOADED[key]
        self._forced_bos = None
        if hasattr(tok, "get_lang_id"):  # M2M100
            self._forced_bos = tok.get_lang_id(self.tgt_lang)
        elif self.tgt_lang in tok.get_vocab():  # NLLB, mBART-50: language codes are tokens
            self._forced_bos = tok.convert_tokens_to_ids(self.tgt_lang)
        else:
            log.info(
                "%s: tokenizer has no language code %r; not forcing a target language (fine for Marian).",
                self.model_name_or_path,
                self.tgt_lang,
            )
        self._model, self._tokenizer, self.device = model, tok, device

    def translate(self, texts: Sequence[str]) -> list[str]:
        """Translate ``texts`` in length-sorted batches; returns one string per input in input order."""
        import torch  # noqa: PLC0415

        self.stats = Counter(sentences=len(texts))
        if not texts:
            return []
        self._load()
        tok, model = self._tokenizer, self._model
        if hasattr(tok, "src_lang"):  # set per call: translators of other languages share the tokenizer
            tok.src_lang = self.src_lang
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
        results: list[str] = [""] * len(texts)
        batches = [order[s : s + self.batch_size] for s in range(0, len(order), self.batch_size)]
        gen_kwargs: dict[str, Any] = {
            "num_beams": self.num_beams,
            "max_length": self.max_length,
        }
        if self._forced_bos is not None:
            gen_kwargs["forced_bos_token_id"] = self._forced_bos
        bar = tqdm(
            batches,
            desc=f"translate {self.name}",
            unit="batch",
            disable=not show_progress(self.progress),
        )
        with torch.inference_mode():
            for batch in bar:
                src = [texts[i] for i in batch]
                lengths = [len(ids) for ids in tok(src, add_special_tokens=True)["input_ids"]]
                self.stats["truncated"] += sum(n > self.max_length for n in lengths)
                enc = tok(
                    src,
                    return_tensors="pt",
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                )
                enc = {k: v.to(model.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
                out = model.generate(**enc, **gen_kwargs)
                for i, text in zip(batch, tok.batch_decode(out, skip_special_tokens=True), strict=True):
                    results[i] = text.strip()
        self.stats["batches"] = len(batches)
        if self.stats["truncated"]:
            log.warning(
                "%s: %d of %d inputs were longer than max_length=%d tokens and were truncated.",
                self.name,
                self.stats["truncated"],
                len(texts),
                self.max_length,
            )
        return results


def _local_model_fingerprint(name_or_path: str) -> dict | None:
    """Cheap identity of a local model directory: config hash and file sizes (hashing GBs of weights is not).

    Hub ids get ``None``: the name is the identity. Reading the cached snapshot's commit would change the
    key between the first (downloading) run and later ones; use a local directory to pin a revision.
    """
    path = Path(name_or_path)
    if not path.is_dir():
        return None
    files = sorted(p for p in path.iterdir() if p.is_file())
    config = path / "config.json"
    return {
        "config_sha256": hashlib.sha256(config.read_bytes()).hexdigest() if config.is_file() else None,
        "files": {p.name: p.stat().st_size for p in files},
    }
