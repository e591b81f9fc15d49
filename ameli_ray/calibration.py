"""Calibrated confidence: the probability that the linker's answer is the right product.

The fused score ranks candidates; it is not a probability. A platform team deciding whether to
auto-link a review needs one, so after the fusion weights are fitted on dev, a calibrator is fitted
on the dev answers (right or wrong) and maps three features of each answer to a probability:

- `score`: the answer's fused score (standardised streams, so comparable across mentions),
- `margin`: how far it is ahead of the best other candidate (0 with a single candidate),
- `contradicted`: the review's attributes contradict the answer (the filter found nothing better).

Three calibrators, picked by measurement (cross-validated Brier score on dev, the simplest within
noise of the best):
- `temperature`: the softmax of the fused scores over the mention's candidates at a fitted
  temperature; the answer's share is its confidence (one parameter, reads only the ranking scores),
- `platt`: logistic regression on the three features (Platt's smoothed targets, small L2),
- `isotonic`: a monotone step function of the Platt logit (pool-adjacent-violators), which can bend
  where a logistic curve cannot.

Right and wrong answers are all it learns from, so it works when dev has no "no matching product"
reviews at all: a review about a product the KB lacks looks like a wrong answer, low margin and
often contradicted attributes. numpy only: this runs in the linker's actors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field, model_validator

Method = Literal["temperature", "platt", "isotonic"]
METHODS: tuple[Method, ...] = ("temperature", "platt", "isotonic")  # simplest first: ties go left
_EPS = 1e-6


@dataclass
class AnswerFeatures:
    """Per answer (one row per mention): fused score, margin, contradicted, and every candidate's
    fused score minus the answer's (for the temperature softmax; -inf pads short lists)."""

    score: np.ndarray  # [M]
    margin: np.ndarray  # [M]
    contradicted: np.ndarray  # [M] bool
    relative: np.ndarray  # [M, N] fused - fused[answer], -inf beyond a mention's candidates

    def __len__(self) -> int:
        return len(self.score)

    def subset(self, idx: np.ndarray) -> "AnswerFeatures":
        return AnswerFeatures(self.score[idx], self.margin[idx], self.contradicted[idx], self.relative[idx])


def answer_features(fused: list[np.ndarray], pick: list[int], contradicted: list[bool]) -> AnswerFeatures:
    """Features of each mention's answer; `fused[i]` are its candidates' fused scores (finite),
    `pick[i]` the answer's index, `contradicted[i]` whether the answer is contradicted."""
    width = max((len(f) for f in fused), default=0)
    score, margin = np.zeros(len(fused)), np.zeros(len(fused))
    relative = np.full((len(fused), width), -np.inf)
    for i, (f, p) in enumerate(zip(fused, pick)):
        f = np.asarray(f, np.float64)
        score[i] = f[p]
        others = np.delete(f, p)
        margin[i] = f[p] - others.max() if others.size else 0.0
        relative[i, : len(f)] = f - f[p]
    return AnswerFeatures(score, margin, np.asarray(contradicted, bool).reshape(-1), relative)


class Calibrator(BaseModel):
    """A fitted calibrator, stored as JSON with the fusion (no pickle)."""

    method: Method
    temperature: float = Field(1.0, gt=0)
    coef: list[float] = [0.0, 0.0, 0.0]  # platt / isotonic: score, margin, contradicted
    intercept: float = 0.0
    # isotonic: the step function over the Platt logit (knots ascending, values non-decreasing)
    knots: list[float] = []
    values: list[float] = []
    cv_brier: dict[str, float] = {}  # what the choice was made on (dev, cross-validated)

    @model_validator(mode="after")
    def _check(self) -> "Calibrator":
        if len(self.coef) != 3:
            raise ValueError("coef holds three weights: score, margin, contradicted")
        if self.method == "isotonic" and (not self.knots or len(self.knots) != len(self.values)):
            raise ValueError("an isotonic calibrator needs knots and values of equal, non-zero length")
        return self

    def confidence(self, features: AnswerFeatures) -> np.ndarray:
        if len(features) == 0:
            return np.zeros(0)
        if self.method == "temperature":
            return _softmax_share(features, self.temperature)
        z = _design(features) @ np.asarray(self.coef) + self.intercept
        if self.method == "platt":
            return _sigmoid(z)
        return np.interp(z, self.knots, self.values)


