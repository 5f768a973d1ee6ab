"""Named datasets declared in YAML, so that adding one needs no code change.

Each dataset is one file ``<name>.yaml`` with the fields of :class:`DatasetInfo`::

    # configs/datasets/mydata.yaml
    folder: mydata/{lang}          # under the data dir (paths.data_dir), or absolute; {lang}/{subset} filled in
    types: [PER, ORG, LOC, DATE]   # entity types the files may contain (null: any well-formed tag)
    domain: news
    label_map: {DATE: null}        # onto PER/ORG/LOC; null (or O) drops a type

Files are read from ``configs/datasets/`` of the project, then from every folder (or single file) listed in
the environment variable ``XNER_DATASETS`` (separated like ``PATH``); a later declaration of a name replaces
an earlier one. :func:`register_dataset` adds one from a path or a mapping at run time: the DataModule does so
for the ``data.datasets`` key of a Hydra config, so a dataset can also be declared inline in an experiment.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import string
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from xner.paths import PROJECT_ROOT

log = logging.getLogger(__name__)

BUILTIN_DIR = PROJECT_ROOT / "configs" / "datasets"
ENV_VAR = "XNER_DATASETS"

_FIELDS = ("name", "folder", "types", "domain", "label_map", "hf_path", "fixed_lang")
_REQUIRED = ("folder", "types")
_TAG_LIKE = re.compile(r"^[BIESL]-")


class DatasetConfigError(ValueError):
    """A dataset declaration (YAML file, config mapping or split spec) is invalid; the message names the
    source, the field and what to write instead."""

    def __init__(self, source: str, field_name: str | None, message: str):
        where = f"{source}: field {field_name!r}" if field_name else source
        super().__init__(f"{where}: {message}")
        self.source, self.field = source, field_name


@dataclass(frozen=True)
class DatasetInfo:
    """What xner knows about one named dataset.

    Attributes:
        name: registry key.
        folder: path template under the data dir (or absolute); ``{lang}`` and ``{subset}`` are filled in.
        types: entity types the files may contain; ``None`` accepts any well-formed tag (fine-grained sets).
        domain: the text domain, used in reports.
        label_map: the default mapping onto the shared PER/ORG/LOC types; unmapped types outside them are
            dropped.
        hf_path: the HF hub dataset for users with a network (``None`` when there is none).
        fixed_lang: the only language (datasets without language folders).
    """

    name: str
    folder: str
    types: tuple[str, ...] | None
    domain: str
    label_map: Mapping[str, str | None] = field(default_factory=dict)
    hf_path: str | None = None
    fixed_lang: str | None = None


_REQUIRED_HINTS = {
    "folder": "give the folder of the split files, e.g. folder: mydata/{lang} (under paths.data_dir) or an "
    "absolute path; the files in it are named <split>.txt",
    "types": "list the entity types the files may contain, e.g. types: [PER, ORG, LOC], or write "
    "types: null to accept any well-formed tag",
    "path": "give the CoNLL file, e.g. path: my/test.conll (relative to the working directory)",
    "hf": "give a HF hub dataset name or a folder written by datasets' save_to_disk",
}


def check_keys(spec: Mapping, source: str, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> None:
    """Raise :class:`DatasetConfigError` for keys outside ``allowed`` and for missing ``required`` ones."""
    for key in spec:
        if key not in allowed:
            hint = f" (did you mean {close!r}?)" if (close := _closest(str(key), allowed)) else ""
            raise DatasetConfigError(source, str(key), f"unknown key{hint}; allowed keys: {list(allowed)}")
    for key in required:
        if key not in spec:
            raise DatasetConfigError(source, key, f"missing; {_REQUIRED_HINTS[key]}")


def _closest(key: str, allowed: tuple[str, ...]) -> str | None:
    found = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    return found[0] if found else None


def check_types(value: Any, source: str) -> tuple[str, ...] | None:
    """``types``: a list of entity type names (``PER``, not ``B-PER``), or ``None`` for any tag."""
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise DatasetConfigError(
            source, "types", f"must be a list such as [PER, ORG, LOC] or null, got {value!r}"
        )
    types = tuple(value)
    for t in types:
        if not isinstance(t, str) or not t or t == "O" or any(c.isspace() for c in t):
            raise DatasetConfigError(source, "types", f"{t!r} is not an entity type name such as PER")
        if _TAG_LIKE.match(t):
            raise DatasetConfigError(
                source, "types", f"lists entity types, not tags: write {t[2:]!r}, not {t!r}"
            )
    if len(set(types)) != len(types):
        raise DatasetConfigError(source, "types", f"lists a type twice: {list(types)}")
    return types


def check_label_map(value: Any, source: str, types: tuple[str, ...] | None) -> dict[str, str | None]:
    """``label_map``: ``{source type: shared type, or null/O to drop it}``; keys must be declared types."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise DatasetConfigError(
            source, "label_map", f"must be a mapping such as {{PERS: PER, MISC: null}}, got {value!r}"
        )
    out: dict[str, str | None] = {}
    for key, new in value.items():
        if not isinstance(key, str) or (new is not None and (not isinstance(new, str) or not new)):
            raise DatasetConfigError(
                source, "label_map", f"{key!r}: {new!r} must map a type name to a name or null"
            )
        if types is not None and key not in types:
            raise DatasetConfigError(
                source,
                "label_map",
                f"maps {key!r}, which is not in types {list(types)}; add it there or fix the name",
            )
        out[key] = new
    return out


