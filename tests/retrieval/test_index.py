import numpy as np
import pytest

from ameli_ray.config import IndexSettings
from ameli_ray.retrieval import index as vindex


def _unit(rng, n, d):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_each_kind_finds_the_nearest_vector(kind):
    rng = np.random.default_rng(0)
    base = _unit(rng, 2000, 32)
    queries = base[:50] + 0.01 * rng.standard_normal((50, 32)).astype(np.float32)
    index = vindex.build_index(base, IndexSettings(kind=kind, ivf_nprobe=16))
    assert vindex.index_kind(index) == kind
    _, ids = vindex.search(index, queries, 5)
    assert (ids[:, 0] == np.arange(50)).mean() >= 0.96
    restored = vindex.deserialize(vindex.serialize(index), IndexSettings(kind=kind, ivf_nprobe=16))
    assert (vindex.search(restored, queries, 5)[1] == ids).all()


def test_auto_switches_to_hnsw_for_large_kbs():
    assert vindex.choose_kind(10, IndexSettings(flat_max_vectors=100)) == "flat"
    assert vindex.choose_kind(1000, IndexSettings(flat_max_vectors=100)) == "hnsw"


def test_search_handles_k_beyond_size_and_empty():
    rng = np.random.default_rng(1)
    index = vindex.build_index(_unit(rng, 3, 8), IndexSettings())
    scores, ids = vindex.search(index, _unit(rng, 2, 8), 10)
    assert ids.shape == (2, 3)
    empty = vindex.build_index(np.zeros((0, 8), np.float32), IndexSettings())
    assert vindex.search(empty, _unit(rng, 2, 8), 10)[1].shape == (2, 0)
