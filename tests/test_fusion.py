"""Fusion of the disambiguation streams, the attribute filter on the fused ranking, the calibrated
confidence and the no-match answer decided on it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ameli_ray.calibration import Calibrator
from ameli_ray.config import FusionSettings
from ameli_ray.fusion import STREAMS, FusionModel, StreamScores, answer, decide, fit_fusion, fuse

NAN = float("nan")
IDENTITY = {s: (0.0, 1.0) for s in STREAMS}


def model(retrieval: float = 0.0, text: float = 0.0, image: float = 0.0, **kw) -> FusionModel:
    return FusionModel(
        weights={"retrieval": retrieval, "text": text, "image": image},
        standardisation=kw.pop("standardisation", IDENTITY),
        **kw,
    )


def scores(retrieval, text, image, contradicted=None) -> StreamScores:
    return StreamScores(retrieval, text, image, contradicted if contradicted is not None else [False] * len(retrieval))


# --- fuse ---------------------------------------------------------------------------------------


def test_fuse_is_the_weighted_sum_of_standardised_streams():
    m = model(0.5, 0.25, 0.25, standardisation={"retrieval": (1.0, 2.0), "text": (0.0, 1.0), "image": (0.0, 0.5)})
    out = fuse(scores([1.0, 3.0], [2.0, 0.0], [0.5, -0.5]), m)
    # retrieval (0, 1), text (2, 0), image (1, -1)
    np.testing.assert_allclose(out, [0.5 * 0 + 0.25 * 2 + 0.25 * 1, 0.5 * 1 + 0 - 0.25])


def test_fuse_renormalises_when_a_stream_is_missing_for_the_mention():
    m = model(0.2, 0.4, 0.4)
    out = fuse(scores([1.0, 0.0], [0.0, 2.0], [NAN, NAN]), m)  # no photos
    np.testing.assert_allclose(out, [1 / 3, 2 * 2 / 3])


def test_fuse_gives_a_missing_candidate_value_the_mention_minimum():
    m = model(image=1.0)
    out = fuse(scores([0.0] * 3, [0.0] * 3, [0.3, NAN, -0.2]), m)
    np.testing.assert_allclose(out, [0.3, -0.2, -0.2])  # an entity without images cannot win on images


def test_fuse_ignores_weight_zero_streams_even_when_nan_or_infinite():
    m = model(retrieval=1.0, standardisation={"retrieval": (0.0, 1.0)})  # no stats for the others either
    out = fuse(scores([2.0, 1.0], [NAN, math.inf], [NAN, NAN]), m)
    np.testing.assert_allclose(out, [2.0, 1.0])


def test_fuse_falls_back_to_retrieval_when_no_weighted_stream_has_signal():
    out = fuse(scores([2.0, 1.0], [NAN, NAN], [NAN, NAN]), model(text=0.5, image=0.5))
    np.testing.assert_allclose(out, [2.0, 1.0])
    assert fuse(scores([], [], []), model(1.0)).shape == (0,)


# --- answer -------------------------------------------------------------------------------------


def test_answer_ranks_by_fused_score_with_stable_ties():
    m = model(1.0, filter=False)
    assert answer(np.array([0.1, 0.9, 0.3]), np.zeros(3, bool), m) == (1, False)
    assert answer(np.array([0.5, 0.5]), np.zeros(2, bool), m) == (0, False)  # retrieval order breaks ties
    assert answer(np.zeros(0), np.zeros(0, bool), m) == (None, False)


def test_answer_filter_passes_over_contradicted_within_depth():
    fused = np.array([0.1, 0.9, 0.3, 0.5])  # ranking: 1, 3, 2, 0
    contradicted = np.array([False, True, False, True])
    assert answer(fused, contradicted, model(1.0, filter=True, filter_depth=10)) == (2, True)
    assert answer(fused, contradicted, model(1.0, filter=False)) == (1, False)
    # depth 2 sees only 1 and 3, both contradicted: the top one
    assert answer(fused, contradicted, model(1.0, filter=True, filter_depth=2)) == (1, False)
    # all contradicted: the top one, not filtered
    assert answer(fused, np.ones(4, bool), model(1.0, filter=True)) == (1, False)
    # the top itself uncontradicted: nothing passed over
    assert answer(fused, np.array([True, False, True, True]), model(1.0)) == (1, False)


def test_answer_is_nil_below_the_confidence_threshold():
    # platt on the answer's fused score alone: confidence = sigmoid(10 * (score - 0.4))
    m = model(1.0, calibration=Calibrator(method="platt", coef=[10.0, 0.0, 0.0], intercept=-4.0), confidence_threshold=0.5)
    assert answer(np.array([0.3, 0.2]), np.zeros(2, bool), m) == (None, False)
    assert answer(np.array([0.3, 0.5]), np.zeros(2, bool), m) == (1, False)
    # the threshold applies to the answer the filter chose
    assert answer(np.array([0.3, 0.5]), np.array([False, True]), m) == (None, True)
    d = decide(np.array([0.3, 0.5]), np.array([False, True]), m)
    assert d.index is None and d.best == 0 and d.confidence == pytest.approx(1 / (1 + math.exp(1.0)))
    assert decide(np.array([0.3, 0.5]), np.zeros(2, bool), model(1.0)).confidence is None  # no calibrator


# --- fit_fusion ---------------------------------------------------------------------------------


def synthetic_dev(n: int = 300, seed: int = 0, nil_every: int = 0):
    """Only the text stream separates the gold; retrieval and image are noise."""
    rng = np.random.default_rng(seed)
    dev, gold, nil = [], [], []
    for i in range(n):
        k = 10
        is_nil = bool(nil_every) and i % nil_every == 0
        g = int(rng.integers(k))
        text = rng.normal(size=k)
        if not is_nil:
            text[g] += 4.0
        image = rng.uniform(-1, 1, k) if i % 2 else np.full(k, NAN)
        dev.append(StreamScores(rng.normal(size=k), text, image, np.zeros(k, bool)))
        gold.append(None if is_nil else g)
        nil.append(is_nil)
    return dev, gold, nil


def test_fit_puts_the_weight_on_the_stream_that_carries_the_signal():
    dev, gold, nil = synthetic_dev()
    m = fit_fusion(dev, gold, nil, FusionSettings(), filter=True, filter_depth=10)
    assert m.weights["text"] >= 0.8
    assert m.dev["accuracy"] > 0.9 and m.confidence_threshold is None  # no NIL mentions, no target: never abstain
    assert m.calibration is not None
    best = max(g["accuracy"] for g in m.grid)
    assert len(m.grid) == 66 and best - FusionSettings().min_gain <= m.dev["accuracy"] <= best
    assert fit_fusion(dev, gold, nil, FusionSettings(min_gain=0), filter=True, filter_depth=10).dev["accuracy"] == best
    assert abs(sum(m.weights.values()) - 1) < 1e-9
    assert m.top_n == FusionSettings().top_n  # what the statistics were fitted on travels with them
    # the stored model reproduces the dev accuracy answer by answer
    hits = sum(answer(fuse(d, m), d.contradicted, m)[0] == g for d, g in zip(dev, gold))
    assert hits / len(dev) == m.dev["accuracy"]


def test_fit_respects_the_streams_of_an_ablation():
    dev, gold, nil = synthetic_dev()
    dev[0].text[:] = NAN  # a mention without the text stream falls back to retrieval, in fit and fuse alike
    m = fit_fusion(dev, gold, nil, FusionSettings(), filter=False, filter_depth=10, streams=("text",))
    assert m.weights == {"retrieval": 0.0, "text": 1.0, "image": 0.0} and len(m.grid) == 1
    hits = sum(answer(fuse(d, m), d.contradicted, m)[0] == g for d, g in zip(dev, gold))
    assert hits / len(dev) == m.dev["accuracy"]
    m = fit_fusion(dev, gold, nil, FusionSettings(), filter=False, filter_depth=10, streams=("retrieval", "image"))
    assert m.weights["text"] == 0.0 and len(m.grid) == 11
    with pytest.raises(ValueError):
        fit_fusion(dev, gold, nil, FusionSettings(), filter=False, filter_depth=10, streams=("audio",))


def test_the_plateau_edge_breaks_ties_towards_retrieval_then_text():
    # every candidate scores the same everywhere: every weighting is equally (in)accurate
    dev = [scores([0.0, 0.0], [1.0, 1.0], [0.5, 0.5]) for _ in range(4)]
    edge = FusionSettings(plateau="most_retrieval")
    m = fit_fusion(dev, [0, 1, 0, 1], [False] * 4, edge, filter=False, filter_depth=10)
    assert m.weights == {"retrieval": 1.0, "text": 0.0, "image": 0.0}
    m = fit_fusion(dev, [0, 1, 0, 1], [False] * 4, edge, filter=False, filter_depth=10, streams=("text", "image"))
    assert m.weights == {"retrieval": 0.0, "text": 1.0, "image": 0.0}


def test_fit_standardises_per_stream_over_all_dev_candidates():
    dev = [scores([1.0, 3.0], [0.0, 0.0], [NAN, NAN]), scores([5.0], [0.0], [0.2])]
    m = fit_fusion(dev, [1, 0], [False, False], FusionSettings(), filter=False, filter_depth=10)
    assert m.standardisation["retrieval"] == pytest.approx((3.0, math.sqrt(8 / 3)))
    assert m.standardisation["text"][1] > 0  # a constant stream gets the std floor, not 0
    assert m.standardisation["image"] == pytest.approx((0.2, 1e-6))


def test_confidence_threshold_separates_the_populations():
    dev, gold, nil = synthetic_dev(n=400, nil_every=4)
    # the plateau's edge: text alone carries the signal here, and the centre would add the two
    # noise streams at 0.1 each (nil recall 0.90 instead of 0.95)
    m = fit_fusion(dev, gold, nil, FusionSettings(plateau="most_retrieval"), filter=True, filter_depth=10)
    assert m.confidence_threshold is not None and m.target_precision is None
    conf = [decide(fuse(d, m), d.contradicted, m).confidence for d in dev]
    nil_best = max(c for c, n in zip(conf, nil) if n)
    linked_best = min(c for c, n, g in zip(conf, nil, gold) if not n)
    if nil_best < linked_best:  # the populations are separable on this draw
        assert nil_best < m.confidence_threshold < linked_best
    # the answers the model gives score as the record says
    right = 0
    for d, g, n in zip(dev, gold, nil):
        a = answer(fuse(d, m), d.contradicted, m)[0]
        right += (a is None) if n else (a == g)
    assert right / len(dev) == m.dev["overall_accuracy"] and m.dev["overall_accuracy"] > 0.9
    assert m.dev["nil_recall"] > 0.9


def test_confidence_threshold_on_hand_made_scores():
    # retrieval only: NIL mentions top out at 1, linked ones start at 3
    dev = [scores([1.0, 0.0], [NAN] * 2, [NAN] * 2), scores([0.5, 0.2], [NAN] * 2, [NAN] * 2),
           scores([3.0, 0.0], [NAN] * 2, [NAN] * 2), scores([0.0, 4.0], [NAN] * 2, [NAN] * 2)]
    m = fit_fusion(dev, [None, None, 0, 1], [True, True, False, False], FusionSettings(), filter=False,
                   filter_depth=10, streams=("retrieval",))
    assert m.confidence_threshold is not None
    assert [answer(fuse(d, m), d.contradicted, m)[0] for d in dev] == [None, None, 0, 1]
    assert m.dev["overall_accuracy"] == 1.0
    off = fit_fusion(dev, [None, None, 0, 1], [True, True, False, False], FusionSettings(nil=False), filter=False,
                     filter_depth=10, streams=("retrieval",))
    assert off.confidence_threshold is None and off.dev["overall_accuracy"] == 0.5


def test_fit_handles_mentions_without_candidates_or_gold():
    dev = [scores([], [], []), scores([1.0, 0.0], [NAN] * 2, [NAN] * 2), scores([1.0], [NAN], [NAN])]
    m = fit_fusion(dev, [None, 0, None], [False, False, False], FusionSettings(), filter=True, filter_depth=10)
    assert m.dev["accuracy"] == pytest.approx(1 / 3) and m.confidence_threshold is None


def test_model_json_round_trip():
    dev, gold, nil = synthetic_dev(n=60, nil_every=3)
    m = fit_fusion(dev, gold, nil, FusionSettings(), filter=True, filter_depth=5)
    again = FusionModel.model_validate_json(m.model_dump_json())
    assert again == m and again.filter_depth == 5
    d = dev[1]
    np.testing.assert_array_equal(fuse(d, again), fuse(d, m))


def test_model_rejects_bad_weights():
    with pytest.raises(ValueError):
        model(0.5, 0.2, 0.2)
    with pytest.raises(ValueError):
        FusionModel(weights={"audio": 1.0}, standardisation=IDENTITY)
    assert model(text=1.0).weights == {"retrieval": 0.0, "text": 1.0, "image": 0.0}


def test_nil_when_the_attributes_contradict_every_reachable_candidate():
    """A review naming a variant the KB lacks contradicts all its siblings: dev teaches the rule."""
    rng = np.random.default_rng(3)
    dev, gold, nil = [], [], []
    for i in range(40):
        retrieval = rng.uniform(0.5, 0.9, 4)
        if i % 4 == 0:  # NIL: high scores (the siblings look right), all contradicted
            dev.append(StreamScores(retrieval, retrieval, retrieval, np.ones(4, bool)))
            gold.append(None)
            nil.append(True)
        else:
            contradicted = np.array([False, True, True, False])
            dev.append(StreamScores(retrieval, retrieval, retrieval, contradicted))
            gold.append(int(np.argmax(np.where(contradicted, -1, retrieval))))
            nil.append(False)
    model = fit_fusion(dev, gold, nil, FusionSettings(), filter=True, filter_depth=10)
    assert model.nil_if_contradicted
    assert answer(fuse(dev[0], model), dev[0].contradicted, model) == (None, False)
    assert answer(fuse(dev[1], model), dev[1].contradicted, model)[0] == gold[1]
    assert model.dev["overall_accuracy"] == 1.0
    # without NIL mentions in dev the rule stays off: abstaining can only lose there
    off = fit_fusion(dev[1:4], gold[1:4], nil[1:4], FusionSettings(), filter=True, filter_depth=10)
    assert not off.nil_if_contradicted


def test_at_the_plateau_edge_a_stream_must_beat_retrieval_by_min_gain_to_get_weight():
    """One lucky mention out of 100 is no reason to trust a weak stream."""
    rng = np.random.default_rng(7)
    dev, gold = [], []
    for i in range(100):
        retrieval = np.array([0.9, 0.8, 0.7])
        text = rng.normal(size=3)
        good = 0 if i < 80 else 1  # retrieval is right 80 times
        if i == 80:
            text = np.array([0.0, 9.0, 0.0])  # the text stream rescues exactly one mention
        dev.append(scores(retrieval, text, [NAN] * 3))
        gold.append(good)
    strict = fit_fusion(dev, gold, [False] * 100, FusionSettings(min_gain=0.0, plateau="most_retrieval"), filter=False,
                        filter_depth=10)
    guarded = fit_fusion(dev, gold, [False] * 100, FusionSettings(min_gain=0.02, plateau="most_retrieval"), filter=False,
                         filter_depth=10)
    assert strict.dev["accuracy"] >= 0.81 and strict.weights["text"] > 0
    assert guarded.weights["retrieval"] == 1.0 and guarded.dev["accuracy"] == 0.80


def test_the_plateau_centre_averages_what_dev_cannot_tell_apart_and_keeps_a_weak_stream_light():
    flat = [scores([0.0, 0.0], [1.0, 1.0], [0.5, 0.5]) for _ in range(4)]  # every weighting as accurate
    m = fit_fusion(flat, [0, 1, 0, 1], [False] * 4, FusionSettings(plateau="centre"), filter=False, filter_depth=10)
    assert m.weights == pytest.approx({"retrieval": 0.4, "text": 0.3, "image": 0.3})  # nearest (1/3, 1/3, 1/3); ties: retrieval
    rng = np.random.default_rng(7)
    dev, gold = [], []
    for i in range(100):  # retrieval right 80 times, the text stream noise
        dev.append(scores([0.9, 0.8, 0.7], rng.normal(size=3), rng.normal(size=3)))
        gold.append(0 if i < 80 else 1)
    m = fit_fusion(dev, gold, [False] * 100, FusionSettings(plateau="centre"), filter=False, filter_depth=10)
    best = max(g["accuracy"] for g in m.grid)
    assert m.dev["accuracy"] >= best - FusionSettings().min_gain
    assert m.weights["retrieval"] >= 0.6 and m.weights["text"] <= 0.2 and m.weights["image"] <= 0.2


@pytest.mark.parametrize("plateau", ["most_retrieval", "centre"])
def test_a_stream_without_a_score_on_dev_gets_no_weight(plateau):
    """No review photos (the entity-matching sets): the image axis is not searched at all."""
    dev, gold, nil = synthetic_dev()
    for d in dev:
        d.image[:] = NAN
    m = fit_fusion(dev, gold, nil, FusionSettings(plateau=plateau), filter=True, filter_depth=10)
    assert len(m.grid) == 11 and m.weights["image"] == 0.0 and m.weights["text"] >= 0.8


def test_a_confidence_threshold_must_gain_min_gain_over_all_dev_mentions():
    """A threshold that buys one NIL mention in 100 (and costs none) is not kept under a 2-point
    guard; one that catches ten is."""
    def dev_set(n_separable: int):
        dev, gold, nil = [], [], []
        for i in range(100):
            is_nil = i >= 90
            # NIL mentions score as high as real matches, except the first n_separable of them
            top = 0.1 if is_nil and i - 90 < n_separable else 0.9 + 0.001 * i
            dev.append(scores([top, top - 0.5], [NAN, NAN], [NAN, NAN]))
            gold.append(None if is_nil else 0)
            nil.append(is_nil)
        return dev, gold, nil

    one = dev_set(1)
    assert fit_fusion(*one, FusionSettings(min_gain=0.0), filter=False, filter_depth=10).confidence_threshold is not None
    assert fit_fusion(*one, FusionSettings(min_gain=0.02), filter=False, filter_depth=10).confidence_threshold is None
    ten = fit_fusion(*dev_set(10), FusionSettings(min_gain=0.02), filter=False, filter_depth=10)
    assert ten.confidence_threshold is not None and ten.dev["nil_recall"] == 1.0


def test_target_precision_withholds_answers_without_any_nil_mention_in_dev():
    """Dev holds no "no matching product" review: the confidence learns from right and wrong
    answers alone, the threshold reaches the target on dev, and reviews of products the KB lacks
    (scored only at test time) are mostly withheld."""
    dev, gold, nil = synthetic_dev(n=400, seed=1)
    for i in range(0, 400, 5):  # a fifth of dev is hard: the text stream's signal is weak there
        dev[i].text[gold[i]] -= 3.5
    m = fit_fusion(dev, gold, nil, FusionSettings(target_precision=0.98), filter=True, filter_depth=10)
    assert m.confidence_threshold is not None and m.target_reached and m.target_precision == 0.98
    assert m.dev["precision"] >= 0.98 and m.dev["coverage"] < 1.0
    kept = [(answer(fuse(d, m), d.contradicted, m)[0], g) for d, g in zip(dev, gold)]
    given = [(a, g) for a, g in kept if a is not None]
    assert sum(a == g for a, g in given) / len(given) == pytest.approx(m.dev["precision"])
    # held-out reviews of products the KB lacks: no candidate stands out
    test_nil, _, _ = synthetic_dev(n=200, seed=2, nil_every=1)
    withheld = sum(answer(fuse(d, m), d.contradicted, m)[0] is None for d in test_nil)
    assert withheld / len(test_nil) >= 0.8
    # without a target and without NIL mentions in dev, nothing is withheld
    assert fit_fusion(dev, gold, nil, FusionSettings(), filter=True, filter_depth=10).confidence_threshold is None


def test_an_unreachable_target_takes_the_most_precise_cut_and_says_so():
    dev, gold, nil = synthetic_dev(n=100, seed=3)
    gold = [(g + 1) % 10 for g in gold]  # every answer wrong: no cut reaches any precision
    m = fit_fusion(dev, gold, nil, FusionSettings(target_precision=0.9), filter=False, filter_depth=10)
    assert m.target_reached is False


def gated_dev(n: int = 400, seed: int = 0):
    """Two streams, each sure (a wide margin) and right on half the reviews and flat noise on the
    other half: no fixed weighting serves both halves, a gate on each stream's margin does."""
    rng = np.random.default_rng(seed)
    dev, gold = [], []
    for i in range(n):
        k, g = 8, int(rng.integers(8))
        retrieval, text = rng.normal(0, 1, k), rng.normal(0, 1, k)
        sure, noisy = (retrieval, text) if i % 2 else (text, retrieval)
        sure[g] += 4.0
        noisy *= 2.5  # the unsure stream is loud, so a fixed mix lets it drown the sure one
        dev.append(scores(retrieval, text, [NAN] * k))
        gold.append(g)
    return dev, gold


