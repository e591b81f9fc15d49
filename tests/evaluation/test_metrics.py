"""linking_metrics: recall@k, accuracy, the AMELI end-to-end and disambiguation P/R/F1, NIL."""

from __future__ import annotations

import pytest

from ameli_ray.evaluation import linking_metrics
from ameli_ray.schema import NIL_ENTITY


def row(gold, answer, cands, errors=()):
    return {"gold_entity_id": gold, "entity_id": answer, "candidate_ids": list(cands), "errors": list(errors)}


ROWS = [
    row("a", "a", ["a", "b", "c"]),  # right, retrieval top-1 right
    row("b", "b", ["a", "b", "c"]),  # right after disambiguation
    row("c", "a", ["a", "b", "c"]),  # wrong link, gold at rank 2
    row("d", NIL_ENTITY, ["a", "b", "c", "d"]),  # wrongly NIL, gold at rank 3
    row("e", "a", ["a", "b"]),  # gold not retrieved
    row(NIL_ENTITY, NIL_ENTITY, ["a"]),  # NIL, right
    row(NIL_ENTITY, "b", ["b"]),  # NIL, wrongly linked
    row(None, "a", ["a"], errors=["image not found"]),  # unlabelled: only the error counts
]


def test_existing_keys_keep_their_meaning():
    m = linking_metrics(ROWS, ks=(1, 3))
    assert m["n_mentions"] == 5 and m["n_mentions_with_errors"] == 1
    assert m["accuracy"] == pytest.approx(2 / 5)
    assert m["recall@1"] == pytest.approx(1 / 5) and m["recall@3"] == pytest.approx(3 / 5)


def test_retrieval_accuracy_and_end_to_end_prf():
    m = linking_metrics(ROWS, ks=(1,))
    assert m["retrieval_accuracy"] == pytest.approx(1 / 5)
    # non-NIL answers over labelled mentions: a, b, a, a, b = 5 (the NIL mention linked to b counts)
    assert m["precision"] == pytest.approx(2 / 5)
    assert m["recall"] == pytest.approx(2 / 5)
    assert m["f1"] == pytest.approx(2 / 5)


def test_disambiguation_prf_only_over_gold_within_top_n():
    m = linking_metrics(ROWS, ks=(1,), top_n=3)
    # gold within the first 3: a (right), b (right), c (wrong link) -> 3 mentions, 3 answers
    assert m["disambiguation_precision"] == pytest.approx(2 / 3)
    assert m["disambiguation_recall"] == pytest.approx(2 / 3)
    m = linking_metrics(ROWS, ks=(1,), top_n=4)
    # d joins, answered NIL: 4 mentions, 3 non-NIL answers
    assert m["disambiguation_precision"] == pytest.approx(2 / 3)
    assert m["disambiguation_recall"] == pytest.approx(2 / 4)
    assert m["disambiguation_f1"] == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    assert "disambiguation_precision" not in linking_metrics(ROWS)


def test_nil_metrics():
    m = linking_metrics(ROWS)
    assert m["n_nil_mentions"] == 2
    # NIL answers to labelled mentions: d (wrong) and the NIL mention (right)
    assert m["nil_precision"] == pytest.approx(1 / 2)
    assert m["nil_recall"] == pytest.approx(1 / 2)


def test_nil_keys_absent_without_nil_mentions():
    m = linking_metrics([row("a", "a", ["a"]), row(None, NIL_ENTITY, [])])
    assert not {"nil_precision", "nil_recall", "n_nil_mentions"} & set(m)
    assert m["precision"] == m["recall"] == m["f1"] == m["accuracy"] == 1.0


def test_a_nil_answer_is_never_counted_as_a_link():
    m = linking_metrics([row("a", NIL_ENTITY, ["a"]), row("b", None, ["b"])])
    assert m["accuracy"] == 0.0 and m["precision"] == 0.0 and m["recall"] == 0.0 and m["f1"] == 0.0
    assert m["retrieval_accuracy"] == 1.0


def test_empty_and_unlabelled_only():
    for rows in ([], [row(None, "a", ["a"])]):
        m = linking_metrics(rows, top_n=10)
        assert m["n_mentions"] == 0 and m["accuracy"] == 0.0 and m["precision"] == 0.0
        assert m["disambiguation_f1"] == 0.0 and "nil_recall" not in m


def test_only_nil_mentions():
    m = linking_metrics([row(NIL_ENTITY, NIL_ENTITY, ["a"]), row(NIL_ENTITY, "a", ["a"])])
    assert m["n_mentions"] == 0 and m["n_nil_mentions"] == 2
    assert m["nil_precision"] == 1.0 and m["nil_recall"] == 0.5
    assert m["precision"] == 0.0 and m["recall"] == 0.0