def check_str(value: Any, source: str, name: str, *, optional: bool = True) -> str | None:
    """A plain string field (``None`` allowed when ``optional``)."""
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise DatasetConfigError(source, name, f"must be a non-empty string, got {value!r}")
    return value


def _check_folder(value: Any, source: str) -> str:
    folder = check_str(value, source, "folder", optional=False)
    try:
        names = {n for _, n, _, _ in string.Formatter().parse(folder) if n is not None}
    except ValueError as err:
        raise DatasetConfigError(
            source, "folder", f"{folder!r}: {err} (placeholders are {{lang}} and {{subset}})"
        ) from None
    if names - {"lang", "subset"}:
        raise DatasetConfigError(
            source,
            "folder",
            f"{folder!r} uses {sorted(names - {'lang', 'subset'})}; only {{lang}} and {{subset}} exist",
        )
    return folder


def dataset_from_mapping(spec: Mapping, source: str, name: str | None = None) -> DatasetInfo:
    """Validate a dataset declaration and build its :class:`DatasetInfo`.

    Args:
        spec: the declaration's fields (see :class:`DatasetInfo`; ``name`` optional).
        source: where it comes from (a file path or a config key), for error messages.
        name: the name it is declared under (file stem or config key); a ``name`` field must agree.

    Raises:
        DatasetConfigError: an unknown key, a missing ``folder`` or ``types``, or a value of the wrong kind.
    """
    if not isinstance(spec, Mapping):
        raise DatasetConfigError(
            source, None, f"a dataset declaration must be a mapping of fields, got {spec!r}"
        )
    check_keys(spec, source, _FIELDS, _REQUIRED)
    given = check_str(spec.get("name"), source, "name")
    if given and name and given != name:
        raise DatasetConfigError(
            source, "name", f"{given!r} differs from {name!r}; rename the file or drop the field"
        )
    name = given or name
    if not name or ":" in name or "." in name:
        raise DatasetConfigError(
            source, "name", f"{name!r} cannot name a dataset (no ':' or '.': refs use them)"
        )
    types = check_types(spec["types"], source)
    return DatasetInfo(
        name=name,
        folder=_check_folder(spec["folder"], source),
        types=types,
        domain=check_str(spec.get("domain"), source, "domain") or "",
        label_map=check_label_map(spec.get("label_map"), source, types),
        hf_path=check_str(spec.get("hf_path"), source, "hf_path"),
        fixed_lang=check_str(spec.get("fixed_lang"), source, "fixed_lang"),
    )


