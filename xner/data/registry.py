"""Named datasets mapped to files under ``paths.data_dir`` (or the HF hub for users with a network).

A split is named by a :class:`DataRef` — dataset, language, split and, for CrossNER, a topic subset — or by
the shorthand ``"dataset[.subset]:lang:split"`` (``"masakhaner2:swa:test"``, ``"crossner.politics:eng:test"``).
Each dataset declares the entity types its files may contain (a tag outside them is an error) and a default
mapping onto the shared PER/ORG/LOC types so that sets from different sources can be scored together.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from xner.io.conll import read_conll
from xner.labels import map_types, repair_iob2, split_tag, tags_to_spans
from xner.paths import resolve_data_dir
from xner.types import Sentence, Span

log = logging.getLogger(__name__)

SHARED_TYPES = ("PER", "ORG", "LOC")

CROSSNER_TO_SHARED: dict[str, str | None] = {
    "person": "PER", "politician": "PER", "scientist": "PER", "writer": "PER", "researcher": "PER",
    "musicalartist": "PER",
    "organisation": "ORG", "politicalparty": "ORG", "university": "ORG", "band": "ORG",
    "location": "LOC", "country": "LOC",
}  # fmt: skip
WNUT17_TO_SHARED: dict[str, str | None] = {
    "person": "PER", "location": "LOC", "corporation": "ORG", "group": "ORG",
    "creative-work": None, "product": None,
}  # fmt: skip


@dataclass(frozen=True)
class DatasetInfo:
    """What xner knows about one named dataset.

    Attributes:
        name: registry key.
        folder: path template under the data dir; ``{lang}`` and ``{subset}`` are filled in.
        types: entity types the files may contain; ``None`` accepts any well-formed tag (fine-grained sets).
        domain: the text domain, used in reports.
        label_map: the default mapping onto :data:`SHARED_TYPES`; unmapped types outside them are dropped.
        hf_path: the HF hub dataset for users with a network (``None`` when there is none).
        fixed_lang: the only language (datasets without language folders).
    """

    name: str
    folder: str
    types: tuple[str, ...] | None
    domain: str
    label_map: Mapping[str, str | None] = field(default_factory=dict)
    hf_path: str | None = None
    fixed_lang: str | None = None


DATASETS: dict[str, DatasetInfo] = {
    "conll2003": DatasetInfo("conll2003", "conll2003", SHARED_TYPES, "news", fixed_lang="eng",
                             hf_path="eriktks/conll2003"),
    "masakhaner2": DatasetInfo("masakhaner2", "masakhaner2/{lang}", SHARED_TYPES + ("DATE",), "news",
                               {"DATE": None}, hf_path="masakhane/masakhaner2"),
    "masakhaner1": DatasetInfo("masakhaner1", "masakhaner1/{lang}", SHARED_TYPES + ("DATE",), "news",
                               {"DATE": None}, hf_path="masakhane/masakhaner"),
    "conll2002": DatasetInfo("conll2002", "conll2002/{lang}", SHARED_TYPES + ("MISC",), "news",
                             {"MISC": None}, hf_path="eriktks/conll2002"),
    "wikiann": DatasetInfo("wikiann", "wikiann/{lang}", SHARED_TYPES, "wikipedia", hf_path="unimelb-nlp/wikiann"),
    "crossner": DatasetInfo("crossner", "crossner/{lang}-{subset}", None, "wikipedia", CROSSNER_TO_SHARED),
    "nchlt": DatasetInfo("nchlt", "nchlt/{lang}", ("PERS", "ORG", "LOC", "MISC"), "government",
                         {"PERS": "PER", "MISC": None}, hf_path="nwu-ctext/setswana_ner_corpus"),
    "wnut17": DatasetInfo("wnut17", "wnut17/{lang}", tuple(k for k in WNUT17_TO_SHARED), "social_media",
                          WNUT17_TO_SHARED, hf_path="leondz/wnut_17"),
}  # fmt: skip


@dataclass(frozen=True)
class DataRef:
    """One split of one dataset in one language."""

    dataset: str
    lang: str | None = None
    split: str = "test"
    subset: str | None = None

    @classmethod
    def parse(cls, text: str) -> DataRef:
        """Parse ``"dataset[.subset]:lang:split"`` (``lang`` may be empty for single-language sets)."""
        parts = text.split(":")
        if len(parts) != 3:
            raise ValueError(
                f"Cannot parse data reference {text!r}: expected 'dataset[.subset]:lang:split', "
                "e.g. 'masakhaner2:swa:test' or 'crossner.politics:eng:test'."
            )
        dataset, lang, split = parts
        dataset, _, subset = dataset.partition(".")
        return cls(dataset, lang or None, split, subset or None)

    @classmethod
    def coerce(cls, value: DataRef | str | Mapping) -> DataRef:
        """Accept a DataRef, its string shorthand or a config mapping with the same fields."""
        if isinstance(value, DataRef):
            return value
        if isinstance(value, str):
            return cls.parse(value)
        return cls(**{k: value[k] for k in ("dataset", "lang", "split", "subset") if k in value})

    def __str__(self) -> str:
        name = f"{self.dataset}.{self.subset}" if self.subset else self.dataset
        return f"{name}:{self.lang or ''}:{self.split}"


@dataclass
class SplitStats:
    """Counts that describe a loaded split, including everything a label mapping removed."""

    ref: str
    path: str
    sentences: int
    tokens: int
    entities: dict[str, int]
    dropped_entities: dict[str, int]
    label_map: dict[str, str | None]
    repaired_tags: int = 0
    scheme: str = "IOB2"


def dataset_info(name: str) -> DatasetInfo:
    """Look a dataset up by name; unknown names raise with the known ones."""
    try:
        return DATASETS[name]
    except KeyError:
        raise KeyError(f"Unknown dataset {name!r}; known datasets: {sorted(DATASETS)}") from None


def dataset_folder(ref: DataRef, data_dir: str | Path | None = None) -> Path:
    """The folder that holds a dataset's split files for ``ref``'s language and subset."""
    info = dataset_info(ref.dataset)
    lang = ref.lang or info.fixed_lang
    if info.fixed_lang and lang != info.fixed_lang:
        raise ValueError(f"{info.name} has only language {info.fixed_lang!r}, not {ref.lang!r}")
    if "{lang}" in info.folder and not lang:
        raise ValueError(f"{info.name} needs a language, e.g. '{info.name}:<lang>:{ref.split}'")
    if "{subset}" in info.folder and not ref.subset:
        raise ValueError(f"{info.name} needs a subset, e.g. '{info.name}.politics:{lang}:{ref.split}'")
    return resolve_data_dir(data_dir) / info.folder.format(lang=lang, subset=ref.subset)


def split_path(ref: DataRef, data_dir: str | Path | None = None) -> Path:
    """The file of a split, checked to exist; the error lists the splits and languages that do."""
    folder = dataset_folder(ref, data_dir)
    path = folder / f"{ref.split}.txt"
    if not path.is_file():
        if not folder.is_dir():
            found = available_languages(ref.dataset, data_dir)
            raise FileNotFoundError(f"No folder {folder} for {ref}. Languages of {ref.dataset} here: {found}")
        raise FileNotFoundError(
            f"No split {ref.split!r} for {ref} in {folder}; splits that exist: {available_splits(ref, data_dir)}"
        )
    return path


def available_languages(name: str, data_dir: str | Path | None = None) -> list[str]:
    """Language (or ``lang-subset``) folders that exist for a dataset."""
    info = dataset_info(name)
    root = resolve_data_dir(data_dir)
    if info.fixed_lang:
        return [info.fixed_lang] if (root / info.folder).is_dir() else []
    base = root / info.folder.split("/")[0]
    return sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []


def available_splits(ref: DataRef | str, data_dir: str | Path | None = None) -> list[str]:
    """Split names (file stems) present for a dataset/language; some sets have no test file."""
    return sorted(p.stem for p in dataset_folder(DataRef.coerce(ref), data_dir).glob("*.txt"))


def resolve_label_map(
    info: DatasetInfo, label_map: Mapping[str, str | None] | str | None
) -> dict[str, str | None]:
    """``"default"`` gives the dataset's own mapping, ``None``/``"none"`` the identity, a mapping itself."""
    if label_map is None or label_map == "none":
        return {}
    if label_map == "default":
        return dict(info.label_map)
    if isinstance(label_map, str):
        raise ValueError(f"label_map must be 'default', 'none' or a mapping, got {label_map!r}")
    return dict(label_map)


