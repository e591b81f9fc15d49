"""Planning the demo catalogue: family sizes, entity ids and category coverage, without rendering anything."""

from __future__ import annotations

import pytest

from ameli_ray.catalog.planning import _plan_families
from ameli_ray.catalog.tables import CATEGORIES


@pytest.mark.parametrize("seed", range(6))
def test_default_size_plans_exactly_n_products(seed: int) -> None:
    families = _plan_families(600, seed)
    products = [p for f in families for p in f.members]
    assert len(products) == 600
    assert sorted(p.entity_id for p in products) == list(range(600))
    assert len({f.category.name for f in families}) == len(CATEGORIES)
    assert all(2 <= len(f.members) <= 8 and 1 <= len(f.varying) <= 2 for f in families)
