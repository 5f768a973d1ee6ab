"""Span-level ensembles of model transfer and projection (xner.pipeline.ensemble)."""

import pytest

from xner.pipeline.ensemble import ensemble, fill

TRANSFER = ["B-PER", "I-PER", "O", "O", "B-ORG", "O", "O"]
PROJECTED = ["B-PER", "O", "O", "B-LOC", "I-LOC", "O", "B-LOC"]


def test_fill_keeps_the_primary_and_adds_only_non_overlapping_entities():
    # transfer's PER (0-2) and ORG (4) stand; projection's LOC 3-5 overlaps the ORG and is left out, its LOC at 6
    # fills a gap; projection's PER (0) overlaps transfer's PER and is left out
    assert fill(TRANSFER, PROJECTED) == ["B-PER", "I-PER", "O", "O", "B-ORG", "O", "B-LOC"]
    assert ensemble("transfer_fill", TRANSFER, PROJECTED) == fill(TRANSFER, PROJECTED)
    # the reverse priority: projection's entities stand; transfer's ORG overlaps LOC 3-5, its PER overlaps PER 0
    assert ensemble("projection_fill", TRANSFER, PROJECTED) == PROJECTED


def test_fill_with_an_empty_side_returns_the_other():
    empty = ["O"] * len(TRANSFER)
    assert fill(empty, TRANSFER) == TRANSFER and fill(TRANSFER, empty) == TRANSFER


def test_bad_inputs_are_errors():
    with pytest.raises(ValueError, match="different lengths"):
        fill(["O"], ["O", "O"])
    with pytest.raises(ValueError, match="unknown ensemble"):
        ensemble("vote", TRANSFER, PROJECTED)