def load_split(
    ref: DataRef | str | Mapping,
    data_dir: str | Path | None = None,
    *,
    label_map: Mapping[str, str | None] | str | None = "default",
    keep_types: Sequence[str] | None = SHARED_TYPES,
    labelled: bool = True,
    limit: int | None = None,
) -> tuple[list[Sentence], SplitStats]:
    """Read one split, validate its tags, and map its entity types.

    Args:
        ref: which split.
        data_dir: the data root (default: :func:`xner.paths.default_data_dir`).
        label_map: type renaming (see :func:`resolve_label_map`); applied before ``keep_types``.
        keep_types: entity types to keep after mapping; other types become ``O`` and are counted in
            ``SplitStats.dropped_entities``. ``None`` keeps everything. Every gold entity removed by the
            mapping or by ``keep_types`` is kept, with its original type, in the sentence's
            :attr:`~xner.types.Sentence.ignore_spans` (for don't-care scoring).
        labelled: ``False`` hides the gold tags (unlabelled text for distillation).
        limit: read only the first ``limit`` sentences (for smoke runs); recorded in the stats.

    Returns:
        The sentences and their :class:`SplitStats`.
    """
    ref = DataRef.coerce(ref)
    info = dataset_info(ref.dataset)
    allowed = None if info.types is None else {"O"} | {f"{p}-{t}" for t in info.types for p in "BI"}
    lang = ref.lang or info.fixed_lang or ""
    sentences, paths = [], []
    # "train+dev" concatenates splits (e.g. WikiANN yor, whose only labelled text is train and dev)
    for part in ref.split.split("+"):
        part_ref = DataRef(ref.dataset, ref.lang, part, ref.subset)
        paths.append(str(split_path(part_ref, data_dir)))
        sentences += read_conll(
            paths[-1], allowed_tags=allowed, id_prefix=str(part_ref), lang=lang, domain=info.domain
        )
    if limit is not None:
        sentences = sentences[:limit]
    sentences, repaired, scheme = _repair_gold(sentences, ref)
    mapping = resolve_label_map(info, label_map)
    dropped: Counter = Counter()
    entities: Counter = Counter()
    out = []
    for sent in sentences:
        tags = map_types(sent.tags, mapping, dropped) if mapping else list(sent.tags)
        if keep_types is not None:
            tags = map_types(tags, {t: None for t in _types_in(tags) if t not in keep_types}, dropped)
        entities.update(split_tag(t)[1] for t in tags if t.startswith("B-"))
        removed = _removed_spans(sent.tags, tags) if labelled else ()
        out.append(sent.with_tags(tags if labelled else None, removed))
    stats = SplitStats(
        str(ref),
        "+".join(paths),
        len(out),
        sum(len(s) for s in out),
        dict(entities),
        dict(dropped),
        mapping,
        repaired,
        scheme,
    )
    if dropped:
        log.info("%s: label mapping dropped entities %s (kept %s)", ref, dict(dropped), dict(entities))
    return out, stats


