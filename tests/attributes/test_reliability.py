"""The per-key rule: a key whose extracted values contradict the right product too often on dev
is switched off; keys the product lacks say nothing."""

import pytest

from ameli_ray.attributes.extract import ExtractedAttribute
from ameli_ray.attributes.reliability import KeyReliability, key_reliability, unreliable_keys
from ameli_ray.attributes.vocabulary import AttributeVocabulary
from ameli_ray.schema import Entity


@pytest.fixture(scope="module")
def vocab() -> AttributeVocabulary:
    return AttributeVocabulary.build([
        Entity(id="0", name="tv", category="TVs", attributes={"Brand": "Lumen", "Dimensions": "48 x 28 x 3 inches"}),
        Entity(id="1", name="cable", category="Cables", attributes={"Brand": "Wirex"}),  # no dimensions
    ])


def _read(key: str, value: str) -> ExtractedAttribute:
    return ExtractedAttribute(key=key, value=value, surface=value, source="text", start=0, end=0, confidence=0.9)


def test_each_review_counts_once_per_key_and_absent_keys_do_not_count(vocab):
    reviews = [
        # the brand right; the dimensions read from "a 12 x 8 x 2 inches box": wrong
        ([_read("brand", "lumen"), _read("dimensions", "12 x 8 x 2 inches")], 0),
        # two brands read, one right: the key agrees (as the linker scores it)
        ([_read("brand", "wirex"), _read("brand", "lumen")], 0),
        ([_read("brand", "wirex"), _read("dimensions", "48 x 28 x 3 inches")], 0),
        ([_read("dimensions", "48 x 28 x 3 inches")], 1),  # the cable has no dimensions: no evidence
    ]
    got = key_reliability(reviews, vocab)
    assert got["brand"] == KeyReliability("brand", agree=2, contradict=1)
    assert got["dimensions"] == KeyReliability("dimensions", agree=1, contradict=1)
    assert got["dimensions"].precision == 0.5 and got["dimensions"].reads == 2


def test_only_keys_read_often_enough_and_too_often_wrong_are_switched_off():
    rel = {"brand": KeyReliability("brand", 96, 4), "dimensions": KeyReliability("dimensions", 14, 11),
           "colour": KeyReliability("colour", 2, 5)}  # bad, but 7 reads say little
    assert unreliable_keys(rel, min_precision=0.75, min_reads=10) == ["dimensions"]
    assert unreliable_keys(rel, min_precision=0.75, min_reads=5) == ["colour", "dimensions"]
    assert unreliable_keys(rel, min_precision=0.5, min_reads=10) == []
