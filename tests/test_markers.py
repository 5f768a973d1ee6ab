"""Marker projection (EasyProject): insertion, extraction from hand-made "translations", type recovery."""

from __future__ import annotations

import pytest

from xner.labels import tags_to_spans
from xner.pipeline.markers import extract_marked_spans, insert_markers, marker_conflict, project_markers
from xner.types import Span

SRC = "Nelson Mandela visited the European Commission in Brussels .".split()
ENTS = [Span(0, 2, "PER"), Span(4, 6, "ORG"), Span(7, 8, "LOC")]
TRANSLATIONS = ["Nelson Mandela", "Comisión Europea", "Bruselas"]


def _project(translated, style, ents=ENTS, translations=None, **kwargs):
    extraction = extract_marked_spans(translated, style, len(ents), **kwargs)
    result = project_markers(ents, extraction, translations)
    result.stats.check()
    assert len(result.tags) == len(result.tokens) and tags_to_spans(result.tags) == result.spans
    return extraction, result


def _entities(result):
    return [(" ".join(result.tokens[s.start : s.end]), s.label) for s in result.spans]


def test_insert_markers():
    assert insert_markers(SRC, ENTS) == (
        "[ Nelson Mandela ] visited the [ European Commission ] in [ Brussels ] ."
    )
    assert insert_markers(SRC, ENTS, "html") == (
        '<b id="0">Nelson Mandela</b> visited the <b id="1">European Commission</b> in <b id="2">Brussels</b> .'
    )
    assert insert_markers(["AT&T", "<", "x"], [Span(0, 1, "ORG")], "html") == '<b id="0">AT&amp;T</b> &lt; x'
    assert marker_conflict(["[", "x", "]"], "bracket") and not marker_conflict(["[", "x"], "html")
    with pytest.raises(ValueError, match="use html"):
        insert_markers(["[", "x", "]"], [Span(1, 2, "PER")])
    with pytest.raises(ValueError, match="overlaps"):
        insert_markers(SRC, [Span(0, 2, "PER"), Span(1, 3, "ORG")])


@pytest.mark.parametrize("style", ["bracket", "html"])
def test_round_trip_without_translation(style):
    tokens = ["AT&T", "<", "said", "(", "Reuters", ")", "Jean-Pierre", "O'Neill", "U.S."]
    ents = [Span(0, 1, "ORG"), Span(4, 5, "ORG"), Span(6, 8, "PER"), Span(8, 9, "LOC")]
    if style == "bracket":
        tokens = tokens[:1] + tokens[2:]
        ents = [Span(s.start - 1, s.end - 1, s.label) if s.start else s for s in ents]
    extraction, result = _project(insert_markers(tokens, ents, style), style, ents)
    assert result.tokens == tokens
    assert result.spans == ents
    assert result.stats.projected == len(ents)


def test_html_reordered_and_punctuation_glued():
    translated = 'La <b id="1">Comisión Europea</b> en <b id="2">Bruselas.</b> recibió a "<b id="0">Nelson Mandela</b>"'
    extraction, result = _project(translated, "html")
    assert _entities(result) == [("Comisión Europea", "ORG"), ("Bruselas", "LOC"), ("Nelson Mandela", "PER")]
    assert extraction.tokens[-1] == '"' and "." in extraction.tokens
    assert extraction.stats["marker_edges_trimmed"] == 1


def test_html_split_marker_merged_over_short_gap():
    translated = '<b id="0">Werner</b> de la <b id="0">Zwingmann</b> vio la <b id="1">Comisión</b>'
    ents = [Span(0, 2, "PER"), Span(4, 5, "ORG")]
    extraction, result = _project(translated, "html", ents)
    assert _entities(result) == [("Werner de la Zwingmann", "PER"), ("Comisión", "ORG")]
    assert extraction.stats["split_markers_merged"] == 1


def test_html_split_marker_far_apart_keeps_the_longer():
    translated = '<b id="0">Werner</b> dijo a su hermano que <b id="0">von Zwingmann</b> llegó'
    ents = [Span(0, 3, "PER")]
    extraction, result = _project(translated, "html", ents)
    assert _entities(result) == [("von Zwingmann", "PER")]
    assert extraction.stats["split_markers_dropped"] == 1 and extraction.stats["split_markers_merged"] == 0
    # A split span never merges across another entity's marker.
    translated = '<b id="0">Werner</b> <b id="1">ONU</b> <b id="0">Zwingmann</b>'
    extraction, result = _project(translated, "html", [Span(0, 2, "PER"), Span(3, 4, "ORG")])
    assert _entities(result) == [("Werner", "PER"), ("ONU", "ORG")]
    assert extraction.stats["split_markers_dropped"] == 1


