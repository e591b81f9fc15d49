"""Cross-validation, bootstrap intervals and confidence metrics over link results.

- `fold_splits`: K folds by a hash of the mention id (the same corpus always folds the same way,
  whatever its order); inside each fold's training part, a quarter goes to dev by a second hash.
  Every mention is scored exactly once, as test of its fold.
- `bootstrap`: 95% percentile intervals of the linking metrics by resampling mentions, computed
  from per-mention counts so that a thousand resamples cost a few array sums.
- `paired_difference`: how much another set of answers (an ablation row) gains or loses against
  the pipeline's, on the same mentions, with a paired interval: is a row's lead real or noise?
- `confidence_metrics`: ECE, the reliability bins, precision at coverage and the coverage
  reachable at 95% and 99% precision, over the answers' calibrated confidence.

Ray-free; numpy only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from ameli_ray.calibration import (
    coverage_at_precision,
    expected_calibration_error,
    precision_at_coverage,
    reliability_bins,
)
from ameli_ray.errors import ConfigError
from ameli_ray.evaluation.metrics import RECALL_KS
from ameli_ray.schema import NIL_ENTITY, Mention

DEV_SHARE = 0.25  # of a fold's training part: 60/20/20 overall at K=5, as the single split
PRECISION_TARGETS = (0.95, 0.99)


def _hash(text: str) -> int:
    return int(hashlib.sha1(text.encode()).hexdigest()[:12], 16)


def fold_of(mention_id: str, k: int, salt: str = "") -> int:
    """Which of `k` parts a mention falls in, by hash of its id; another `salt` gives a split
    independent of this one (training halves its dev by `salt="half:"`)."""
    return _hash(f"{salt}{mention_id}") % k


def fold_splits(mentions: Sequence[Mention], k: int) -> list[tuple[list[Mention], list[Mention], list[Mention]]]:
    """(train, dev, test) per fold; the tests partition `mentions`."""
    if k < 2:
        raise ConfigError(f"--folds needs at least 2 folds, got {k}")
    if len(mentions) < k:
        raise ConfigError(f"{len(mentions)} mentions cannot make {k} folds")
    folds = []
    for f in range(k):
        train, dev, test = [], [], []
        for m in mentions:
            if fold_of(m.id, k) == f:
                test.append(m)
            elif _hash(f"dev:{m.id}") / 0xFFFFFFFFFFFF < DEV_SHARE:
                dev.append(m)
            else:
                train.append(m)
        folds.append((train, dev, test))
    return folds


# --- bootstrap ------------------------------------------------------------------------------------

# metric -> (numerator column, denominator column) of `_counts`
_RATIOS = {
    "accuracy": ("hit", "real"),
    "retrieval_accuracy": ("top1", "real"),
    **{f"recall@{k}": (f"in{k}", "real") for k in RECALL_KS},
    "precision": ("hit", "answered"),
    "recall": ("hit", "real"),
    "disambiguation_precision": ("d_hit", "d_answered"),
    "disambiguation_recall": ("d_hit", "d_n"),
    "nil_precision": ("nil_hit", "nil_answers"),
    "nil_recall": ("nil_hit", "nil"),
}


def _counts(rows: Sequence[dict], top_n: int | None) -> dict[str, np.ndarray]:
    """Per labelled mention, the 0/1 counts `linking_metrics` sums (same definitions)."""
    cols: dict[str, list[int]] = {name: [] for pair in _RATIOS.values() for name in pair}
    for row in rows:
        gold = row.get("gold_entity_id")
        if gold is None:
            continue
        answer = row.get("entity_id") or NIL_ENTITY
        is_link = answer != NIL_ENTITY
        is_nil = gold == NIL_ENTITY
        cands = list(row.get("candidate_ids") or [])
        rank = cands.index(gold) if not is_nil and gold in cands else None
        hit = (not is_nil) and is_link and answer == gold
        in_top_n = top_n is not None and rank is not None and rank < top_n
        values = {
            "hit": hit, "real": not is_nil, "top1": rank == 0, "answered": is_link,
            **{f"in{k}": rank is not None and rank < k for k in RECALL_KS},
            "d_hit": in_top_n and hit, "d_answered": in_top_n and is_link, "d_n": in_top_n,
            "nil_hit": is_nil and not is_link, "nil_answers": not is_link, "nil": is_nil,
        }
        for name in cols:
            cols[name].append(int(values[name]))
    return {name: np.asarray(v, np.int64) for name, v in cols.items()}


def _ratios(sums: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = {}
    for metric, (num, den) in _RATIOS.items():
        d = sums[den]
        out[metric] = np.where(d > 0, sums[num] / np.maximum(d, 1), np.nan)
    p, r = out["precision"], out["recall"]
    out["f1"] = np.where(p + r > 0, 2 * p * r / np.where(p + r > 0, p + r, 1), 0.0)
    dp, dr = out["disambiguation_precision"], out["disambiguation_recall"]
    out["disambiguation_f1"] = np.where(dp + dr > 0, 2 * dp * dr / np.where(dp + dr > 0, dp + dr, 1), 0.0)
    return out


def bootstrap(rows: Sequence[dict], top_n: int | None, *, resamples: int = 1000, seed: int = 0,
              extra: dict[str, np.ndarray] | None = None) -> dict[str, dict]:
    """{metric: {"value", "ci95": [lo, hi]}} over the labelled mentions of `rows`; `extra` adds
    per-mention columns aligned with them (e.g. a baseline's hits, NaN where a mention does not
    count) as means over the counted ones. Metrics without
    a denominator (no NIL mention, no top_n) are left out."""
    counts = _counts(rows, top_n)
    n = len(counts["real"])
    if n == 0:
        return {}
    rng = np.random.default_rng(seed)
    # multinomial weights instead of index arrays: resamples x n counts, one matrix product per column
    weights = rng.multinomial(n, np.full(n, 1 / n), size=resamples).astype(np.float64)
    point = _ratios({k: np.asarray(v.sum()) for k, v in counts.items()})
    sampled = _ratios({k: weights @ v for k, v in counts.items()})
    skip = set()
    if top_n is None:
        skip |= {"disambiguation_precision", "disambiguation_recall", "disambiguation_f1"}
    if not counts["nil"].any():
        skip |= {"nil_precision", "nil_recall"}
    out = {}
    for metric, value in point.items():
        if metric in skip or not np.isfinite(value):
            continue
        lo, hi = np.nanpercentile(sampled[metric], [2.5, 97.5])
        out[metric] = {"value": round(float(value), 4), "ci95": [round(float(lo), 4), round(float(hi), 4)]}
    for name, column in (extra or {}).items():
        column = np.asarray(column, np.float64)
        if len(column) != n:
            raise ValueError(f"{name}: {len(column)} values for {n} labelled mentions")
        counted = np.isfinite(column)  # NaN: a mention this figure does not count
        if not counted.any():
            continue
        values = np.where(counted, column, 0.0)
        resampled = (weights @ values) / np.maximum(weights @ counted, 1)
        lo, hi = np.percentile(resampled, [2.5, 97.5])
        out[name] = {"value": round(float(values.sum() / counted.sum()), 4), "ci95": [round(float(lo), 4), round(float(hi), 4)]}
    return out


def paired_difference(rows: Sequence[dict], answers: dict[str, str], *, resamples: int = 1000,
                      seed: int = 0) -> dict | None:
    """Accuracy of `answers` (mention id -> answered entity id, "" for no match) minus that of
    `rows` (the pipeline's link rows), over the labelled mentions of a listed product (accuracy's
    denominator), with a 95% paired bootstrap interval: each resample draws the same mentions for
    both, so the interval is that of the difference itself. Two rows' own intervals overlap far
    more than their difference varies; this is the figure that says whether a row's lead over the
    pipeline (or its loss) is more than the draw of the test set. Also counts the mentions only
    `answers` has right ("gains") and only `rows` has right ("losses"). None without such
    mentions; every one of them must have an answer."""
    real = [r for r in rows if r.get("gold_entity_id") not in (None, NIL_ENTITY)]
    if not real:
        return None
    missing = [r["mention_id"] for r in real if r["mention_id"] not in answers]
    if missing:
        raise ValueError(f"no answer for {len(missing)} mentions (e.g. {missing[0]!r})")
    base = _counts(real, None)["hit"]  # right answers as `bootstrap` and `linking_metrics` count them
    other = _counts([{**r, "entity_id": answers[r["mention_id"]]} for r in real], None)["hit"]
    diff = (other - base).astype(np.float64)
    n = len(diff)
    weights = np.random.default_rng(seed).multinomial(n, np.full(n, 1 / n), size=resamples).astype(np.float64)
    lo, hi = np.percentile(weights @ diff / n, [2.5, 97.5])
    return {"value": round(float(diff.mean()), 4), "ci95": [round(float(lo), 4), round(float(hi), 4)],
            "gains": int((diff > 0).sum()), "losses": int((diff < 0).sum()), "n_mentions": n}


def fold_summary(per_fold: list[dict], keys: Sequence[str]) -> dict[str, dict]:
    """Mean and spread over folds of each metric present in every fold."""
    out = {}
    for key in keys:
        values = [f[key] for f in per_fold if isinstance(f.get(key), (int, float))]
        if len(values) == len(per_fold) and values:
            out[key] = {"mean": round(float(np.mean(values)), 4), "std": round(float(np.std(values)), 4),
                        "per_fold": [round(float(v), 4) for v in values]}
    return out


# --- confidence ------------------------------------------------------------------------------------


def confidence_metrics(rows: Sequence[dict]) -> dict | None:
    """How sure the linker is, and how right: over labelled mentions with a confidence, an answer
    is right when its best candidate (the answer before the no-match rules) is the gold; a review
    labelled "no matching product" is never right. None when no row carries a confidence."""
    conf, right = [], []
    for row in rows:
        gold, c = row.get("gold_entity_id"), row.get("confidence")
        if gold is None or c is None or not np.isfinite(c):
            continue
        conf.append(float(c))
        right.append(gold != NIL_ENTITY and (row.get("best_entity_id") or row.get("entity_id")) == gold)
    if not conf:
        return None
    confidence, correct = np.asarray(conf), np.asarray(right, bool)
    return {
        "n": len(conf),
        "ece": round(expected_calibration_error(confidence, correct), 4),
        "brier": round(float(np.mean((confidence - correct) ** 2)), 4),
        "mean_confidence": round(float(confidence.mean()), 4),
        "best_accuracy": round(float(correct.mean()), 4),
        "reliability": reliability_bins(confidence, correct),
        "precision_at_coverage": precision_at_coverage(confidence, correct),
        "coverage_at_precision": {f"{t:g}": coverage_at_precision(confidence, correct, t) for t in PRECISION_TARGETS},
    }


# --- held-out products ----------------------------------------------------------------------------


def hold_out_products(entities: list, mentions: Sequence[Mention], share: float) -> tuple[list, list[Mention], set[str]]:
    """Removes a `share` of the products that mentions link to from the KB (chosen by a hash of
    the entity id) and relabels their mentions "no matching product": reviews of products the KB
    does not hold, for showing the no-match answer on data whose training split has none.
    Returns (kept entities, relabelled mentions, ids of the relabelled mentions)."""
    if not 0 < share < 1:
        raise ConfigError(f"the share of products to hold out must be in (0, 1), got {share}")
    linked = {m.gold_entity_id for m in mentions if m.gold_entity_id}
    removed = {e for e in linked if _hash(f"holdout:{e}") / 0xFFFFFFFFFFFF < share}
    relabelled, ids = [], set()
    for m in mentions:
        if m.gold_entity_id in removed:
            m = m.model_copy(update={"gold_entity_id": NIL_ENTITY})
            ids.add(m.id)
        relabelled.append(m)
    return [e for e in entities if e.id not in removed], relabelled, ids
