"""NERDataModule: train/val loaders and one named test loader per split."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader
from transformers import AutoTokenizer

from xner.data.encoding import (
    EncodedDataset,
    EncodingStats,
    LengthBucketBatchSampler,
    PadCollator,
    ShardedBatchSampler,
    encode_sentences,
)
from xner.data.registry import (
    SHARED_TYPES,
    SplitSource,
    SplitStats,
    load_split,
    parse_split_spec,
    register_dataset,
)
from xner.io.jsonl import iter_jsonl
from xner.labels import LabelSet
from xner.types import Sentence

log = logging.getLogger(__name__)

SplitSpec = str | Mapping[str, Any]


def _ref_and_options(spec: SplitSpec) -> tuple[SplitSource, dict]:
    """A split spec is ``"dataset:lang:split"`` or a mapping: DataRef fields, ``{path: ...}`` (one CoNLL file)
    or ``{hf: ...}`` (a HF datasets split), plus load options (see :func:`~xner.data.registry.parse_split_spec`)."""
    if isinstance(spec, DictConfig):  # plain containers: validation checks lists and mappings
        spec = OmegaConf.to_container(spec, resolve=True)
    return parse_split_spec(spec)


class NERDataModule(L.LightningDataModule):
    """Loads named splits from the registry, encodes them for one tokenizer and serves padded batches.

    Args:
        tokenizer: HF tokenizer name or directory (normally the encoder's).
        train: the training split (``"conll2003::train"`` or a mapping with ``label_map``/``limit``/``labelled``;
            ``{path: file.conll, types: [...], ...}`` or ``{hf: ..., ...}`` for a split outside the named
            datasets), or ``{projected: <sentences.jsonl>, meta: <meta.json>, limit: N}``: a projected set,
            the artifact of the pipeline stage (:func:`xner.tasks.train.projected_training_set` builds it
            from a ``{pipeline: {...}}`` spec before the DataModule exists); read, never built, here.
        val: the validation split (or ``None``).
        test: named test splits: ``{name: spec}``; each becomes ``test/<name>/f1``.
        data_dir: the data root (``paths.data_dir``).
        types: entity types kept after each split's label mapping.
        batch_size: training batch size.
        eval_batch_size: batch size for validation and test.
        max_length: subword limit for training (longer sentences are cut; cut words are counted).
        eval_max_length: subword limit for evaluation.
        bucket_by_length: batch training sentences of similar length.
        num_workers: DataLoader workers.
        seed: shuffling seed.
        test_limit: score only the first N sentences of every test split (smoke runs).
        datasets: datasets declared inline, ``{name: {folder: ..., types: [...], ...}}`` (the fields of a
            ``configs/datasets/<name>.yaml``); registered on construction, so every split spec can name them.
    """

    def __init__(
        self,
        tokenizer: str,
        train: SplitSpec | None = "conll2003::train",
        val: SplitSpec | None = "conll2003::dev",
        test: Mapping[str, SplitSpec] | None = None,
        data_dir: str | None = None,
        types: Sequence[str] = SHARED_TYPES,
        batch_size: int = 16,
        eval_batch_size: int = 64,
        max_length: int = 128,
        eval_max_length: int = 512,
        bucket_by_length: bool = True,
        num_workers: int = 0,
        seed: int = 0,
        test_limit: int | None = None,
        datasets: Mapping[str, Mapping[str, Any]] | None = None,
    ):
        super().__init__()
        if isinstance(datasets, DictConfig):
            datasets = OmegaConf.to_container(datasets, resolve=True)
        for ds_name, decl in (datasets or {}).items():
            register_dataset(decl, ds_name, source=f"data.datasets.{ds_name}")
        self.tokenizer_name, self.data_dir = tokenizer, data_dir
        self.train_spec, self.val_spec, self.test_specs = train, val, dict(test or {})
        self.label_set = LabelSet(list(types))
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.max_length, self.eval_max_length = max_length, eval_max_length
        self.bucket_by_length, self.num_workers, self.seed = bucket_by_length, num_workers, seed
        self.test_limit = test_limit
        self.tokenizer = None
        self.datasets: dict[str, EncodedDataset] = {}
        self.split_stats: dict[str, SplitStats] = {}
        self.encoding_stats: dict[str, EncodingStats] = {}
        self.projected_meta: dict | None = None  # the projected training set's meta.json, when it is one

    @property
    def test_split_names(self) -> list[str]:
        """Names of the test splits, in loader order."""
        return list(self.test_specs)

    def load(
        self, name: str, spec: SplitSpec, max_length: int, max_sentences: int | None = None
    ) -> EncodedDataset:
        """Read, map and encode one split (at most ``max_sentences`` of it); its stats are kept under ``name``."""
        source, options = _ref_and_options(spec)
        if max_sentences is not None:
            options["limit"] = min(options.get("limit") or max_sentences, max_sentences)
        sentences, stats = load_split(source, self.data_dir, keep_types=self.label_set.types, **options)
        return self.encode(name, sentences, max_length, stats)

    def encode(
        self, name: str, sentences: Sequence[Sentence], max_length: int, stats: SplitStats | None = None
    ) -> EncodedDataset:
        """Encode given sentences as the split ``name``."""
        if self.tokenizer is None:
            self.tokenizer = AutoTokenizer.from_pretrained(self.tokenizer_name)
        labelled = all(s.tags is not None for s in sentences)
        encoded, enc_stats = encode_sentences(
            sentences, self.tokenizer, self.label_set if labelled else None, max_length
        )
        if enc_stats.truncated_words or enc_stats.empty_words:
            log.warning(
                "%s: %d words in %d sentences cut by max_length=%d; %d words without subwords",
                name,
                enc_stats.truncated_words,
                enc_stats.truncated_sentences,
                max_length,
                enc_stats.empty_words,
            )
        if stats is not None:
            self.split_stats[name] = stats
        self.encoding_stats[name] = enc_stats
        dataset = EncodedDataset(sentences, encoded, name)
        self.datasets[name] = dataset
        return dataset

    def _train_split(self) -> None:
        spec = self.train_spec
        if isinstance(spec, Mapping) and "pipeline" in spec:
            raise ValueError(
                "data.train is a pipeline spec: the projected set is an artifact the pipeline stage builds "
                "before the DataModule (train.py does; or call xner.tasks.train.projected_training_set) and "
                "data.train then names its files: {projected: <sentences.jsonl>, meta: <meta.json>}"
            )
        if isinstance(spec, Mapping) and "projected" in spec:
            sentences, self.projected_meta = read_projected_set(spec["projected"], spec.get("meta"))
            self.encode("train", sentences[: spec.get("limit")], self.max_length)
        elif spec is not None:
            self.load("train", spec, self.max_length)

    def setup(self, stage: str | None = None) -> None:
        """Read and encode the splits the stage needs (reads only; builds nothing)."""
        if stage in (None, "fit") and "train" not in self.datasets:
            self._train_split()
        if stage in (None, "fit", "validate") and self.val_spec is not None and "val" not in self.datasets:
            self.load("val", self.val_spec, self.eval_max_length)
        if stage in (None, "test", "predict"):
            for name, spec in self.test_specs.items():
                if name not in self.datasets:
                    self.load(name, spec, self.eval_max_length, self.test_limit)

    def check_test_splits(self) -> None:
        """Read (and encode) every test split now, so that a typo in a reference, a missing file or a
        malformed line is reported before hours of training rather than after them. Loaded splits are kept,
        so testing does not read them again."""
        self.setup("test")

    def _collator(self) -> PadCollator:
        return PadCollator(self.tokenizer.pad_token_id)

    def train_dataloader(self) -> DataLoader:
        if "train" not in self.datasets:
            raise RuntimeError("No training split configured (data.train is null).")
        ds = self.datasets["train"]
        if self.bucket_by_length:
            sampler = LengthBucketBatchSampler(ds.lengths(), self.batch_size, seed=self.seed)
            return DataLoader(
                ds, batch_sampler=sampler, collate_fn=self._collator(), num_workers=self.num_workers
            )
        return DataLoader(
            ds,
            batch_size=self.batch_size,
            shuffle=True,
            collate_fn=self._collator(),
            num_workers=self.num_workers,
        )

    def _eval_loader(self, ds: EncodedDataset) -> DataLoader:
        # Sorting by length keeps padding low; predictions are keyed by sentence index, so order is free.
        sampler = ShardedBatchSampler(ds.lengths(), self.eval_batch_size)
        return DataLoader(
            ds, batch_sampler=sampler, collate_fn=self._collator(), num_workers=self.num_workers
        )

    def val_dataloader(self) -> DataLoader | list:
        return self._eval_loader(self.datasets["val"]) if "val" in self.datasets else []

    def test_dataloader(self) -> list[DataLoader]:
        return [self._eval_loader(self.datasets[name]) for name in self.test_specs]


def read_projected_set(
    path: str | Path, meta: str | Path | None = None
) -> tuple[list[Sentence], dict | None]:
    """Read a projected set: JSON lines of ``{"id", "tokens", "tags"}`` and (optionally) its ``meta.json``.

    Raises:
        FileNotFoundError: a file is missing (the message says how it is built).
        ValueError: a line that is not a sentence record (file and line number given).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"projected set {path} not found: the pipeline stage writes it (train.py runs it when data.train "
            "has a pipeline spec; or python -m xner.pipeline)"
        )
    sentences = []
    for line_no, record in iter_jsonl(path):
        try:
            sentences.append(Sentence(record["tokens"], record["tags"], record["id"]))
        except (KeyError, TypeError) as err:
            raise ValueError(f"{path}:{line_no}: not a projected sentence record ({err!r})") from err
    return sentences, json.loads(Path(meta).read_text(encoding="utf-8")) if meta else None
