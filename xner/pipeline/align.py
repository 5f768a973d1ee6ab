"""Word aligners behind one protocol, and the extraction methods as pure functions on similarity matrices.

An *alignment* is a ``set[tuple[int, int]]`` of 0-based ``(source word, target word)`` links. Every aligner
takes many pre-tokenised sentence pairs at once (:meth:`Aligner.align`).

Two aligners:

- :class:`SimAlignAligner` — an adapter over the ``simalign`` package (Jalili Sabet et al. 2020), one pair at
  a time, as the package does it. The reference.
- :class:`EmbeddingAligner` — the in-house batched aligner. It computes *the same alignments* as the package
  from the same encoder layer, but encodes every sentence once, in length-sorted padded batches, through
  only as many layers as it needs.

What simalign does, reproduced here exactly (``simalign/simalign.py``, version 0.4, ``token_type="bpe"``,
``distortion=0``):

- each word is tokenised on its own; the encoder runs on the sentence as a list of words
  (``is_split_into_words=True``), which for the fast XLM-R tokenizer gives the same pieces;
- layer ``layer`` is ``hidden_states[layer]``: hidden state 0 is the embedding output and 1..L the transformer
  layers, which is also xner's convention, so ``layer=8`` means the same thing in both aligners;
- the special tokens ``<s>``/``</s>`` (first and last position) and padding are cut off; every other subword
  piece takes part, including the bare ``▁`` piece that the XLM-R tokenizer splits off before much
  punctuation (``drop_bare_metaspace=True`` leaves those out: an xner option, off by default);
- similarity = ``(cosine + 1) / 2`` on the subword vectors, computed like scikit-learn's
  ``cosine_similarity`` (rows scaled by ``sqrt(einsum("ij,ij->i"))``, then a float32 matrix product);
- the extraction (argmax / itermax / match) runs on the *subword* matrix and every subword link is mapped to
  the link of the words that hold the two pieces (a word pair is linked when any of its pieces are); the
  ``"word"`` granularity (mean of the piece vectors per word) is offered as ``token_type="word"``;
- ``match`` is simalign's ``mwmf``: a maximum-weight matching among the maximum-cardinality matchings of the
  complete bipartite graph (networkx); with positive weights that is exactly the rectangular assignment
  problem, solved here with :func:`scipy.optimize.linear_sum_assignment`.

The fourth method, ``softmax``, is AWESoME-align's extraction (Dou & Neubig 2021): the dot products of the raw
(unnormalised) hidden states of both sentences *with* their special tokens, a softmax over each row and over
each column, and a link where both probabilities exceed ``softmax_threshold`` (1e-3); the special tokens
take part in the softmax and are cut off afterwards, as in awesome-align's ``guide_layer``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

log = logging.getLogger(__name__)

Links = set[tuple[int, int]]
METHODS = ("argmax", "itermax", "match", "softmax")
COSINE_METHODS = ("argmax", "itermax", "match")
VERSION = "1"  # bump when the alignments this module computes change
BARE_METASPACE = "\u2581"
# simalign's method codes and the keys of its result dict.
_SIMALIGN_CODES = {"argmax": ("a", "inter"), "itermax": ("i", "itermax"), "match": ("m", "mwmf")}


@runtime_checkable
class Aligner(Protocol):
    """Anything that word-aligns batches of pre-tokenised sentence pairs."""

    name: str

    def align(self, source: Sequence[Sequence[str]], target: Sequence[Sequence[str]]) -> list[Links]:
        """Align ``source[k]`` to ``target[k]`` for every k; links are 0-based (source word, target word)."""
        ...

    def cache_key(self) -> dict:
        """Everything that determines the alignments (for the pipeline's stage cache)."""
        ...


# ----------------------------------------------------------------------------------------- pure functions
def cosine_similarity_matrix(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """simalign's similarity: ``(cos(x_i, y_j) + 1) / 2``, computed the way scikit-learn computes cosine.

    Args:
        x: ``[m, d]`` row vectors.
        y: ``[n, d]`` row vectors.

    Returns:
        ``[m, n]`` similarities in ``[0, 1]`` (the input's float dtype).
    """
    return (normalize_rows(x) @ normalize_rows(y).T + 1.0) / 2.0


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """L2-normalise rows as ``sklearn.preprocessing.normalize`` does (near-zero rows are left unscaled)."""
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))
    norms[norms < 10 * np.finfo(norms.dtype).eps] = 1.0
    return x / norms[:, None]


