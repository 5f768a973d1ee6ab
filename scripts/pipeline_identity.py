"""Byte-identity harness for the projection pipeline: one JSON fingerprint per projection method.

For every method the checkout declares (``METHODS`` in ``xner.pipeline.run``) it runs

- translate-train on the first ``--train-limit`` CoNLL-2003 English train sentences -> Spanish (Apertium),
  from ``configs/pipeline/spa_translate_train.yaml``;
- translate-test on CoNLL-2002 Spanish test, from ``configs/pipeline/spa_translate_test.yaml``
  (``markers`` is translate-train only),

with a FRESH stage cache (a new temporary directory per invocation, so nothing is read from an old cache;
methods of one invocation share it, which is what a real sweep does). For each run it records the sha256 of
the projected CoNLL file and the run's ``meta.json`` without the fields that legitimately vary (timings, the
checkpoint path). Comparing two checkouts:

    python scripts/pipeline_identity.py --repo /tmp/base --out before.json --source-model <ckpt>
    python scripts/pipeline_identity.py --repo . --out after.json --source-model <ckpt>
    python scripts/pipeline_identity.py --diff before.json after.json

The methods that need a target-side NER model (matching with an ``ner`` weight, and every translate-test
run, which labels the English translation) use ``--source-model``: the checkpoint of a trained xner tagger.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Fields of meta.json that differ between identical runs: wall-clock timings and the checkpoint's path.
VOLATILE = ("timings_s",)
SPEC_VOLATILE = ("source_model",)


def _fingerprint(output: Any, write_conll: Any, tmp: Path) -> dict[str, Any]:
    path = tmp / "projected.conll"
    write_conll(path, output.sentences)
    meta = {k: v for k, v in output.meta.items() if k not in VOLATILE}
    if "spec" in meta:
        meta["spec"] = {k: v for k, v in meta["spec"].items() if k not in SPEC_VOLATILE}
    # round-trip through JSON so the fingerprint compares what meta.json would hold
    meta = json.loads(json.dumps(meta, default=str, sort_keys=True))
    return {
        "conll_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "sentences": len(output.sentences),
        "meta": meta,
    }


def run_all(
    repo: Path, data_dir: str | None, source_model: str, train_limit: int, methods: list[str] | None
) -> dict[str, Any]:
    """Run every (direction, method) of the checkout at ``repo`` with a fresh cache; return the fingerprints."""
    repo = repo.resolve()
    sys.path.insert(0, str(repo))  # this checkout's xner, whatever is installed in the venv
    os.chdir(repo)
    import xner  # noqa: PLC0415
    from xner.io.conll import write_conll  # noqa: PLC0415
    from xner.pipeline.cache import StageCache  # noqa: PLC0415
    from xner.pipeline.run import METHODS, Pipeline, load_spec  # noqa: PLC0415

    assert Path(xner.__file__).resolve().is_relative_to(repo), f"imported {xner.__file__}, not {repo}"
    runs = {
        "translate_train": ("configs/pipeline/spa_translate_train.yaml", [f"limit={train_limit}"]),
        "translate_test": ("configs/pipeline/spa_translate_test.yaml", []),
    }
    result: dict[str, Any] = {"methods": list(METHODS), "runs": {}}
    with tempfile.TemporaryDirectory(prefix="xner-identity-") as tmp_name:
        tmp = Path(tmp_name)
        cache = StageCache(tmp / "stages")
        for direction, (config, extra) in runs.items():
            for method in METHODS:
                if methods and method not in methods:
                    continue
                if method == "markers" and direction == "translate_test":
                    continue
                overrides = [f"method={method}", f"source_model={source_model}", *extra]
                start = time.perf_counter()
                pipeline = Pipeline(load_spec(config, overrides), data_dir, cache=cache, progress=False)
                output = pipeline.run()
                name = f"{direction}/{method}"
                result["runs"][name] = _fingerprint(output, write_conll, tmp)
                print(f"{name}: {time.perf_counter() - start:.0f}s", file=sys.stderr, flush=True)
    return result


def diff(before: dict, after: dict, path: str = "") -> list[str]:
    """Every leaf that differs between two fingerprints, as ``path: before -> after`` lines."""
    if isinstance(before, dict) and isinstance(after, dict):
        out = []
        for key in sorted(set(before) | set(after)):
            sub = f"{path}.{key}" if path else str(key)
            if key not in after:
                out.append(f"{sub}: removed ({before[key]!r})")
            elif key not in before:
                out.append(f"{sub}: added ({after[key]!r})")
            else:
                out.extend(diff(before[key], after[key], sub))
        return out
    return [] if before == after else [f"{path}: {before!r} -> {after!r}"]


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", default=".", help="the checkout to run (default: the current directory)")
    parser.add_argument("--out", help="write the fingerprint JSON here")
    parser.add_argument("--data-dir", default=None, help="data root (default: $XNER_DATA)")
    parser.add_argument(
        "--source-model", help="checkpoint of a trained xner tagger (translate-test, ner score)"
    )
    parser.add_argument("--train-limit", type=int, default=500)
    parser.add_argument("--methods", nargs="*", help="only these methods (default: all of METHODS)")
    parser.add_argument("--diff", nargs=2, metavar=("BEFORE", "AFTER"), help="compare two fingerprint files")
    args = parser.parse_args(argv)
    if args.diff:
        before, after = (json.loads(Path(p).read_text()) for p in args.diff)
        lines = diff(before, after)
        print("\n".join(lines) if lines else "identical")
        return 1 if lines else 0
    if not args.source_model or not args.out:
        parser.error("--source-model and --out are needed to run")
    source_model = str(Path(args.source_model).resolve())
    out = Path(args.out).resolve()
    result = run_all(Path(args.repo), args.data_dir, source_model, args.train_limit, args.methods)
    out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
