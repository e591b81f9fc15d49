"""Recall@K and top-1 accuracy over link results, and the table that shows them."""

from __future__ import annotations

from collections.abc import Iterable

RECALL_KS = (1, 10, 20, 50, 100)


def linking_metrics(rows: Iterable[dict], ks: tuple[int, ...] = RECALL_KS) -> dict:
    """`rows` are link-result rows (gold_entity_id, entity_id, candidate_ids).

    Only mentions with a gold entity are scored; `accuracy` is the share whose answer is the gold
    entity, `recall@k` the share whose gold entity is among the first k candidates.
    """
    n = 0
    hits = dict.fromkeys(ks, 0)
    correct = 0
    with_errors = 0
    for row in rows:
        gold = row.get("gold_entity_id")
        if row.get("errors"):
            with_errors += 1
        if not gold:
            continue
        n += 1
        correct += row["entity_id"] == gold
        cands = list(row["candidate_ids"])
        rank = cands.index(gold) if gold in cands else None
        for k in ks:
            hits[k] += rank is not None and rank < k
    out = {f"recall@{k}": (hits[k] / n if n else 0.0) for k in ks}
    out.update(accuracy=correct / n if n else 0.0, n_mentions=n, n_mentions_with_errors=with_errors)
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
