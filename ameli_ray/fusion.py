"""Fusion of the disambiguation streams, the attribute filter and the "no matching product" answer.

Each of a mention's first `top_n` candidates has three scores: retrieval (the fused retrieval
score), text (a cross-encoder logit) and image (an adapted cosine). As in the AMELI paper they
are mixed linearly, `a*retrieval + b*text + (1-a-b)*image`, with (a, b) grid-searched on dev;
then the attribute filter picks the best uncontradicted candidate. Each answer then gets a
confidence, the probability that it is right, from a calibrator fitted on the dev answers
(`ameli_ray.calibration`), and the "no matching product" answer is decided on that confidence: below
the threshold that reaches `fusion.target_precision` on dev (or, with no target, the one that is
most accurate over dev's own no-match reviews), the answer is withheld.

Scores are standardised with one affine map per stream (dev mean and std over all candidates),
not per mention: per-mention z-scores would make every mention's best candidate look equally
good, and the threshold could no longer tell a confident match from no match at all.

numpy and pydantic only: this runs in the linker's actors and in the training driver alike.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, Field, field_validator

from ameli_ray.calibration import Calibrator, answer_features, fit_calibrator, threshold_for_precision
from ameli_ray.config import FusionSettings
from ameli_ray.schema import NIL_ENTITY, Candidate, LinkResult

STREAMS = ("retrieval", "text", "image")
_STD_FLOOR = 1e-6  # a constant stream (e.g. a dummy text model) must not divide by zero
_CHUNK_ELEMENTS = 4_000_000  # bounds the (grid x mentions x candidates) block fit_fusion holds at once
GATES = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)  # the gate strengths tried on dev
_MARGIN_CAP = 5.0  # a stream's margin counts up to 5 standard deviations: one outlier must not take all the weight


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
    # the answer's calibrated confidence (None: no calibrator, e.g. a model from before calibration)
    calibration: Calibrator | None = None
    confidence_threshold: float | None = None  # answer "no matching product" below it; None: never
    target_precision: float | None = None  # what the threshold was chosen for (None: dev accuracy)
    target_reached: bool | None = None  # on dev; False: the most precise cut was taken instead
    # answer "no matching product" when the review's attributes contradict every candidate the
    # filter may reach (the review names a variant the KB lacks); chosen on dev
    nil_if_contradicted: bool = False
    # per-review gate: each stream's weight is scaled by exp(gate * its own margin on this review)
    # (how far its top candidate is ahead of its second, in standardised units), then renormalised;
    # 0 = the fixed dev-tuned weights. Fitted on dev and kept only when it gains min_gain there.
    gate: float = Field(0.0, ge=0)
    filter: bool = True
    filter_depth: int = 10
    dev: dict[str, float] = {}
    grid: list[dict] = []  # every tried weighting and its dev accuracy: how flat is the optimum?
    # the retrieval channels' weights fitted on dev (`retrieval.fitting`); the retrieval score
    # above was fused with them, so a linker over this model retrieves with them too.
    # None: a model from before the fit, or trained with `retrieval.fit_weights` off
    retrieval_weights: dict[str, float] | None = None
    retrieval_dev: dict[str, float] = {}
    # attribute keys whose extracted values agreed with the right product too rarely on dev
    # (`attributes.reliability`): the model was trained and tuned without them, so a linker over it
    # ignores them too; `attribute_keys_dev` is what the rule saw, per key: [agree, contradict]
    ignored_attribute_keys: list[str] = []
    attribute_keys_dev: dict[str, list[int]] = {}
    # the char n-gram channel's idf refitted on the KB and the train + dev mention texts (the
    # model's file `manifest.CHARGRAM_IDF`), for the KB whose n-gram list has this sha256:
    # {"file", "kb_ngrams_sha256", "n_texts"}. None: the KB's own idf
    chargram_idf: dict[str, Any] | None = None
    # how many candidates the statistics above were fitted on (`disambiguation.fusion.top_n` at
    # training): linking another number would standardise and calibrate scores of another
    # population, so a linker refuses a mismatch. None: a model from before it was recorded
    top_n: int | None = None

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
    x, present, valid = _prepare([scores], model.standardisation, _active(model.weights[s] > 0 for s in STREAMS))
    w = np.array([[model.weights[s] for s in STREAMS]])
    return _fuse_grid(x, present, w, _margins(x, valid) if model.gate else None, model.gate)[0, 0]


@dataclass
class Decision:
    """One mention's answer: `index` of the answer in the candidate list (None = no matching
    product), `best` the candidate it would be without the no-match rules, `filtered` whether the
    attribute filter passed over a higher-ranked contradicted candidate, `confidence` the
    calibrated probability that `best` is right (None without a calibrator)."""

    index: int | None
    best: int | None
    filtered: bool
    confidence: float | None


def decide(fused: np.ndarray, contradicted: np.ndarray, model: FusionModel) -> Decision:
    """Mirrors the linker's attribute filter, on the fused ranking: the best uncontradicted
    candidate within filter_depth, the top one if all are; then the no-match rules."""
    fused = np.asarray(fused, dtype=np.float64)
    if fused.size == 0:
        return Decision(None, None, False, None)
    order = np.argsort(-fused, kind="stable")  # ties keep retrieval order
    pick, filtered = int(order[0]), False
    if model.filter:
        for i in order[: model.filter_depth]:
            if not contradicted[i]:
                pick, filtered = int(i), bool(i != order[0])
                break
    confidence = None
    if model.calibration is not None:
        features = answer_features([fused], [pick], [bool(contradicted[pick])])
        confidence = float(model.calibration.confidence(features)[0])
    # `filtered` is kept on NIL too: it says why the answer was weak (the top was contradicted)
    nil = (model.nil_if_contradicted and model.filter and bool(contradicted[pick])) or (
        model.confidence_threshold is not None and confidence is not None and confidence < model.confidence_threshold
    )
    return Decision(None if nil else pick, pick, filtered, confidence)


def answer(fused: np.ndarray, contradicted: np.ndarray, model: FusionModel) -> tuple[int | None, bool]:
    """(index of the answer in the candidate list or None for NIL, whether the filter passed over
    a higher-ranked contradicted candidate): `decide` without the confidence."""
    d = decide(fused, contradicted, model)
    return d.index, d.filtered


def fit_fusion(
    dev: list[StreamScores],
    gold_index: list[int | None],
    is_nil: list[bool],
    settings: FusionSettings,
    filter: bool,
    filter_depth: int,
    streams: tuple[str, ...] = STREAMS,
) -> FusionModel:
    """Grid-search the stream weights for dev accuracy over non-NIL mentions; fit the confidence
    calibrator on the dev answers; then (with settings.nil) the no-match rules: the contradiction
    rule when dev has NIL mentions and it earns its place, and the confidence threshold that
    reaches settings.target_precision on dev (with no target: the most accurate one over dev's NIL
    mentions, if it gains min_gain)."""
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

    # A stream with no score on any dev candidate (no image stream, or no review photos) gets no
    # weight: weight on it is renormalised away, so the grid would hold each weighting many times
    # over and the plateau's centre would lean towards a stream that is not there.
    scored = [s for s in STREAMS if s in streams and present[:, STREAMS.index(s)].any()]
    grid = _simplex([STREAMS.index(s) for s in (scored or [s for s in STREAMS if s in streams])], settings.grid_step)
    step = max(1, _CHUNK_ELEMENTS // max(1, x.shape[0] * x.shape[2]))

    def grid_correct(filter_on: bool) -> np.ndarray:
        correct = np.zeros(len(grid), dtype=np.int64)
        for lo in range(0, len(grid), step):
            pick, _ = _answers(x, present, valid, contradicted, grid[lo : lo + step], filter_on, filter_depth)
            correct[lo : lo + step] = ((pick == gold) & (n_cands > 0) & ~nil).sum(axis=1)
        return correct

    correct = grid_correct(filter)
    filter_record = {}
    if filter:
        # Attributes must never cost accuracy on dev: where extraction is unreliable for a dataset
        # (contradictions that are the extractor's misreadings), the filter is switched off
        unfiltered = grid_correct(False)
        filter_record = {"filter_dev_correct": int(correct.max()), "no_filter_dev_correct": int(unfiltered.max())}
        if unfiltered.max() > correct.max():
            filter, correct = False, unfiltered

    n_linkable = int((~nil).sum())
    # On a dev set of a few hundred mentions, a point of accuracy is a handful of mentions, so the
    # weightings within `min_gain` of the best dev accuracy are one plateau. `plateau=centre` keeps
    # its centre (below); `most_retrieval` its edge: the most retrieval weight (then the more
    # accurate, then more text weight), so that a stream must earn its weight.
    accuracy = correct / max(1, int((~nil).sum()))
    eligible = accuracy >= accuracy.max() - settings.min_gain - 1e-12
    if settings.plateau == "centre":
        # Where dev cannot tell the weightings apart, the plateau's edge (all weight on retrieval) is
        # one arbitrary point of it; its centre averages the scores that are about as good, which is
        # what an ensemble of comparable, partly independent scorers gains from. A weak stream is
        # only in the plateau at low weight, so its centre gives it little. (Then the more
        # accurate, then more retrieval weight.)
        distance = np.abs(grid - grid[eligible].mean(axis=0)).sum(axis=1)
        best = int(np.lexsort((-grid[:, 0], -correct, np.round(distance, 9), ~eligible))[0])
    else:
        best = int(np.lexsort((-grid[:, 1], -correct, -grid[:, 0], ~eligible))[0])
    weights = {s: float(grid[best, i]) for i, s in enumerate(STREAMS)}
    # the per-review gate, against the fixed weights it starts from: only with two weighted streams
    margins = _margins(x, valid)
    gate_accuracy = {}
    if (grid[best] > 0).sum() >= 2:
        for g in GATES:
            p, _ = _answers(x, present, valid, contradicted, grid[best : best + 1], filter, filter_depth, margins, g)
            gate_accuracy[g] = int(((p[0] == gold) & (n_cands > 0) & ~nil).sum())
    gate = 0.0
    if gate_accuracy:
        top = max(gate_accuracy, key=lambda g: (gate_accuracy[g], -g))
        if gate_accuracy[top] - gate_accuracy[0.0] >= max(settings.min_gain * n_linkable, 1e-9):
            gate = top
    pick, _ = (a[0] for a in _answers(x, present, valid, contradicted, grid[best : best + 1], filter, filter_depth,
                                      margins, gate))
    linked = (pick == gold) & (n_cands > 0) & ~nil

    has = n_cands > 0
    # the calibrator learns from right and wrong answers alone, so it needs no NIL mention in dev
    fused = _fuse_grid(x, present, grid[best : best + 1], margins, gate)[0]
    rows = np.flatnonzero(has)
    fell_back = np.array([bool(filter) and bool(contradicted[i, p]) if n_cands[i] else False for i, p in enumerate(pick)])
    features = answer_features([fused[i, : n_cands[i]] for i in rows], [int(pick[i]) for i in rows],
                               [bool(contradicted[i, pick[i]]) for i in rows])
    calibrator = fit_calibrator(features, linked[rows])
    confidence = np.zeros(len(dev))
    confidence[rows] = calibrator.confidence(features)

    by_contradiction, threshold, reached = False, None, None
    if settings.nil:
        if nil.any():
            by_contradiction = _contradiction_rule(linked, nil, fell_back, has, settings.min_gain)
        rest = has & ~fell_back if by_contradiction else has
        if settings.target_precision is not None:
            # precision of the answers given, over every labelled dev mention (a NIL one answered is wrong)
            threshold, reached = threshold_for_precision(confidence[rest], linked[rest], settings.target_precision)
        elif nil.any():
            threshold = _nil_threshold(confidence[rest], linked[rest], nil[rest])
            if threshold is not None and not _gains(confidence, threshold, linked, nil, rest, settings.min_gain):
                threshold = None  # it must buy min_gain of dev accuracy, as a stream must
    abstain = ~has | (confidence < threshold if threshold is not None else False)
    if by_contradiction:
        abstain = abstain | fell_back
    overall = _right(abstain, linked, nil)
    record = {
        "accuracy": int(correct[best]) / n_linkable if n_linkable else 0.0,  # non-NIL, before the no-match rules
        "overall_accuracy": float(overall) / len(dev) if len(dev) else 0.0,  # all mentions, NIL answers included
        "n_mentions": float(len(dev)),
        "n_nil_mentions": float(nil.sum()),
        "coverage": float((~abstain).sum() / len(dev)) if len(dev) else 0.0,
        "precision": float((linked & ~abstain).sum() / max(1, int((~abstain).sum()))),
        **{f"weight_{s}": w for s, w in weights.items()},
        "gate": gate,
        "filter": float(filter),
        **filter_record,
        **{f"gate_{g:g}_accuracy": c / n_linkable for g, c in gate_accuracy.items() if n_linkable},
    }
    if nil.any():
        record["nil_recall"] = float((nil & abstain).sum() / nil.sum())
    if threshold is not None or by_contradiction:
        record["linked_accuracy_after_threshold"] = float((linked & ~abstain).sum() / n_linkable) if n_linkable else 0.0
    return FusionModel(
        weights=weights,
        standardisation=stats,
        calibration=calibrator,
        confidence_threshold=threshold,
        target_precision=settings.target_precision if settings.nil else None,
        target_reached=reached,
        nil_if_contradicted=by_contradiction,
        gate=gate,
        filter=filter,
        filter_depth=filter_depth,
        top_n=settings.top_n,
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


def _margins(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """[M, S] each stream's own confidence on each review: its best candidate's standardised value
    minus its second best's (0 with fewer than two candidates), capped at _MARGIN_CAP."""
    if x.shape[2] < 2:
        return np.zeros(x.shape[:2])
    z = np.where(valid[:, None, :], x, -np.inf)
    top2 = -np.sort(-z, axis=2)[:, :, :2]
    with np.errstate(invalid="ignore"):  # -inf - -inf where a mention has fewer than two candidates
        margin = np.where(np.isfinite(top2[:, :, 1]), top2[:, :, 0] - top2[:, :, 1], 0.0)
    return np.clip(margin, 0.0, _MARGIN_CAP)


