"""Named datasets mapped to files under ``paths.data_dir`` (or the HF hub for users with a network).

The datasets are declared in YAML (``configs/datasets/<name>.yaml``, more folders in ``$XNER_DATASETS``, or
inline under ``data.datasets`` of a Hydra config; see :mod:`xner.data.dataset_config`). A split is named by a
:class:`DataRef` — dataset, language, split and, for CrossNER, a topic subset — or by the shorthand
``"dataset[.subset]:lang:split"`` (``"masakhaner2:swa:test"``, ``"crossner.politics:eng:test"``). A split spec
may also name one CoNLL file or a HF ``datasets`` split with its types and mapping (:mod:`xner.data.sources`).
Each dataset declares the entity types its files may contain (a tag outside them is an error) and a default
mapping onto the shared PER/ORG/LOC types so that sets from different sources can be scored together.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xner.data.dataset_config import DATASETS, DatasetConfigError, DatasetInfo, check_keys, register_dataset
from xner.data.sources import LOAD_OPTIONS, FileSplit, HFSplit, allowed_tags, load_hf_split, split_source
from xner.io.conll import read_conll
from xner.labels import map_types, repair_iob2, split_tag, tags_to_spans
from xner.paths import resolve_data_dir
from xner.types import Sentence, Span

log = logging.getLogger(__name__)

SHARED_TYPES = ("PER", "ORG", "LOC")

# re-exported: the dataset table, its entries and the extra split sources are part of this module's API
__all__ = [
    "DATASETS",
    "SHARED_TYPES",
    "DataRef",
    "DatasetConfigError",
    "DatasetInfo",
    "FileSplit",
    "HFSplit",
    "SplitStats",
    "available_languages",
    "available_splits",
    "dataset_folder",
    "dataset_info",
    "detect_scheme",
    "load_hf_split",
    "load_split",
    "parse_split_spec",
    "register_dataset",
    "resolve_label_map",
    "split_path",
]


@dataclass(frozen=True)
class DataRef:
    """One split of one dataset in one language."""

    dataset: str
    lang: str | None = None
    split: str = "test"
    subset: str | None = None

    @classmethod
    def parse(cls, text: str) -> DataRef:
        """Parse ``"dataset[.subset]:lang:split"`` (``lang`` may be empty for single-language sets).

        The split part keeps any further ``:`` (the ``file:<lang>:<path>`` descriptions of file splits in
        split stats parse too, for their language)."""
        parts = text.split(":", 2)
        if len(parts) != 3:
            raise ValueError(
                f"Cannot parse data reference {text!r}: expected 'dataset[.subset]:lang:split', "
                "e.g. 'masakhaner2:swa:test' or 'crossner.politics:eng:test'."
            )
        dataset, lang, split = parts
        dataset, _, subset = dataset.partition(".")
        return cls(dataset, lang or None, split, subset or None)

    @classmethod
    def coerce(cls, value: DataRef | str | Mapping) -> DataRef:
        """Accept a DataRef, its string shorthand or a config mapping with the same fields."""
        if isinstance(value, DataRef):
            return value
        if isinstance(value, str):
            return cls.parse(value)
        return cls(**{k: value[k] for k in ("dataset", "lang", "split", "subset") if k in value})

    def __str__(self) -> str:
        name = f"{self.dataset}.{self.subset}" if self.subset else self.dataset
        return f"{name}:{self.lang or ''}:{self.split}"


@dataclass
class SplitStats:
    """Counts that describe a loaded split, including everything a label mapping removed."""

    ref: str
    path: str
    sentences: int
    tokens: int
    entities: dict[str, int]
    dropped_entities: dict[str, int]
    label_map: dict[str, str | None]
    repaired_tags: int = 0
    scheme: str = "IOB2"


SplitSource = DataRef | FileSplit | HFSplit


def parse_split_spec(spec: DataRef | str | Mapping[str, Any]) -> tuple[SplitSource, dict]:
    """Turn a split spec of a config into where its text comes from and its load options.

    Accepted forms: ``"dataset[.subset]:lang:split"``; ``{ref: "dataset:lang:split", <options>}``;
    ``{dataset: ..., lang: ..., split: ..., subset: ..., <options>}``; ``{path: file.conll, types: [...],
    label_map: {...}, domain: ..., lang: ..., <options>}`` (one CoNLL file); ``{hf: name_or_saved_dir, split:
    ..., config: ..., types: [...], ...}`` (a HF ``datasets`` split). The options are ``limit``,
    ``labelled`` and (for named datasets) ``label_map``: ``"default"``, ``"none"`` or a mapping.

    Raises:
        DatasetConfigError: an unknown key or a badly typed field (named in the message).
    """
    if isinstance(spec, DataRef | FileSplit | HFSplit):
        return spec, {}
    if isinstance(spec, str):
        return DataRef.parse(spec), {}
    spec = dict(spec)
    if "path" in spec or "hf" in spec:
        return split_source(spec)
    ref_keys = ("ref",) if "ref" in spec else ("dataset", "lang", "split", "subset")
    check_keys(spec, f"split {spec}", (*ref_keys, *LOAD_OPTIONS, "label_map"), ref_keys[:1])
    ref = DataRef.parse(spec.pop("ref")) if "ref" in spec else DataRef.coerce(spec)
    return ref, {k: v for k, v in spec.items() if k not in ref_keys}


def dataset_info(name: str) -> DatasetInfo:
    """Look a dataset up by name; unknown names raise with the known ones."""
    try:
        return DATASETS[name]
    except KeyError:
        raise KeyError(
            f"Unknown dataset {name!r}; known datasets: {sorted(DATASETS)}. Declare it in "
            f"configs/datasets/{name}.yaml, in a folder named by $XNER_DATASETS, or under data.datasets.{name} "
            "of the config (fields: folder, types, domain, label_map)."
        ) from None


def dataset_folder(ref: DataRef, data_dir: str | Path | None = None) -> Path:
    """The folder that holds a dataset's split files for ``ref``'s language and subset."""
    info = dataset_info(ref.dataset)
    lang = ref.lang or info.fixed_lang
    if info.fixed_lang and lang != info.fixed_lang:
        raise ValueError(f"{info.name} has only language {info.fixed_lang!r}, not {ref.lang!r}")
    if "{lang}" in info.folder and not lang:
        raise ValueError(f"{info.name} needs a language, e.g. '{info.name}:<lang>:{ref.split}'")
    if "{subset}" in info.folder and not ref.subset:
        raise ValueError(f"{info.name} needs a subset, e.g. '{info.name}.politics:{lang}:{ref.split}'")
    return _under_data_dir(info.folder.format(lang=lang, subset=ref.subset), data_dir)


def _under_data_dir(folder: str, data_dir: str | Path | None) -> Path:
    """A dataset folder: absolute (a user's own data; no data dir needed) or under the data dir."""
    path = Path(folder).expanduser()
    return path if path.is_absolute() else resolve_data_dir(data_dir) / path


def split_path(ref: DataRef, data_dir: str | Path | None = None) -> Path:
    """The file of a split, checked to exist; the error lists the splits and languages that do."""
    folder = dataset_folder(ref, data_dir)
    path = folder / f"{ref.split}.txt"
    if not path.is_file():
        if not folder.is_dir():
            found = available_languages(ref.dataset, data_dir)
            raise FileNotFoundError(f"No folder {folder} for {ref}. Languages of {ref.dataset} here: {found}")
        raise FileNotFoundError(
            f"No split {ref.split!r} for {ref} in {folder}; splits that exist: {available_splits(ref, data_dir)}"
        )
    return path


def available_languages(name: str, data_dir: str | Path | None = None) -> list[str]:
    """Language (or ``lang-subset``) folders that exist for a dataset."""
    info = dataset_info(name)
    if info.fixed_lang:
        return [info.fixed_lang] if _under_data_dir(info.folder, data_dir).is_dir() else []
    # the language folders are the entries of the deepest folder without a placeholder ("crossner/")
    parts = Path(info.folder).parts
    fixed = parts[: next((k for k, part in enumerate(parts) if "{" in part), len(parts))]
    base = _under_data_dir(str(Path(*fixed)) if fixed else ".", data_dir)
    return sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []


def available_splits(ref: DataRef | str, data_dir: str | Path | None = None) -> list[str]:
    """Split names (file stems) present for a dataset/language; some sets have no test file."""
    return sorted(p.stem for p in dataset_folder(DataRef.coerce(ref), data_dir).glob("*.txt"))


def resolve_label_map(
    info: DatasetInfo, label_map: Mapping[str, str | None] | str | None
) -> dict[str, str | None]:
    """``"default"`` gives the dataset's own mapping, ``None``/``"none"`` the identity, a mapping itself."""
    if label_map is None or label_map == "none":
        return {}
    if label_map == "default":
        return dict(info.label_map)
    if isinstance(label_map, str):
        raise ValueError(f"label_map must be 'default', 'none' or a mapping, got {label_map!r}")
    return dict(label_map)


def load_split(
    ref: DataRef | FileSplit | HFSplit | str | Mapping,
    data_dir: str | Path | None = None,
    *,
    label_map: Mapping[str, str | None] | str | None = "default",
    keep_types: Sequence[str] | None = SHARED_TYPES,
    labelled: bool = True,
    limit: int | None = None,
) -> tuple[list[Sentence], SplitStats]:
    """Read one split, validate its tags, and map its entity types.

    Args:
        ref: which split: a :class:`DataRef`, its shorthand, or any spec :func:`parse_split_spec` accepts
            (a ``{path: ...}`` or ``{hf: ...}`` mapping reads one file or HF split with its own types and
            mapping). Load options written in a spec mapping take precedence over the arguments below.
        data_dir: the data root (default: :func:`xner.paths.default_data_dir`).
        label_map: type renaming (see :func:`resolve_label_map`); applied before ``keep_types``.
        keep_types: entity types to keep after mapping; other types become ``O`` and are counted in
            ``SplitStats.dropped_entities``. ``None`` keeps everything. Every gold entity removed by the
            mapping or by ``keep_types`` is kept, with its original type, in the sentence's
            :attr:`~xner.types.Sentence.ignore_spans` (for don't-care scoring).
        labelled: ``False`` hides the gold tags (unlabelled text for distillation).
        limit: read only the first ``limit`` sentences (for smoke runs); recorded in the stats.

    Returns:
        The sentences and their :class:`SplitStats`.
    """
    source, options = parse_split_spec(ref)
    # options written in a spec mapping are what the config asked for: they win over the defaults here
    label_map = options.get("label_map", label_map)
    labelled = options.get("labelled", labelled)
    limit = options.get("limit", limit)
    if isinstance(source, DataRef):
        name, info = str(source), dataset_info(source.dataset)
        sentences, paths = _read_named(source, info, data_dir)
    else:
        name, info = source.ref, source.info
        sentences, path = source.read()
        paths = [path]
    if limit is not None:
        sentences = sentences[:limit]
    sentences, repaired, scheme = _repair_gold(sentences, name)
    mapping = resolve_label_map(info, label_map)
    dropped: Counter = Counter()
    entities: Counter = Counter()
    out = []
    for sent in sentences:
        tags = map_types(sent.tags, mapping, dropped) if mapping else list(sent.tags)
        if keep_types is not None:
            tags = map_types(tags, {t: None for t in _types_in(tags) if t not in keep_types}, dropped)
        entities.update(split_tag(t)[1] for t in tags if t.startswith("B-"))
        removed = _removed_spans(sent.tags, tags) if labelled else ()
        out.append(sent.with_tags(tags if labelled else None, removed))
    stats = SplitStats(
        name,
        "+".join(paths),
        len(out),
        sum(len(s) for s in out),
        dict(entities),
        dict(dropped),
        mapping,
        repaired,
        scheme,
    )
    if dropped:
        log.info("%s: label mapping dropped entities %s (kept %s)", name, dict(dropped), dict(entities))
    return out, stats


def _read_named(
    ref: DataRef, info: DatasetInfo, data_dir: str | Path | None
) -> tuple[list[Sentence], list[str]]:
    """The sentences of a named dataset's split and the files they came from."""
    allowed = allowed_tags(info.types)
    lang = ref.lang or info.fixed_lang or ""
    sentences, paths = [], []
    # "train+dev" concatenates splits (e.g. WikiANN yor, whose only labelled text is train and dev)
    for part in ref.split.split("+"):
        part_ref = DataRef(ref.dataset, ref.lang, part, ref.subset)
        paths.append(str(split_path(part_ref, data_dir)))
        sentences += read_conll(
            paths[-1], allowed_tags=allowed, id_prefix=str(part_ref), lang=lang, domain=info.domain
        )
    return sentences, paths


def detect_scheme(sentences: Sequence[Sentence]) -> str:
    """``IOB1`` when more entities begin with ``I-`` than with ``B-`` (IOB1 uses ``B-`` only between two
    adjacent entities of one type), else ``IOB2``."""
    starts = Counter()
    for sent in sentences:
        prev = None
        for tag in sent.tags or ():
            prefix, etype = split_tag(tag)
            if etype is not None and (prefix == "B" or etype != prev):
                starts[prefix] += 1
            prev = etype
    return "IOB1" if starts["I"] > starts["B"] else "IOB2"


def _repair_gold(sentences: list[Sentence], ref: str) -> tuple[list[Sentence], int, str]:
    """Read gold tags the way conlleval and seqeval's default mode do: an ``I-X`` that cannot continue an
    entity (after ``O`` or another type) begins one. Rewritten as ``B-X`` here, so that the strict scorer
    counts the entity instead of silently ignoring it; the number of tags changed is returned for the report.
    An IOB1 file (entities begin with ``I-``) is converted by the same rule and reported."""
    if not sentences or sentences[0].tags is None:
        return sentences, 0, "IOB2"
    scheme = detect_scheme(sentences)
    out, changed = [], 0
    for sent in sentences:
        tags, n = repair_iob2(sent.tags)
        changed += n
        out.append(sent.with_tags(tags) if n else sent)
    if scheme == "IOB1":
        log.warning(
            "%s looks like IOB1 (entities begin with I-): converted to IOB2, %d tags changed", ref, changed
        )
    elif changed:
        log.warning(
            "%s: %d gold tags I-X without a preceding B-X/I-X read as B-X (entity starts), as conlleval does",
            ref,
            changed,
        )
    return out, changed, scheme


def _removed_spans(original: Sequence[str], mapped: Sequence[str]) -> tuple[Span, ...]:
    """Entities of the (repaired IOB2) ``original`` tags that the mapping turned into ``O`` entirely.

    A mapping renames or drops whole entities and keeps their prefixes, so an original entity either keeps
    its boundaries under a new type or becomes all ``O``.
    """
    return tuple(s for s in tags_to_spans(original) if all(t == "O" for t in mapped[s.start : s.end]))


def _types_in(tags: Sequence[str]) -> set[str]:
    return {t for tag in tags if (t := split_tag(tag)[1]) is not None}