def fit_calibrator(features: AnswerFeatures, correct: np.ndarray, *, folds: int = 5, seed: int = 0,
                   tolerance: float = 0.002) -> Calibrator:
    """Fits every method on all of dev and picks by `folds`-fold cross-validated Brier score:
    the simplest whose score is within `tolerance` of the best."""
    correct = np.asarray(correct, bool)
    if len(features) != len(correct):
        raise ValueError("one correctness label per answer")
    if len(features) == 0:
        return Calibrator(method="temperature")
    brier = {m: _cv_brier(m, features, correct, folds, seed) for m in METHODS}
    best = min(brier.values())
    method = next(m for m in METHODS if brier[m] <= best + tolerance)
    fitted = _fit(method, features, correct)
    return fitted.model_copy(update={"cv_brier": {m: round(b, 6) for m, b in brier.items()}})


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    """ECE: the count-weighted mean |accuracy - mean confidence| over equal-width bins."""
    confidence, correct = np.asarray(confidence, np.float64), np.asarray(correct, np.float64)
    if confidence.size == 0:
        return 0.0
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += mask.sum() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(total / confidence.size)


# --- fitting -----------------------------------------------------------------------------------


def _fit(method: Method, features: AnswerFeatures, correct: np.ndarray) -> Calibrator:
    if method == "temperature":
        return Calibrator(method="temperature", temperature=_fit_temperature(features, correct))
    coef, intercept = _fit_platt(_design(features), correct)
    if method == "platt":
        return Calibrator(method="platt", coef=list(coef), intercept=intercept)
    z = _design(features) @ coef + intercept
    knots, values = _isotonic(z, correct.astype(np.float64))
    return Calibrator(method="isotonic", coef=list(coef), intercept=intercept, knots=knots, values=values)


def _cv_brier(method: Method, features: AnswerFeatures, correct: np.ndarray, folds: int, seed: int) -> float:
    n = len(features)
    k = max(2, min(folds, n))
    if n < 4:  # too few to hold anything out: in-sample
        fitted = _fit(method, features, correct)
        return float(np.mean((fitted.confidence(features) - correct) ** 2))
    order = np.random.default_rng(seed).permutation(n)
    errors = np.zeros(n)
    for f in range(k):
        held = order[f::k]
        kept = np.setdiff1d(order, held)
        fitted = _fit(method, features.subset(kept), correct[kept])
        errors[held] = (fitted.confidence(features.subset(held)) - correct[held]) ** 2
    return float(errors.mean())


def _design(features: AnswerFeatures) -> np.ndarray:
    return np.stack([features.score, features.margin, features.contradicted.astype(np.float64)], axis=1)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))


def _softmax_share(features: AnswerFeatures, temperature: float) -> np.ndarray:
    """The answer's softmax share: 1 / sum(exp((f - f[answer]) / T)), overflow-safe."""
    z = features.relative / temperature
    top = np.maximum(z.max(axis=1, initial=0.0), 0.0)[:, None]
    with np.errstate(over="ignore"):
        return np.exp(-top[:, 0]) / np.exp(z - top).sum(axis=1)


