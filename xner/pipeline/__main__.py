"""Run a projection pipeline from the command line.

    python -m xner.pipeline configs/pipeline/spa_translate_test.yaml method=heuristic limit=500
    python -m xner.pipeline configs/pipeline/spa_translate_train.yaml method=markers --out data/projected/spa

Arguments after the spec file are ``key=value`` overrides of its fields (OmegaConf dotlist). The stages run
(or are read from the stage cache), the record is printed as JSON, and with ``--out`` the projected sentences
are written as CoNLL (``<out>/<method>.conll``) beside ``<out>/<method>.meta.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from xner.io.conll import write_conll
from xner.pipeline.run import Pipeline, load_spec


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(prog="python -m xner.pipeline", description=__doc__.split("\n\n")[0])
    parser.add_argument("spec", help="a pipeline YAML (fields of xner.pipeline.run.PipelineSpec)")
    parser.add_argument(
        "overrides", nargs="*", help="key=value overrides, e.g. method=matching_ilp limit=200"
    )
    parser.add_argument("--out", help="write the projected sentences (CoNLL) and meta.json here")
    parser.add_argument("--data-dir", default=None, help="data root (default: $XNER_DATA or ../shared/data)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    pipeline = Pipeline(load_spec(args.spec, args.overrides), args.data_dir)
    output = pipeline.run_and_store()
    meta = {k: v for k, v in output.meta.items() if k != "spec"}
    print(json.dumps(meta, indent=2, default=str))
    if args.out:
        out = Path(args.out)
        write_conll(out / f"{pipeline.spec.method}.conll", output.sentences)
        (out / f"{pipeline.spec.method}.meta.json").write_text(json.dumps(output.meta, indent=2, default=str))
        print(f"wrote {out / (pipeline.spec.method + '.conll')}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
