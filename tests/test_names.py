"""Which words pass through MT untranslated (xner.pipeline.names): pure functions."""

from __future__ import annotations

import pytest

from xner.pipeline.names import (
    CONNECTORS,
    inflected_proper_nouns,
    is_capitalised,
    lowercase_vocabulary,
    name_runs,
)


def runs(sentence: str, *context: str, lang: str = "spa") -> list[str]:
    tokens = sentence.split()
    vocab = lowercase_vocabulary(s.split() for s in (sentence, *context))
    return [" ".join(tokens[a:b]) for a, b in name_runs(tokens, vocab, (), CONNECTORS.get(lang, frozenset()))]


def test_capitalised_words_inside_a_sentence_are_names():
    assert runs("vive en Lobo con el lobo .") == ["Lobo"]
    assert runs("la ciudad de Zaragoza , Huesca") == ["Zaragoza", "Huesca"]


def test_the_languages_connectors_join_two_capitalised_words():
    assert runs("vive en San Carlos de Bariloche .") == ["San Carlos de Bariloche"]
    assert runs("de la Universidad de la República") == ["Universidad de la República"]
    # three connectors in a row, another word or no capitalised word after them: the run ends
    assert runs("entre Madrid de la de Roma") == ["Madrid", "Roma"]
    assert runs("entre Madrid en Roma") == ["Madrid", "Roma"]
    assert runs("en Madrid de noche") == ["Madrid"]
    # a language without connectors: a short verb and preposition between two names do not join them
    assert runs("Jón Sigurðsson bjó í Kaupmannahöfn .", "hann bjó", lang="isl") == [
        "Jón Sigurðsson",
        "Kaupmannahöfn",
    ]


def test_the_first_word_is_a_name_only_when_never_seen_in_lower_case():
    assert runs("El Lobo vive aquí", "el perro") == ["Lobo"]  # "el" occurs: "El" is an article
    assert runs("Madrid es grande", "en madrid no") == []  # seen in lower case elsewhere
    assert runs("Madrid es grande") == ["Madrid"]
    assert runs("Jilguero del Huascarán") == ["Jilguero del Huascarán"]
    assert runs("'' Macarena Algarañaz ''") == ["Macarena Algarañaz"]  # the first word with letters


@pytest.mark.parametrize("token", ["2014", "(", "''", "中国", "-"])
def test_tokens_without_case_are_never_protected(token: str):
    assert not is_capitalised(token)
    assert runs(f"en {token} hoy") == []


def test_runs_are_ordered_and_disjoint():
    tokens = "A b C d e f G H".split()
    spans = name_runs(tokens, lowercase_vocabulary([tokens]))
    assert spans == [(0, 1), (2, 3), (6, 8)]
    assert all(a < b for a, b in spans) and all(spans[k][1] <= spans[k + 1][0] for k in range(len(spans) - 1))


def test_inflected_proper_nouns_are_read_from_the_analysers_output():
    # real lt-proc output of Apertium eu-en / isl-eng (escaped bracket included)
    analysis = (
        "^Bilbon/Bilbo<np><loc>+an<post>$ ^Euskal Herriko/Euskal Herri<np><loc>+a<det><art><sg>+ko<post>$ "
        "^Mikel/Mikel<np><ant>$ ^Laboa/*Laboa$ ^\\[/\\[<lpar>$^x/*x$ "
        "^Reykjavíkur/Reykjavík<np><top><f><sg><gen>$ ^Kaupmannahöfn/Kaupmannahöfn<np><top><f><sg><nom>/"
        "Kaupmannahöfn<np><top><f><sg><dat>$ ^San/Santo<adj><m><sg>$"
    )
    tokens = "Bilbon Euskal Herriko Mikel Laboa [x Reykjavíkur Kaupmannahöfn San".split()
    # inflected names only: not the base forms, not unknown words, not an inflected adjective
    assert inflected_proper_nouns(analysis, tokens) == {0, 1, 2, 6}
    vocab = lowercase_vocabulary([tokens])
    assert name_runs(tokens, vocab, {0, 1, 2, 6}) == [(3, 5), (7, 9)]


def _tags(spans: list[tuple[int, int, str]], n: int) -> list[str]:
    from xner.labels import spans_to_tags
    from xner.types import Span

    return spans_to_tags([Span(a, b, t) for a, b, t in spans], n)


def test_an_entity_inside_a_name_is_widened_to_the_whole_name():
    from xner.pipeline.names import snap_to_runs

    tokens = "el jugador Oh Beom Seok juega en San Carlos de Bariloche".split()
    runs = name_runs(tokens, lowercase_vocabulary([tokens]), (), CONNECTORS["spa"])
    assert runs == [(2, 5), (7, 11)]
    tags, n = snap_to_runs(_tags([(3, 5, "PER"), (10, 11, "LOC")], 11), runs)
    assert n == 2 and tags == _tags([(2, 5, "PER"), (7, 11, "LOC")], 11)
    # the whole name already, an entity outside any name, one reaching outside its name: unchanged
    same = _tags([(2, 5, "PER"), (0, 1, "ORG"), (6, 8, "LOC")], 11)
    assert snap_to_runs(same, runs) == (same, 0)
    # two entities in one name: neither is widened (which would win is not ours to guess)
    two = _tags([(7, 8, "LOC"), (9, 10, "LOC")], 11)
    assert snap_to_runs(two, runs) == (two, 0)


def test_snap_to_names_counts_what_it_widened():
    from xner.pipeline.names import snap_to_names

    sentences = [["vive", "en", "San", "Carlos", "de", "Bariloche"], ["el", "perro", "Lobo"]]
    tags = [_tags([(5, 6, "LOC")], 6), _tags([(2, 3, "PER")], 3)]
    out, counts = snap_to_names(sentences, tags, "spa")
    assert out == [_tags([(2, 6, "LOC")], 6), tags[1]]
    assert counts == {"entities_widened": 1, "sentences_changed": 1}
    # without Spanish connectors the name stops at "de"
    out, _ = snap_to_names(sentences, tags, "isl")
    assert out[0] == tags[0]