def load_dataset_file(path: str | Path) -> DatasetInfo:
    """Read and validate one dataset YAML; its name is the file stem."""
    path = Path(path)
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise DatasetConfigError(str(path), None, f"not valid YAML: {err}") from None
    return dataset_from_mapping(spec, str(path), path.stem)


def dataset_files() -> list[Path]:
    """The dataset YAMLs to read, in order: the project's ``configs/datasets/``, then ``$XNER_DATASETS``."""
    entries = [BUILTIN_DIR] + [
        Path(p).expanduser() for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p
    ]
    files: list[Path] = []
    for entry in entries:
        if entry.is_dir():
            files += sorted(entry.glob("*.yaml"))
        elif entry.is_file():
            files.append(entry)
        elif entry != BUILTIN_DIR:
            raise FileNotFoundError(f"{ENV_VAR} names {entry}, which is neither a folder nor a YAML file")
    return files


class DatasetTable(Mapping[str, DatasetInfo]):
    """The named datasets, read from YAML on first use (a read-only mapping plus :meth:`register`)."""

    def __init__(self) -> None:
        self._infos: dict[str, DatasetInfo] | None = None
        self._sources: dict[str, str] = {}

    def _table(self) -> dict[str, DatasetInfo]:
        if self._infos is None:
            infos: dict[str, DatasetInfo] = {}
            sources: dict[str, str] = {}
            for path in dataset_files():
                self._add(infos, sources, load_dataset_file(path), str(path))
            if not infos:
                log.warning("no dataset YAMLs found in %s (set %s to a folder of them)", BUILTIN_DIR, ENV_VAR)
            # set only when every file was valid: a bad file raises again on the next use, not a partial table
            self._infos, self._sources = infos, sources
        return self._infos

    @staticmethod
    def _add(infos: dict, sources: dict, info: DatasetInfo, source: str) -> None:
        old = infos.get(info.name)
        if old is not None and old != info:
            log.warning("dataset %r from %s replaces the one from %s", info.name, source, sources[info.name])
        infos[info.name] = info
        sources[info.name] = source

    def register(self, info: DatasetInfo, source: str) -> DatasetInfo:
        """Add (or replace) a dataset; registering the same declaration again changes nothing."""
        # read the YAMLs first, so that a registration is not lost when they are read
        self._add(self._table(), self._sources, info, source)
        return info

    def source(self, name: str) -> str:
        """Where a dataset was declared (file path or config key)."""
        self._table()
        return self._sources[name]

    def reload(self) -> None:
        """Forget everything registered and read the YAMLs again on next use (after changing the env var)."""
        self._infos = None

    def __getitem__(self, name: str) -> DatasetInfo:
        return self._table()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())

    def __repr__(self) -> str:
        return f"DatasetTable({sorted(self._table())})"


DATASETS = DatasetTable()


def register_dataset(
    spec: str | Path | Mapping | DatasetInfo, name: str | None = None, source: str = ""
) -> DatasetInfo:
    """Declare a dataset at run time.

    Args:
        spec: a dataset YAML path, a mapping of its fields, or a :class:`DatasetInfo`.
        name: the name for a mapping without a ``name`` field (e.g. its config key).
        source: where a mapping comes from, for error messages (default ``name``).

    Returns:
        The validated :class:`DatasetInfo`, now known to :func:`xner.data.registry.dataset_info`.
    """
    if isinstance(spec, DatasetInfo):
        return DATASETS.register(spec, source or f"<{spec.name}>")
    if isinstance(spec, str | Path):
        return DATASETS.register(load_dataset_file(spec), str(spec))
    source = source or f"dataset {name!r}"
    return DATASETS.register(dataset_from_mapping(spec, source, name), source)
