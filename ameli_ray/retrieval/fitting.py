"""The retrieval channels' weights, fitted on dev.

Which channel deserves weight differs by catalogue: on Amazon->Google's dev split BM25 costs 4
points of top-1 and the attribute agreement 3 (its extracted values are unreliable there), while the
char n-gram channel gains 12; on Abt->Buy all three help. Fixed weights chosen once cannot serve
both, so training fits them on dev, stores them with the model (`FusionModel.retrieval_weights`) and
every linker over that model retrieves with them (`retrieval.weights_from`).

The fit re-scores the candidates retrieval already returned for dev, and since stop 28 for the
training reviews too (`retrieval.fit_on`, `training_run.fit_retrieval`; each candidate carries its
raw channel scores), under every weighting of a grid and keeps the one with the best top-1 (MRR@10
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
    # to 1.6 since stop 29: the fit chose the old top, 0.8, on four of Walmart->Amazon's five folds
    "codes": (0.0, 0.1, 0.2, 0.4, 0.8, 1.6),
}
_MRR_UNITS = 2520  # the least common multiple of 1..10: MRR@10 counted in whole units
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
    gold_col = np.full(len(lists), -1)
    for r, (cands, g) in enumerate(zip(lists, (gold[i] for i in kept))):
        ids = [c.entity_id for c in cands]
        if g in ids:
            gold_col[r] = ids.index(g)
    groups, always_first = _rival_groups(x, present, gold_col)
    n = len(lists)

    def measure(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Dev top-1 and MRR@10 of each weighting, `w` [n_weightings, channels], as integers: the
        mentions ranked first, and the reciprocal ranks in units of 1/2520 (every 1/k, k <= 10, is a
        whole number of them). Counted exactly, two weightings that tie do so however the sums are
        grouped, and the first in grid order wins."""
        top1 = np.full(len(w), always_first, dtype=np.int64)
        mrr = np.full(len(w), always_first * _MRR_UNITS, dtype=np.int64)
        for xg, pg, earlier in groups:
            fused = _fused_batch(xg, pg, w)  # [rows, 1 + rivals, weightings]; column 0 the gold
            gold_score = fused[:, :1, :]
            # rank of the gold: rivals scored higher, plus the earlier ones scored the same (stable order)
            rank = (fused[:, 1:] > gold_score).sum(1) + ((fused[:, 1:] == gold_score) & earlier[..., None]).sum(1)
            top1 += (rank == 0).sum(0)
            mrr += np.where(rank < 10, _MRR_UNITS // (rank + 1), 0).sum(0)
        return top1, mrr

    used = [c for c in CHANNELS if present[:, CHANNELS.index(c)].any()]
    base = configured.model_dump()
    axes = [grid.get(c, (base[c],)) if c in used else (base[c],) for c in CHANNELS]
    acc0, mrr0 = measure(_vector(configured)[None, :])
    start = (int(acc0[0]), int(mrr0[0]))
    best, best_w = start, base
    combos = np.asarray([c for c in itertools.product(*axes) if sum(c) > 0], np.float64).reshape(-1, len(CHANNELS))
    batch = max(1, _BATCH_CELLS // max(1, sum(xg.shape[0] * xg.shape[1] for xg, _, _ in groups)))
    for lo in range(0, len(combos), batch):
        acc, mrr = measure(combos[lo : lo + batch])
        # the first weighting in grid order with the best (accuracy, then MRR@10), if it beats the best so far
        top = np.flatnonzero(acc == acc.max())
        i = int(top[np.argmax(mrr[top])])
        if (int(acc[i]), int(mrr[i])) > best:
            best, best_w = (int(acc[i]), int(mrr[i])), dict(zip(CHANNELS, map(float, combos[lo + i])))
    kept_fit = best_w is not base and best[0] / n >= start[0] / n + min_gain
    dev = {"configured_accuracy": start[0] / n, "configured_mrr@10": start[1] / (n * _MRR_UNITS),
           "fitted_accuracy": best[0] / n, "fitted_mrr@10": best[1] / (n * _MRR_UNITS)}
    return RetrievalFit(best_w if kept_fit else base, kept_fit, dev, len(lists))


def _rival_groups(x: np.ndarray, present: np.ndarray, gold_col: np.ndarray
                  ) -> tuple[list[tuple[np.ndarray, np.ndarray, np.ndarray]], int]:
    """The candidates that may outrank each mention's gold under some weighting, grouped by how many
    a mention has: [(x [rows, 1 + rivals, channels] with the gold first, present [rows, channels],
    earlier [rows, rivals]: a rival listed before the gold, which wins a tie)], and the number of
    mentions that have none (their gold is first under every weighting).

    Weights are non-negative, so a candidate listed after the gold and no better than it on every
    channel the mention has never ranks before it (a tie goes to the one listed first); one listed
    before it may tie it under some weighting (zero weight on where they differ) and stays. Over
    the stop-27 cross-validated candidate lists (100 per review) that leaves 8, 20 and 32 on
    average on Abt->Buy, Walmart->Amazon and Amazon->Google (ad-hoc, BENCHMARKS.md stop 28). A
    mention's rivals are padded (-inf) to the widest of its group, the groups' widths doubling
    (1, 2, 3-4, 5-8, ...), so the grid is scored on a fraction of the candidates with the same
    result. Mentions without the gold among their candidates are left out: a miss under every
    weighting."""
    groups: dict[int, list[int]] = {}  # width -> the mentions (rows) of that group
    rivals_of: dict[int, np.ndarray] = {}
    always_first = 0
    for r in np.flatnonzero(gold_col >= 0):
        g = gold_col[r]
        real = np.flatnonzero(~np.isinf(x[r, :, 0]))
        mine = x[r][real][:, present[r]]
        rivals = real[(mine > mine[g]).any(1) | (real < g)]
        if not len(rivals):
            always_first += 1
            continue
        rivals_of[r] = rivals
        groups.setdefault(1 << int(np.ceil(np.log2(len(rivals)))), []).append(r)
    out = []
    for width, rows in sorted(groups.items()):
        xg = np.full((len(rows), 1 + width, x.shape[2]), -np.inf)
        earlier = np.zeros((len(rows), width), dtype=bool)
        for i, r in enumerate(rows):
            rivals = rivals_of[r]
            xg[i, : 1 + len(rivals)] = x[r, [gold_col[r], *rivals]]
            earlier[i, : len(rivals)] = rivals < gold_col[r]
        out.append((xg, present[rows], earlier))
    return out, always_first


CROSS_FIT_MIN_MENTIONS = 20  # labelled dev mentions per half; fewer: no cross-fit


def cross_fit(candidate_lists: list[list[Candidate]], gold: list[str | None], half: list[int | None], configured: FusionWeights,
              min_gain: float, grid: dict[str, tuple[float, ...]] | None = None) -> tuple[dict[str, float], dict[str, float]] | None:
    """The weights fitted on each half of dev, to rank the *other* half with: (weights for half 0,
    weights for half 1), each fitted on the mentions of the opposite half (`half[i]` is 0 or 1)
    and on those in neither (None: training reviews, in both fits). None when a half has fewer
    than `CROSS_FIT_MIN_MENTIONS` labelled mentions.

    Fitted and judged on the same mentions, the ranking looks better than it will on unseen reviews
    (by 1.4-6 points of top-1 on the entity-matching sets' folds); whatever is tuned downstream on
    that ranking (fusion's weight for retrieval against the streams) would overvalue it."""
    sides = [[i for i, h in enumerate(half) if h == side and gold[i]] for side in (0, 1)]
    if min(map(len, sides)) < CROSS_FIT_MIN_MENTIONS:
        return None
    fitted_on = [[i for i, h in enumerate(half) if h != side and gold[i]] for side in (0, 1)]  # the other half and None
    fits = [fit_retrieval_weights([candidate_lists[i] for i in rows], [gold[i] for i in rows], configured, min_gain, grid)
            for rows in fitted_on]
    return fits[0].weights, fits[1].weights


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

