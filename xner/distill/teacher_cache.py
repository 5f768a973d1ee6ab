"""Teacher outputs computed once and memory-mapped, so students train without running the teacher.

An entry is a directory under ``<cache_dir>/teacher/<key>/``, where the key hashes the teacher checkpoint's
bytes, the encoded distillation data and the stored layers. It holds flat fp16 arrays (``.npy``, opened with
``mmap_mode="r"``) indexed by per-sentence offsets:

- ``input_ids`` / ``offsets``: the teacher's subword ids and each sentence's ``[start, end)`` in the flat arrays;
- ``word_logits`` / ``word_offsets``: teacher logits at each word's first subword (word-level, so a student
  with another tokenizer can still learn the soft labels);
- ``hidden_<t>``: hidden state ``t`` at every subword (``t`` = 0 embeddings .. L);
- ``attention_<t>`` / ``attention_offsets``: layer ``t``'s attention maps ``[heads, len, len]``, flattened.

An entry is one of :class:`xner.store.Store` (the store the stage cache uses too): ``manifest.json`` records
every file's size and sha256 and this module's ``meta``; a mismatch on load, or a missing, unreadable or
invalid manifest, is logged as a warning and the entry deleted and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from xner.data.encoding import Encoded
from xner.models.tagger import TokenClassifier
from xner.store import CorruptEntry, Store, file_sha256

log = logging.getLogger(__name__)

CACHE_VERSION = "1"
OFFSET_ARRAYS = ("offsets", "word_offsets", "attention_offsets")


def encoded_sha256(encoded: Sequence[Encoded]) -> str:
    """Hash of encoded sentences (ids and word starts): the data part of a cache key."""
    digest = hashlib.sha256()
    for enc in encoded:
        digest.update(np.asarray(enc.input_ids, dtype=np.int32).tobytes())
        digest.update(np.asarray(enc.word_starts, dtype=np.int32).tobytes())
        digest.update(b"|")
    return digest.hexdigest()


def cache_key(teacher_sha: str, data_sha: str) -> str:
    """Key of the (teacher, data) folder; entries inside differ by the layers they store."""
    payload = json.dumps({"v": CACHE_VERSION, "teacher": teacher_sha, "data": data_sha}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def layers_key(hidden_layers: Sequence[int], attention_layers: Sequence[int]) -> str:
    """Folder name of an entry storing these layers, e.g. ``h2-4-12_a`` (``h``idden, ``a``ttention)."""
    return "h{}_a{}".format(
        "-".join(map(str, sorted(hidden_layers))), "-".join(map(str, sorted(attention_layers)))
    )


def read_manifest(entry: str | Path) -> dict:
    """The manifest of an entry, checked for the fields readers use.

    Raises:
        CorruptEntry: (a ValueError) the manifest is missing, unreadable, not valid JSON (e.g. half written when
            a build was killed, or a full disk) or lacks ``files`` / ``meta`` with the stored layers and heads.
    """
    manifest = Store.read_manifest(Path(entry))
    path = Path(entry) / "manifest.json"
    try:
        meta = manifest["meta"]
        for key in ("hidden_layers", "attention_layers"):
            if not isinstance(meta[key], list):
                raise TypeError(f"meta.{key} is a {type(meta[key]).__name__}, not a list")
        if not isinstance(meta["heads"], int):
            raise TypeError(f"meta.heads is a {type(meta['heads']).__name__}, not an int")
    except (KeyError, TypeError) as err:
        raise CorruptEntry(f"unreadable or invalid {path}: {type(err).__name__}: {err}") from err
    return manifest


@dataclass
class TeacherCache:
    """Read access to one cache entry (arrays are memory-mapped)."""

    path: Path
    offsets: np.ndarray
    input_ids: np.ndarray
    word_offsets: np.ndarray
    word_logits: np.ndarray
    hidden: dict[int, np.ndarray]
    attention: dict[int, np.ndarray]
    attention_offsets: np.ndarray | None
    meta: dict = field(default_factory=dict)

    @classmethod
    def open(cls, path: str | Path, verify: bool = True) -> TeacherCache:
        """Open an entry; with ``verify``, check every file against the manifest.

        Raises:
            ValueError: the entry is incomplete, its manifest is unreadable or invalid, or a file does not
                match its manifest (size or checksum).
        """
        path = Path(path)
        manifest = read_manifest(path)
        Store(path.parent, "teacher cache").verify(path, checksums=verify)

        def load(name: str) -> np.ndarray:
            return np.load(path / f"{name}.npy", mmap_mode="r")

        meta = manifest["meta"]
        return cls(
            path,
            load("offsets"),
            load("input_ids"),
            load("word_offsets"),
            load("word_logits"),
            {t: load(f"hidden_{t}") for t in meta["hidden_layers"]},
            {t: load(f"attention_{t}") for t in meta["attention_layers"]},
            load("attention_offsets") if meta["attention_layers"] else None,
            meta,
        )

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def sentence_ids(self, i: int) -> np.ndarray:
        """Teacher subword ids of sentence ``i``."""
        return self.input_ids[self.offsets[i] : self.offsets[i + 1]]

    def batch_word_logits(self, indices: Sequence[int], n_words: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Word logits ``[batch, n_words, labels]`` and a mask of words present."""
        labels = self.word_logits.shape[1]
        out = torch.zeros((len(indices), n_words, labels), dtype=torch.float32)
        mask = torch.zeros((len(indices), n_words), dtype=torch.bool)
        for row, i in enumerate(indices):
            block = self.word_logits[self.word_offsets[i] : self.word_offsets[i + 1]][:n_words]
            out[row, : len(block)] = torch.from_numpy(np.asarray(block, dtype=np.float32))
            mask[row, : len(block)] = True
        return out, mask

    def batch_hidden(self, layer: int, indices: Sequence[int], width: int) -> torch.Tensor:
        """Hidden state ``layer`` as ``[batch, width, hidden]`` (zero-padded)."""
        arr = self.hidden[layer]
        out = torch.zeros((len(indices), width, arr.shape[1]), dtype=torch.float32)
        for row, i in enumerate(indices):
            block = arr[self.offsets[i] : self.offsets[i + 1]]
            out[row, : len(block)] = torch.from_numpy(np.asarray(block, dtype=np.float32))
        return out

    def batch_attention(self, layer: int, indices: Sequence[int], width: int) -> torch.Tensor:
        """Attention maps of ``layer`` as ``[batch, heads, width, width]`` (zero-padded)."""
        arr = self.attention[layer]
        heads = int(self.attention_heads)
        out = torch.zeros((len(indices), heads, width, width), dtype=torch.float32)
        for row, i in enumerate(indices):
            n = int(self.offsets[i + 1] - self.offsets[i])
            block = arr[self.attention_offsets[i] : self.attention_offsets[i + 1]].reshape(heads, n, n)
            out[row, :, :n, :n] = torch.from_numpy(np.asarray(block, dtype=np.float32))
        return out

    def check_same_ids(
        self, indices: Sequence[int], input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> None:
        """Check that a batch holds the subwords the cached outputs were computed on.

        Raises:
            ValueError: a sentence's subwords differ (changed tokenizer or max_length).
        """
        for row, i in enumerate(indices):
            ids = self.sentence_ids(i)
            mine = input_ids[row, : len(ids)].cpu().numpy()
            if len(ids) != int(attention_mask[row].sum()) or (ids != mine).any():
                raise ValueError(
                    f"cached teacher outputs for sentence {i} were computed on other subwords than "
                    "this batch (changed tokenizer or max_length?); delete the cache entry "
                    f"{self.path} or use distill.teacher_mode=online"
                )

    @property
    def attention_heads(self) -> int:
        """Heads per stored attention layer."""
        return self.meta["heads"]


@torch.inference_mode()
def build_teacher_cache(
    teacher: TokenClassifier,
    encoded: Sequence[Encoded],
    out_dir: str | Path,
    hidden_layers: Sequence[int] = (),
    attention_layers: Sequence[int] = (),
    batch_size: int = 64,
    pad_token_id: int = 1,
    meta: dict | None = None,
) -> Path:
    """Run the teacher once over encoded sentences and write an entry atomically.

    Args:
        teacher: the teacher model (put in eval mode here).
        encoded: sentences encoded with the teacher's tokenizer.
        out_dir: the entry directory to create (must not exist).
        hidden_layers: hidden states to store (0 = embeddings).
        attention_layers: layers whose attention maps to store (1..L).
        batch_size: sentences per forward pass.
        pad_token_id: padding id of the tokenizer.
        meta: extra facts recorded in the manifest (teacher path, data description).
    """
    out_dir = Path(out_dir)
    teacher.eval()
    lengths = np.array([len(e.input_ids) for e in encoded], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    n_words = np.array([len(e.word_starts) for e in encoded], dtype=np.int64)
    word_offsets = np.concatenate([[0], np.cumsum(n_words)])
    config = teacher.encoder.config
    heads = config.num_attention_heads
    attn_sizes = heads * lengths**2
    attention_offsets = np.concatenate([[0], np.cumsum(attn_sizes)])
    start = time.perf_counter()

    def fill(tmp: Path) -> dict:
        np.save(tmp / "offsets.npy", offsets)
        np.save(tmp / "word_offsets.npy", word_offsets)
        np.save(tmp / "attention_offsets.npy", attention_offsets)
        np.save(tmp / "input_ids.npy", np.concatenate([np.asarray(e.input_ids, np.int32) for e in encoded]))
        _write_outputs(teacher, encoded, tmp, hidden_layers, attention_layers, batch_size, pad_token_id)
        return {
            "meta": {
                **(meta or {}),
                "version": CACHE_VERSION,
                "sentences": len(encoded),
                "subwords": int(offsets[-1]),
                "words": int(word_offsets[-1]),
                "hidden_layers": list(hidden_layers),
                "attention_layers": list(attention_layers),
                "heads": heads,
                "hidden_size": config.hidden_size,
                "dtype": "float16",
                "build_seconds": round(time.perf_counter() - start, 2),
            },
        }

    files = Store(out_dir.parent, "teacher cache").write(out_dir.name, fill)["files"]
    log.info(
        "teacher cache %s: %d sentences, %d subwords, %.1f MB in %.1fs",
        out_dir,
        len(encoded),
        offsets[-1],
        sum(f["size"] for f in files.values()) / 2**20,
        time.perf_counter() - start,
    )
    return out_dir


def _write_outputs(
    teacher: TokenClassifier,
    encoded: Sequence[Encoded],
    tmp: Path,
    hidden_layers: Sequence[int],
    attention_layers: Sequence[int],
    batch_size: int,
    pad_token_id: int,
) -> None:
    """Run the teacher over ``encoded`` (shortest first) and fill the fp16 arrays in ``tmp``."""
    offsets, word_offsets, attention_offsets = (np.load(tmp / f"{n}.npy") for n in OFFSET_ARRAYS)
    lengths = np.diff(offsets)
    config = teacher.encoder.config
    mm = np.lib.format.open_memmap
    word_logits = mm(
        tmp / "word_logits.npy", "w+", np.float16, (int(word_offsets[-1]), teacher.head.out_features)
    )
    hidden = {
        t: mm(tmp / f"hidden_{t}.npy", "w+", np.float16, (int(offsets[-1]), config.hidden_size))
        for t in hidden_layers
    }
    attention = {
        t: mm(tmp / f"attention_{t}.npy", "w+", np.float16, (int(attention_offsets[-1]),))
        for t in attention_layers
    }
    order = np.argsort(lengths, kind="stable")
    for lo in tqdm(
        range(0, len(order), batch_size),
        desc="teacher outputs",
        unit="batch",
        total=-(-len(order) // batch_size),
        disable=None,
    ):
        idx = order[lo : lo + batch_size]
        width = int(lengths[idx].max())
        ids = torch.full((len(idx), width), pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for row, i in enumerate(idx):
            ids[row, : lengths[i]] = torch.tensor(encoded[i].input_ids)
            mask[row, : lengths[i]] = 1
        out = teacher(
            ids, mask, output_hidden_states=bool(hidden_layers), output_attentions=bool(attention_layers)
        )
        for row, i in enumerate(idx):
            n = int(lengths[i])
            starts = torch.tensor(encoded[i].word_starts, dtype=torch.long)
            logits = out.logits[row, starts.clamp_min(0)] * (starts >= 0)[:, None]  # words cut off: zeros
            word_logits[word_offsets[i] : word_offsets[i + 1]] = logits.numpy().astype(np.float16)
            for t in hidden_layers:
                hidden[t][offsets[i] : offsets[i] + n] = (
                    out.hidden_states[t][row, :n].numpy().astype(np.float16)
                )
            for t in attention_layers:
                block = out.attentions[t - 1][row, :, :n, :n].numpy().astype(np.float16).ravel()
                attention[t][attention_offsets[i] : attention_offsets[i + 1]] = block
    for arr in (word_logits, *hidden.values(), *attention.values()):
        arr.flush()
    del word_logits, hidden, attention


def find_entry(root: Path, hidden_layers: Sequence[int], attention_layers: Sequence[int]) -> Path | None:
    """A complete entry under ``root`` storing at least the requested layers (the smallest such entry).

    Entries without a manifest are skipped (an interrupted build; rebuilt when their layers are asked for);
    entries whose manifest is unreadable or invalid are deleted with a warning, so they are rebuilt.
    """
    best, best_size = None, None
    store = Store(root, "teacher cache")
    for entry in sorted(root.glob("h*_a*")) if root.is_dir() else []:
        if not (entry / "manifest.json").is_file():
            continue
        try:
            meta = read_manifest(entry)["meta"]
        except CorruptEntry as err:
            store.remove(entry, str(err))
            continue
        if set(hidden_layers) <= set(meta["hidden_layers"]) and set(attention_layers) <= set(
            meta["attention_layers"]
        ):
            size = len(meta["hidden_layers"]) + len(meta["attention_layers"])
            if best_size is None or size < best_size:
                best, best_size = entry, size
    return best


def get_or_build_teacher_cache(
    root: str | Path,
    hidden_layers: Sequence[int],
    attention_layers: Sequence[int],
    build_kwargs: dict,
    build_hidden_layers: Sequence[int] | None = None,
) -> TeacherCache:
    """Open an entry under ``root`` with the needed layers; build one (or rebuild a broken one) when needed.

    Args:
        root: the (teacher, data) folder (see :func:`cache_key`).
        hidden_layers: hidden states the caller needs.
        attention_layers: attention layers the caller needs.
        build_kwargs: arguments of :func:`build_teacher_cache` other than the layers and ``out_dir``.
        build_hidden_layers: hidden states to store when building (a superset, e.g. all layers, so that
            later runs at other depths reuse the entry); default: ``hidden_layers``.
    """
    root = Path(root)
    store = Store(root, "teacher cache")
    while (entry := find_entry(root, hidden_layers, attention_layers)) is not None:
        try:
            cache = TeacherCache.open(entry)
            log.info("reusing teacher outputs %s", entry)
            return cache
        except CorruptEntry as err:
            store.remove(entry, str(err))
    hidden = sorted(set(build_hidden_layers or ()) | set(hidden_layers))
    path = root / layers_key(hidden, attention_layers)
    if path.exists():  # incomplete (no manifest): an interrupted build
        store.remove(path)
    build_teacher_cache(out_dir=path, hidden_layers=hidden, attention_layers=attention_layers, **build_kwargs)
    return TeacherCache.open(path, verify=False)


def teacher_outputs(
    teacher: TokenClassifier,
    teacher_ckpt: str | Path,
    encoded: Sequence[Encoded],
    pad_token_id: int,
    cache_dir: Path,
    hidden_layers: Sequence[int],
    attention_layers: Sequence[int],
    build_hidden_layers: Sequence[int] | None = None,
) -> TeacherCache:
    """The teacher's outputs on ``encoded`` sentences, from the cache entry of (checkpoint bytes, data).

    Args:
        teacher: the teacher model (run only when no entry has the layers).
        teacher_ckpt: its checkpoint (hashed into the key).
        encoded: the sentences encoded with the teacher's tokenizer, in training-index order.
        pad_token_id: padding id of the teacher's tokenizer.
        cache_dir: the teacher cache's root (``<cache_dir>/teacher``).
        hidden_layers, attention_layers, build_hidden_layers: see :func:`get_or_build_teacher_cache`.
    """
    root = Path(cache_dir) / cache_key(file_sha256(teacher_ckpt), encoded_sha256(encoded))
    build = {
        "teacher": teacher,
        "encoded": encoded,
        "pad_token_id": pad_token_id,
        "meta": {"teacher_ckpt": str(teacher_ckpt), "split": "train"},
    }
    return get_or_build_teacher_cache(root, hidden_layers, attention_layers, build, build_hidden_layers)
