"""Which words pass through MT untranslated (xner.pipeline.translate.verbatim): pure functions."""

from __future__ import annotations

import pytest

from xner.pipeline.translate.verbatim import (
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
