"""Folds, bootstrap intervals, confidence metrics and held-out products."""

from __future__ import annotations

import numpy as np
import pytest

from ameli_ray.errors import ConfigError
from ameli_ray.evaluation.crossval import (
    bootstrap,
    confidence_metrics,
    fold_splits,
    fold_summary,
    hold_out_products,
    paired_difference,
)
from ameli_ray.evaluation.metrics import linking_metrics
from ameli_ray.schema import NIL_ENTITY, Entity, Mention


def mentions(n: int) -> list[Mention]:
    return [Mention(id=f"m{i}", text=f"review {i}", gold_entity_id=f"e{i % 7}") for i in range(n)]


def test_folds_partition_the_mentions_and_train_dev_test_are_disjoint():
    ms = mentions(500)
    folds = fold_splits(ms, 5)
    tests = [m.id for _, _, test in folds for m in test]
    assert sorted(tests) == sorted(m.id for m in ms)  # every mention scored exactly once
    for train, dev, test in folds:
        ids = [{m.id for m in part} for part in (train, dev, test)]
        assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
        assert len(train) + len(dev) + len(test) == 500
        assert 60 <= len(test) <= 140 and 0.15 < len(dev) / (len(train) + len(dev)) < 0.35
    # by id only: the order of the corpus does not matter
    again = fold_splits(list(reversed(ms)), 5)
    assert [sorted(m.id for m in t) for _, _, t in again] == [sorted(m.id for m in t) for _, _, t in folds]
    with pytest.raises(ConfigError):
        fold_splits(ms, 1)
    with pytest.raises(ConfigError):
        fold_splits(ms[:2], 3)


