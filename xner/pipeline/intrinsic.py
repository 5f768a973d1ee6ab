"""The intrinsic translate-test evaluation as a config: which sets, their MT, the aligner, the methods.

One YAML file per evaluation (``configs/projection_eval/*.yaml``), composed by Hydra, so a file can start from
a shared base (``defaults: [base/nllb, _self_]``) and change only what differs. Fields:

- ``sets``: ``{"<dataset>:<lang>:<split>": entry}``, one per gold-labelled target set. An entry gives either
  ``code``, the language's code for the shared ``translator`` (e.g. NLLB-200's ``hau_Latn``), from which
  both directions are built with ``english_code``; or ``to_english`` / ``from_english`` translator configs,
  merged over ``translator`` (``from_english: null`` where no English->target MT exists). ``hub_config``
  names the set's configuration in the ``hub`` dataset (below); ``join: ""`` gives MT the words without
  spaces between them (sets split into characters, such as WikiANN zh and ja).
- ``translator``: the translator config shared by every set (``{kind: hf, model_name_or_path: ...}``).
- ``english_code`` / ``code_pattern``: English's code for that translator, and a regex every ``code`` must
  match (a typo in a language code would otherwise translate into the wrong language without an error).
- ``hub``: a HF ``datasets`` split spec (``{hf: ..., types: ...}``, as :func:`xner.data.registry.load_split`
  takes) used for a set whose file is not under the data dir, with the set's ``hub_config``; ``obtain``: how
  to get the files otherwise (shown when one is missing).
- ``aligner``, ``methods`` (projection method -> its options), ``source_model``, ``limit``, ``resamples``,
  ``types`` (the entity types scored).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xner.data.registry import DataRef, split_path

# the fields of an evaluation config and of one set's entry
CONFIG_KEYS = (
    "sets",
    "translator",
    "english_code",
    "code_pattern",
    "hub",
    "obtain",
    "aligner",
    "methods",
    "source_model",
    "limit",
    "resamples",
    "types",
    "device",
)
SET_KEYS = ("code", "to_english", "from_english", "hub_config", "join")


class EvalConfigError(ValueError):
    """An evaluation config that cannot run; the message names the file, the field and the fix."""


@dataclass
class EvalSet:
    """One gold-labelled target set with the translators that serve it.

    Attributes:
        ref: the registry reference (``masakhaner2:hau:test``): the ``set`` column of the results.
        lang: its language (ISO 639-3, as the data dir names it).
        to_english: translator config target -> English.
        from_english: translator config English -> target; empty when there is none.
        hub: the split spec to read when the file is not under the data dir (``None``: no fallback).
        obtain: how to get the file when it is missing (from the config).
        join: the string between words in the text given to MT (the pipeline spec's ``join_words``).
    """

    ref: str
    lang: str
    to_english: dict
    from_english: dict = field(default_factory=dict)
    hub: dict | None = None
    obtain: str | None = None
    join: str = " "


def load_eval_config(path: str | Path, overrides: Sequence[str] = ()) -> dict:
    """Compose an evaluation config with Hydra (its ``defaults`` list, then ``overrides``) into a plain dict.

    Args:
        path: the YAML file (``configs/projection_eval/masakhaner2_nllb.yaml``); its folder is the search
            path, so ``defaults`` entries name files relative to it.
        overrides: Hydra overrides, e.g. ``["translator.batch_size=64", "device=cpu"]``.

    Raises:
        FileNotFoundError: no such file.
        EvalConfigError: a field that is not an evaluation config's.
    """
    from hydra import compose, initialize_config_dir  # noqa: PLC0415 - Hydra loads only for a config
    from omegaconf import OmegaConf  # noqa: PLC0415

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"evaluation config {path} not found; the shipped ones are configs/projection_eval/*.yaml"
        )
    with initialize_config_dir(config_dir=str(path.parent.resolve()), version_base=None):
        cfg = compose(config_name=path.stem, overrides=list(overrides))
    cfg = OmegaConf.to_container(cfg, resolve=True)
    unknown = sorted(set(cfg) - set(CONFIG_KEYS))
    if unknown:
        raise EvalConfigError(f"{path}: unknown fields {unknown}; the fields are {', '.join(CONFIG_KEYS)}")
    return cfg


def eval_sets(cfg: Mapping[str, Any], source: str, only: Sequence[str] | None = None) -> list[EvalSet]:
    """The config's sets with their translator configs, checked (no file is read).

    Args:
        cfg: a composed config (:func:`load_eval_config`).
        source: the config's file name, for error messages.
        only: keep only these refs, in this order (``None``: all, in the config's order).

    Raises:
        EvalConfigError: a set that does not parse, lacks a language code or a translator, or a name in
            ``only`` that the config does not have.
    """
    sets = cfg.get("sets") or {}
    if not isinstance(sets, Mapping) or not sets:
        raise EvalConfigError(f"{source}: `sets` must map refs such as masakhaner2:hau:test to their entries")
    if only is not None:
        missing = [ref for ref in only if ref not in sets]
        if missing:
            raise EvalConfigError(f"{source} has no sets {missing}; its sets are: {', '.join(sets)}")
        sets = {ref: sets[ref] for ref in only}
    return [_eval_set(ref, entry or {}, cfg, source) for ref, entry in sets.items()]


def _eval_set(ref: str, entry: Mapping[str, Any], cfg: Mapping[str, Any], source: str) -> EvalSet:
    where = f"{source}, sets.{ref}"
    try:
        data = DataRef.parse(ref)
    except ValueError as err:
        raise EvalConfigError(f"{where}: {err}") from None
    if not data.lang:
        raise EvalConfigError(f"{where}: the ref names no language ('dataset:lang:split')")
    unknown = sorted(set(entry) - set(SET_KEYS))
    if unknown:
        raise EvalConfigError(f"{where}: unknown fields {unknown}; a set's fields are {', '.join(SET_KEYS)}")
    template = dict(cfg.get("translator") or {})
    if "code" in entry:
        to_english, from_english = _coded(entry["code"], template, cfg, where)
    elif entry.get("to_english"):
        to_english = {**template, **entry["to_english"]}
        from_english = {**template, **entry["from_english"]} if entry.get("from_english") else {}
    else:
        model = template.get("model_name_or_path", "the translator")
        raise EvalConfigError(
            f"{where}: no language code: add `code: <{data.lang}'s code for {model}>` (NLLB-200: a FLORES-200 "
            "code such as hau_Latn), or explicit to_english / from_english translator configs"
        )
    for direction, config in (("to_english", to_english), ("from_english", from_english)):
        if config and "kind" not in config:
            raise EvalConfigError(f"{where}: the {direction} translator has no kind (set translator.kind)")
    hub = None
    if entry.get("hub_config") is not None:
        if not cfg.get("hub"):
            raise EvalConfigError(f"{where}: hub_config given but the config has no `hub` split spec")
        hub = {**cfg["hub"], "config": str(entry["hub_config"]), "lang": data.lang}
    join = entry.get("join", " ")
    if not isinstance(join, str):
        raise EvalConfigError(f'{where}: join must be a string ("" or " "), got {join!r}')
    return EvalSet(ref, data.lang, to_english, from_english, hub, cfg.get("obtain"), join)


def _coded(code: Any, template: dict, cfg: Mapping[str, Any], where: str) -> tuple[dict, dict]:
    """Both directions of a shared translator from a language's code."""
    pattern, english = cfg.get("code_pattern"), cfg.get("english_code")
    if not isinstance(code, str) or (pattern and not re.fullmatch(pattern, code)):
        raise EvalConfigError(f"{where}: code {code!r} does not match code_pattern {pattern!r}")
    if not english or not template.get("kind"):
        raise EvalConfigError(
            f"{where}: `code` needs the shared `translator` (with its kind) and `english_code` in the config"
        )
    return (
        {**template, "src_lang": code, "tgt_lang": english},
        {**template, "src_lang": english, "tgt_lang": code},
    )


def resolve_data(evalset: EvalSet, data_dir: str | Path | None = None) -> str | dict:
    """What to read for a set: its registry ref when the file is under the data dir, else its hub split spec.

    Raises:
        FileNotFoundError: neither; the message names the file expected and how to obtain it.
    """
    try:
        split_path(DataRef.parse(evalset.ref), data_dir)
        return evalset.ref
    except FileNotFoundError as err:
        if evalset.hub is not None:
            return evalset.hub
        how = f" {evalset.obtain}" if evalset.obtain else ""
        raise FileNotFoundError(f"{err}.{how}") from None


def eval_methods(cfg: Mapping[str, Any], source: str) -> dict[str, dict]:
    """The config's ``methods`` (name -> projection options), checked against the registered methods.

    Raises:
        EvalConfigError: no methods, or a name that is not a registered projection method.
    """
    from xner.pipeline.methods import method_names  # noqa: PLC0415

    methods = cfg.get("methods") or {}
    unknown = sorted(set(methods) - set(method_names()))
    if not methods or unknown:
        raise EvalConfigError(
            f"{source}: `methods` must map projection methods to their options; unknown {unknown}, known: "
            f"{', '.join(method_names())}"
        )
    return {name: dict(options or {}) for name, options in methods.items()}


def method_options(method: str, options: Mapping[str, Any], has_from_english: bool) -> dict | None:
    """A method's projection options for a set; ``None`` when it needs MT the set does not have.

    ``heuristic_bt`` needs English->target MT for its entity translations; without it, candidate matching
    runs without its ``translation`` score (the remaining weights are kept as given).
    """
    if method == "heuristic_bt" and not has_from_english:
        return None
    options = dict(options or {})
    if not has_from_english and "weights" in options:
        options["weights"] = {k: v for k, v in options["weights"].items() if k != "translation"}
    return options
