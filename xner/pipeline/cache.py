"""Content-addressed cache of pipeline stages (translate, align, project).

An entry is identified by ``sha256(canonical JSON of {stage, version, config, upstream, input_hash})``:

- ``stage``: the stage name, e.g. ``"translate"``;
- ``version``: the stage code's version string — bump it when the code changes its output;
- ``config``: the resolved options of the stage (a mapping of JSON-able values);
- ``upstream``: the key of the entry this stage consumed (``None`` for the first stage), so a change
  anywhere upstream changes every key downstream;
- ``input_hash``: :func:`input_hash` of the stage's input data.

Layout: ``root/<key>/`` holds the files written by the stage's ``dump`` plus ``manifest.json`` (the key's
parts, creation time, build time, and every file's size and sha256). Entries are built in a temporary
directory beside the final one and moved into place with :func:`os.replace`, so readers never see half an
entry. On read the manifest is verified; a missing manifest, a missing, extra, resized or modified file is
logged as a warning naming the entry and what was wrong, and the entry is deleted and rebuilt.
Temporary directories of killed builds (``root/.tmp-*``) are left behind and are safe to delete.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from xner.paths import cache_dir
from xner.types import Sentence, Span

log = logging.getLogger(__name__)

T = TypeVar("T")

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1

__all__ = [
    "StageCache",
    "canonical_json",
    "dump_json",
    "dump_jsonl",
    "input_hash",
    "load_json",
    "load_jsonl",
    "strings_to_records",
]


def _jsonable(obj: Any) -> Any:
    """``json.dumps`` fallback for the value types found in configs and pipeline data."""
    if isinstance(obj, Sentence):
        # meta is free-form bookkeeping and excluded from equality, so it is excluded here too.
        return {"tokens": obj.tokens, "tags": obj.tags, "id": obj.id, "lang": obj.lang, "domain": obj.domain}
    if isinstance(obj, Span):
        return [obj.start, obj.end, obj.label]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, set | frozenset):
        return sorted(obj, key=canonical_json)
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", None) == 0:
        return obj.item()  # numpy / torch scalars
    if hasattr(obj, "tolist") and callable(obj.tolist):
        return obj.tolist()  # numpy arrays
    try:  # OmegaConf containers, without importing omegaconf for everyone
        from omegaconf import DictConfig, ListConfig, OmegaConf  # noqa: PLC0415

        if isinstance(obj, DictConfig | ListConfig):
            return OmegaConf.to_container(obj, resolve=True)
    except ImportError:
        pass
    if isinstance(obj, Mapping):
        return dict(obj)
    raise TypeError(
        f"Cannot put a {type(obj).__name__} into a cache key ({obj!r:.80}); convert it to JSON types "
        "(str, int, float, bool, None, list, dict) first."
    )


def canonical_json(obj: Any) -> str:
    """Key-sorted compact JSON (sentences, spans, paths, sets, numpy values, OmegaConf configs accepted).

    Raises:
        TypeError: a value that has no canonical JSON form.
    """
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_jsonable)


def input_hash(obj: Iterable[Any] | Any) -> str:
    """sha256 of a stage's input: a list of sentences, strings, dicts, ... (streamed, item by item).

    Sentences hash by tokens, tags, id, lang and domain (not ``meta``). A non-list value hashes by its
    canonical JSON.
    """
    digest = hashlib.sha256()
    if isinstance(obj, str | bytes | Mapping) or not isinstance(obj, Iterable):
        digest.update(b"V" + canonical_json(obj).encode())
        return digest.hexdigest()
    digest.update(b"L")
    count = 0
    for item in obj:
        data = canonical_json(item).encode()
        # Length-prefixed so item boundaries are unambiguous.
        digest.update(len(data).to_bytes(8, "little") + data)
        count += 1
    digest.update(b"N" + str(count).encode())
    return digest.hexdigest()


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    """sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


class CorruptEntry(Exception):
    """An entry failed verification (internal: it is logged and rebuilt, never raised to callers)."""


