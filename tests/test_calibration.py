"""Calibrated confidence: the three calibrators, the choice between them, ECE, precision at coverage."""

from __future__ import annotations

import numpy as np
import pytest

from ameli_ray.calibration import (
    Calibrator,
    answer_features,
    coverage_at_precision,
    expected_calibration_error,
    fit_calibrator,
    precision_at_coverage,
    reliability_bins,
    threshold_for_precision,
)


def miscalibrated(n: int = 2000, seed: int = 0):
    """Answers whose raw softmax share is far too sure of itself: the true probability of being
    right is sigmoid(margin - 1), but the fused scores are 6x sharper than that."""
    rng = np.random.default_rng(seed)
    fused, pick, correct = [], [], []
    for _ in range(n):
        margin = rng.uniform(0, 4)
        f = np.array([margin, 0.0, -1.0]) * 6.0
        fused.append(f)
        pick.append(0)
        correct.append(rng.random() < 1 / (1 + np.exp(-(margin - 1))))
    return answer_features(fused, pick, [False] * n), np.array(correct)


def test_calibration_lowers_ece_on_a_miscalibrated_score():
    train, y_train = miscalibrated(seed=0)
    test, y_test = miscalibrated(seed=1)
    raw = Calibrator(method="temperature", temperature=1.0).confidence(test)  # the raw softmax share
    fitted = fit_calibrator(train, y_train)
    calibrated = fitted.confidence(test)
    before, after = expected_calibration_error(raw, y_test), expected_calibration_error(calibrated, y_test)
    assert before > 0.15 and after < 0.05 and after < before / 3
    assert set(fitted.cv_brier) == {"temperature", "platt", "isotonic"}
    assert fitted.cv_brier[fitted.method] <= min(fitted.cv_brier.values()) + 0.002


@pytest.mark.parametrize("method", ["temperature", "platt", "isotonic"])
def test_every_method_fits_stores_as_json_and_stays_in_range(method):
    from ameli_ray.calibration import _fit

    x, y = miscalibrated(n=300)
    c = _fit(method, x, y)
    again = Calibrator.model_validate_json(c.model_dump_json())
    np.testing.assert_allclose(again.confidence(x), c.confidence(x))
    p = c.confidence(x)
    assert ((p >= 0) & (p <= 1)).all()
    # more margin is never less confident
    order = np.argsort(x.margin)
    assert (np.diff(p[order]) >= -1e-9).all()


def test_a_step_shaped_truth_prefers_isotonic():
    """Right iff the score clears 2, whatever the margin: a logistic curve cannot bend like that."""
    rng = np.random.default_rng(4)
    s = rng.uniform(0, 4, 1500)
    correct = (s > 2) ^ (rng.random(1500) < 0.05)
    correct |= (s > 3.5)
    x = answer_features([np.array([v, v - 1]) for v in s], [0] * len(s), [False] * len(s))
    assert fit_calibrator(x, correct).method in ("isotonic", "platt")
    assert fit_calibrator(x, correct).cv_brier["isotonic"] < fit_calibrator(x, correct).cv_brier["temperature"]


def test_fit_survives_all_right_all_wrong_and_tiny_dev():
    x, _ = miscalibrated(n=50)
    for y in (np.ones(50, bool), np.zeros(50, bool)):
        p = fit_calibrator(x, y).confidence(x)
        assert np.isfinite(p).all()
    tiny, _ = miscalibrated(n=3)
    assert np.isfinite(fit_calibrator(tiny, np.array([True, False, True])).confidence(tiny)).all()
    empty = answer_features([], [], [])
    assert fit_calibrator(empty, np.zeros(0, bool)).confidence(empty).shape == (0,)


def test_contradiction_is_a_feature_platt_learns():
    rng = np.random.default_rng(5)
    n = 800
    contradicted = rng.random(n) < 0.3
    correct = np.where(contradicted, rng.random(n) < 0.1, rng.random(n) < 0.9)
    x = answer_features([np.array([1.0, 0.0])] * n, [0] * n, list(contradicted))
    c = fit_calibrator(x, correct)
    p = c.confidence(x)
    assert c.method in ("platt", "isotonic")
    assert p[contradicted].mean() == pytest.approx(0.1, abs=0.05) and p[~contradicted].mean() == pytest.approx(0.9, abs=0.05)


def test_ece_by_hand():
    conf = np.array([0.95, 0.95, 0.15, 0.15])
    right = np.array([True, False, False, False])
    # bin 9: accuracy 0.5 vs 0.95; bin 1: accuracy 0 vs 0.15
    assert expected_calibration_error(conf, right) == pytest.approx((2 * 0.45 + 2 * 0.15) / 4)
    assert expected_calibration_error(np.zeros(0), np.zeros(0)) == 0.0
    bins = reliability_bins(conf, right)
    assert [b["n"] for b in bins] == [0, 2, 0, 0, 0, 0, 0, 0, 0, 2] and bins[9]["accuracy"] == 0.5


def test_threshold_for_precision_keeps_the_most_answers_that_reach_the_target():
    conf = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    right = np.array([True, True, True, False, True, False])
    t, ok = threshold_for_precision(conf, right, 0.8)  # prefixes: 1, 1, 1, .75, .8, .67
    assert ok and t == pytest.approx(0.45)
    t, ok = threshold_for_precision(conf, right, 0.9)
    assert ok and t == pytest.approx(0.65)
    assert threshold_for_precision(conf, right, 0.5) == (None, True)  # everything kept reaches it
    t, ok = threshold_for_precision(conf, np.zeros(6, bool), 0.5)
    assert not ok  # unreachable: the most precise cut (all 0 here: the first)
    # ties are cut together, never between equal confidences
    t, ok = threshold_for_precision(np.array([0.9, 0.7, 0.7, 0.1]), np.array([True, True, False, False]), 0.99)
    assert ok and t == pytest.approx(0.8)


def test_precision_at_coverage_and_coverage_at_precision():
    conf = np.linspace(1, 0.01, 100)
    right = np.arange(100) < 80  # the 80 most confident are right
    curve = precision_at_coverage(conf, right)
    assert [c["target_coverage"] for c in curve] == [round(0.1 * i, 1) for i in range(1, 11)]
    assert curve[7]["precision"] == 1.0 and curve[9]["precision"] == 0.8 and curve[9]["coverage"] == 1.0
    assert coverage_at_precision(conf, right, 0.95) == pytest.approx(84 / 100)  # 80/84 = 0.952
    assert coverage_at_precision(conf, right, 0.99) == pytest.approx(0.80)
    assert coverage_at_precision(conf, np.zeros(100, bool), 0.95) == 0.0