def _fuse_grid(x: np.ndarray, present: np.ndarray, weights: np.ndarray, margins: np.ndarray | None = None,
               gate: float = 0.0) -> np.ndarray:
    """[G, M, N] fused scores for G weightings. A stream absent for a mention drops out and the
    others are renormalised; if no weighted stream is left, the mention falls back to retrieval
    (always there in practice), and to zeros (= retrieval order) if even that is absent.

    Element-wise sums in a fixed stream order, so that `fuse` (one mention) and `fit_fusion`
    (the whole grid) get bit-identical scores and therefore identical ties."""
    use = weights[:, None, :] * present[None, :, :]  # [G, M, S]
    if gate and margins is not None:  # gate 0 leaves the arithmetic of the fixed weights untouched
        use = use * np.exp(gate * margins)[None, :, :]
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
    weights: np.ndarray, filter: bool, filter_depth: int, margins: np.ndarray | None = None, gate: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """`answer` (without the threshold) for G weightings at once: pick [G, M] (-1 for a mention
    without candidates) and the fused score of the pick [G, M] (-inf there)."""
    if x.shape[2] == 0:  # no mention has candidates
        shape = (weights.shape[0], x.shape[0])
        return np.full(shape, -1, dtype=np.int64), np.full(shape, -np.inf)
    fused = np.where(valid[None], _fuse_grid(x, present, weights, margins, gate), -np.inf)  # padding sorts last
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