class StageCache:
    """Directory of content-addressed, atomically written, checksum-verified stage outputs.

    Args:
        root: cache directory (default ``xner.paths.cache_dir() / "stages"``).
    """

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else cache_dir() / "stages"

    @staticmethod
    def key(
        stage: str, version: str, config: Mapping[str, Any], upstream: str | None, input_hash: str
    ) -> str:
        """The entry key: sha256 of the canonical JSON of all five parts.

        Raises:
            TypeError: ``config`` holds a value with no canonical JSON form.
        """
        if not stage or not isinstance(stage, str):
            raise ValueError(f"stage must be a non-empty string, got {stage!r}")
        parts = {
            "stage": stage,
            "version": str(version),
            "config": config,
            "upstream": upstream,
            "input_hash": input_hash,
        }
        return hashlib.sha256(canonical_json(parts).encode()).hexdigest()

    input_hash = staticmethod(input_hash)

    def path(self, key: str) -> Path:
        """Directory of an entry (it may not exist)."""
        if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
            raise ValueError(f"not a stage cache key (64 hex digits): {key!r}")
        return self.root / key

    def exists(self, key: str, verify: bool = False) -> bool:
        """Whether a complete entry exists (its manifest is present; ``verify`` also checks checksums)."""
        entry = self.path(key)
        if not (entry / MANIFEST).is_file():
            return False
        if verify:
            try:
                self._verify(entry)
            except CorruptEntry:
                return False
        return True

    def describe(self, key: str) -> dict[str, Any]:
        """A JSON-able summary of an entry for ``meta.json``: its key parts, creation time, files and bytes.

        Raises:
            FileNotFoundError: no complete entry with this key.
        """
        entry = self.path(key)
        try:
            manifest = json.loads((entry / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise FileNotFoundError(f"No complete stage cache entry {entry} ({err})") from err
        files = manifest.get("files", {})
        return {
            "key": key,
            "path": str(entry),
            **{k: manifest.get(k) for k in ("stage", "version", "config", "upstream", "input_hash")},
            "created": manifest.get("created"),
            "build_seconds": manifest.get("build_seconds"),
            "files": len(files),
            "bytes": sum(f["size"] for f in files.values()),
        }

    def get_or_build(
        self,
        stage: str,
        version: str,
        config: Mapping[str, Any],
        upstream: str | None,
        input_hash: str,
        build: Callable[[], T],
        dump: Callable[[T, Path], None],
        load: Callable[[Path], T],
    ) -> tuple[T, str]:
        """Load the entry for these parts, or build, store and return it.

        Args:
            stage, version, config, upstream, input_hash: the key's parts (see :meth:`key`).
            build: computes the value (called only on a miss).
            dump: writes the value into the given (empty) directory; any files, subdirectories allowed.
            load: reads the value back from the entry directory.

        Returns:
            ``(value, key)``; pass the key as ``upstream`` of the next stage. On a miss the returned value is
            what ``build`` returned (not reloaded).

        Raises:
            Whatever ``build`` or ``dump`` raise (no entry is left behind); whatever ``load`` raises on a
            verified entry (a bug or an unbumped ``version``: the error names the entry).
        """
        key = self.key(stage, version, config, upstream, input_hash)
        entry = self.path(key)
        if entry.exists():
            try:
                self._verify(entry)
            except CorruptEntry as err:
                log.warning(
                    "Stage cache entry %s (%s) is corrupt: %s; deleting and rebuilding.", entry, stage, err
                )
                self._remove(entry)
            else:
                log.info("Stage %s: cache hit %s", stage, entry)
                return self._load(entry, load), key
        log.info("Stage %s: building %s", stage, entry)
        start = time.perf_counter()
        value = build()
        build_seconds = time.perf_counter() - start
        parts = {"stage": stage, "version": str(version), "config": config, "upstream": upstream}
        self._store(entry, value, dump, {**parts, "input_hash": input_hash}, build_seconds)
        return value, key

    # ------------------------------------------------------------------------------------------ internals

    @staticmethod
    def _load(entry: Path, load: Callable[[Path], T]) -> T:
        try:
            return load(entry)
        except Exception as err:
            err.add_note(
                f"while loading verified stage cache entry {entry}; if the stage's output format changed, "
                "bump its version (or delete the entry)."
            )
            raise

    def _store(
        self, entry: Path, value: T, dump: Callable[[T, Path], None], parts: dict, build_seconds: float
    ) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{entry.name[:16]}-", dir=self.root))
        try:
            dump(value, tmp)
            files = sorted(p for p in tmp.rglob("*") if p.is_file())
            if any(p.name == MANIFEST and p.parent == tmp for p in files):
                raise ValueError(f"dump() wrote {MANIFEST}, a name the stage cache reserves for itself")
            manifest = {
                "format": MANIFEST_FORMAT,
                "key": entry.name,
                **parts,
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
                "build_seconds": round(build_seconds, 3),
                "files": {
                    p.relative_to(tmp).as_posix(): {"size": p.stat().st_size, "sha256": file_sha256(p)}
                    for p in files
                },
            }
            (tmp / MANIFEST).write_text(canonical_json(manifest), encoding="utf-8")
            try:
                os.replace(tmp, entry)
            except OSError:
                # Another process finished the same entry first (a directory cannot replace a non-empty one).
                if self.exists(entry.name, verify=True):
                    log.info("Stage cache entry %s was written concurrently; keeping that one.", entry)
                    return
                self._remove(entry)
                os.replace(tmp, entry)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    @staticmethod
    def _verify(entry: Path) -> None:
        manifest_path = entry / MANIFEST
        if not manifest_path.is_file():
            raise CorruptEntry(f"incomplete entry: no {MANIFEST}")
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            files: dict[str, dict] = manifest["files"]
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as err:
            raise CorruptEntry(f"unreadable {MANIFEST} ({err})") from err
        if manifest.get("key") != entry.name:
            raise CorruptEntry(f"{MANIFEST} names key {manifest.get('key')!r}")
        present = {p.relative_to(entry).as_posix() for p in entry.rglob("*") if p.is_file()} - {MANIFEST}
        if missing := sorted(set(files) - present):
            raise CorruptEntry(f"missing files {missing}")
        if extra := sorted(present - set(files)):
            raise CorruptEntry(f"files not in the manifest {extra}")
        for name, info in files.items():
            path = entry / name
            size = path.stat().st_size
            if size != info["size"]:
                raise CorruptEntry(f"{name} has {size} bytes, manifest says {info['size']}")
            if file_sha256(path) != info["sha256"]:
                raise CorruptEntry(f"{name} does not match its sha256 in the manifest")

    def _remove(self, entry: Path) -> None:
        # Rename first so other readers never see a half-deleted entry under the key's name.
        trash = self.root / f".tmp-del-{entry.name[:16]}-{os.getpid()}-{time.time_ns()}"
        try:
            os.replace(entry, trash)
        except FileNotFoundError:
            return
        shutil.rmtree(trash, ignore_errors=True)


# ----------------------------------------------------------------------------------------- dump / load


def dump_jsonl(records: Iterable[Mapping[str, Any]], directory: Path, name: str = "data.jsonl") -> None:
    """Write dicts as JSON lines to ``directory / name`` (a ``dump`` for :meth:`StageCache.get_or_build`)."""
    with (Path(directory) / name).open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False, default=_jsonable) + "\n")


def load_jsonl(directory: Path, name: str = "data.jsonl") -> list[dict[str, Any]]:
    """Read the dicts written by :func:`dump_jsonl`.

    Raises:
        ValueError: a line that is not a JSON object (file and line number given).
    """
    path = Path(directory) / name
    records: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{line_no}: not valid JSON ({err})") from err
            if not isinstance(record, dict):
                raise ValueError(f"{path}:{line_no}: expected a JSON object, found {type(record).__name__}")
            records.append(record)
    return records


def dump_json(value: Any, directory: Path, name: str = "data.json") -> None:
    """Write any JSON-able value to ``directory / name``."""
    (Path(directory) / name).write_text(
        json.dumps(value, ensure_ascii=False, default=_jsonable), encoding="utf-8"
    )


def load_json(directory: Path, name: str = "data.json") -> Any:
    """Read the value written by :func:`dump_json`."""
    return json.loads((Path(directory) / name).read_text(encoding="utf-8"))


def strings_to_records(texts: Sequence[str], field: str = "text") -> list[dict[str, str]]:
    """``["a", "b"]`` -> ``[{"text": "a"}, {"text": "b"}]`` (e.g. translations for :func:`dump_jsonl`)."""
    return [{field: t} for t in texts]