def argmax_alignment(sim: np.ndarray) -> np.ndarray:
    """Links that are the row-wise *and* the column-wise maximum (simalign's ``inter``/ArgMax).

    Ties go to the first index, as ``np.argmax`` does.

    Args:
        sim: ``[m, n]`` similarity matrix.

    Returns:
        ``[m, n]`` boolean link matrix.
    """
    m, n = sim.shape
    out = np.zeros((m, n), dtype=bool)
    if m == 0 or n == 0:
        return out
    fwd = np.zeros((m, n), dtype=bool)
    fwd[np.arange(m), sim.argmax(axis=1)] = True
    out[sim.argmax(axis=0), np.arange(n)] = True
    return out & fwd


def itermax_alignment(sim: np.ndarray, max_count: int = 2, alpha_ratio: float = 0.9) -> np.ndarray:
    """simalign's IterMax: ArgMax, then further rounds of mutual maxima among rows or columns left unaligned.

    Exactly the package's ``iter_max``: matrices with a side of at most 2 return the ArgMax links; in each of
    the ``max_count - 1`` further rounds, similarities are scaled by ``alpha_ratio`` where only the row or
    only the column is still unaligned (by 1 where both are, by 0 where neither is), and new mutual maxima are
    kept where the row or the column was unaligned; a round adds nothing once every row or every column is
    aligned, and the loop stops when a round adds nothing.

    Args:
        sim: ``[m, n]`` similarity matrix (non-negative, as simalign's ``(cos + 1) / 2``).
        max_count: total rounds, the first being ArgMax.
        alpha_ratio: the discount of a cell whose row or column is already aligned.

    Returns:
        ``[m, n]`` boolean link matrix.
    """
    m, n = sim.shape
    inter = argmax_alignment(sim).astype(np.float64)
    if min(m, n) <= 2:
        return inter > 0
    count = 1
    while count < max_count:
        # Same arithmetic as the package (mask values are exactly 0, alpha or 1), so ties break the same way.
        mask_x = 1.0 - np.clip(inter.sum(1), 0.0, 1.0)[:, None] * np.ones((1, n))
        mask_y = 1.0 - np.clip(inter.sum(0), 0.0, 1.0)[None, :] * np.ones((m, 1))
        mask = np.clip(alpha_ratio * mask_x + alpha_ratio * mask_y, 0.0, 1.0)
        mask_zeros = 1.0 - (1.0 - mask_x) * (1.0 - mask_y)
        if mask_x.sum() < 1.0 or mask_y.sum() < 1.0:
            mask *= 0.0
            mask_zeros *= 0.0
        new_sim = sim * mask
        fwd = np.eye(n)[new_sim.argmax(axis=1)] * mask_zeros
        bac = np.eye(m)[new_sim.argmax(axis=0)].transpose() * mask_zeros
        new_inter = fwd * bac
        if np.array_equal(inter + new_inter, inter):
            break
        inter = inter + new_inter
        count += 1
    return inter > 0


def match_alignment(sim: np.ndarray) -> np.ndarray:
    """simalign's Match (``mwmf``): the maximum-weight matching of maximum cardinality.

    simalign runs networkx's ``max_weight_matching(maxcardinality=True)`` on the complete bipartite graph
    (``csr_matrix(sim)``: exact zeros would be missing edges; simalign's ``(cos + 1) / 2`` is 0 only for
    opposite vectors). With positive weights this is the rectangular assignment problem: ``min(m, n)``
    links, one per row and column at most, of maximum total similarity.

    Args:
        sim: ``[m, n]`` similarity matrix.

    Returns:
        ``[m, n]`` boolean link matrix.
    """
    out = np.zeros(sim.shape, dtype=bool)
    if out.size == 0:
        return out
    rows, cols = linear_sum_assignment(sim, maximize=True)
    out[rows, cols] = True
    return out


