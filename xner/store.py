"""One content-addressed store: directories of files checked against a manifest, written atomically.

An entry is a directory ``root/<name>/`` holding whatever files its writer puts there plus ``manifest.json``:
the writer's own fields and ``files``, every file's size and sha256. Entries are filled in a temporary
directory beside the final one (``root/.tmp-*``) and moved into place with :func:`os.replace`, so readers
never see half an entry; temporary directories of killed writers are safe to delete. :meth:`Store.verify`
checks an entry against its manifest (missing, extra, resized or modified files; a missing, unreadable or
invalid manifest) and :meth:`Store.remove` logs why an entry is broken and deletes it, so the caller rebuilds
it. The stage cache (:mod:`xner.pipeline.cache`) and the teacher cache (:mod:`xner.distill.teacher_cache`)
are both thin users of this module: they choose the names (keys) and what goes into an entry.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"

__all__ = ["MANIFEST", "CorruptEntry", "Store", "file_sha256", "file_records"]


def file_sha256(path: str | Path, chunk: int = 1 << 22) -> str:
    """sha256 of a file's bytes (read in chunks, so large arrays do not fill memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def file_records(directory: Path) -> dict[str, dict[str, Any]]:
    """``{relative path: {size, sha256}}`` of every file under ``directory`` (the manifest's ``files``)."""
    directory = Path(directory)
    return {
        p.relative_to(directory).as_posix(): {"size": p.stat().st_size, "sha256": file_sha256(p)}
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


class CorruptEntry(ValueError):
    """An entry failed verification; the message says what was wrong (callers log it and rebuild)."""


class Store:
    """A directory of checksum-verified, atomically written entries.

    Args:
        root: the directory that holds the entries.
        label: what the entries are, for log lines (``"stage cache"``, ``"teacher cache"``).
    """

    def __init__(self, root: str | Path, label: str = "store"):
        self.root = Path(root)
        self.label = label

    def path(self, name: str) -> Path:
        """Directory of the entry ``name`` (it may not exist)."""
        return self.root / name

    @staticmethod
    def read_manifest(entry: Path) -> dict[str, Any]:
        """The manifest of an entry, with a ``files`` mapping of ``{size, sha256}`` records.

        Raises:
            CorruptEntry: no manifest (an interrupted write), or one that is unreadable, not valid JSON
                (half written when a build was killed, or a full disk) or has no valid ``files``.
        """
        path = Path(entry) / MANIFEST
        if not path.is_file():
            raise CorruptEntry(f"incomplete entry: no {MANIFEST} (interrupted write?)")
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
            files = manifest["files"]
            if not isinstance(files, dict):
                raise TypeError(f"files is a {type(files).__name__}, not an object")
            for name, info in files.items():
                if not isinstance(info, dict) or not {"size", "sha256"} <= info.keys():
                    raise TypeError(f"no size and sha256 for {name}")
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as err:
            # JSONDecodeError carries no path: name the file here.
            raise CorruptEntry(f"unreadable or invalid {path}: {type(err).__name__}: {err}") from err
        return manifest

    def verify(self, entry: Path, checksums: bool = True) -> dict[str, Any]:
        """Check an entry against its manifest and return the manifest.

        Args:
            entry: the entry directory.
            checksums: also compare every file's sha256 (sizes and the file list are always checked).

        Raises:
            CorruptEntry: what is wrong with the entry.
        """
        entry = Path(entry)
        manifest = self.read_manifest(entry)
        files: dict[str, dict] = manifest["files"]
        present = {p.relative_to(entry).as_posix() for p in entry.rglob("*") if p.is_file()} - {MANIFEST}
        if missing := sorted(set(files) - present):
            raise CorruptEntry(f"missing files {missing}")
        if extra := sorted(present - set(files)):
            raise CorruptEntry(f"files not in the manifest {extra}")
        for name, info in files.items():
            size = (entry / name).stat().st_size
            if size != info["size"]:
                raise CorruptEntry(f"{name} has {size} bytes, manifest says {info['size']}")
            if checksums and file_sha256(entry / name) != info["sha256"]:
                raise CorruptEntry(f"{name} does not match its sha256 in the manifest")
        return manifest

    def is_valid(self, entry: Path, checksums: bool = True) -> bool:
        """Whether :meth:`verify` passes."""
        try:
            self.verify(entry, checksums)
        except CorruptEntry:
            return False
        return True

    def write(self, name: str, fill: Callable[[Path], Mapping[str, Any] | None]) -> dict[str, Any]:
        """Create the entry ``name`` atomically.

        Args:
            name: the entry's name (its key).
            fill: writes the entry's files into the given empty directory (any files, subdirectories allowed)
                and returns the manifest's own fields (``None``: none). ``files`` is added here.

        Returns:
            The manifest written (or, when another process wrote a valid entry of this name first, that
            entry's manifest).

        Raises:
            Whatever ``fill`` raises (no entry and no temporary directory is left behind); ValueError when
            ``fill`` writes ``manifest.json`` itself.
        """
        entry = self.path(name)
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{name[:16]}-", dir=self.root))
        try:
            fields = dict(fill(tmp) or {})
            if (tmp / MANIFEST).exists():
                raise ValueError(f"the writer of {self.label} entry {name} wrote {MANIFEST}, a reserved name")
            manifest = {**fields, "files": file_records(tmp)}
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
            try:
                os.replace(tmp, entry)
            except OSError:
                # Another process finished the same entry first (a directory cannot replace a non-empty one).
                if self.is_valid(entry):
                    log.info("%s entry %s was written concurrently; keeping that one.", self.label, entry)
                    return self.read_manifest(entry)
                self.remove(entry)
                os.replace(tmp, entry)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return manifest

    def remove(self, entry: Path, reason: str | None = None) -> None:
        """Delete an entry; with ``reason``, log a warning that it is broken and will be rebuilt."""
        entry = Path(entry)
        if reason is not None:
            log.warning(
                "%s entry %s is corrupt (%s); deleting it so it is rebuilt.", self.label, entry, reason
            )
        # Rename first so other readers never see a half-deleted entry under its name.
        trash = entry.with_name(f".tmp-del-{entry.name[:16]}-{os.getpid()}-{time.time_ns()}")
        try:
            os.replace(entry, trash)
        except FileNotFoundError:  # another process removed it first
            return
        shutil.rmtree(trash, ignore_errors=True)
