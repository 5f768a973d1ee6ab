"""Which words pass through MT untranslated (xner.pipeline.translate.verbatim): pure functions."""

from __future__ import annotations

import pytest

from xner.pipeline.translate.verbatim import is_capitalised, lowercase_vocabulary, name_runs


def runs(sentence: str, *context: str) -> list[str]:
    tokens = sentence.split()
    vocab = lowercase_vocabulary(s.split() for s in (sentence, *context))
    return [" ".join(tokens[a:b]) for a, b in name_runs(tokens, vocab)]


def test_capitalised_words_inside_a_sentence_are_names():
    assert runs("vive en Lobo con el lobo .") == ["Lobo"]
    assert runs("la ciudad de Zaragoza , Huesca") == ["Zaragoza", "Huesca"]


def test_short_lower_case_words_join_two_capitalised_ones():
    assert runs("vive en San Carlos de Bariloche .") == ["San Carlos de Bariloche"]
    assert runs("de la Universidad de la República") == ["Universidad de la República"]
    # three connectors in a row, a long word or no capitalised word after them: the run ends
    assert runs("entre Madrid de la de Roma") == ["Madrid", "Roma"]
    assert runs("entre Madrid para Roma") == ["Madrid", "Roma"]
    assert runs("en Madrid de noche") == ["Madrid"]


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
    assert spans == [(0, 3), (6, 8)]
    assert all(a < b for a, b in spans) and all(spans[k][1] <= spans[k + 1][0] for k in range(len(spans) - 1))