def softmax_threshold_alignment(scores: np.ndarray, threshold: float = 1e-3) -> np.ndarray:
    """AWESoME-align's extraction: softmax over each row and over each column; keep links above both.

    Args:
        scores: ``[m, n]`` scores; awesome-align uses dot products of raw hidden states (not cosine, whose
            narrow range would make the softmax almost uniform).
        threshold: the probability both softmaxes must exceed.

    Returns:
        ``[m, n]`` boolean link matrix.
    """
    if scores.size == 0:
        return np.zeros(scores.shape, dtype=bool)
    s = scores.astype(np.float64)
    p_rows = np.exp(s - s.max(axis=1, keepdims=True))
    p_rows /= p_rows.sum(axis=1, keepdims=True)
    p_cols = np.exp(s - s.max(axis=0, keepdims=True))
    p_cols /= p_cols.sum(axis=0, keepdims=True)
    return (p_rows > threshold) & (p_cols > threshold)


def extract(sim: np.ndarray, method: str, **options: Any) -> np.ndarray:
    """Apply the extraction ``method`` (one of :data:`METHODS`) to a similarity matrix."""
    if method == "argmax":
        return argmax_alignment(sim)
    if method == "itermax":
        return itermax_alignment(sim, **options)
    if method == "match":
        return match_alignment(sim)
    if method == "softmax":
        return softmax_threshold_alignment(sim, **options)
    raise ValueError(f"Unknown alignment method {method!r}: expected one of {', '.join(METHODS)}.")


def subword_links_to_words(
    links: np.ndarray, source_word_ids: Sequence[int], target_word_ids: Sequence[int]
) -> Links:
    """Map a subword link matrix to word links (simalign's ``bpe`` mode): words linked if any pieces are.

    Args:
        links: ``[m, n]`` boolean matrix over subword pieces.
        source_word_ids: the word index of each of the m source pieces.
        target_word_ids: the word index of each of the n target pieces.

    Returns:
        The word alignment.
    """
    rows, cols = np.nonzero(links)
    return {(int(source_word_ids[i]), int(target_word_ids[j])) for i, j in zip(rows, cols, strict=True)}


