"""Recall@K, accuracy and the AMELI linking metrics over link results, and the table that shows them."""

from __future__ import annotations

from collections.abc import Iterable

from ameli_ray.schema import NIL_ENTITY

RECALL_KS = (1, 10, 20, 50, 100)


def _ratio(num: int, den: int) -> float:
    return num / den if den else 0.0


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def linking_metrics(rows: Iterable[dict], ks: tuple[int, ...] = RECALL_KS, top_n: int | None = None) -> dict:
    """`rows` are link-result rows (gold_entity_id, entity_id, candidate_ids, errors).

    Gold: None = unlabelled (only counted in `n_mentions_with_errors`); `NIL_ENTITY` ("") = labelled
    "no matching product in the KB" (a NIL mention); anything else a real gold entity. An answer
    `entity_id == NIL_ENTITY` is the NIL answer.

    Over mentions with a real gold entity (`n_mentions` of them):
    - `recall@k`: the gold is among the first k candidates; `retrieval_accuracy`: it is the first
      (top-1 of retrieval alone); `accuracy`: the answer is the gold.
    End to end, micro over labelled mentions:
    - `precision`: correct links / non-NIL answers (a NIL mention wrongly linked counts against it),
      `recall`: correct links / mentions with a real gold, `f1`.
    Only with `top_n`, over the mentions whose gold is among the first top_n candidates (what
    disambiguation could get right): `disambiguation_precision` (correct / non-NIL answers among
    them), `disambiguation_recall` (correct / their count), `disambiguation_f1`.
    Only when some mention is NIL: `nil_precision` (share of NIL answers to labelled mentions that
    are NIL mentions), `nil_recall` (share of NIL mentions answered NIL), `n_nil_mentions`.
    """
    n = correct = retrieval_top1 = with_errors = 0
    hits = dict.fromkeys(ks, 0)
    answered = 0  # non-NIL answers to labelled mentions
    n_nil = nil_as_nil = nil_answers = 0
    d_n = d_answered = d_correct = 0
    for row in rows:
        if row.get("errors"):
            with_errors += 1
        gold = row.get("gold_entity_id")
        if gold is None:
            continue
        answer = row.get("entity_id") or NIL_ENTITY
        is_link = answer != NIL_ENTITY
        answered += is_link
        nil_answers += not is_link
        if gold == NIL_ENTITY:
            n_nil += 1
            nil_as_nil += not is_link
            continue
        n += 1
        hit = is_link and answer == gold
        correct += hit
        cands = list(row.get("candidate_ids") or [])
        rank = cands.index(gold) if gold in cands else None
        retrieval_top1 += rank == 0
        for k in ks:
            hits[k] += rank is not None and rank < k
        if top_n is not None and rank is not None and rank < top_n:
            d_n += 1
            d_answered += is_link
            d_correct += hit
    out: dict = {f"recall@{k}": _ratio(hits[k], n) for k in ks}
    out.update(accuracy=_ratio(correct, n), n_mentions=n, n_mentions_with_errors=with_errors)
    precision, recall = _ratio(correct, answered), _ratio(correct, n)
    out.update(retrieval_accuracy=_ratio(retrieval_top1, n), precision=precision, recall=recall, f1=_f1(precision, recall))
    if top_n is not None:
        dp, dr = _ratio(d_correct, d_answered), _ratio(d_correct, d_n)
        out.update(disambiguation_precision=dp, disambiguation_recall=dr, disambiguation_f1=_f1(dp, dr))
    if n_nil:
        out.update(nil_precision=_ratio(nil_as_nil, nil_answers), nil_recall=_ratio(nil_as_nil, n_nil), n_nil_mentions=n_nil)
    return out


def metrics_table(metrics: dict, title: str = "linking"):
    from rich.table import Table

    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        if isinstance(value, float):
            table.add_row(key, f"{value:.4f}")
        elif isinstance(value, (int, str)):
            table.add_row(key, str(value))
    return table