def test_html_missing_closing_marker_is_counted_not_guessed():
    translated = (
        '<b id="0">Nelson Mandela visitó la <b id="1">Comisión Europea</b> en <b id="2">Bruselas</b> .'
    )
    extraction, result = _project(translated, "html")
    assert _entities(result) == [("Comisión Europea", "ORG"), ("Bruselas", "LOC")]
    assert extraction.stats["unclosed_marker"] == 1
    assert result.stats.dropped == {"marker_unbalanced": 1}
    assert result.stats.total_by_type["PER"] == 1 and result.stats.projected_by_type["PER"] == 0

    # A marker that never comes back at all.
    extraction, result = _project('Nelson Mandela visitó la <b id="1">Comisión</b> en Bruselas', "html")
    assert result.stats.dropped == {"marker_missing": 2} and result.stats.projected == 1

    # Stray closing tag, a bad id and an empty marker.
    extraction, result = _project(
        '</b> <b id="7">x</b> <b id="0">Nelson</b> <b id="1"> , </b> <b id="2">Bruselas</b>', "html"
    )
    assert extraction.stats["unmatched_close_marker"] == 1 and extraction.stats["marker_bad_id"] == 1
    assert extraction.stats["empty_marker"] == 1
    assert result.stats.dropped == {"marker_empty": 1} and result.stats.projected == 2


def test_html_preposition_pulled_inside():
    # Apertium eng-cat: "of Germany" -> <b id="1">d'Alemanya</b> : the elided article is trimmed off.
    ents = [Span(0, 1, "PER"), Span(3, 4, "LOC")]
    extraction, result = _project(
        '<b id="0">Merkel</b> és la canceller <b id="1">d\'Alemanya</b>', "html", ents
    )
    assert _entities(result) == [("Merkel", "PER"), ("Alemanya", "LOC")]
    assert extraction.tokens == ["Merkel", "és", "la", "canceller", "d'", "Alemanya"]
    assert extraction.stats["marker_edges_trimmed"] == 1
    # A full preposition pulled inside is kept (never guessed away) but made visible.
    extraction, result = _project('<b id="0">Merkel</b> de <b id="1">de Alemania</b>', "html", ents)
    assert _entities(result)[1] == ("de Alemania", "LOC")
    assert extraction.stats["marker_starts_lowercase"] == 1


def test_html_other_tags_removed_and_entities_unescaped():
    translated = "<p><b ID='0'>AT&amp;T</b> &lt; <i>x</i></p>"
    extraction, result = _project(translated, "html", [Span(0, 1, "ORG")])
    assert extraction.tokens == ["AT&T", "<", "x"] and _entities(result) == [("AT&T", "ORG")]
    assert extraction.stats["other_tags_removed"] == 4


def test_bracket_detached_glued_and_escaped():
    translated = "[Nelson Mandela] visitó la \\[ Comisión Europea \\] en [ Bruselas ]."
    extraction, result = _project(translated, "bracket")
    assert _entities(result) == [("Nelson Mandela", "PER"), ("Comisión Europea", "ORG"), ("Bruselas", "LOC")]
    assert extraction.tokens[-1] == "." and extraction.stats["escaped_brackets"] == 2
    assert result.stats.counts["types_by_order"] == 3


def test_bracket_reordered_needs_translations():
    # Mandela 's ANC won  ->  el ANC de Mandela ganó : the two entities swap places.
    ents = [Span(0, 1, "PER"), Span(2, 3, "ORG")]
    translated = "el [ ANC ] de [ Mandela ] ganó"
    # By order alone (EasyProject's rule when counts match) the types come out swapped: documented behaviour.
    _, by_order = _project(translated, "bracket", ents)
    assert _entities(by_order) == [("ANC", "PER"), ("Mandela", "ORG")]
    # With the separately translated entities the contradiction is noticed and resolved.
    _, fixed = _project(translated, "bracket", ents, ["Mandela", "ANC"])
    assert _entities(fixed) == [("ANC", "ORG"), ("Mandela", "PER")]
    assert fixed.stats.counts["order_contradicted"] == 1 and fixed.stats.counts["types_by_translation"] == 2


def test_bracket_count_mismatch_resolved_by_exact_and_fuzzy_matching():
    ents = [Span(0, 3, "ORG"), Span(5, 6, "LOC"), Span(7, 8, "PER")]
    translations = ["Organizacion de las Naciones Unidas", "Ginebra", "Kofi"]
    translated = "la [ Organización de las Naciones Unidas ] se reunió en [ Ginebra ] con Kofi Annan"
    extraction, result = _project(translated, "bracket", ents, translations)
    assert extraction.stats["count_mismatch"] == 1
    assert _entities(result) == [("Organización de las Naciones Unidas", "ORG"), ("Ginebra", "LOC")]
    assert result.stats.dropped == {"marker_missing": 1}

    # Without translations nothing can be resolved: every span is counted, none guessed.
    _, blind = _project(translated, "bracket", ents)
    assert blind.spans == [] and blind.stats.counts["unresolved_spans"] == 2
    assert blind.stats.dropped == {"marker_unresolved_type": 2, "marker_missing": 1}


def test_bracket_unbalanced():
    translated = "[ Nelson Mandela visitó la [ Comisión Europea ] en Bruselas ] ."
    extraction, result = _project(translated, "bracket", translations=TRANSLATIONS)
    assert extraction.stats["unclosed_marker"] == 1 and extraction.stats["unmatched_close_marker"] == 1
    assert _entities(result) == [("Comisión Europea", "ORG")]
    assert result.stats.dropped == {"marker_missing": 2}


def test_mismatched_inputs_raise():
    extraction = extract_marked_spans("x", "html", 2)
    with pytest.raises(ValueError, match="2 entities"):
        project_markers(ENTS, extraction)
    with pytest.raises(ValueError, match="style"):
        extract_marked_spans("x", "xml", 1)