def test_the_per_review_gate_is_fitted_on_dev_and_kept_only_when_it_wins():
    dev, gold = gated_dev()
    m = fit_fusion(dev, gold, [False] * len(dev), FusionSettings(), filter=False, filter_depth=10)
    assert m.gate > 0 and m.dev["gate"] == m.gate
    assert m.dev[f"gate_{m.gate:g}_accuracy"] >= m.dev["gate_0_accuracy"] + FusionSettings().min_gain
    # the stored model gives exactly the answers the fit counted
    hits = sum(answer(fuse(d, m), d.contradicted, m)[0] == g for d, g in zip(dev, gold))
    assert hits / len(dev) == pytest.approx(m.dev[f"gate_{m.gate:g}_accuracy"])
    assert FusionModel.model_validate_json(m.model_dump_json()).gate == m.gate
    # where one stream carries everything, the gate buys nothing and stays off
    plain, pgold, pnil = synthetic_dev()
    assert fit_fusion(plain, pgold, pnil, FusionSettings(), filter=True, filter_depth=10).gate == 0.0


def test_the_attribute_filter_is_switched_off_where_it_costs_dev_accuracy():
    """An extractor that misreads: the gold is 'contradicted' half the time, so passing over
    contradicted candidates sends those reviews elsewhere. Attributes must never cost dev accuracy."""
    rng = np.random.default_rng(11)
    dev, gold = [], []
    for i in range(100):
        retrieval = np.sort(rng.uniform(0, 1, 4))[::-1].copy()  # retrieval is right: the gold is first
        contradicted = np.array([i % 2 == 0, False, False, False])
        dev.append(scores(retrieval, [NAN] * 4, [NAN] * 4, contradicted))
        gold.append(0)
    m = fit_fusion(dev, gold, [False] * 100, FusionSettings(), filter=True, filter_depth=10)
    assert m.filter is False and m.dev["accuracy"] == 1.0
    assert m.dev["filter_dev_correct"] == 50 and m.dev["no_filter_dev_correct"] == 100
    # where the contradictions are right, the filter stays
    for d in dev:
        d.contradicted[:] = [False, True, False, False]
    assert fit_fusion(dev, gold, [False] * 100, FusionSettings(), filter=True, filter_depth=10).filter is True
