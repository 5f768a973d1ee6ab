"""Splits that are not in a named dataset: one CoNLL file, or a HF ``datasets`` split (hub or saved to disk).

Both are written wherever a split spec is accepted (``data.train``, ``data.test`` entries, eval_splits)::

    {path: my/test.conll, types: [PER, ORG, LOC, DATE], label_map: {DATE: null}, domain: news, lang: swa}
    {hf: my/saved_dataset, split: test, types: [PER, ORG, LOC], lang: swa}   # a save_to_disk folder
    {hf: masakhane/masakhaner2, config: swa, split: test, types: [PER, ORG, LOC, DATE], ...}  # needs a network

A relative ``path`` (or ``hf`` folder) is relative to the working directory the command was started in
(``configs/hydra/default.yaml`` keeps Hydra from changing it: ``hydra.job.chdir: false``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xner.data.dataset_config import (
    DatasetInfo,
    check_keys,
    check_label_map,
    check_str,
    check_types,
)
from xner.io.conll import read_conll
from xner.labels import TAG_PATTERN
from xner.types import Sentence

# keys of a split spec that are load options rather than where the text comes from
LOAD_OPTIONS = ("limit", "labelled")
_SOURCE_KEYS = ("types", "label_map", "domain", "lang")


def allowed_tags(types: Sequence[str] | None) -> set[str] | None:
    """The IOB2 tags of ``types`` plus ``O`` (``None``: any well-formed tag)."""
    return None if types is None else {"O"} | {f"{p}-{t}" for t in types for p in "BI"}


@dataclass(frozen=True)
class FileSplit:
    """One CoNLL file with its declared types and mapping (a dataset of one split).

    Attributes:
        path: the file (relative paths: to the working directory).
        types: entity types the file may contain (``None``: any well-formed tag).
        label_map: the mapping onto the shared types (the split's ``"default"``).
        domain: the text domain, for reports.
        lang: the language code, for reports.
    """

    path: str
    types: tuple[str, ...] | None
    label_map: Mapping[str, str | None] = field(default_factory=dict)
    domain: str = ""
    lang: str = ""

    @property
    def ref(self) -> str:
        """A ``kind:lang:what`` description for stats and sentence ids (not a registry reference)."""
        return f"file:{self.lang}:{self.path}"

    @property
    def info(self) -> DatasetInfo:
        """The split as a one-file dataset (for the shared mapping code)."""
        return DatasetInfo(self.ref, str(Path(self.path).parent), self.types, self.domain, self.label_map)

    def read(self) -> tuple[list[Sentence], str]:
        """The sentences and the path they were read from (tags checked against ``types``, file and line
        named on error)."""
        path = Path(self.path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"Split file {path} not found (resolved to {path.absolute()}); a relative path is relative to "
                "the directory the command was started in."
            )
        sents = read_conll(
            path,
            allowed_tags=allowed_tags(self.types),
            id_prefix=self.ref,
            lang=self.lang,
            domain=self.domain,
        )
        return sents, str(path)


@dataclass(frozen=True)
class HFSplit:
    """A token-classification split of the HF ``datasets`` library: a hub name or a ``save_to_disk`` folder.

    Attributes:
        hf: hub dataset name, or a local folder written by ``Dataset(Dict).save_to_disk``.
        split: the split (of a DatasetDict; ignored for a saved single Dataset).
        config: the hub configuration (often the language).
        types, label_map, domain, lang: as for :class:`FileSplit`.
        tokens_column: the column of word lists.
        tags_column: the column of tags (class ids with names, or strings).
    """

    hf: str
    split: str = "test"
    config: str | None = None
    types: tuple[str, ...] | None = None
    label_map: Mapping[str, str | None] = field(default_factory=dict)
    domain: str = ""
    lang: str = ""
    tokens_column: str = "tokens"
    tags_column: str = "ner_tags"

    @property
    def ref(self) -> str:
        """A ``kind:lang:what`` description for stats and sentence ids (not a registry reference)."""
        return f"hf:{self.lang}:{self.hf}/{self.config or ''}/{self.split}"

    @property
    def info(self) -> DatasetInfo:
        """The split as a dataset (for the shared mapping code)."""
        return DatasetInfo(self.ref, self.hf, self.types, self.domain, self.label_map, hf_path=self.hf)

    def read(self) -> tuple[list[Sentence], str]:
        """The sentences (tags checked against ``types``) and where they came from."""
        sents = load_hf_split(
            self.hf,
            self.config,
            self.split,
            self.lang,
            self.domain,
            tokens_column=self.tokens_column,
            tags_column=self.tags_column,
        )
        allowed = allowed_tags(self.types)
        for k, sent in enumerate(sents):
            for tag in sent.tags:
                if not TAG_PATTERN.match(tag) or (allowed is not None and tag not in allowed):
                    raise ValueError(
                        f"{self.ref}: row {k} has tag {tag!r}, not one of types {list(self.types or [])} "
                        "(declare the types the split may contain, or types: null for any tag)"
                    )
        return sents, self.hf


def split_source(spec: Mapping[str, Any]) -> tuple[FileSplit | HFSplit, dict]:
    """Parse a ``{path: ...}`` or ``{hf: ...}`` split spec into its source and load options.

    Raises:
        DatasetConfigError: unknown keys, a missing ``types``, or values of the wrong kind (the message names
            the split and the field).
    """
    options = {k: spec[k] for k in LOAD_OPTIONS if k in spec}
    # a Path object is as good as the string a config gives
    spec = {k: os.fspath(v) if isinstance(v, os.PathLike) else v for k, v in spec.items()}
    if "path" in spec:
        source = f"split {{path: {spec['path']}}}"
        check_keys(spec, source, ("path", *_SOURCE_KEYS, *LOAD_OPTIONS), ("path", "types"))
        kind, extra = FileSplit, {"path": str(check_str(spec["path"], source, "path", optional=False))}
    else:
        source = f"split {{hf: {spec.get('hf')}}}"
        hf_keys = ("hf", "split", "config", "tokens_column", "tags_column")
        check_keys(spec, source, (*hf_keys, *_SOURCE_KEYS, *LOAD_OPTIONS), ("hf", "types"))
        # a null field keeps its default (split: test, config: none)
        extra = {k: v for k in hf_keys if k in spec and (v := check_str(spec[k], source, k)) is not None}
        kind = HFSplit
    types = check_types(spec["types"], source)
    return kind(
        **extra,
        types=types,
        label_map=check_label_map(spec.get("label_map"), source, types),
        domain=check_str(spec.get("domain"), source, "domain") or "",
        lang=check_str(spec.get("lang"), source, "lang") or "",
    ), options


def load_hf_split(
    hf_path: str,
    config: str | None,
    split: str,
    lang: str = "",
    domain: str = "",
    *,
    tokens_column: str = "tokens",
    tags_column: str = "ner_tags",
) -> list[Sentence]:
    """Load a token-classification split with the ``datasets`` package (``pip install datasets``).

    Args:
        hf_path: a folder written by ``save_to_disk`` (read offline with ``datasets.load_from_disk``), else a
            HF hub dataset name (needs a network).
        config: the hub configuration (unused for a folder).
        split: the split of a DatasetDict (a saved single Dataset is used whole).
        lang: language code stored on each sentence.
        domain: domain stored on each sentence.
        tokens_column: the column of word lists.
        tags_column: the column of tags: class ids (names from ``features[tags_column].feature.names``, as
            the hub sets store them) or tag strings.

    Returns:
        The sentences, with ids ``<hf_path>:<config>:<split>:<row>``.
    """
    try:
        import datasets  # noqa: PLC0415 - optional dependency
    except ImportError as err:
        raise ImportError("Loading HF datasets needs `pip install datasets`.") from err
    local = Path(hf_path).expanduser()
    if local.is_dir():
        ds = datasets.load_from_disk(str(local))
        if isinstance(ds, datasets.DatasetDict):
            if split not in ds:
                raise KeyError(f"{hf_path} has no split {split!r}; splits: {sorted(ds)}")
            ds = ds[split]
    else:
        ds = datasets.load_dataset(hf_path, config, split=split)
    for column in (tokens_column, tags_column):
        if column not in ds.column_names:
            raise KeyError(
                f"{hf_path}: no column {column!r}; columns: {ds.column_names} (set tokens_column/tags_column)"
            )
    names = getattr(getattr(ds.features[tags_column], "feature", None), "names", None)
    return [
        Sentence(
            row[tokens_column],
            _tag_names(row[tags_column], names),
            f"{hf_path}:{config}:{split}:{k}",
            lang,
            domain,
        )
        for k, row in enumerate(ds)
    ]


def _tag_names(tags: Iterable, names: Sequence[str] | None) -> list[str]:
    return [names[t] for t in tags] if names is not None else [str(t) for t in tags]
