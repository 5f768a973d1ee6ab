"""Command line: ``python -m xner.export CKPT OUT_DIR [--force] [--run-dir DIR] [--tokenizer NAME]``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from xner.export import ExportError, export_checkpoint


def main(argv: Sequence[str] | None = None) -> int:
    """Export a checkpoint; exit 0 on success, 1 when the export is refused or fails its check."""
    parser = argparse.ArgumentParser(
        prog="python -m xner.export",
        description="Write a Hugging Face model directory (safetensors weights, tokenizer, model card) from "
        "an xner checkpoint: a fine-tuned tagger or a distilled student.",
    )
    parser.add_argument("ckpt", help="checkpoint, e.g. logs/model_transfer/runs/<run>/checkpoints/best.ckpt")
    parser.add_argument("out_dir", help="directory to write (must be empty unless --force)")
    parser.add_argument("--force", action="store_true", help="replace the model files of a non-empty out_dir")
    parser.add_argument(
        "--run-dir", help="the training run dir (default: the checkpoint's ../ or its own dir)"
    )
    parser.add_argument("--tokenizer", help="tokenizer name or dir, if the recorded one has moved")
    parser.add_argument("--no-verify", action="store_true", help="skip reloading and comparing the logits")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(name)s] %(message)s")
    try:
        record = export_checkpoint(
            args.ckpt,
            args.out_dir,
            run_dir=args.run_dir,
            tokenizer=args.tokenizer,
            force=args.force,
            verify=not args.no_verify,
        )
    except (ExportError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    diff = record.get("verified_max_logit_diff")
    check = f"reloaded, logits within {diff:.1e} of the checkpoint's" if diff is not None else "not verified"
    print(
        f"wrote {args.out_dir}: {record['architecture']}, {record['layers']} layers, "
        f"{record['parameters'] / 1e6:.1f}M parameters, labels {record['labels']} ({check})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
