"""Where data, models and caches live. Every location can be overridden by config or environment."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def default_data_dir() -> Path:
    """The data directory: ``$XNER_DATA``, else ``../shared/data`` beside the project root.

    Raises:
        FileNotFoundError: neither exists; the message says how to point xner at the data.
    """
    env = os.environ.get("XNER_DATA")
    candidates = (
        [Path(env)]
        if env
        else [PROJECT_ROOT.parent / "shared" / "data", Path.cwd().parent / "shared" / "data"]
    )
    for cand in candidates:
        if cand.is_dir():
            return cand.resolve()
    raise FileNotFoundError(
        f"No data directory found (tried {', '.join(str(c) for c in candidates)}). "
        "Set XNER_DATA=/path/to/data or paths.data_dir=/path/to/data on the command line."
    )


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path:
    """Use ``data_dir`` when given (it must exist), else :func:`default_data_dir`."""
    if data_dir is None or str(data_dir) == "":
        return default_data_dir()
    path = Path(data_dir).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(
            f"Data directory {path} does not exist. Set paths.data_dir (or env XNER_DATA) to the folder that "
            "holds conll2003/, masakhaner2/, wikiann/ ... (see ../shared/data/README.md)."
        )
    return path.resolve()


def cache_dir() -> Path:
    """Root of xner's caches: ``$XNER_CACHE`` or ``~/.cache/xner``."""
    return Path(os.environ.get("XNER_CACHE", Path.home() / ".cache" / "xner")).expanduser()
