"""The retrieval channels' weights, fitted on dev.

Which channel deserves weight differs by catalogue: on Amazon->Google's dev split BM25 costs 4
points of top-1 and the attribute agreement 3 (its extracted values are unreliable there), while the
char n-gram channel gains 12; on Abt->Buy all three help. Fixed weights chosen once cannot serve
both, so training fits them on dev, stores them with the model (`FusionModel.retrieval_weights`) and
every linker over that model retrieves with them (`retrieval.weights_from`).

The fit re-scores the candidates dev's retrieval already returned (each carries its raw channel
scores) under every weighting of a small grid and keeps the one with the best dev top-1 (MRR@10
breaks ties), when it gains `min_gain` over the configured weights (`retrieval.fit_min_gain`, 0 by
default). Until stop 25 a fit had to gain 1 point, and to win on each half of dev when fitted on
the other; over the 15 folds of the three entity-matching sets those two tests refused 7 fits, and
keeping every fit instead ranks the held-out reviews better (pooled top-1: Abt->Buy 0.875 ->
0.886, Walmart->Amazon 0.918 -> 0.928; Amazon->Google, where no fit was refused, 0.730 both;
BENCHMARKS.md). A channel whose weight is zero in the winner (attribute agreement where extraction
is unreliable) is thereby switched off by a rule fitted on dev. Re-scoring the returned
top-k instead of the whole pool is exact for every entity in it except for BM25's scale (divided by
the best score among the returned candidates, not the whole pool): the difference only matters
when BM25's best entity fell out of the top-k, where it has little weight anyway.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from ameli_ray.config import FusionWeights
from ameli_ray.retrieval.retriever import CHANNELS, normalise
from ameli_ray.schema import Candidate

# the text weight is fixed (weights are renormalised: only ratios matter) except that text may also
# be halved or doubled; the others range from off to dominant
GRID = {
    "text": (0.2, 0.45, 0.9),
    "image": (0.0, 0.15, 0.3),
    "lexical": (0.0, 0.2, 0.4, 0.8),
    "chargram": (0.0, 0.3, 0.6, 1.0, 1.6, 2.5),
    "name": (0.0, 0.3, 0.6, 1.0, 1.6),
    "attributes": (0.0, 0.05, 0.1, 0.2),
    "price": (0.0, 0.1, 0.2, 0.4, 0.8),
    "numbers": (0.0, 0.1, 0.2, 0.4),
    "codes": (0.0, 0.1, 0.2, 0.4, 0.8),
}
_BATCH_CELLS = 4_000_000  # weightings are scored in batches of [mentions, candidates, batch] this large


@dataclass
class RetrievalFit:
    weights: dict[str, float]  # what the linker should use (the configured ones when not kept)
    kept: bool  # the fitted weights gained min_gain on dev over the configured ones
    dev: dict[str, float] = field(default_factory=dict)  # accuracy / mrr@10 of configured and fitted
    n_mentions: int = 0


def refuse(candidates: list[Candidate], weights: FusionWeights) -> list[Candidate]:
    """The candidates re-scored and re-ordered under other channel weights (stable for ties)."""
    if not candidates:
        return []
    fused = _fused_batch(*_channel_matrix([candidates]), _vector(weights)[None, :])[0, :, 0]
    order = np.argsort(-fused[: len(candidates)], kind="stable")
    return [candidates[i].model_copy(update={"score": float(fused[i])}) for i in order]


def fit_retrieval_weights(candidate_lists: list[list[Candidate]], gold: list[str | None], configured: FusionWeights,
                          min_gain: float, grid: dict[str, tuple[float, ...]] | None = None) -> RetrievalFit:
    """Fits the channel weights on dev: `candidate_lists` as retrieval returned them for the dev
    mentions, `gold` their gold entity ids (None or an id no candidate has: counted as a miss; NIL
    mentions are the caller's to leave out)."""
    grid = grid or GRID
    kept = [i for i, g in enumerate(gold) if g]
    lists = [candidate_lists[i] for i in kept]
    if not lists:
        return RetrievalFit(configured.model_dump(), False)
    x, present = _channel_matrix(lists)
    n_cands = x.shape[1]
    gold_col = np.full(len(lists), -1)
    for r, (cands, g) in enumerate(zip(lists, (gold[i] for i in kept))):
        ids = [c.entity_id for c in cands]
        if g in ids:
            gold_col[r] = ids.index(g)
    has_gold = gold_col >= 0
    rows = np.flatnonzero(has_gold)

    def measure(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Dev top-1 and MRR@10 of each weighting, `w` [n_weightings, channels]."""
        if not len(rows):
            return np.zeros(len(w)), np.zeros(len(w))
        fused = _fused_batch(x[rows], present[rows], w)  # [rows, candidates, weightings]
        gold_score = np.take_along_axis(fused, gold_col[rows, None, None], axis=1)
        # rank of the gold: candidates scored higher, plus the earlier ones scored the same (stable order)
        earlier = (np.arange(n_cands)[None, :] < gold_col[rows, None])[..., None]
        rank = (fused > gold_score).sum(1) + ((fused == gold_score) & earlier).sum(1)  # [rows, weightings]
        n = len(lists)
        return (rank == 0).sum(0) / n, np.where(rank < 10, 1.0 / (rank + 1), 0.0).sum(0) / n

    used = [c for c in CHANNELS if present[:, CHANNELS.index(c)].any()]
    base = configured.model_dump()
    axes = [grid.get(c, (base[c],)) if c in used else (base[c],) for c in CHANNELS]
    acc0, mrr0 = measure(_vector(configured)[None, :])
    start = (float(acc0[0]), float(mrr0[0]))
    best, best_w = start, base
    combos = np.asarray([c for c in itertools.product(*axes) if sum(c) > 0], np.float64).reshape(-1, len(CHANNELS))
    batch = max(1, _BATCH_CELLS // max(1, len(rows) * n_cands))
    for lo in range(0, len(combos), batch):
        acc, mrr = measure(combos[lo : lo + batch])
        # the first weighting in grid order with the best (accuracy, then MRR@10), if it beats the best so far
        top = np.flatnonzero(acc == acc.max())
        i = int(top[np.argmax(mrr[top])])
        if (float(acc[i]), float(mrr[i])) > best:
            best, best_w = (float(acc[i]), float(mrr[i])), dict(zip(CHANNELS, map(float, combos[lo + i])))
    kept_fit = best_w is not base and best[0] >= start[0] + min_gain
    dev = {"configured_accuracy": start[0], "configured_mrr@10": start[1],
           "fitted_accuracy": best[0], "fitted_mrr@10": best[1]}
    return RetrievalFit(best_w if kept_fit else base, kept_fit, dev, len(lists))


CROSS_FIT_MIN_MENTIONS = 20  # labelled dev mentions per half; fewer: no cross-fit


def cross_fit(candidate_lists: list[list[Candidate]], gold: list[str | None], half: list[int], configured: FusionWeights,
              min_gain: float, grid: dict[str, tuple[float, ...]] | None = None) -> tuple[dict[str, float], dict[str, float]] | None:
    """The weights fitted on each half of dev, to rank the *other* half with: (weights for half 0,
    weights for half 1), each fitted on the mentions of the opposite half (`half[i]` is 0 or 1).
    None when a half has fewer than `CROSS_FIT_MIN_MENTIONS` labelled mentions.

    Fitted and judged on the same mentions, the ranking looks better than it will on unseen reviews
    (by 1.4-6 points of top-1 on the entity-matching sets' folds); whatever is tuned downstream on
    that ranking (fusion's weight for retrieval against the streams) would overvalue it."""
    sides = [[i for i, h in enumerate(half) if h == side and gold[i]] for side in (0, 1)]
    if min(map(len, sides)) < CROSS_FIT_MIN_MENTIONS:
        return None
    fits = [fit_retrieval_weights([candidate_lists[i] for i in rows], [gold[i] for i in rows], configured, min_gain, grid)
            for rows in sides]
    return fits[1].weights, fits[0].weights


def _vector(weights: FusionWeights) -> np.ndarray:
    w = weights.model_dump()
    return np.asarray([w[c] for c in CHANNELS], np.float64)


def _channel_matrix(lists: list[list[Candidate]]) -> tuple[np.ndarray, np.ndarray]:
    """[mentions, candidates, channels] normalised scores (0 where padded or absent) and
    [mentions, channels] which channels each mention has (padding candidates get -inf later)."""
    n = max((len(c) for c in lists), default=0)
    x = np.zeros((len(lists), n, len(CHANNELS)))
    present = np.zeros((len(lists), len(CHANNELS)), bool)
    pad = np.ones((len(lists), n), bool)
    for r, cands in enumerate(lists):
        pad[r, : len(cands)] = False
        for j, channel in enumerate(CHANNELS):
            if cands and channel in cands[0].channel_scores:
                present[r, j] = True
                raw = np.array([c.channel_scores.get(channel, np.nan) for c in cands], np.float64)
                x[r, : len(cands), j] = normalise(channel, raw)
    x[pad] = -np.inf
    return x, present


def _fused_batch(x: np.ndarray, present: np.ndarray, w: np.ndarray) -> np.ndarray:
    """[mentions, candidates, weightings] fused scores under each of `w`'s rows, as
    `retriever.fuse_channels` computes them for one (-inf for padding): the weighted sum over the
    present channels is one matrix product, the renormalisation another."""
    scores = np.where(np.isinf(x), 0.0, x) * present[:, None, :]
    total = present @ w.T  # [mentions, weightings]
    fused = (scores.reshape(-1, x.shape[2]) @ w.T).reshape(x.shape[0], x.shape[1], len(w))
    fused = np.divide(fused, total[:, None, :], out=np.zeros_like(fused), where=total[:, None, :] > 0)
    return np.where(np.isinf(x[..., :1]), -np.inf, fused)

