import math

import pytest
import torch
import torch.nn.functional as F

from ameli_ray.disambiguation.losses import candidate_cross_entropy, contrastive_loss, gather_ids, gather_with_grad


def _reference(q: torch.Tensor, k: torch.Tensor, groups: list[int], scale: float) -> float:
    """CLIP loss written out with loops: a column of the row's own group, other than the positive, is skipped."""
    total = 0.0
    n = len(groups)
    for a, b in ((q, k), (k, q)):
        for i in range(n):
            cols = [j for j in range(n) if j == i or groups[j] != groups[i]]
            logits = [scale * float(a[i] @ b[j]) for j in cols]
            top = max(logits)
            lse = top + math.log(sum(math.exp(v - top) for v in logits))
            total += lse - scale * float(a[i] @ b[i])
    return total / (2 * n)


def _unit(n: int, d: int, seed: int) -> torch.Tensor:
    return F.normalize(torch.randn(n, d, generator=torch.Generator().manual_seed(seed)), dim=-1)


def test_aligned_is_low_and_shuffled_is_high():
    q = torch.eye(8, 16)
    groups = torch.arange(8)
    scale = torch.tensor(1 / 0.07)
    aligned = contrastive_loss(q, q.clone(), groups, scale)
    shuffled = contrastive_loss(q, q[torch.roll(torch.arange(8), 1)], groups, scale)
    assert aligned.item() < 1e-3
    assert shuffled.item() > 10


def test_matches_the_loop_reference_and_masks_same_group_columns():
    q, k = _unit(10, 12, 0), _unit(10, 12, 1)
    scale = 5.0
    distinct = list(range(10))
    repeated = [0, 1, 2, 0, 4, 5, 2, 2, 8, 9]  # rows 0/3 and 2/6/7 show the same product
    for groups in (distinct, repeated):
        got = contrastive_loss(q, k, torch.tensor(groups), torch.tensor(scale)).item()
        assert got == pytest.approx(_reference(q, k, groups, scale), rel=1e-5)
    # the repeated groups really changed something: fewer negatives
    assert contrastive_loss(q, k, torch.tensor(repeated), torch.tensor(scale)).item() != pytest.approx(
        contrastive_loss(q, k, torch.tensor(distinct), torch.tensor(scale)).item(), rel=1e-4
    )


def test_gradients_flow_to_both_sides_and_the_scale():
    q, k = _unit(6, 8, 2).requires_grad_(), _unit(6, 8, 3).requires_grad_()
    scale = torch.tensor(3.0, requires_grad=True)
    contrastive_loss(q, k, torch.tensor([0, 0, 1, 2, 3, 3]), scale).backward()
    for t in (q, k, scale):
        assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0


def test_gather_is_identity_without_a_process_group():
    x = torch.randn(3, 4, requires_grad=True)
    assert gather_with_grad(x) is x
    ids = torch.tensor([1, 2, 3])
    assert gather_ids(ids) is ids
    # gather=True and gather=False agree when not distributed
    q, k, g = _unit(5, 4, 4), _unit(5, 4, 5), torch.tensor([0, 1, 1, 2, 3])
    assert contrastive_loss(q, k, g, torch.tensor(2.0)).item() == contrastive_loss(q, k, g, torch.tensor(2.0), gather=False).item()


def test_candidate_cross_entropy_ignores_masked_candidates():
    logits = torch.tensor([[2.0, 1.0, 0.5, 9.0], [0.1, 0.3, -1.0, 4.0]])
    mask = torch.tensor([[True, True, True, False], [True, True, False, False]])
    gold = torch.tensor([1, 0])
    loss = candidate_cross_entropy(logits, gold, mask)
    expected = (F.cross_entropy(logits[0:1, :3], gold[0:1]) + F.cross_entropy(logits[1:2, :2], gold[1:2])) / 2
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    changed = logits.clone()
    changed[0, 3], changed[1, 2] = -50.0, 123.0
    assert candidate_cross_entropy(changed, gold, mask).item() == loss.item()


def test_candidate_cross_entropy_rejects_empty_rows_and_masked_gold():
    logits = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="no unmasked candidate"):
        candidate_cross_entropy(logits, torch.tensor([0, 0]), torch.tensor([[True, False, False], [False, False, False]]))
    with pytest.raises(ValueError, match="gold candidate is masked"):
        candidate_cross_entropy(logits, torch.tensor([0, 2]), torch.tensor([[True, False, False], [True, True, False]]))
