"""Content-addressed cache of pipeline stages (translate, align, project).

An entry is identified by ``sha256(canonical JSON of {stage, version, config, upstream, input_hash})``:

- ``stage``: the stage name, e.g. ``"translate"``;
- ``version``: the stage code's version string — bump it when the code changes its output;
- ``config``: the resolved options of the stage (a mapping of JSON-able values);
- ``upstream``: the key of the entry this stage consumed (``None`` for the first stage), so a change
  anywhere upstream changes every key downstream;
- ``input_hash``: :func:`input_hash` of the stage's input data.

Layout: ``root/<key>/`` holds the files written by the stage's ``dump`` plus ``manifest.json`` (the key's
parts, creation time, build time, and every file's size and sha256): an entry of the one content-addressed
store, :class:`xner.store.Store`, which writes entries atomically and verifies them. On read a missing
manifest, a missing, extra, resized or modified file is logged as a warning naming the entry and what was
wrong, and the entry is deleted and rebuilt.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from xner.io.jsonl import iter_jsonl
from xner.paths import cache_dir
from xner.store import MANIFEST, CorruptEntry, Store, file_sha256
from xner.types import Sentence, Span

log = logging.getLogger(__name__)

T = TypeVar("T")

MANIFEST_FORMAT = 1

__all__ = [
    "StageCache",
    "canonical_json",
    "dump_json",
    "dump_jsonl",
    "file_sha256",
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


class StageCache:
    """Directory of content-addressed, atomically written, checksum-verified stage outputs.

    A thin user of :class:`xner.store.Store`: this class names entries by :meth:`key` and records the key's
    parts in the manifest.

    Args:
        root: cache directory (default ``xner.paths.cache_dir() / "stages"``).
    """

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else cache_dir() / "stages"
        self.store = Store(self.root, "stage cache")

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
        return self.store.path(key)

    def exists(self, key: str, verify: bool = False) -> bool:
        """Whether a complete entry exists (its manifest is present; ``verify`` also checks checksums)."""
        entry = self.path(key)
        if not (entry / MANIFEST).is_file():
            return False
        return not verify or self._is_valid(entry)

    def describe(self, key: str) -> dict[str, Any]:
        """A JSON-able summary of an entry for ``meta.json``: its key parts, creation time, files and bytes.

        Raises:
            FileNotFoundError: no complete entry with this key.
        """
        entry = self.path(key)
        try:
            manifest = Store.read_manifest(entry)
        except CorruptEntry as err:
            raise FileNotFoundError(f"No complete stage cache entry {entry} ({err})") from err
        files = manifest["files"]
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
                self.store.remove(entry, f"stage {stage}: {err}")
            else:
                log.info("Stage %s: cache hit %s", stage, entry)
                return self._load(entry, load), key
        log.info("Stage %s: building %s", stage, entry)
        start = time.perf_counter()
        value = build()
        build_seconds = time.perf_counter() - start
        # JSON types only in the manifest (configs may hold paths, OmegaConf nodes, ...).
        parts = json.loads(
            canonical_json(
                {
                    "stage": stage,
                    "version": str(version),
                    "config": config,
                    "upstream": upstream,
                    "input_hash": input_hash,
                }
            )
        )

        def fill(directory: Path) -> dict[str, Any]:
            dump(value, directory)
            return {
                "format": MANIFEST_FORMAT,
                "key": key,
                **parts,
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
                "build_seconds": round(build_seconds, 3),
            }

        self.store.write(key, fill)
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

    def _verify(self, entry: Path) -> None:
        manifest = self.store.verify(entry)
        if manifest.get("key") != entry.name:
            raise CorruptEntry(f"{MANIFEST} names key {manifest.get('key')!r}")

    def _is_valid(self, entry: Path) -> bool:
        try:
            self._verify(entry)
        except CorruptEntry:
            return False
        return True


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
    return [record for _, record in iter_jsonl(Path(directory) / name)]


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
