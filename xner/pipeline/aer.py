"""Word alignment quality against gold Sure/Possible links (Och & Ney 2003).

Gold files hold one sentence pair per line, links ``i-j`` (Sure) and ``ipj`` (Possible), source position
first; the Lambert EPPS English-Spanish gold (``lambert_epps_align/eng-spa/test.gold``) is 1-indexed.
Everything here is 0-based once read. Possible links include the Sure ones (``S ⊆ P``), as in the standard
definition.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

Links = set[tuple[int, int]]
LAMBERT_SUBDIR = Path("lambert_epps_align") / "eng-spa"
_LINK = re.compile(r"^(\d+)([-p])(\d+)$")


def read_gold(path: str | os.PathLike, one_indexed: bool = True) -> list[tuple[Links, Links]]:
    """Read a gold alignment file.

    Args:
        path: the file: one line per sentence pair, whitespace-separated ``i-j`` (Sure) / ``ipj`` (Possible).
        one_indexed: positions in the file start at 1 (Lambert, awesome-align's ``--gold_one_index``).

    Returns:
        One ``(sure, possible)`` pair of 0-based link sets per line; ``possible`` includes ``sure``. A link
        repeated on a line counts once (the Lambert gold repeats one link on lines 337 and 348).

    Raises:
        ValueError: a malformed link or a position below the first index; names the file, line and link.
    """
    path = Path(path)
    offset = 1 if one_indexed else 0
    out: list[tuple[Links, Links]] = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            sure: Links = set()
            possible: Links = set()
            for item in line.split():
                m = _LINK.match(item)
                if m is None:
                    raise ValueError(
                        f"{path}:{lineno}: malformed alignment link {item!r}; expected 'i-j' (Sure) or 'ipj' "
                        "(Possible) with integer positions."
                    )
                i, j = int(m.group(1)) - offset, int(m.group(3)) - offset
                if i < 0 or j < 0:
                    raise ValueError(
                        f"{path}:{lineno}: link {item!r} has a position below {offset}; the file is read as "
                        f"{'1' if one_indexed else '0'}-indexed (set one_indexed={not one_indexed} if it is not)."
                    )
                possible.add((i, j))
                if m.group(2) == "-":
                    sure.add((i, j))
            out.append((sure, possible))
    return out


def alignment_scores(predicted: Sequence[Links], gold: Sequence[tuple[Links, Links]]) -> dict[str, float]:
    """Precision, recall, AER and F1, micro-averaged over the corpus (Och & Ney 2003).

    With predicted links A, Sure S and Possible P (S ⊆ P): precision = |A∩P| / |A|, recall = |A∩S| / |S|,
    AER = 1 − (|A∩S| + |A∩P|) / (|A| + |S|), F1 = the harmonic mean of that precision and recall. Counts
    are summed over all pairs before dividing. Possible sets that lack some Sure links are completed.

    Args:
        predicted: one link set per pair (0-based).
        gold: one ``(sure, possible)`` per pair, as :func:`read_gold` returns.

    Returns:
        ``precision``, ``recall``, ``aer``, ``f1`` and the counts ``predicted``, ``sure``, ``possible``,
        ``hit_sure`` (|A∩S|), ``hit_possible`` (|A∩P|), ``pairs``. A ratio with a zero denominator is 0.

    Raises:
        ValueError: the numbers of pairs differ.
    """
    if len(predicted) != len(gold):
        raise ValueError(
            f"alignment_scores: {len(predicted)} predicted alignments but {len(gold)} gold pairs; they must be "
            "the same sentence pairs in the same order."
        )
    n_a = n_s = n_p = a_s = a_p = 0
    for links, (sure, possible) in zip(predicted, gold, strict=True):
        a = set(links)
        p = set(possible) | set(sure)
        n_a += len(a)
        n_s += len(sure)
        n_p += len(p)
        a_s += len(a & set(sure))
        a_p += len(a & p)
    precision = a_p / n_a if n_a else 0.0
    recall = a_s / n_s if n_s else 0.0
    aer = 1.0 - (a_s + a_p) / (n_a + n_s) if (n_a + n_s) else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "aer": aer,
        "f1": f1,
        "predicted": n_a,
        "sure": n_s,
        "possible": n_p,
        "hit_sure": a_s,
        "hit_possible": a_p,
        "pairs": len(gold),
    }


def read_lambert(
    data_dir: str | os.PathLike,
) -> tuple[list[list[str]], list[list[str]], list[tuple[Links, Links]]]:
    """The Lambert et al. (2005) EPPS English-Spanish gold: 400 tokenised pairs and their links.

    Args:
        data_dir: the shared data root (holding ``lambert_epps_align/eng-spa``) or that folder itself.

    Returns:
        ``(english sentences, spanish sentences, gold)``: word lists and 0-based ``(sure, possible)`` links
        with English positions first.

    Raises:
        FileNotFoundError: a file is missing; names the folder expected.
        ValueError: the files disagree in length, or a link points past its sentence.
    """
    root = Path(data_dir)
    folder = root if (root / "test.gold").is_file() else root / LAMBERT_SUBDIR
    files = {name: folder / f"test.{name}" for name in ("eng", "spa", "gold")}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"Lambert alignment gold not found: missing {', '.join(missing)}. Pass the shared data root "
            f"(holding {LAMBERT_SUBDIR}/) or that folder; see ../shared/data/README.md."
        )
    eng = [line.split() for line in files["eng"].read_text(encoding="utf-8").splitlines()]
    spa = [line.split() for line in files["spa"].read_text(encoding="utf-8").splitlines()]
    gold = read_gold(files["gold"], one_indexed=True)
    if not len(eng) == len(spa) == len(gold):
        raise ValueError(
            f"{folder}: test.eng has {len(eng)} lines, test.spa {len(spa)} and test.gold {len(gold)}; "
            "they must be parallel."
        )
    for k, (e, s, (_, possible)) in enumerate(zip(eng, spa, gold, strict=True)):
        bad = [(i, j) for i, j in possible if i >= len(e) or j >= len(s)]
        if bad:
            raise ValueError(
                f"{files['gold']}:{k + 1}: link {bad[0][0] + 1}-{bad[0][1] + 1} (1-indexed) is outside the "
                f"sentence pair ({len(e)} English, {len(s)} Spanish words)."
            )
    return eng, spa, gold