def mean_pool_words(vectors: np.ndarray, word_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Average piece vectors per word (simalign's ``token_type="word"``).

    Args:
        vectors: ``[pieces, d]``.
        word_ids: the word index of each piece (non-decreasing).

    Returns:
        ``([words_with_pieces, d] vectors, their word indices)``.
    """
    ids = np.asarray(word_ids)
    words = np.unique(ids)
    pooled = np.stack([vectors[ids == w].mean(0) for w in words]) if len(words) else vectors[:0]
    return pooled, words


# ---------------------------------------------------------------------------------------------- helpers
def resolve_model_dir(model_dir: str | os.PathLike | None) -> str:
    """Where to load the encoder from.

    Args:
        model_dir: a local model directory, a HF hub id (``org/name``, used as given), or None for the
            converted multilingual-e5-small (:func:`xner.models.convert_e5.default_model_dir`).

    Raises:
        FileNotFoundError: a local directory (absolute, ``~``, ``.``-relative or the default) is missing;
            the message names ``make setup``.
    """
    from xner.models.convert_e5 import default_model_dir  # noqa: PLC0415

    text = str(model_dir) if model_dir is not None else ""
    path = Path(text).expanduser() if text else default_model_dir()
    if (path / "config.json").is_file():
        return str(path)
    looks_local = not text or text.startswith(("/", "~", ".")) or path.exists() or text.count("/") != 1
    if looks_local:
        raise FileNotFoundError(
            f"Aligner encoder not found: {path} has no config.json. Create the converted multilingual-e5-small "
            "with `make setup` (or `xner-convert-e5 --out DIR`), or pass model_dir=<a HF model directory>."
        )
    return text  # a hub id: transformers resolves it (online, or from the local HF cache)


def _model_fingerprint(model_dir: str) -> dict:
    """A machine-independent identity of the encoder for cache keys."""
    path = Path(model_dir)
    conv = path / "xner_conversion.json"
    if conv.is_file():
        meta = json.loads(conv.read_text())
        return {"model": path.name, "source_sha256": meta.get("source", {}).get("sha256")}
    cfg = path / "config.json"
    if cfg.is_file():
        return {"model": path.name, "config_sha256": hashlib.sha256(cfg.read_bytes()).hexdigest()}
    return {"model": model_dir}


def _check_layer(layer: int, depth: int, model_dir: str) -> None:
    if not 0 <= int(layer) <= depth:
        raise ValueError(
            f"Alignment layer {layer} is out of range for {model_dir}: it has {depth} layers, so the layer "
            f"must be in 0..{depth} (0 = embedding output, {depth} = last layer)."
        )


def _check_pairs(source: Sequence, target: Sequence) -> None:
    if len(source) != len(target):
        raise ValueError(
            f"align() needs as many source as target sentences, got {len(source)} and {len(target)}."
        )
    for k, words in enumerate(list(source) + list(target)):
        if isinstance(words, str):
            side = "source" if k < len(source) else "target"
            raise TypeError(
                f"{side} sentence {k % max(len(source), 1)} is a string; pass lists of words (e.g. s.split())."
            )


def _progress(iterable, total: int | None, desc: str, progress: bool | None):
    from tqdm.auto import tqdm  # noqa: PLC0415

    # disable=None: show the bar on a terminal only.
    return tqdm(
        iterable, total=total, desc=desc, disable=None if progress is None else not progress, leave=False
    )


# --------------------------------------------------------------------------------------------- simalign
class SimAlignAligner:
    """The ``simalign`` package behind the :class:`Aligner` protocol (the reference implementation).

    Layers: simalign takes ``hidden_states[layer]`` of a model loaded with ``output_hidden_states=True``,
    where index 0 is the embedding output: the same numbering as xner's.

    Args:
        model_dir: encoder directory or hub id (default: the converted multilingual-e5-small).
        layer: hidden-state index (0 = embeddings, 1..L the layers).
        method: ``argmax``, ``itermax`` or ``match`` (simalign's ``inter``, ``itermax``, ``mwmf``).
        device: torch device string.
        progress: show a progress bar (None: only on a terminal).
    """

    def __init__(
        self,
        model_dir: str | os.PathLike | None = None,
        layer: int = 8,
        method: str = "itermax",
        device: str = "cpu",
        progress: bool | None = None,
    ) -> None:
        if method not in _SIMALIGN_CODES:
            raise ValueError(
                f"simalign has no method {method!r}: expected one of {', '.join(_SIMALIGN_CODES)} "
                "(use EmbeddingAligner for 'softmax')."
            )
        from simalign import SentenceAligner  # noqa: PLC0415

        self.model_dir = resolve_model_dir(model_dir)
        self.layer = int(layer)
        self.method = method
        self.progress = progress
        self.name = f"simalign-{method}-L{self.layer}"
        code = _SIMALIGN_CODES[method][0]
        self._aligner = SentenceAligner(
            model=self.model_dir, token_type="bpe", matching_methods=code, device=device, layer=self.layer
        )
        depth = self._aligner.embed_loader.emb_model.config.num_hidden_layers
        _check_layer(self.layer, depth, self.model_dir)

    def align(self, source: Sequence[Sequence[str]], target: Sequence[Sequence[str]]) -> list[Links]:
        """Align each pair with the package, one pair per call (as the package works)."""
        return self.align_methods(source, target, [self.method])[self.method]

    def align_methods(
        self, source: Sequence[Sequence[str]], target: Sequence[Sequence[str]], methods: Sequence[str]
    ) -> dict[str, list[Links]]:
        """Several of simalign's methods from one package pass (one encoder run per pair).

        Args:
            source: source sentences as word lists.
            target: target sentences as word lists.
            methods: some of ``argmax``, ``itermax``, ``match``.

        Returns:
            ``{method: alignments}``.
        """
        _check_pairs(source, target)
        unknown = [m for m in methods if m not in _SIMALIGN_CODES]
        if unknown:
            raise ValueError(
                f"simalign has no method {unknown[0]!r}: expected one of {', '.join(_SIMALIGN_CODES)}."
            )
        keys = {m: _SIMALIGN_CODES[m][1] for m in methods}
        out: dict[str, list[Links]] = {m: [] for m in methods}
        saved = self._aligner.matching_methods
        self._aligner.matching_methods = list(dict.fromkeys(keys.values()))
        try:
            pairs = zip(source, target, strict=True)
            for src, tgt in _progress(pairs, len(source), "simalign", self.progress):
                if not src or not tgt:  # the package fails on an empty side; there is nothing to link
                    found = {key: [] for key in keys.values()}
                else:
                    found = self._aligner.get_word_aligns(list(src), list(tgt))
                for m, key in keys.items():
                    out[m].append({(int(i), int(j)) for i, j in found[key]})
        finally:
            self._aligner.matching_methods = saved
        return out

    def cache_key(self) -> dict:
        """The settings that determine the alignments."""
        return {
            "kind": "simalign",
            "version": VERSION,
            "layer": self.layer,
            "method": self.method,
            **_model_fingerprint(self.model_dir),
        }


# -------------------------------------------------------------------------------------------- embedding
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
    package's from the same model and layer (see the module docstring for what is reproduced; float
    rounding from a different batch shape can differ in the last bits, which could flip an exact tie).

    Args:
        model_dir: encoder directory or hub id (default: the converted multilingual-e5-small).
        layer: hidden-state index (0 = embeddings, 1..L the layers), as simalign counts.
        method: ``argmax``, ``itermax``, ``match`` or ``softmax`` (AWESoME threshold extraction).
        batch_size: sentences per encoder forward.
        drop_bare_metaspace: leave the bare ``▁`` pieces out of the matching (xner option; simalign keeps
            them; DESIGN.md measured a slightly lower AER without them).
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
        from transformers import AutoModel, AutoTokenizer  # noqa: PLC0415

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
        try:  # the pooler is never used; skipping it avoids a "newly initialized weights" warning
            self.model = AutoModel.from_pretrained(self.model_dir, add_pooling_layer=False)
        except TypeError:
            self.model = AutoModel.from_pretrained(self.model_dir)
        self.model.eval().to(self.device)
        self.depth = int(self.model.config.num_hidden_layers)
        _check_layer(self.layer, self.depth, self.model_dir)
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
            **_model_fingerprint(self.model_dir),
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
        _check_pairs(source, target)
        for layer, method, _ in variants:
            _check_layer(layer, self.depth, self.model_dir)
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
            for s, t in _progress(zip(src, tgt, strict=True), len(src), "align", self.progress):
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
            for batch in _progress(batches, len(batches), "encode", self.progress):
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
    encoder.layer = torch.nn.ModuleList(list(layers)[:depth])
    try:
        yield
    finally:
        encoder.layer = layers


# ---------------------------------------------------------------------------------------------- factory
# The aligner kinds of pipeline configs (``aligner: {kind: embedding, ...}``); `python -m xner.pipeline
# --help` lists these names.
ALIGNERS: dict[str, type] = {"embedding": EmbeddingAligner, "simalign": SimAlignAligner}


def make_aligner(kind: str = "embedding", **kwargs: Any) -> Aligner:
    """Build an aligner from a config (``configs/pipeline/*.yaml``: ``aligner: {kind: embedding, ...}``).

    Args:
        kind: ``embedding`` (:class:`EmbeddingAligner`) or ``simalign`` (:class:`SimAlignAligner`).
        **kwargs: the aligner's arguments (``model_dir``, ``layer``, ``method``, ...).

    Raises:
        ValueError: unknown kind.
        FileNotFoundError: the encoder directory is missing (run ``make setup``).
    """
    if kind not in ALIGNERS:
        raise ValueError(f"Unknown aligner kind {kind!r}: expected one of {', '.join(ALIGNERS)}.")
    return ALIGNERS[kind](**kwargs)
