"""Fusion of the disambiguation streams, the attribute filter and the "no matching product" answer.

Each of a mention's first `top_n` candidates has three scores: retrieval (the fused retrieval
score), text (a cross-encoder logit) and image (an adapted cosine). As in the AMELI paper they
are mixed linearly, `a*retrieval + b*text + (1-a-b)*image`, with (a, b) grid-searched on dev;
then the attribute filter picks the best uncontradicted candidate. We add a NIL answer: when the
answer's fused score is below a threshold calibrated on dev, the answer is "no matching product".

Scores are standardised with one affine map per stream (dev mean and std over all candidates),
not per mention: per-mention z-scores would make every mention's best candidate look equally
good, and the threshold could no longer tell a confident match from no match at all.

numpy and pydantic only: this runs in the linker's actors and in the training driver alike.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, field_validator

from ameli_ray.config import FusionSettings

STREAMS = ("retrieval", "text", "image")
_STD_FLOOR = 1e-6  # a constant stream (e.g. a dummy text model) must not divide by zero
_CHUNK_ELEMENTS = 4_000_000  # bounds the (grid x mentions x candidates) block fit_fusion holds at once


@dataclass
class StreamScores:
    """One mention's scores over its first n candidates (retrieval order); NaN = no signal."""

    retrieval: np.ndarray
    text: np.ndarray
    image: np.ndarray
    contradicted: np.ndarray

    def __post_init__(self) -> None:
        for name in STREAMS:
            setattr(self, name, np.asarray(getattr(self, name), dtype=np.float64).reshape(-1))
        self.contradicted = np.asarray(self.contradicted, dtype=bool).reshape(-1)
        lengths = {len(getattr(self, name)) for name in (*STREAMS, "contradicted")}
        if len(lengths) != 1:
            raise ValueError(f"stream arrays of one mention differ in length: {sorted(lengths)}")

    def __len__(self) -> int:
        return len(self.retrieval)


