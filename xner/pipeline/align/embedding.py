"""The in-house batched aligner: simalign's alignments from the same encoder layer, many pairs at once.

It encodes every distinct sentence once, in length-sorted padded batches, through only as many layers as it
needs. What the simalign package does, reproduced here exactly (besides the extraction, see
:mod:`xner.pipeline.align.methods`):

- each word is tokenised on its own; the encoder runs on the sentence as a list of words
  (``is_split_into_words=True``), which for the fast XLM-R tokenizer gives the same pieces;
- layer ``layer`` is ``hidden_states[layer]``: hidden state 0 is the embedding output and 1..L the transformer
  layers, which is also xner's convention, so ``layer=8`` means the same thing in both aligners;
- the special tokens ``<s>``/``</s>`` (first and last position) and padding are cut off; every other subword
  piece takes part, including the bare ``▁`` piece that the XLM-R tokenizer splits off before much
  punctuation (``drop_bare_metaspace=True`` leaves those out: an xner option, off by default).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from xner.pipeline.align.base import (
    VERSION,
    check_layer,
    check_pairs,
    encoder_fingerprint,
    progress_bar,
    resolve_model_dir,
)
from xner.pipeline.align.methods import (
    METHODS,
    Links,
    extract,
    mean_pool_words,
    normalize_rows,
    softmax_threshold_alignment,
    subword_links_to_words,
)

log = logging.getLogger(__name__)

BARE_METASPACE = "\u2581"


@dataclass
class EncodedSentence:
    """One sentence's encoder output, as :class:`EmbeddingAligner` keeps it.

    Attributes:
        word_ids: word index per position, -1 for the special tokens ``<s>``/``</s>``.
        bare: True at positions holding the bare ``▁`` piece of a word that also has other pieces.
        layers: ``{layer: [positions, hidden] float32}``, special tokens included.
        truncated: the sentence was cut to the encoder's maximum length (its last words have no vectors).
    """

    word_ids: np.ndarray
    bare: np.ndarray
    layers: dict[int, np.ndarray] = field(default_factory=dict)
    truncated: bool = False
    _unit: dict[tuple, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)

    def content(self, layer: int, drop_bare: bool, token_type: str = "bpe") -> tuple[np.ndarray, np.ndarray]:
        """Normalised content vectors (no special tokens) and their word ids; cached per setting."""
        key = (layer, drop_bare, token_type)
        if key not in self._unit:
            keep = self.word_ids >= 0
            if drop_bare:
                keep &= ~self.bare
            vectors, ids = self.layers[layer][keep], self.word_ids[keep]
            if token_type == "word":
                vectors, ids = mean_pool_words(vectors, ids)
            self._unit[key] = (normalize_rows(vectors), ids)
        return self._unit[key]

    def with_specials(self, layer: int, drop_bare: bool) -> tuple[np.ndarray, np.ndarray]:
        """Raw vectors including the special tokens (for ``softmax``) and the word ids (-1 = special)."""
        keep = ~self.bare if drop_bare else np.ones(len(self.word_ids), dtype=bool)
        return self.layers[layer][keep], self.word_ids[keep]


class EmbeddingAligner:
    """Batched embedding aligner: simalign's alignments from the same layer, many pairs at once.

    Every distinct sentence is tokenised once (fast tokenizer, ``is_split_into_words=True``) and encoded
    once, in length-sorted padded batches, running only the first ``layer`` transformer layers. Each pair's
    subword similarity matrix then goes through the pure extraction function and is mapped to words. With
    the defaults (fp32, ``drop_bare_metaspace=False``, ``token_type="bpe"``) the links equal the simalign
    package's from the same model and layer (what is reproduced: this module's docstring and
    :mod:`~xner.pipeline.align.methods`; float rounding from a different batch shape can differ in the last
    bits, which could flip an exact tie).

    Args:
        model_dir: encoder directory or hub id (default: the converted multilingual-e5-small).
        layer: hidden-state index (0 = embeddings, 1..L the layers), as simalign counts.
        method: ``argmax``, ``itermax``, ``match`` or ``softmax`` (AWESoME threshold extraction).
        batch_size: sentences per encoder forward.
        drop_bare_metaspace: leave the bare ``▁`` pieces out of the matching (xner option; simalign keeps
            them; on Lambert, layer 6 itermax, AER 0.212 -> 0.207 without them:
            ``results/alignment/lambert_epps_aer.csv``).
        dtype: ``torch.float32`` or ``torch.bfloat16`` (CPU autocast: faster, alignments differ a little);
            strings ``"float32"``/``"bfloat16"`` are accepted for configs.
        device: torch device string.
        softmax_threshold: the probability threshold of ``softmax``.
        token_type: ``bpe`` (simalign's default: align pieces, map to words) or ``word`` (mean-pool pieces;
            cosine methods only: ``softmax`` always works on pieces, as awesome-align does).
        chunk_size: pairs whose vectors are held in memory at once.
        progress: show progress bars (None: only on a terminal).
    """

    def __init__(
        self,
        model_dir: str | os.PathLike | None = None,
        layer: int = 8,
        method: str = "itermax",
        batch_size: int = 64,
        drop_bare_metaspace: bool = False,
        dtype: torch.dtype | str = torch.float32,
        device: str = "cpu",
        softmax_threshold: float = 1e-3,
        token_type: str = "bpe",
        chunk_size: int = 2048,
        progress: bool | None = None,
    ) -> None:
        from transformers import AutoTokenizer  # noqa: PLC0415

        from xner.models.tagger import load_encoder  # noqa: PLC0415

        if method not in METHODS:
            raise ValueError(f"Unknown alignment method {method!r}: expected one of {', '.join(METHODS)}.")
        if token_type not in ("bpe", "word"):
            raise ValueError(f"token_type must be 'bpe' or 'word', got {token_type!r}.")
        if batch_size < 1 or chunk_size < 1:
            raise ValueError(f"batch_size and chunk_size must be >= 1, got {batch_size} and {chunk_size}.")
        self.dtype = _torch_dtype(dtype)
        self.model_dir = resolve_model_dir(model_dir)
        self.layer = int(layer)
        self.method = method
        self.batch_size = int(batch_size)
        self.drop_bare_metaspace = bool(drop_bare_metaspace)
        self.softmax_threshold = float(softmax_threshold)
        self.token_type = token_type
        self.chunk_size = int(chunk_size)
        self.progress = progress
        self.device = torch.device(device)
        self.name = f"embedding-{method}-L{self.layer}" + ("-nobare" if drop_bare_metaspace else "")

        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        if not getattr(self.tokenizer, "is_fast", False):
            raise TypeError(f"EmbeddingAligner needs a fast tokenizer (word_ids); {self.model_dir} has none.")
        # Without the pooler (never used): xner's one encoder loader, the same weights and attention as training.
        self.model = load_encoder(self.model_dir)
        self.model.eval().to(self.device)
        self.depth = int(self.model.config.num_hidden_layers)
        check_layer(self.layer, self.depth, self.model_dir)
        self.max_length = min(
            int(getattr(self.model.config, "max_position_embeddings", 512)),
            int(self.tokenizer.model_max_length) if self.tokenizer.model_max_length < 10**6 else 10**6,
        )
        bare_id = self.tokenizer.convert_tokens_to_ids(BARE_METASPACE)
        self._bare_id = bare_id if bare_id != self.tokenizer.unk_token_id else None

    # -- protocol
    def align(self, source: Sequence[Sequence[str]], target: Sequence[Sequence[str]]) -> list[Links]:
        """Align ``source[k]`` with ``target[k]`` for every k with this aligner's layer and method."""
        return self.align_variants(source, target, [(self.layer, self.method, self.drop_bare_metaspace)])[
            (self.layer, self.method, self.drop_bare_metaspace)
        ]

    def cache_key(self) -> dict:
        """The settings that determine the alignments (batch size and chunking do not)."""
        key = {
            "kind": "embedding",
            "version": VERSION,
            "layer": self.layer,
            "method": self.method,
            "drop_bare_metaspace": self.drop_bare_metaspace,
            "dtype": str(self.dtype).removeprefix("torch."),
            "token_type": self.token_type,
            **encoder_fingerprint(self.model_dir),
        }
        if self.method == "softmax":
            key["softmax_threshold"] = self.softmax_threshold
        return key

    # -- batched work
    def align_variants(
        self,
        source: Sequence[Sequence[str]],
        target: Sequence[Sequence[str]],
        variants: Sequence[tuple[int, str, bool]],
    ) -> dict[tuple[int, str, bool], list[Links]]:
        """Several (layer, method, drop_bare_metaspace) settings from one encoding of the sentences.

        Args:
            source: source sentences as word lists.
            target: target sentences as word lists, ``len(target) == len(source)``.
            variants: the settings to compute.

        Returns:
            ``{variant: alignments}``, alignments in pair order.
        """
        check_pairs(source, target)
        for layer, method, _ in variants:
            check_layer(layer, self.depth, self.model_dir)
            if method not in METHODS:
                raise ValueError(
                    f"Unknown alignment method {method!r}: expected one of {', '.join(METHODS)}."
                )
        layers = sorted({int(v[0]) for v in variants})
        out: dict[tuple[int, str, bool], list[Links]] = {tuple(v): [] for v in variants}
        n_truncated = 0
        for start in range(0, len(source), self.chunk_size):
            src = [tuple(s) for s in source[start : start + self.chunk_size]]
            tgt = [tuple(t) for t in target[start : start + self.chunk_size]]
            encoded = self.encode(list(dict.fromkeys(src + tgt)), layers)
            n_truncated += sum(e.truncated for e in encoded.values())
            for s, t in progress_bar(zip(src, tgt, strict=True), len(src), "align", self.progress):
                for variant in variants:
                    out[tuple(variant)].append(self.align_encoded(encoded[s], encoded[t], *variant))
        if n_truncated:
            log.warning(
                "%d sentences were longer than the encoder's %d positions and were truncated: their last words "
                "have no alignment links.",
                n_truncated,
                self.max_length,
            )
        return out

    def align_encoded(
        self, src: EncodedSentence, tgt: EncodedSentence, layer: int, method: str, drop_bare: bool
    ) -> Links:
        """Word links of one pair from its encoded sentences (see :meth:`encode`)."""
        if method == "softmax":
            x, xi = src.with_specials(layer, drop_bare)
            y, yi = tgt.with_specials(layer, drop_bare)
            if not (xi >= 0).any() or not (yi >= 0).any():
                return set()
            links = softmax_threshold_alignment(x @ y.T, self.softmax_threshold)
            rows, cols = xi >= 0, yi >= 0  # specials take part in the softmax, then are cut off
            return subword_links_to_words(links[rows][:, cols], xi[rows], yi[cols])
        x, xi = src.content(layer, drop_bare, self.token_type)
        y, yi = tgt.content(layer, drop_bare, self.token_type)
        if len(xi) == 0 or len(yi) == 0:
            return set()
        sim = (x @ y.T + 1.0) / 2.0
        return subword_links_to_words(extract(sim, method), xi, yi)

    def encode(
        self, sentences: Sequence[tuple[str, ...]], layers: Sequence[int]
    ) -> dict[tuple, EncodedSentence]:
        """Tokenise and encode distinct sentences in length-sorted padded batches.

        Args:
            sentences: distinct word tuples.
            layers: hidden-state indices to keep.

        Returns:
            ``{sentence: EncodedSentence}``.
        """
        result: dict[tuple, EncodedSentence] = {}
        if not sentences:
            return result
        enc = self.tokenizer([list(s) for s in sentences], is_split_into_words=True, add_special_tokens=True)
        items = []
        for k, sent in enumerate(sentences):
            ids = list(enc["input_ids"][k])
            wid = np.array([-1 if w is None else w for w in enc.word_ids(k)], dtype=np.int64)
            truncated = len(ids) > self.max_length
            if truncated:  # as the tokenizer's truncation does: keep the first pieces and the final special
                ids = ids[: self.max_length - 1] + ids[-1:]
                wid = np.concatenate([wid[: self.max_length - 1], wid[-1:]])
            items.append((sent, ids, wid, self._bare_positions(ids, wid), truncated))
        order = sorted(range(len(items)), key=lambda k: len(items[k][1]))
        depth = max(layers)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        with torch.inference_mode(), _first_layers(self.model, depth), self._autocast():
            for batch in progress_bar(batches, len(batches), "encode", self.progress):
                width = max(len(items[k][1]) for k in batch)
                input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for row, k in enumerate(batch):
                    ids = items[k][1]
                    input_ids[row, : len(ids)] = torch.tensor(ids)
                    mask[row, : len(ids)] = 1
                hidden = self.model(
                    input_ids=input_ids.to(self.device),
                    attention_mask=mask.to(self.device),
                    output_hidden_states=True,
                ).hidden_states
                states = {layer: hidden[layer].float().cpu().numpy() for layer in layers}
                for row, k in enumerate(batch):
                    sent, ids, wid, bare, truncated = items[k]
                    result[sent] = EncodedSentence(
                        word_ids=wid,
                        bare=bare,
                        layers={layer: states[layer][row, : len(ids)] for layer in layers},
                        truncated=truncated,
                    )
        return result

    def _bare_positions(self, ids: Sequence[int], wid: np.ndarray) -> np.ndarray:
        """Bare ``▁`` pieces of words that have other pieces too (a word is never left without vectors)."""
        bare = np.zeros(len(ids), dtype=bool)
        if self._bare_id is None:
            return bare
        is_bare = np.asarray(ids) == self._bare_id
        for pos in np.nonzero(is_bare & (wid >= 0))[0]:
            if ((wid == wid[pos]) & ~is_bare).any():
                bare[pos] = True
        return bare

    def _autocast(self):
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)


