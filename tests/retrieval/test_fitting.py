"""Retrieval channel weights fitted on dev: a misleading channel is switched off, a deciding one
gains weight, and nothing changes unless dev gains min_gain."""

import itertools

import numpy as np
import pytest

from ameli_ray.config import FusionWeights
from ameli_ray.retrieval.fitting import fit_retrieval_weights, refuse
from ameli_ray.retrieval.retriever import CHANNELS, fuse_channels
from ameli_ray.schema import Candidate

CONFIGURED = FusionWeights(text=0.45, image=0.15, lexical=0.4, chargram=0.0, attributes=0.1)


def _dev(n=60, seed=0):
    """Mentions whose gold the char n-gram channel ranks first, while text is noise and the
    attribute agreement favours a wrong candidate."""
    rng = np.random.default_rng(seed)
    lists, gold = [], []
    for m in range(n):
        cands = []
        for c in range(8):
            cands.append(Candidate(entity_id=f"m{m}e{c}", score=0.0, channel_scores={
                "text": float(rng.uniform(0.5, 0.7)),
                "lexical": float(rng.uniform(1, 5)),
                "chargram": 0.9 if c == 3 else float(rng.uniform(0.1, 0.5)),
                "attributes": 1.0 if c == 5 else 0.0,
            }))
        lists.append(cands)
        gold.append(f"m{m}e3")
    return lists, gold


def test_a_misleading_channel_goes_to_zero_and_a_deciding_one_gains_weight():
    lists, gold = _dev()
    fit = fit_retrieval_weights(lists, gold, CONFIGURED, min_gain=0.01)
    assert fit.kept and fit.n_mentions == 60
    assert fit.weights["attributes"] == 0.0 and fit.weights["chargram"] > 0
    assert fit.dev["fitted_accuracy"] == 1.0 and fit.dev["configured_accuracy"] < 0.5
    # what the fit measured is what the retriever's own fusion ranks
    w = FusionWeights(**fit.weights)
    for cands, g in zip(lists, gold):
        channels = {k: np.array([c.channel_scores[k] for c in cands]) for k in cands[0].channel_scores}
        assert cands[int(np.argmax(fuse_channels(channels, w)))].entity_id == g
        assert refuse(cands, w)[0].entity_id == g


def test_without_min_gain_on_dev_the_configured_weights_stay():
    lists, gold = _dev()
    configured = FusionWeights(text=0.45, image=0.15, lexical=0.0, chargram=1.0, attributes=0.0)  # already right
    fit = fit_retrieval_weights(lists, gold, configured, min_gain=0.01)
    assert not fit.kept and fit.weights == configured.model_dump()
    assert fit.dev["configured_accuracy"] == 1.0


def test_nil_and_unlabelled_mentions_are_left_out_and_absent_channels_renormalise():
    lists, gold = _dev(10)
    # a mention without the lexical channel (no known token) is fused over the channels it has
    lists[0] = [c.model_copy(update={"channel_scores": {k: v for k, v in c.channel_scores.items() if k != "lexical"}})
                for c in lists[0]]
    fit = fit_retrieval_weights(lists + [lists[1]], gold + [None], CONFIGURED, min_gain=0.01)
    assert fit.n_mentions == 10 and fit.dev["fitted_accuracy"] == 1.0
    assert fit_retrieval_weights([], [], CONFIGURED, 0.01).weights == CONFIGURED.model_dump()


def test_refuse_reorders_by_the_new_weights_and_keeps_every_candidate():
    lists, _ = _dev(1)
    out = refuse(lists[0], FusionWeights(text=0, image=0, lexical=0, chargram=1, attributes=0))
    assert [c.entity_id for c in out][0] == "m0e3" and len(out) == len(lists[0])
    assert all(a.score >= b.score for a, b in zip(out, out[1:]))
    assert refuse([], CONFIGURED) == []