class FusionModel(BaseModel):
    """What fit_fusion learnt on dev; stored next to the stream models as JSON."""

    weights: dict[str, float]
    standardisation: dict[str, tuple[float, float]]  # stream -> (mean, std) over dev candidates
    nil_threshold: float | None = None  # None: never answer "no matching product"
    # answer "no matching product" when the review's attributes contradict every candidate the
    # filter may reach (the review names a variant the KB lacks); chosen on dev
    nil_if_contradicted: bool = False
    filter: bool = True
    filter_depth: int = 10
    dev: dict[str, float] = {}
    grid: list[dict] = []  # every tried weighting and its dev accuracy: how flat is the optimum?

    @field_validator("weights")
    @classmethod
    def _weights(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = set(value) - set(STREAMS)
        if unknown:
            raise ValueError(f"unknown streams {sorted(unknown)}; expected {STREAMS}")
        full = {s: float(value.get(s, 0.0)) for s in STREAMS}
        if any(w < 0 or not math.isfinite(w) for w in full.values()) or abs(sum(full.values()) - 1) > 1e-6:
            raise ValueError(f"weights must be non-negative and sum to 1, got {full}")
        return full

    @field_validator("filter_depth")
    @classmethod
    def _depth(cls, value: int) -> int:
        if value < 1:
            raise ValueError("filter_depth must be >= 1")
        return value


def fuse(scores: StreamScores, model: FusionModel) -> np.ndarray:
    """The fused score of each candidate (see `_fuse_grid` for missing streams)."""
    if len(scores) == 0:
        return np.zeros(0)
    x, present, _ = _prepare([scores], model.standardisation, _active(model.weights[s] > 0 for s in STREAMS))
    w = np.array([[model.weights[s] for s in STREAMS]])
    return _fuse_grid(x, present, w)[0, 0]


def answer(fused: np.ndarray, contradicted: np.ndarray, model: FusionModel) -> tuple[int | None, bool]:
    """(index of the answer in the candidate list or None for NIL, whether the filter passed over
    a higher-ranked contradicted candidate). Mirrors the linker's attribute filter, on the fused
    ranking: the best uncontradicted candidate within filter_depth, the top one if all are."""
    fused = np.asarray(fused, dtype=np.float64)
    if fused.size == 0:
        return None, False
    order = np.argsort(-fused, kind="stable")  # ties keep retrieval order
    pick, filtered = int(order[0]), False
    if model.filter:
        for i in order[: model.filter_depth]:
            if not contradicted[i]:
                pick, filtered = int(i), bool(i != order[0])
                break
    # `filtered` is kept on NIL too: it says why the answer was weak (the top was contradicted)
    if model.nil_if_contradicted and model.filter and contradicted[pick]:
        return None, filtered
    if model.nil_threshold is not None and fused[pick] < model.nil_threshold:
        return None, filtered
    return pick, filtered


def fit_fusion(
    dev: list[StreamScores],
    gold_index: list[int | None],
    is_nil: list[bool],
    settings: FusionSettings,
    filter: bool,
    filter_depth: int,
    streams: tuple[str, ...] = STREAMS,
) -> FusionModel:
    """Grid-search the stream weights for dev accuracy over non-NIL mentions, then (if dev has NIL
    mentions and settings.nil) the NIL threshold for accuracy over all mentions."""
    if not (len(dev) == len(gold_index) == len(is_nil)):
        raise ValueError("dev, gold_index and is_nil must have one entry per mention")
    bad = [s for s in streams if s not in STREAMS]
    if not streams or bad:
        raise ValueError(f"streams must be a non-empty subset of {STREAMS}, got {streams}")
    stats = _standardisation(dev)
    x, present, valid = _prepare(dev, stats, _active(s in streams for s in STREAMS))
    contradicted = _pad([d.contradicted for d in dev], x.shape[2], True)  # padding is never picked
    n_cands = valid.sum(axis=1)
    nil = np.asarray(is_nil, dtype=bool)
    # -1: no gold among the candidates (or NIL); an answer index never equals it
    gold = np.array([-1 if g is None or n else int(g) for g, n in zip(gold_index, is_nil)], dtype=np.int64)

    grid = _simplex([STREAMS.index(s) for s in STREAMS if s in streams], settings.grid_step)
    correct = np.zeros(len(grid), dtype=np.int64)
    step = max(1, _CHUNK_ELEMENTS // max(1, x.shape[0] * x.shape[2]))
    for lo in range(0, len(grid), step):
        pick, _ = _answers(x, present, valid, contradicted, grid[lo : lo + step], filter, filter_depth)
        correct[lo : lo + step] = ((pick == gold) & (n_cands > 0) & ~nil).sum(axis=1)

    n_linkable = int((~nil).sum())
    # A trained stream must earn its weight: among the settings within `min_gain` of the best dev
    # accuracy, the one with the most retrieval weight wins (then the more accurate, then more
    # text weight). On a dev set of a few hundred mentions, a point of accuracy is a handful of
    # mentions, and a weak stream's noise can buy that much by chance.
    accuracy = correct / max(1, int((~nil).sum()))
    eligible = accuracy >= accuracy.max() - settings.min_gain - 1e-12
    best = int(np.lexsort((-grid[:, 1], -correct, -grid[:, 0], ~eligible))[0])
    weights = {s: float(grid[best, i]) for i, s in enumerate(STREAMS)}
    pick, score = (a[0] for a in _answers(x, present, valid, contradicted, grid[best : best + 1], filter, filter_depth))
    linked = (pick == gold) & (n_cands > 0) & ~nil

    threshold, by_contradiction = None, False
    if settings.nil and nil.any():
        # the filter fell back to a contradicted answer: every reachable candidate is contradicted
        fell_back = np.array([bool(filter) and bool(contradicted[i, p]) if n_cands[i] else False
                              for i, p in enumerate(pick)])
        threshold, by_contradiction = _nil_rules(score, linked, nil, fell_back, settings.min_gain)
    abstain = (n_cands == 0) | (score < threshold if threshold is not None else False)
    if by_contradiction:
        abstain = abstain | fell_back
    overall = ((nil & abstain) | (linked & ~abstain)).sum()
    record = {
        "accuracy": int(correct[best]) / n_linkable if n_linkable else 0.0,  # non-NIL, before the threshold
        "overall_accuracy": float(overall) / len(dev) if len(dev) else 0.0,  # all mentions, NIL answers included
        "n_mentions": float(len(dev)),
        "n_nil_mentions": float(nil.sum()),
        **{f"weight_{s}": w for s, w in weights.items()},
    }
    if threshold is not None:
        record["nil_recall"] = float((nil & abstain).sum() / nil.sum())
        record["linked_accuracy_after_threshold"] = float((linked & ~abstain).sum() / n_linkable) if n_linkable else 0.0
    return FusionModel(
        weights=weights,
        standardisation=stats,
        nil_threshold=threshold,
        nil_if_contradicted=by_contradiction,
        filter=filter,
        filter_depth=filter_depth,
        dev=record,
        grid=[
            {**{s: float(grid[g, i]) for i, s in enumerate(STREAMS)}, "accuracy": int(correct[g]) / n_linkable if n_linkable else 0.0}
            for g in range(len(grid))
        ],
    )


# --- internals ---------------------------------------------------------------------------------


def _standardisation(dev: list[StreamScores]) -> dict[str, tuple[float, float]]:
    stats = {}
    for s in STREAMS:
        values = np.concatenate([getattr(d, s) for d in dev]) if dev else np.zeros(0)
        values = values[np.isfinite(values)]
        # a stream with no values at all (no text model) gets the identity map; its weight is moot
        stats[s] = (float(values.mean()), max(float(values.std()), _STD_FLOOR)) if values.size else (0.0, 1.0)
    return stats


def _active(weighted: Iterable[bool]) -> tuple[bool, ...]:
    """The streams to read: the weighted ones, and retrieval always, because it is the fallback of a
    mention none of whose weighted streams has a signal. Doing this the same way in `fuse` and
    `fit_fusion` keeps their scores identical."""
    return tuple(i == 0 or w for i, w in enumerate(weighted))


def _pad(rows: list[np.ndarray], width: int, fill: float | bool) -> np.ndarray:
    dtype = bool if isinstance(fill, bool) else np.float64
    out = np.full((len(rows), width), fill, dtype=dtype)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


def _prepare(
    dev: list[StreamScores], stats: dict[str, tuple[float, float]], active: tuple[bool, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x [M, S, N] standardised with NaNs resolved (and 0 for padding, absent and inactive
    streams), present [M, S] (the stream has a value for some candidate), valid [M, N]."""
    width = max((len(d) for d in dev), default=0)
    valid = _pad([np.ones(len(d), dtype=bool) for d in dev], width, False)
    x = np.zeros((len(dev), len(STREAMS), width))
    present = np.zeros((len(dev), len(STREAMS)), dtype=bool)
    for s, name in enumerate(STREAMS):
        if not active[s]:
            continue  # ignored entirely: its values may be anything, NaN included
        mean, std = stats.get(name, (0.0, 1.0))
        z = (_pad([getattr(d, name) for d in dev], width, np.nan) - mean) / std
        z[~np.isfinite(z)] = np.nan
        has = ~np.isnan(z)
        present[:, s] = has.any(axis=1)
        # a candidate without this signal (an entity without images) gets the mention's worst value:
        # it must not win on a stream it has nothing to show for
        lowest = np.where(has, z, np.inf).min(axis=1, keepdims=True)
        z = np.where(has, z, np.where(present[:, s : s + 1], lowest, 0.0))
        x[:, s] = np.where(valid, z, 0.0)
    return x, present, valid


def _fuse_grid(x: np.ndarray, present: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """[G, M, N] fused scores for G weightings. A stream absent for a mention drops out and the
    others are renormalised; if no weighted stream is left, the mention falls back to retrieval
    (always there in practice), and to zeros (= retrieval order) if even that is absent.

    Element-wise sums in a fixed stream order, so that `fuse` (one mention) and `fit_fusion`
    (the whole grid) get bit-identical scores and therefore identical ties."""
    use = weights[:, None, :] * present[None, :, :]  # [G, M, S]
    total = use[..., 0] + use[..., 1] + use[..., 2]
    fallback = total <= 0
    if fallback.any():
        retrieval_only = np.zeros(len(STREAMS))
        retrieval_only[0] = 1.0
        use = np.where(fallback[..., None], retrieval_only * present[None, :, :], use)
        total = use[..., 0] + use[..., 1] + use[..., 2]
    total = np.where(total > 0, total, 1.0)
    fused = np.zeros((weights.shape[0], *x.shape[::2]))
    for s in range(len(STREAMS)):
        fused = fused + (use[..., s] / total)[..., None] * x[None, :, s, :]
    return fused


def _answers(
    x: np.ndarray, present: np.ndarray, valid: np.ndarray, contradicted: np.ndarray,
    weights: np.ndarray, filter: bool, filter_depth: int,
) -> tuple[np.ndarray, np.ndarray]:
    """`answer` (without the threshold) for G weightings at once: pick [G, M] (-1 for a mention
    without candidates) and the fused score of the pick [G, M] (-inf there)."""
    if x.shape[2] == 0:  # no mention has candidates
        shape = (weights.shape[0], x.shape[0])
        return np.full(shape, -1, dtype=np.int64), np.full(shape, -np.inf)
    fused = np.where(valid[None], _fuse_grid(x, present, weights), -np.inf)  # padding sorts last
    order = np.argsort(-fused, axis=-1, kind="stable")
    rank0 = np.zeros(order.shape[:2] + (1,), dtype=np.int64)
    if filter:
        ok = ~np.take_along_axis(np.broadcast_to(contradicted, order.shape), order, axis=-1)[..., :filter_depth]
        # first uncontradicted within the depth; argmax gives 0 (the top) when there is none
        rank0 = ok.argmax(axis=-1)[..., None]
    pick = np.take_along_axis(order, rank0, axis=-1)[..., 0]
    score = np.take_along_axis(fused, pick[..., None], axis=-1)[..., 0]
    pick = np.where(valid.any(axis=1)[None], pick, -1)
    return pick, score


def _simplex(indices: list[int], step: float) -> np.ndarray:
    """Weight vectors on the grid of the simplex spanned by the streams at `indices` (in STREAMS
    order; the last of them takes the remainder), the other streams at 0."""
    k = int(math.floor(1 / step + 1e-9))
    points = []

    def walk(prefix: list[int], left: int, depth: int) -> None:
        if depth == len(indices) - 1:
            w = np.zeros(len(STREAMS))
            for i, units in zip(indices, prefix):
                w[i] = round(units * step, 10)
            w[indices[-1]] = round(1 - w.sum(), 10)
            points.append(w)
            return
        for units in range(left + 1):
            walk([*prefix, units], left - units, depth + 1)

    walk([], k, 0)
    return np.array(points)


def _nil_rules(
    score: np.ndarray, linked: np.ndarray, nil: np.ndarray, fell_back: np.ndarray, min_gain: float = 0.0
) -> tuple[float | None, bool]:
    """Whether to answer NIL when every reachable candidate is contradicted, and the score
    threshold for the rest. Each rule must earn its place as a stream earns its weight: among the
    combinations within `min_gain` of the most accurate over all dev mentions, the simplest wins
    (none, then the contradiction rule, then the threshold, then both). A threshold fitted to a
    few dev mentions otherwise costs right answers on test for NIL answers it never gives there."""
    options = []  # (right, simplicity rank, threshold, rule)
    for rule in (False, True):
        rest = ~fell_back if rule else np.ones_like(nil)
        fitted = _nil_threshold(score[rest], linked[rest], nil[rest])
        for t in dict.fromkeys((None, fitted)):
            abstain = score < t if t is not None else np.zeros_like(nil)
            if rule:
                abstain = abstain | fell_back
            right = int(((nil & abstain) | (linked & ~abstain)).sum())
            options.append((right, 2 * (t is not None) + rule, t, rule))
    best = max(right for right, *_ in options)
    floor = best - min_gain * len(nil) - 1e-9
    _, _, threshold, rule = min((o for o in options if o[0] >= floor), key=lambda o: o[1])
    return threshold, rule


def _nil_threshold(score: np.ndarray, linked: np.ndarray, nil: np.ndarray) -> float | None:
    """The threshold (among -inf and the midpoints of the sorted answer scores) maximising accuracy
    over all mentions: NIL right iff abstained, non-NIL right iff linked to its gold and not
    abstained. Ties go to the lowest threshold (abstain least). -inf comes back as None."""
    finite = np.isfinite(score)
    s = np.unique(score[finite])
    candidates = np.concatenate([[-np.inf], (s[:-1] + s[1:]) / 2])
    nil_scores = np.sort(score[nil & finite])
    good_scores = np.sort(score[linked & finite])
    # abstain iff score < t: NIL mentions below t are right, linked ones at or above t stay right
    right = np.searchsorted(nil_scores, candidates, side="left") + (
        len(good_scores) - np.searchsorted(good_scores, candidates, side="left")
    )
    t = float(candidates[int(np.argmax(right))])
    return t if math.isfinite(t) else None