def _contradiction_rule(linked: np.ndarray, nil: np.ndarray, fell_back: np.ndarray, has: np.ndarray, min_gain: float) -> bool:
    """Whether to answer NIL when every candidate the filter may reach is contradicted (the review
    names a variant the KB lacks). Like a stream's weight it must earn its place: it is kept only
    when it is at least `min_gain` more accurate over all dev mentions than not having it."""
    return _right(~has | fell_back, linked, nil) >= _right(~has, linked, nil) + max(min_gain * len(nil), 1e-9)


def _gains(confidence: np.ndarray, threshold: float, linked: np.ndarray, nil: np.ndarray, rest: np.ndarray,
           min_gain: float) -> bool:
    """Whether withholding the answers of `rest` below `threshold` is `min_gain` more accurate."""
    abstain = rest & (confidence < threshold)
    return _right(abstain, linked, nil) >= _right(np.zeros_like(abstain), linked, nil) + max(min_gain * len(nil), 1e-9)


def _right(abstain: np.ndarray, linked: np.ndarray, nil: np.ndarray) -> int:
    """Right answers over all dev mentions: a NIL one withheld, a linked one answered."""
    return int(((nil & abstain) | (linked & ~abstain)).sum())


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


def stream_scores_of(result: LinkResult, text: np.ndarray, image: np.ndarray, top_n: int) -> StreamScores:
    """What fusion reads of one mention: its retrieval ranking's first `top_n` candidates and the
    two streams' scores over them (`Disambiguator.stream_scores`)."""
    top = result.candidates[:top_n]
    return StreamScores(retrieval=np.array([c.score for c in top], np.float64), text=text, image=image,
                        contradicted=np.array([c.contradicted for c in top], bool))


def final_answer(result: LinkResult, scores: StreamScores, fusion: FusionModel, top_n: int) -> LinkResult:
    """Fusion, the attribute filter and the no-match rules over one mention's scored candidates:
    the answer `link` writes and Serve returns (Serve runs it in its own stage)."""
    top = result.candidates[:top_n]
    if not top:
        return result
    fused = fuse(scores, fusion)
    d = decide(fused, scores.contradicted, fusion)
    candidates = [
        _with_scores(c, scores.text[i], scores.image[i], fused[i]) if i < len(top) else c
        for i, c in enumerate(result.candidates)
    ]
    return result.model_copy(
        update={
            "candidates": candidates,
            "entity_id": top[d.index].entity_id if d.index is not None else NIL_ENTITY,
            "score": float(fused[d.index] if d.index is not None else fused.max()),
            "filtered": d.filtered,
            "best_entity_id": top[d.best].entity_id,
            "confidence": d.confidence,
        }
    )


def _with_scores(c: Candidate, text: float, image: float, final: float) -> Candidate:
    return c.model_copy(update={"channel_scores": {**c.channel_scores, "text_stream": float(text),
                                                   "image_stream": float(image), "final": float(final)}})