def test_a_linker_takes_the_models_weights_unless_the_config_says_otherwise():
    from ameli_ray.config import AmeliConfig
    from ameli_ray.linker import retrieval_weights

    fitted = {"text": 0.2, "image": 0.0, "lexical": 0.0, "chargram": 1.6, "name": 0.6, "attributes": 0.0, "price": 0.2,
              "numbers": 0.1, "codes": 0.4}
    assert retrieval_weights(AmeliConfig(), fitted).model_dump() == fitted
    # a model fitted before the name, price, numbers and codes channels existed keeps them off
    older = {k: v for k, v in fitted.items() if k not in ("name", "price", "numbers", "codes")}
    assert retrieval_weights(AmeliConfig(), older).model_dump() == {**older, "name": 0.0, "price": 0.0, "numbers": 0.0,
                                                                     "codes": 0.0}
    configured = AmeliConfig.load(None, ["retrieval.weights_from=config"])
    assert retrieval_weights(configured, fitted) == configured.retrieval.weights
    assert retrieval_weights(AmeliConfig(), None) == AmeliConfig().retrieval.weights


def test_cross_fit_ranks_each_half_with_the_fit_of_the_other():
    from ameli_ray.retrieval.fitting import CROSS_FIT_MIN_MENTIONS, cross_fit

    lists, gold = _dev(n=80)
    # in half 1 the attribute agreement marks the gold: only a fit that sees half 1 would weigh it
    for cands, g in zip(lists[40:], gold[40:]):
        for c in cands:
            c.channel_scores["attributes"] = 1.0 if c.entity_id == g else 0.0
            c.channel_scores["chargram"] = 0.3
    half = [0] * 40 + [1] * 40
    for_0, for_1 = cross_fit(lists, gold, half, CONFIGURED, 0.0)
    assert for_0 == fit_retrieval_weights(lists[40:], gold[40:], CONFIGURED, 0.0).weights  # half 1's fit
    assert for_1 == fit_retrieval_weights(lists[:40], gold[:40], CONFIGURED, 0.0).weights
    assert for_1["attributes"] == 0.0 and for_0["attributes"] > 0
    # unlabelled mentions do not count towards a half's size
    few = [g if i % 40 < CROSS_FIT_MIN_MENTIONS - 1 else None for i, g in enumerate(gold)]
    assert cross_fit(lists, few, half, CONFIGURED, 0.0) is None


def test_the_name_channel_gains_weight_where_the_name_alone_decides():
    # the name + text channel prefers a sibling (a long description's words); the name alone the gold
    rng = np.random.default_rng(1)
    lists, gold = [], []
    for m in range(40):
        lists.append([Candidate(entity_id=f"m{m}e{c}", score=0.0, channel_scores={
            "text": float(rng.uniform(0.5, 0.7)),
            "chargram": 0.8 if c == 1 else (0.7 if c == 2 else float(rng.uniform(0.1, 0.5))),
            "name": 0.9 if c == 2 else float(rng.uniform(0.2, 0.6)),
        }) for c in range(6)])
        gold.append(f"m{m}e2")
    fit = fit_retrieval_weights(lists, gold, FusionWeights(), min_gain=0.0)
    assert fit.kept and fit.weights["name"] > 0 and fit.dev["fitted_accuracy"] == 1.0
    assert fit.dev["configured_accuracy"] < 0.5  # name off by default: the sibling wins


def test_the_price_channel_gains_weight_where_the_price_tells_editions_apart():
    # two editions share the name and text (a tie the row order breaks for the first); only half
    # the reviews state a price, and the price channel is absent from the other half
    rng = np.random.default_rng(2)
    lists, gold = [], []
    for m in range(60):
        states_price = m % 2 == 0
        cands = []
        for c in range(6):
            edition = c in (0, 1)
            scores = {"text": 0.6 if edition else float(rng.uniform(0.5, 0.7)),
                      "chargram": 0.9 if edition else float(rng.uniform(0.1, 0.5))}
            if states_price:
                scores["price"] = 1.0 if c == 1 else float(rng.uniform(0.0, 0.3))
            cands.append(Candidate(entity_id=f"m{m}e{c}", score=0.0, channel_scores=scores))
        lists.append(cands)
        gold.append(f"m{m}e1" if states_price else f"m{m}e0")
    fit = fit_retrieval_weights(lists, gold, FusionWeights(), min_gain=0.0)
    assert fit.kept and fit.weights["price"] > 0 and fit.dev["fitted_accuracy"] == 1.0
    assert fit.dev["configured_accuracy"] == 0.5  # price off by default: the first edition always
    # the weights ranked as the fit measured them: re-scored, every list puts its gold first
    assert all(refuse(c, FusionWeights(**fit.weights))[0].entity_id == g for c, g in zip(lists, gold))


