"""Run a projection pipeline from the command line.

    python -m xner.pipeline configs/pipeline/spa_translate_test.yaml method=heuristic limit=500
    python -m xner.pipeline configs/pipeline/spa_translate_train.yaml method=markers --out data/projected/spa

Arguments after the spec file are ``key=value`` overrides of its fields (OmegaConf dotlist). The stages run
(or are read from the stage cache), the record is printed as JSON, and with ``--out`` the projected sentences
are written as CoNLL (``<out>/<method>.conll``) beside ``<out>/<method>.meta.json``. ``--help`` lists the
values each choice of a spec can take (methods, translators, aligners, ...) and the Apertium pairs installed.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import textwrap
from dataclasses import fields
from pathlib import Path
from typing import get_args

from xner.io.conll import write_conll
from xner.pipeline.methods import SCORE_KINDS, method_names
from xner.pipeline.run import DIRECTIONS, Pipeline, PipelineSpec, load_spec


def available_choices(apertium_data_dir: str | Path | None = None) -> dict[str, list[str]]:
    """The values a pipeline spec can choose from, read from the code's registries (and Apertium's modes).

    Args:
        apertium_data_dir: Apertium's data directory (default ``$APERTIUM_DATADIR`` or ``/usr/share/apertium``).

    Returns:
        Lists under ``fields``, ``direction``, ``method``, ``translators``, ``aligners``, ``alignment
        methods``, ``score kinds``, ``marker styles`` and ``apertium pairs`` (empty when none are installed).
    """
    # on demand: the aligners import torch, which a plain run needs only once it aligns
    from xner.pipeline.align import ALIGNERS  # noqa: PLC0415
    from xner.pipeline.align import METHODS as ALIGN_METHODS  # noqa: PLC0415
    from xner.pipeline.markers import MarkerStyle  # noqa: PLC0415
    from xner.pipeline.translate import TRANSLATORS, installed_apertium_pairs  # noqa: PLC0415

    return {
        "fields": [f.name for f in fields(PipelineSpec)],
        "direction": list(DIRECTIONS),
        "method": list(method_names()),  # every registered method, built-in or not
        "translators": list(TRANSLATORS),
        "aligners": list(ALIGNERS),
        "alignment methods": list(ALIGN_METHODS),
        "score kinds": list(SCORE_KINDS),
        "marker styles": list(get_args(MarkerStyle)),
        "apertium pairs": installed_apertium_pairs(apertium_data_dir),
    }


def choices_help(apertium_data_dir: str | Path | None = None) -> str:
    """The epilog of ``--help``: each choice of a spec with its values, then usage examples."""
    from xner.pipeline.translate import APERTIUM_DATA_DIR  # noqa: PLC0415

    found = available_choices(apertium_data_dir)
    modes = Path(apertium_data_dir or APERTIUM_DATA_DIR) / "modes"
    entries = [
        ("spec fields (override any as key=value)", found["fields"]),
        ("direction", found["direction"]),
        ("method (projection)", found["method"]),
        ("translators (from_english / to_english: {kind: ..., ...})", found["translators"]),
        ("aligners (aligner: {kind: ..., ...})", found["aligners"]),
        ("alignment methods (aligner.method)", found["alignment methods"]),
        ("matching score kinds (projection.weights)", found["score kinds"]),
        ("marker styles (projection.style, method=markers)", found["marker styles"]),
        (
            f"Apertium pairs installed in {modes} ({{kind: apertium, pair: ...}})",
            found["apertium pairs"] or ["none installed (run make setup)"],
        ),
    ]
    # the modes alone do not translate: ApertiumTranslator runs apertium-wblank-mode
    if found["apertium pairs"] and shutil.which("apertium-wblank-mode") is None:
        entries[-1][1].append("but apertium-wblank-mode is not on PATH (run make setup)")
    out = ["choices (from the code's registries; Apertium pairs from this machine):"]
    for title, values in entries:
        out.append(f"  {title}:")
        # break only between values: a hyphenated pair name such as eng-cat_valencia stays whole
        out.append(
            textwrap.fill(
                ", ".join(values),
                100,
                initial_indent="    ",
                subsequent_indent="    ",
                break_on_hyphens=False,
                break_long_words=False,
            )
        )
    examples = __doc__.split("\n\n")[1].strip("\n")
    return "\n".join([*out, "", "examples:", examples])


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(
        prog="python -m xner.pipeline",
        description=__doc__.split("\n\n")[0],
        epilog=choices_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "spec", help="a pipeline YAML, e.g. configs/pipeline/spa_translate_test.yaml (fields: see below)"
    )
    parser.add_argument(
        "overrides", nargs="*", help="key=value overrides, e.g. method=matching_ilp limit=200"
    )
    parser.add_argument("--out", help="write the projected sentences (CoNLL) and meta.json here")
    parser.add_argument("--data-dir", default=None, help="data root (default: $XNER_DATA or ../shared/data)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if not Path(args.spec).is_file():
        specs = sorted(
            str(p) for p in Path("configs/pipeline").glob("*.yaml")
        )  # relative to the project root
        parser.error(f"no spec file {args.spec}" + (f"; specs here: {', '.join(specs)}" if specs else ""))
    try:
        pipeline = Pipeline(load_spec(args.spec, args.overrides), args.data_dir)
    except (ValueError, FileNotFoundError) as err:  # a wrong choice or path: its message says what to give
        parser.error(str(err))
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
