"""Match features: model codes across separators, numbers, stated values, per candidate."""

import numpy as np
import pytest

from ameli_ray.disambiguation.match_features import (
    CANDIDATE_FEATURES,
    SLOT_FEATURES,
    match_features,
    n_match_features,
)
from ameli_ray.schema import Entity

COL = {name: i for i, name in enumerate(CANDIDATE_FEATURES)}


def _slot(slot: int, feature: str) -> int:
    return len(CANDIDATE_FEATURES) + len(SLOT_FEATURES) * slot + SLOT_FEATURES.index(feature)


# Abt-Buy's kind of case: the review's code "NNSD377SS" and the right product's "NN-SD377S"
REVIEW = "Panasonic Stainless Steel Countertop Microwave Oven - NNSD377SS / 0.8 Cu. Ft. Capacity / 800 Watts"
RIGHT = Entity(id="1", name="Panasonic NN-SD377S 0.8 cu.ft. 800 WATT Microwave Oven", attributes={"Capacity": "0.8 cu. ft."})
WRONG = Entity(id="2", name="Panasonic NNSD767S 1.6 cu. ft. Stainless Steel Countertop Microwave Oven",
               attributes={"Capacity": "1.6 cu. ft.", "Color": "Stainless Steel"})
PLAIN = Entity(id="3", name="Countertop Microwave", description="A microwave oven.")


def test_codes_meet_across_separators_and_suffixes():
    f = match_features(REVIEW, "Panasonic Microwave", [RIGHT, WRONG, PLAIN], ["capacity", "color"])
    assert f.shape == (3, n_match_features(2)) and f.dtype == np.float32
    # the right product's code is in the review (as a prefix of NNSD377SS); the wrong one's is not
    assert f[0, COL["candidate_code_hits"]] == 1.0 and f[1, COL["candidate_code_hits"]] == 0.0
    assert f[0, COL["review_has_codes"]] == f[1, COL["review_has_codes"]] == 1.0
    assert f[2, COL["candidate_has_codes"]] == 0.0 and f[2, COL["candidate_code_hits"]] == 0.0  # nothing to compare
    # numbers of the name: 0.8 and 800 are in the review, 1.6 is not
    assert f[0, COL["number_coverage"]] == 1.0 and f[1, COL["number_coverage"]] < 0.5
    assert ((f >= 0) & (f <= 1)).all()


def test_review_codes_are_looked_for_in_the_candidate_text():
    review = "Fellowes Confetti Cut Shredder - W11C, shreds 11 sheets"
    right = Entity(id="a", name="Fellowes Powershred Personal W11C Shredder - 30100")
    wrong = Entity(id="b", name="Fellowes Powershred SB-97Cs Confetti Cut Shredder - 3219701")
    f = match_features(review, "", [right, wrong], [])
    assert f[0, COL["review_code_hits"]] == 1.0 and f[1, COL["review_code_hits"]] == 0.0
    assert f[0, COL["surface_coverage"]] == 0.0  # no surface: no evidence either way


def test_slot_features_follow_the_keys_and_pad_to_the_statement_count():
    review = "Love my red one, 128GB is plenty."
    red = Entity(id="r", name="Aero X2", attributes={"Color": "Red", "Storage Capacity": "128GB"})
    blue = Entity(id="b", name="Aero X2", attributes={"colour ": "Blue"})  # no capacity
    f = match_features(review, "Aero X2", [red, blue], ["color", "Storage Capacity"], statements=3)
    assert f.shape == (2, n_match_features(3))
    assert f[0, _slot(0, "present")] == 1 and f[0, _slot(0, "value_coverage")] == 1.0
    assert f[1, _slot(0, "present")] == 0  # "colour " is another key than "color"
    assert f[0, _slot(1, "value_coverage")] == 1.0 and f[1, _slot(1, "present")] == 0
    assert (f[:, _slot(2, "present")] == 0).all()  # the padding slot
    with pytest.raises(ValueError, match="3 statement keys for 2 slots"):
        match_features(review, "", [red], ["a", "b", "c"], statements=2)


def test_no_candidates_gives_an_empty_block():
    assert match_features("anything", "", [], ["color"]).shape == (0, n_match_features(1))