def test_weightings_scored_in_a_batch_score_as_the_retriever_fuses_each():
    from ameli_ray.retrieval.fitting import _channel_matrix, _fused_batch
    from ameli_ray.retrieval.retriever import CHANNELS

    lists, _ = _dev(n=12, seed=3)
    for i, cands in enumerate(lists):  # some mentions lack channels, some lists are shorter (padding)
        for c in cands:
            if i % 3 == 0:
                c.channel_scores.pop("attributes")
        lists[i] = cands[: 8 - i % 4]
    x, present = _channel_matrix(lists)
    w = np.random.default_rng(0).uniform(0, 1, size=(9, x.shape[2]))
    w[0] = 0  # no weight at all: every score 0, padding -inf
    batched = _fused_batch(x, present, w)
    for b in range(len(w)):
        weights = FusionWeights(**dict(zip(CHANNELS, w[b])))
        for m, cands in enumerate(lists):
            raw = {k: np.asarray([c.channel_scores[k] for c in cands]) for k in cands[0].channel_scores}
            np.testing.assert_allclose(batched[m, : len(cands), b], fuse_channels(raw, weights), rtol=1e-12, atol=1e-12)
            assert np.isneginf(batched[m, len(cands):, b]).all()


def test_the_fit_chooses_as_scoring_every_candidate_under_every_weighting_would():
    # brute force: each weighting of a small grid re-ranks every list (`refuse`: all candidates);
    # the fit scores only the candidates that can rank before the gold, and must choose the same.
    # Coarse scores make ties common, absent channels and zero weights too.
    rng = np.random.default_rng(5)
    lists, gold = [], []
    for m in range(40):
        channels = [c for c in ("text", "chargram", "price", "codes") if c == "text" or rng.random() < 0.7]
        n = int(rng.integers(1, 9))
        lists.append([Candidate(entity_id=f"m{m}e{c}", score=0.0,
                                channel_scores={ch: float(rng.integers(0, 4)) / 3 for ch in channels}) for c in range(n)])
        gold.append(f"m{m}e{int(rng.integers(0, n + 1))}")  # sometimes none of them: a miss under every weighting
    grid = {"text": (0.0, 0.5, 1.0), "chargram": (0.0, 0.5, 1.0), "price": (0.0, 0.4), "codes": (0.0, 0.2, 0.8)}
    fit = fit_retrieval_weights(lists, gold, CONFIGURED, min_gain=0.0, grid=grid)

    def measured(weights):
        ranks = []
        for cands, g in zip(lists, gold):
            ids = [c.entity_id for c in refuse(cands, FusionWeights(**weights))]
            ranks.append(ids.index(g) if g in ids else 99)
        ranks = np.array(ranks)
        return (ranks == 0).mean(), np.where(ranks < 10, 1.0 / (ranks + 1), 0.0).mean()

    base = CONFIGURED.model_dump()
    best, best_w = measured(base), base
    for combo in itertools.product(*(grid.get(c, (base[c],)) for c in CHANNELS)):
        if sum(combo) > 0:
            weights = dict(zip(CHANNELS, combo))
            got = measured(weights)
            if got[0] > best[0] + 1e-12 or (abs(got[0] - best[0]) < 1e-12 and got[1] > best[1] + 1e-12):
                best, best_w = got, weights
    assert fit.weights == {k: float(v) for k, v in best_w.items()}
    assert fit.dev["fitted_accuracy"] == pytest.approx(best[0]) and fit.dev["fitted_mrr@10"] == pytest.approx(best[1])