def detect_scheme(sentences: Sequence[Sentence]) -> str:
    """``IOB1`` when more entities begin with ``I-`` than with ``B-`` (IOB1 uses ``B-`` only between two
    adjacent entities of one type), else ``IOB2``."""
    starts = Counter()
    for sent in sentences:
        prev = None
        for tag in sent.tags or ():
            prefix, etype = split_tag(tag)
            if etype is not None and (prefix == "B" or etype != prev):
                starts[prefix] += 1
            prev = etype
    return "IOB1" if starts["I"] > starts["B"] else "IOB2"


def _repair_gold(sentences: list[Sentence], ref: DataRef) -> tuple[list[Sentence], int, str]:
    """Read gold tags the way conlleval and seqeval's default mode do: an ``I-X`` that cannot continue an
    entity (after ``O`` or another type) begins one. Rewritten as ``B-X`` here, so that the strict scorer
    counts the entity instead of silently ignoring it; the number of tags changed is returned for the report.
    An IOB1 file (entities begin with ``I-``) is converted by the same rule and reported."""
    if not sentences or sentences[0].tags is None:
        return sentences, 0, "IOB2"
    scheme = detect_scheme(sentences)
    out, changed = [], 0
    for sent in sentences:
        tags, n = repair_iob2(sent.tags)
        changed += n
        out.append(sent.with_tags(tags) if n else sent)
    if scheme == "IOB1":
        log.warning(
            "%s looks like IOB1 (entities begin with I-): converted to IOB2, %d tags changed", ref, changed
        )
    elif changed:
        log.warning(
            "%s: %d gold tags I-X without a preceding B-X/I-X read as B-X (entity starts), as conlleval does",
            ref,
            changed,
        )
    return out, changed, scheme


def _removed_spans(original: Sequence[str], mapped: Sequence[str]) -> tuple[Span, ...]:
    """Entities of the (repaired IOB2) ``original`` tags that the mapping turned into ``O`` entirely.

    A mapping renames or drops whole entities and keeps their prefixes, so an original entity either keeps
    its boundaries under a new type or becomes all ``O``.
    """
    return tuple(s for s in tags_to_spans(original) if all(t == "O" for t in mapped[s.start : s.end]))


def _types_in(tags: Sequence[str]) -> set[str]:
    return {t for tag in tags if (t := split_tag(tag)[1]) is not None}


def load_hf_split(
    hf_path: str, config: str | None, split: str, lang: str = "", domain: str = ""
) -> list[Sentence]:
    """Load a token-classification split from the HF hub (needs a network and the ``datasets`` package).

    The hub sets store tags as class ids with names in ``features['ner_tags'].feature.names``.
    """
    try:
        import datasets  # noqa: PLC0415 - optional dependency, only for users with a network
    except ImportError as err:
        raise ImportError("Loading from the HF hub needs `pip install datasets`.") from err
    ds = datasets.load_dataset(hf_path, config, split=split)
    names = ds.features["ner_tags"].feature.names
    return [
        Sentence(
            row["tokens"],
            [names[i] for i in row["ner_tags"]],
            f"{hf_path}:{config}:{split}:{k}",
            lang,
            domain,
        )
        for k, row in enumerate(ds)
    ]
