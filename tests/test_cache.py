"""Stage cache: keys, atomic entries, verification and rebuilding of corrupt or incomplete entries."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from xner.pipeline.cache import (
    StageCache,
    dump_json,
    dump_jsonl,
    input_hash,
    load_json,
    load_jsonl,
    strings_to_records,
)
from xner.types import Sentence

CONFIG = {"pair": "en-es", "markup": "none", "batch": [1, 2]}


def _key(**over):
    parts = dict(stage="translate", version="1", config=CONFIG, upstream=None, input_hash=input_hash(["a"]))
    parts.update(over)
    return StageCache.key(**parts)


def test_key_changes_with_every_part():
    base = _key()
    assert base == _key(config={"batch": [1, 2], "markup": "none", "pair": "en-es"})  # key order irrelevant
    assert len(base) == 64
    changed = [
        _key(stage="align"),
        _key(version="2"),
        _key(config={**CONFIG, "pair": "en-ca"}),
        _key(upstream="0" * 64),
        _key(input_hash=input_hash(["b"])),
    ]
    assert len({base, *changed}) == 6


def test_input_hash_of_sentences_and_strings():
    s1 = Sentence(["EU", "rejects"], ["B-ORG", "O"], id="x:0", lang="eng")
    s2 = Sentence(["EU", "rejects"], ["B-ORG", "O"], id="x:0", lang="eng", meta={"note": 1})
    assert input_hash([s1]) == input_hash([s2])  # meta is not content
    assert input_hash([s1]) != input_hash([s1.with_tags(["O", "O"])])
    assert input_hash(["ab", "c"]) != input_hash(["a", "bc"])
    assert input_hash([]) != input_hash([""])
    assert input_hash(x for x in ["a", "b"]) == input_hash(["a", "b"])
    with pytest.raises(TypeError, match="Cannot put a object"):
        StageCache.key("s", "1", {"x": object()}, None, "h")


def _counting_build(value):
    calls = []

    def build():
        calls.append(1)
        return value

    return build, calls


def test_get_or_build_builds_once_and_returns_key(tmp_path: Path):
    cache = StageCache(tmp_path)
    records = [{"text": "hola", "n": 1}, {"text": "adiós", "n": 2}]
    build, calls = _counting_build(records)
    value, key = cache.get_or_build(
        "translate", "1", CONFIG, None, input_hash(["x"]), build, dump_jsonl, load_jsonl
    )
    assert value == records and len(calls) == 1 and cache.exists(key) and cache.exists(key, verify=True)
    again, key2 = cache.get_or_build(
        "translate", "1", CONFIG, None, input_hash(["x"]), build, dump_jsonl, load_jsonl
    )
    assert again == records and key2 == key and len(calls) == 1
    desc = cache.describe(key)
    assert (
        desc["stage"] == "translate" and desc["config"] == CONFIG and desc["files"] == 1 and desc["bytes"] > 0
    )
    json.dumps(desc)
    # The key is the upstream of the next stage.
    _, key3 = cache.get_or_build(
        "align", "1", {}, key, input_hash(["x"]), lambda: [1, 2], dump_json, load_json
    )
    assert cache.describe(key3)["upstream"] == key
    assert not cache.exists("f" * 64)
    with pytest.raises(FileNotFoundError):
        cache.describe("f" * 64)


def _entry(cache: StageCache, build_value=None):
    build, calls = _counting_build(build_value or [{"a": 1}, {"a": 2}])
    args = ("project", "3", {"k": 1}, None, input_hash([1]), build, dump_jsonl, load_jsonl)
    return args, calls


@pytest.mark.parametrize("damage", ["modify", "truncate", "delete", "extra", "no_manifest", "bad_manifest"])
def test_corrupt_entry_is_detected_and_rebuilt(tmp_path: Path, caplog, damage: str):
    cache = StageCache(tmp_path)
    args, calls = _entry(cache)
    value, key = cache.get_or_build(*args)
    data = cache.path(key) / "data.jsonl"
    if damage == "modify":
        data.write_text(data.read_text().replace('"a": 1', '"a": 7'))
    elif damage == "truncate":
        data.write_bytes(data.read_bytes()[:5])
    elif damage == "delete":
        data.unlink()
    elif damage == "extra":
        (cache.path(key) / "stray.txt").write_text("x")
    elif damage == "no_manifest":  # a half-written entry
        (cache.path(key) / "manifest.json").unlink()
    else:
        (cache.path(key) / "manifest.json").write_text("{not json")
    assert not cache.exists(key, verify=True)
    with caplog.at_level(logging.WARNING, logger="xner.store"):
        again, key2 = cache.get_or_build(*args)
    assert again == value and key2 == key and len(calls) == 2
    assert any(key in r.getMessage() and "corrupt" in r.getMessage() for r in caplog.records)
    assert cache.exists(key, verify=True)
    assert cache.get_or_build(*args)[0] == value and len(calls) == 2


def test_build_or_dump_failure_leaves_no_entry(tmp_path: Path):
    cache = StageCache(tmp_path)

    def boom():
        raise RuntimeError("build failed")

    with pytest.raises(RuntimeError, match="build failed"):
        cache.get_or_build("s", "1", {}, None, "h", boom, dump_jsonl, load_jsonl)

    def bad_dump(value, directory):
        (directory / "part.jsonl").write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        cache.get_or_build("s", "1", {}, None, "h", lambda: [{"a": 1}], bad_dump, load_jsonl)
    key = StageCache.key("s", "1", {}, None, "h")
    assert not cache.path(key).exists() and not cache.exists(key)
    assert list(tmp_path.iterdir()) == []  # no temporary directories left either


def test_load_error_names_the_entry(tmp_path: Path):
    cache = StageCache(tmp_path)
    cache.get_or_build("s", "1", {}, None, "h", lambda: [{"a": 1}], dump_jsonl, load_jsonl)

    def load(directory):
        raise KeyError("new_field")

    with pytest.raises(KeyError) as info:
        cache.get_or_build("s", "1", {}, None, "h", lambda: [], dump_jsonl, load)
    assert any("bump its version" in note for note in info.value.__notes__)


def test_jsonl_helpers(tmp_path: Path):
    dump_jsonl(strings_to_records(["a", "é"]), tmp_path)
    assert load_jsonl(tmp_path) == [{"text": "a"}, {"text": "é"}]
    (tmp_path / "bad.jsonl").write_text('{"a": 1}\n[1]\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: expected a JSON object"):
        load_jsonl(tmp_path, "bad.jsonl")


def test_concurrent_writer_of_the_same_entry(tmp_path: Path):
    cache = StageCache(tmp_path)
    inner_args = ("s", "1", {}, None, "h", lambda: [{"by": "other"}], dump_jsonl, load_jsonl)

    def build():
        # Another process finishes the same entry while this build runs.
        cache.get_or_build(*inner_args)
        return [{"by": "me"}]

    value, key = cache.get_or_build("s", "1", {}, None, "h", build, dump_jsonl, load_jsonl)
    assert value == [{"by": "me"}]
    assert cache.exists(key, verify=True) and load_jsonl(cache.path(key)) == [{"by": "other"}]
    assert [p.name for p in tmp_path.iterdir()] == [key]


def test_entries_written_before_the_shared_store_stay_readable(tmp_path: Path):
    """Entries of the old StageCache (compact canonical manifest) are hits, not rebuilds."""
    import json

    from xner.pipeline.cache import canonical_json

    cache = StageCache(tmp_path)
    args, calls = _entry(cache)
    _, key = cache.get_or_build(*args)
    manifest = cache.path(key) / "manifest.json"
    manifest.write_text(canonical_json(json.loads(manifest.read_text())))  # the old on-disk form
    assert cache.get_or_build(*args)[0] == [{"a": 1}, {"a": 2}] and len(calls) == 1


def test_one_store_and_one_checksum_for_both_caches():
    import xner.distill.teacher_cache as teacher_cache
    import xner.pipeline.cache as stage_cache
    import xner.store

    assert stage_cache.file_sha256 is teacher_cache.file_sha256 is xner.store.file_sha256
    assert stage_cache.Store is teacher_cache.Store is xner.store.Store