def _torch_dtype(dtype: torch.dtype | str) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        value = dtype
    else:
        value = {
            "float32": torch.float32,
            "fp32": torch.float32,
            "bfloat16": torch.bfloat16,
            "bf16": torch.bfloat16,
        }.get(str(dtype).removeprefix("torch."))
    if value not in (torch.float32, torch.bfloat16):
        raise ValueError(f"dtype must be float32 or bfloat16 (autocast), got {dtype!r}.")
    return value


@contextlib.contextmanager
def _first_layers(model, depth: int) -> Iterator[None]:
    """Run only the first ``depth`` transformer layers (the rest cost compute and are never read)."""
    encoder = getattr(model, "encoder", None)
    layers = getattr(encoder, "layer", None)
    if layers is None or depth >= len(layers):
        yield
        return
    try:
        from transformers.utils.output_capturing import maybe_install_capturing_hooks  # noqa: PLC0415
    except ImportError:  # transformers < 5 returns hidden states without hooks
        pass
    else:
        # transformers 5 collects hidden states with hooks that its first forward installs on the layers present
        # then: installed on a cut stack, a later deeper run would return too few hidden states.
        maybe_install_capturing_hooks(model)
    encoder.layer = torch.nn.ModuleList(list(layers)[:depth])
    try:
        yield
    finally:
        encoder.layer = layers
