"""Attribute-extraction precision / recall / F1, as the AMELI paper counts them.

A predicted (key, value) is correct when the gold attributes of the same mention have that key
(compared case-insensitively) and the two values, normalised (`normalize_value`), are substrings
of each other. Precision = correct / predicted, recall = correct / gold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ameli_ray.attributes.normalize import normalize_key, normalize_value

__all__ = ["attribute_prf", "attribute_prf_by_source", "value_matches"]


def value_matches(predicted: str, gold: str) -> bool:
    """The paper's rule: normalised values that are substrings of each other (and not empty)."""
    p, g = normalize_value(predicted), normalize_value(gold)
    return bool(p) and bool(g) and (p in g or g in p)


def _prf(n_predicted: int, n_gold: int, n_correct: int) -> dict[str, float | int]:
    precision = n_correct / n_predicted if n_predicted else 0.0
    recall = n_correct / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "n_predicted": n_predicted,
        "n_gold": n_gold,
        "n_correct": n_correct,
    }


def _count(predicted: Mapping[str, str], gold: Mapping[str, str]) -> int:
    gold_by_key = {normalize_key(k): v for k, v in gold.items()}
    return sum(1 for k, v in predicted.items() if value_matches(v, gold_by_key.get(normalize_key(k), "")))


def attribute_prf(predicted: Sequence[Mapping[str, str]], gold: Sequence[Mapping[str, str]]) -> dict[str, float | int]:
    """Micro precision, recall and F1 over mentions; `predicted[i]` and `gold[i]` are mention i's key -> value."""
    if len(predicted) != len(gold):
        raise ValueError(f"predicted has {len(predicted)} mentions, gold has {len(gold)}")
    n_predicted = sum(len(p) for p in predicted)
    n_gold = sum(len(g) for g in gold)
    n_correct = sum(_count(p, g) for p, g in zip(predicted, gold))
    return _prf(n_predicted, n_gold, n_correct)


def attribute_prf_by_source(
    predicted: Sequence[Mapping[str, Mapping[str, str]]],
    gold: Sequence[Mapping[str, str]],
    gold_sources: Sequence[Mapping[str, str]] | None = None,
) -> dict[str, dict[str, float | int]]:
    """P/R/F1 per extraction source ("text", "ocr", ...): `predicted[i]` maps source -> key -> value.

    With `gold_sources` (mention i's key -> where the gold value is shown, as the catalogue
    generator records it), a source's recall counts only the gold values shown in that source and
    its precision only its predictions for those keys, so that "text" is not charged for a value
    that only a photo shows; without it, every source is scored against all gold values.
    """
    if len(predicted) != len(gold) or (gold_sources is not None and len(gold_sources) != len(gold)):
        raise ValueError("predicted, gold and gold_sources must have one entry per mention")
    sources = sorted({s for p in predicted for s in p} | {s for gs in (gold_sources or []) for s in gs.values()})
    out: dict[str, dict[str, float | int]] = {}
    for source in sources:
        preds: list[dict[str, str]] = []
        golds: list[dict[str, str]] = []
        for i, p in enumerate(predicted):
            pred = dict(p.get(source, {}))
            g = dict(gold[i])
            if gold_sources is not None:
                where = {normalize_key(k): s for k, s in gold_sources[i].items()}
                g = {k: v for k, v in g.items() if where.get(normalize_key(k)) == source}
                # a prediction for a key whose gold value this source does not show is not judged here
                pred = {k: v for k, v in pred.items() if normalize_key(k) not in where
                        or where[normalize_key(k)] == source}
            preds.append(pred)
            golds.append(g)
        out[source] = attribute_prf(preds, golds)
    return out
