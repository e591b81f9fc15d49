"""The paper's attribute P/R/F1: key case-insensitive, values substrings of each other after normalisation."""

from __future__ import annotations

import pytest

from ameli_ray.evaluation.attributes import attribute_prf, attribute_prf_by_source, value_matches


@pytest.mark.parametrize(
    ("predicted", "gold", "ok"),
    [
        ("256gb", "256 GB", True),
        ("black", "Onyx Black", True),  # substring either way
        ("Onyx Black", "black", True),
        ("blue", "Midnight Blue", True),
        ("128gb", "256GB", False),
        ("27in", '27"', True),
        ("", "anything", False),  # an empty prediction is never right
        ("x", "", False),
    ],
)
def test_value_matches(predicted: str, gold: str, ok: bool) -> None:
    assert value_matches(predicted, gold) is ok


def test_prf_counts() -> None:
    predicted = [{"Color": "black", "storage capacity": "128gb"}, {"brand": "acme"}, {}]
    gold = [{"color": "Onyx Black", "Storage Capacity": "256 GB"}, {"Brand": "ACME"}, {"Color": "Red"}]
    m = attribute_prf(predicted, gold)
    assert (m["n_predicted"], m["n_gold"], m["n_correct"]) == (3, 4, 2)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 4)
    assert m["f1"] == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))


def test_prf_key_must_match() -> None:
    m = attribute_prf([{"size": "256gb"}], [{"Storage Capacity": "256GB"}])
    assert m["n_correct"] == 0 and m["precision"] == 0.0 and m["recall"] == 0.0 and m["f1"] == 0.0


def test_prf_empty_and_mismatched() -> None:
    m = attribute_prf([], [])
    assert m == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "n_predicted": 0, "n_gold": 0, "n_correct": 0}
    with pytest.raises(ValueError):
        attribute_prf([{}], [])


def test_by_source() -> None:
    predicted = [
        {"text": {"color": "blue", "storage capacity": "256gb"}, "ocr": {"model number": "NV-1", "color": "red"}},
        {"text": {"brand": "acme"}},
    ]
    gold = [{"Color": "Midnight Blue", "Storage Capacity": "256GB", "Model Number": "NV-1"}, {"Brand": "Acme"}]
    sources = [{"Color": "text", "Storage Capacity": "text", "Model Number": "ocr"}, {"Brand": "ocr"}]
    m = attribute_prf_by_source(predicted, gold, sources)
    assert set(m) == {"text", "ocr"}
    # text: 2 right of 2 judged ("brand" of mention 2 is shown by OCR only, so not judged for text)
    assert (m["text"]["n_predicted"], m["text"]["n_gold"], m["text"]["n_correct"]) == (2, 2, 2)
    # ocr: the model number is right; its "red" is for a key whose gold the text shows: not judged
    assert (m["ocr"]["n_predicted"], m["ocr"]["n_gold"], m["ocr"]["n_correct"]) == (1, 2, 1)
    plain = attribute_prf_by_source(predicted, gold)  # without sources: every source against all gold
    assert plain["ocr"]["n_gold"] == 4 and plain["ocr"]["n_predicted"] == 2
    with pytest.raises(ValueError):
        attribute_prf_by_source(predicted, gold[:1])