def rows(n: int = 400, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        nil = i % 10 == 0
        gold = NIL_ENTITY if nil else f"e{i}"
        cands = [f"x{i}", f"e{i}", f"y{i}"] if rng.random() < 0.5 else [f"e{i}", f"x{i}"]
        right = rng.random() < 0.8
        answer = NIL_ENTITY if (nil and rng.random() < 0.6) else (f"e{i}" if right else f"x{i}")
        out.append({"mention_id": f"m{i}", "gold_entity_id": gold, "entity_id": answer, "candidate_ids": cands,
                    "confidence": float(rng.random()), "best_entity_id": answer or f"x{i}", "errors": []})
    out.append({"mention_id": "unlabelled", "gold_entity_id": None, "entity_id": "e1", "candidate_ids": ["e1"]})
    return out


def test_bootstrap_point_estimates_equal_linking_metrics_and_intervals_hold_them():
    r = rows()
    ci = bootstrap(r, top_n=2, resamples=500, extra={"always": np.ones(400)})
    exact = linking_metrics(r, top_n=2)
    for key in ("accuracy", "recall@1", "recall@10", "precision", "f1", "disambiguation_f1", "nil_precision", "nil_recall",
                "retrieval_accuracy"):
        assert ci[key]["value"] == pytest.approx(exact[key], abs=1e-4), key
        lo, hi = ci[key]["ci95"]
        assert lo <= exact[key] + 1e-4 and exact[key] - 1e-4 <= hi and hi - lo < 0.35, key  # 40 NIL mentions: wide
    assert 0.02 < ci["accuracy"]["ci95"][1] - ci["accuracy"]["ci95"][0] < 0.15  # ~ 4 sigma of a 360-mention rate
    assert ci["always"] == {"value": 1.0, "ci95": [1.0, 1.0]}
    # no NIL mention, no top_n: those metrics are left out rather than reported as 0
    plain = [x for x in r if x["gold_entity_id"] != NIL_ENTITY]
    assert "nil_recall" not in bootstrap(plain, top_n=None, resamples=50)
    assert "disambiguation_f1" not in bootstrap(plain, top_n=None, resamples=50)
    assert bootstrap([], top_n=None) == {}
    # NaN marks a mention an extra column does not count (a baseline's accuracy skips NIL ones)
    col = np.array([np.nan if x["gold_entity_id"] == NIL_ENTITY else 1.0 for x in r if x["gold_entity_id"] is not None])
    assert bootstrap(r, top_n=None, resamples=50, extra={"b": col})["b"]["value"] == 1.0


def test_paired_difference_counts_gains_and_losses_and_is_narrower_than_two_separate_intervals():
    # 400 reviews of listed products, 40 of unlisted ones (not counted by accuracy). The other
    # answers share all but 12 of the pipeline's: 7 gained, 5 lost.
    rng = np.random.default_rng(3)
    rows = [{"mention_id": f"m{i}", "gold_entity_id": f"e{i}", "entity_id": f"e{i}" if rng.random() < 0.8 else "x"}
            for i in range(400)]
    rows += [{"mention_id": f"n{i}", "gold_entity_id": NIL_ENTITY, "entity_id": ""} for i in range(40)]
    rows.append({"mention_id": "unlabelled", "gold_entity_id": None, "entity_id": "e0"})
    answers = {r["mention_id"]: r["entity_id"] for r in rows}
    right = [r["mention_id"] for r in rows[:400] if r["entity_id"] == r["gold_entity_id"]]
    wrong = [r["mention_id"] for r in rows[:400] if r["entity_id"] != r["gold_entity_id"]]
    for m in wrong[:7]:
        answers[m] = "e" + m[1:]
    for m in right[:5]:
        answers[m] = ""  # "no matching product" for a listed one is wrong
    d = paired_difference(rows, answers, resamples=2000)
    assert (d["gains"], d["losses"], d["n_mentions"]) == (7, 5, 400)
    assert d["value"] == pytest.approx(2 / 400, abs=1e-4)
    lo, hi = d["ci95"]
    assert lo <= d["value"] <= hi and lo < 0 < hi  # +2 reviews of 400: not told apart from chance
    # pairing: each accuracy's own interval is ~8 points wide, the difference's ~3.5
    own = bootstrap(rows, top_n=None, resamples=2000)["accuracy"]["ci95"]
    assert hi - lo < (own[1] - own[0]) / 2
    same = paired_difference(rows, {r["mention_id"]: r["entity_id"] for r in rows})
    assert same["value"] == 0 and same["ci95"] == [0.0, 0.0] and same["gains"] == same["losses"] == 0
    # a clear loss: 60 of 400 lost, nothing gained
    worse = dict(answers, **{m: "" for m in right[:60]})
    for m in wrong[:7]:
        worse[m] = "x"
    d = paired_difference(rows, worse)
    assert d["ci95"][1] < 0 and d["losses"] == 60
    with pytest.raises(ValueError, match="no answer for 1 mentions"):
        paired_difference(rows, {k: v for k, v in answers.items() if k != "m3"})
    assert paired_difference(rows[400:], answers) is None  # no review of a listed product


def test_fold_summary_keeps_metrics_present_in_every_fold():
    s = fold_summary([{"accuracy": 0.8, "x": 1}, {"accuracy": 0.9}], ["accuracy", "x"])
    assert s == {"accuracy": {"mean": 0.85, "std": 0.05, "per_fold": [0.8, 0.9]}}


def test_confidence_metrics_count_the_best_candidate_and_nil_mentions_as_wrong():
    r = [
        {"gold_entity_id": "a", "entity_id": "a", "best_entity_id": "a", "confidence": 0.9},
        {"gold_entity_id": "b", "entity_id": NIL_ENTITY, "best_entity_id": "b", "confidence": 0.3},  # withheld, was right
        {"gold_entity_id": NIL_ENTITY, "entity_id": NIL_ENTITY, "best_entity_id": "c", "confidence": 0.2},
        {"gold_entity_id": None, "entity_id": "d", "best_entity_id": "d", "confidence": 0.99},  # unlabelled: skipped
        {"gold_entity_id": "e", "entity_id": "e", "confidence": None},  # no model: skipped
    ]
    m = confidence_metrics(r)
    assert m["n"] == 3 and m["best_accuracy"] == pytest.approx(2 / 3, abs=1e-4)
    assert m["precision_at_coverage"][-1]["precision"] == pytest.approx(2 / 3, abs=1e-4)
    assert m["coverage_at_precision"] == {"0.95": pytest.approx(2 / 3, abs=1e-4), "0.99": pytest.approx(2 / 3, abs=1e-4)}
    assert confidence_metrics([{"gold_entity_id": "a", "entity_id": "a", "confidence": None}]) is None


def test_hold_out_products_relabels_their_reviews_and_removes_them_from_the_kb():
    entities = [Entity(id=f"e{i}", name=f"product {i}") for i in range(200)]
    ms = [Mention(id=f"m{i}", text="r", gold_entity_id=f"e{i % 150}") for i in range(600)]
    kept, relabelled, ids = hold_out_products(entities, ms, 0.2)
    removed = {e.id for e in entities} - {e.id for e in kept}
    assert 15 <= len(removed) <= 50 and all(int(e[1:]) < 150 for e in removed)  # only linked products go
    for before, after in zip(ms, relabelled):
        if before.gold_entity_id in removed:
            assert after.gold_entity_id == NIL_ENTITY and after.id in ids
        else:
            assert after == before and after.id not in ids
    with pytest.raises(ConfigError):
        hold_out_products(entities, ms, 1.5)