def _log_loss(p: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(p, _EPS, 1 - _EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def _fit_temperature(features: AnswerFeatures, correct: np.ndarray) -> float:
    """The temperature minimising the log-loss of the answer's softmax share against right/wrong:
    a coarse log-spaced grid, then golden-section refinement (the loss is smooth in log T)."""
    y = correct.astype(np.float64)

    def loss(log_t: float) -> float:
        return _log_loss(_softmax_share(features, math.exp(log_t)), y)

    grid = np.linspace(math.log(0.02), math.log(50.0), 25)
    best = int(np.argmin([loss(g) for g in grid]))
    lo, hi = grid[max(0, best - 1)], grid[min(len(grid) - 1, best + 1)]
    ratio = (math.sqrt(5) - 1) / 2
    for _ in range(30):
        a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
        if loss(a) <= loss(b):
            hi = b
        else:
            lo = a
    return float(math.exp((lo + hi) / 2))


def _fit_platt(x: np.ndarray, correct: np.ndarray, l2: float = 1e-3, iterations: int = 50) -> tuple[np.ndarray, float]:
    """Logistic regression by Newton's method on Platt's smoothed targets ((N+ + 1)/(N+ + 2) and
    1/(N- + 2)), which keep it finite when dev is all right or all wrong. Features are scaled for
    the solve and the coefficients mapped back."""
    n_pos, n_neg = int(correct.sum()), int((~correct).sum())
    t = np.where(correct, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    mean, std = x.mean(axis=0), x.std(axis=0)
    std = np.where(std > _EPS, std, 1.0)
    xs = np.hstack([(x - mean) / std, np.ones((len(x), 1))])
    w = np.zeros(xs.shape[1])
    reg = np.full(xs.shape[1], l2 * len(x))
    reg[-1] = 0.0  # no penalty on the intercept
    for _ in range(iterations):
        p = _sigmoid(xs @ w)
        grad = xs.T @ (p - t) + reg * w
        hess = (xs * (p * (1 - p))[:, None]).T @ xs + np.diag(reg + 1e-9)
        step = np.linalg.solve(hess, grad)
        w = w - step
        if np.abs(step).max() < 1e-9:
            break
    coef = w[:-1] / std
    intercept = float(w[-1] - (coef * mean).sum())
    return coef, intercept


def _isotonic(z: np.ndarray, y: np.ndarray) -> tuple[list[float], list[float]]:
    """Pool-adjacent-violators over z ascending; returns the knots (block means of z) and values
    (block means of y) that np.interp reads, clipped to [EPS, 1-EPS]-free plain probabilities."""
    order = np.argsort(z, kind="stable")
    zs, ys = z[order], y[order]
    sums, counts, zsum = [], [], []
    for zi, yi in zip(zs, ys):
        sums.append(yi)
        counts.append(1.0)
        zsum.append(zi)
        while len(sums) > 1 and sums[-2] / counts[-2] > sums[-1] / counts[-1]:
            s, c, zz = sums.pop(), counts.pop(), zsum.pop()
            sums[-1] += s
            counts[-1] += c
            zsum[-1] += zz
    knots = [zz / c for zz, c in zip(zsum, counts)]
    values = [s / c for s, c in zip(sums, counts)]
    # equal knots (ties in z pooled into different blocks cannot happen, but guard np.interp)
    for i in range(1, len(knots)):
        if knots[i] <= knots[i - 1]:
            knots[i] = knots[i - 1] + 1e-12
    return [float(k) for k in knots], [float(v) for v in values]


# --- precision at coverage -----------------------------------------------------------------------


def _ranked(confidence: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted confidences (descending), cumulative precision of each prefix, and which prefix ends
    are cut points (the next answer has a strictly lower confidence: ties are kept together)."""
    confidence, correct = np.asarray(confidence, np.float64), np.asarray(correct, bool)
    order = np.argsort(-confidence, kind="stable")
    conf = confidence[order]
    precision = np.cumsum(correct[order]) / np.arange(1, len(conf) + 1)
    cut = np.append(conf[1:] < conf[:-1], True) if len(conf) else np.zeros(0, bool)
    return conf, precision, cut


def threshold_for_precision(confidence: np.ndarray, correct: np.ndarray, target: float) -> tuple[float | None, bool]:
    """The confidence below which to withhold the answer so that the answers kept reach `target`
    precision with the most coverage: (threshold or None = keep every answer, whether the target
    was reached). Unreachable: the most precise cut, and False."""
    conf, precision, cut = _ranked(confidence, correct)
    if not len(conf):
        return None, True
    ok = np.flatnonzero(cut & (precision >= target - 1e-12))
    reached = bool(ok.size)
    k = int(ok[-1]) if reached else int(np.flatnonzero(cut)[np.argmax(precision[cut])])
    if k == len(conf) - 1:
        return None, reached
    return float((conf[k] + conf[k + 1]) / 2), reached


def precision_at_coverage(confidence: np.ndarray, correct: np.ndarray,
                          coverages: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(1, 11))) -> list[dict]:
    """The precision of the most confident `coverage` share of the answers, for each coverage (the
    share is rounded up to whole answers; ties at the cut are all kept, so `coverage` is reported
    as achieved), and the confidence at the cut."""
    conf, precision, cut = _ranked(confidence, correct)
    out = []
    n = len(conf)
    for c in coverages:
        if not n:
            break
        k = max(1, math.ceil(c * n - 1e-9)) - 1
        k = int(np.flatnonzero(cut[k:])[0]) + k  # extend to the end of a run of equal confidences
        out.append({"coverage": round((k + 1) / n, 4), "target_coverage": c, "precision": round(float(precision[k]), 4),
                    "threshold": round(float(conf[k]), 6)})
    return out


def coverage_at_precision(confidence: np.ndarray, correct: np.ndarray, target: float) -> float:
    """The largest share of answers that can be kept, most confident first, at >= target precision
    (0.0 when not even the most confident answer reaches it)."""
    conf, precision, cut = _ranked(confidence, correct)
    ok = np.flatnonzero(cut & (precision >= target - 1e-12))
    return round(float((ok[-1] + 1) / len(conf)), 4) if ok.size else 0.0


def reliability_bins(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> list[dict]:
    """Per equal-width confidence bin: its range, count, mean confidence and accuracy."""
    confidence, correct = np.asarray(confidence, np.float64), np.asarray(correct, np.float64)
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    out = []
    for b in range(bins):
        mask = which == b
        out.append({"lo": b / bins, "hi": (b + 1) / bins, "n": int(mask.sum()),
                    "confidence": round(float(confidence[mask].mean()), 4) if mask.any() else None,
                    "accuracy": round(float(correct[mask].mean()), 4) if mask.any() else None})
    return out
