"""Losses of disambiguation: CLIP-style contrastive loss with negatives gathered across workers,
and cross-entropy over each mention's candidate list.

Gathered negatives: every worker scores its local rows against the embeddings of the WHOLE global
batch. With N workers holding equal-sized slices of a batch, the mean over workers of their
`contrastive_loss` equals the single-process loss over the concatenated batch, and the DDP-averaged
gradients equal the single-process gradients: `torch.distributed.nn.functional.all_gather`'s backward
sums into each rank's local embeddings the gradient contributions of every rank's loss, so rank r
holds d(sum_r' L_r')/d(theta through r's rows); DDP's average over N then gives d(mean_r' L_r')/d(theta).
With unequal slices (a last, short batch) the single-process loss is sum_r (B_r / B) L_r instead:
scale the local loss by N * B_r / B if that batch must count exactly like the others.
"""

from __future__ import annotations

import warnings

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _gather(x: Tensor, differentiable: bool) -> tuple[Tensor, int]:
    """(concatenation over ranks in rank order, offset of this rank's rows in it).

    Collectives need equal shapes, so the local row counts are gathered first, every rank pads to
    the largest, and the padding is cut away after the gather (its gradient is simply dropped).
    """
    if not _distributed():
        return x, 0
    world, rank = dist.get_world_size(), dist.get_rank()
    size = torch.tensor([x.shape[0]], dtype=torch.long, device=x.device)
    sizes = [torch.empty_like(size) for _ in range(world)]
    dist.all_gather(sizes, size)
    counts = [int(s.item()) for s in sizes]
    longest = max(counts)
    padded = torch.cat([x, x.new_zeros((longest - x.shape[0], *x.shape[1:]))]) if x.shape[0] < longest else x
    if differentiable:
        from torch.distributed.nn.functional import all_gather

        # Deprecated (FutureWarning) in recent torch in favour of the private
        # _functional_collectives; it is still the public op, and its backward works on gloo.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            parts = list(all_gather(padded))
    else:
        parts = [torch.empty_like(padded) for _ in range(world)]
        dist.all_gather(parts, padded.contiguous())
    return torch.cat([p[:n] for p, n in zip(parts, counts)]), sum(counts[:rank])


def gather_with_grad(x: Tensor) -> Tensor:
    """[sum of local rows, ...] over all ranks, rank order, gradients flowing back to every rank's x.

    Unchanged x when not distributed (or a world of one). Row counts may differ across ranks.
    """
    return _gather(x, differentiable=True)[0]


def gather_ids(x: Tensor) -> Tensor:
    """`gather_with_grad` for non-differentiable tensors (int64 group ids)."""
    return _gather(x, differentiable=False)[0]


def contrastive_loss(queries: Tensor, keys: Tensor, groups: Tensor, logit_scale: Tensor, gather: bool = True) -> Tensor:
    """Symmetric InfoNCE (CLIP): row i's positive is key i, every other key of the batch a negative.

    queries [B, d]: adapted review-photo features; keys [B, d]: adapted gold product-image features
    (both L2-normalised); groups [B]: the gold entity id of each row, so that another photo of the
    same product in the batch is masked out rather than pushed away; logit_scale: the multiplier
    (exp of the log-scale, e.g. `ImageStream.scale()`). With `gather` and a distributed group, the
    negatives are the whole global batch (see the module docstring for why the gradients match).
    Returns the mean over local rows of (CE query->keys + CE key->queries) / 2.
    """
    if gather:
        all_keys, offset = _gather(keys, differentiable=True)
        all_queries = gather_with_grad(queries)
        all_groups = gather_ids(groups)
    else:
        all_keys, all_queries, all_groups, offset = keys, queries, groups, 0
    rows = torch.arange(queries.shape[0], device=queries.device)
    target = rows + offset  # global column of each local row's positive
    same = groups[:, None] == all_groups[None, :]
    same[rows, target] = False  # the positive itself stays
    logits_q = (logit_scale * queries @ all_keys.T).masked_fill(same, float("-inf"))
    logits_k = (logit_scale * keys @ all_queries.T).masked_fill(same, float("-inf"))
    return (F.cross_entropy(logits_q, target) + F.cross_entropy(logits_k, target)) / 2


def candidate_cross_entropy(logits: Tensor, gold: Tensor, mask: Tensor) -> Tensor:
    """Mean cross-entropy of each mention's candidate list; padded candidates (mask False) excluded.

    logits [B, C], gold [B] (index of the gold candidate), mask [B, C]. A row without any candidate,
    or whose gold is a padded slot, is a data error upstream (the loss would be infinite): ValueError.
    """
    mask = mask.to(torch.bool)
    if not bool(mask.any(dim=1).all()):
        raise ValueError("candidate_cross_entropy: a mention has no unmasked candidate")
    if not bool(mask.gather(1, gold[:, None].long()).all()):
        raise ValueError("candidate_cross_entropy: a gold candidate is masked out")
    return F.cross_entropy(logits.masked_fill(~mask, float("-inf")), gold.long())
