import numpy as np
import pytest

from ameli_ray.config import IndexSettings
from ameli_ray.retrieval import index as vindex


def _unit(rng, n, d):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("kind", ["flat", "ivf", "ivfpq", "hnsw"])
def test_each_kind_finds_the_nearest_vector(kind, tmp_path):
    rng = np.random.default_rng(0)
    base = _unit(rng, 2000, 32)
    queries = base[:50] + 0.01 * rng.standard_normal((50, 32)).astype(np.float32)
    settings = IndexSettings(kind=kind, ivf_nprobe=16, pq_bytes=16)
    index = vindex.build_index(base, settings)
    assert vindex.index_kind(index) == kind
    _, ids = vindex.search(index, queries, 5)
    assert (ids[:, 0] == np.arange(50)).mean() >= 0.96
    restored = vindex.deserialize(vindex.serialize(index), settings)
    assert (vindex.search(restored, queries, 5)[1] == ids).all()
    # memory-mapped from a file, as replicas load it with index.mmap_dir
    path = tmp_path / "index.faiss"
    path.write_bytes(vindex.serialize(index))
    assert (vindex.search(vindex.read_mapped(path, settings), queries, 5)[1] == ids).all()


def test_the_ivf_training_sample_is_bounded_and_reproducible():
    rng = np.random.default_rng(3)
    vectors = _unit(rng, 30_000, 8)
    sample = vindex.training_sample(vectors, nlist=100)
    assert len(sample) == 10_000  # max(64 lists' worth, 10k)
    np.testing.assert_array_equal(sample, vindex.training_sample(vectors, nlist=100))
    assert len(vindex.training_sample(vectors[:500], nlist=100)) == 500
    assert vindex.ivf_nlist(1_000_000) == 4000 and vindex.ivf_nlist(1000) == 25 and vindex.ivf_nlist(10) == 1


def test_auto_switches_to_ivf_for_large_kbs():
    assert vindex.choose_kind(10, IndexSettings(flat_max_vectors=100)) == "flat"
    assert vindex.choose_kind(1000, IndexSettings(flat_max_vectors=100)) == "ivf"
    assert vindex.choose_kind(50_000, IndexSettings()) == "flat" and vindex.choose_kind(50_001, IndexSettings()) == "ivf"
    assert vindex.choose_kind(10, IndexSettings(kind="hnsw")) == "hnsw"
    # nprobe grows with the lists, never below the floor
    assert vindex.default_nprobe(vindex.ivf_nlist(1_000_000)) == 64
    assert vindex.default_nprobe(vindex.ivf_nlist(16_000_000)) == 250
    assert vindex.default_nprobe(10) == 10


def test_search_handles_k_beyond_size_and_empty():
    rng = np.random.default_rng(1)
    index = vindex.build_index(_unit(rng, 3, 8), IndexSettings())
    scores, ids = vindex.search(index, _unit(rng, 2, 8), 10)
    assert ids.shape == (2, 3)
    empty = vindex.build_index(np.zeros((0, 8), np.float32), IndexSettings())
    assert vindex.search(empty, _unit(rng, 2, 8), 10)[1].shape == (2, 0)


def test_a_gpu_index_without_gpu_faiss_is_refused_with_the_fix():
    if vindex.gpu_count():
        pytest.skip("this machine has GPU FAISS: the GPU test below runs instead")
    from ameli_ray.errors import ConfigError

    rng = np.random.default_rng(4)
    with pytest.raises(ConfigError, match=r"index.device=cuda needs FAISS with GPU support.*index.device=cpu"):
        vindex.build_index(_unit(rng, 100, 8), IndexSettings(kind="flat", device="cuda"))
    cpu = vindex.build_index(_unit(rng, 100, 8), IndexSettings(kind="flat"))
    with pytest.raises(ConfigError, match="index.device=cuda"):
        vindex.to_gpu(cpu, IndexSettings(device="cuda"))
    assert vindex.to_gpu(cpu, IndexSettings()) is cpu


@pytest.mark.skipif(not vindex.gpu_count(), reason="no GPU FAISS here (the `gpu` extra on a machine with a GPU)")
@pytest.mark.parametrize("kind", ["flat", "ivf", "ivfpq"])
def test_gpu_build_and_search_agree_with_the_cpu(kind):
    rng = np.random.default_rng(5)
    base = _unit(rng, 5000, 32)
    queries = base[:100] + 0.01 * rng.standard_normal((100, 32)).astype(np.float32)
    cpu_settings = IndexSettings(kind=kind, ivf_nprobe=16, pq_bytes=16)
    gpu_settings = cpu_settings.model_copy(update={"device": "cuda"})
    built_on_gpu = vindex.build_index(base, gpu_settings)  # stored on the CPU, whatever built it
    assert vindex.index_kind(built_on_gpu) == kind
    on_gpu = vindex.to_gpu(built_on_gpu, gpu_settings)
    _, gpu_ids = vindex.search(on_gpu, queries, 5)
    _, cpu_ids = vindex.search(vindex.build_index(base, cpu_settings), queries, 5)
    assert (gpu_ids[:, 0] == np.arange(100)).mean() >= 0.96
    assert (gpu_ids[:, 0] == cpu_ids[:, 0]).mean() >= 0.95


def test_an_index_built_from_rows_read_off_disk_is_the_in_memory_one(tmp_path):
    """A streamed KB build indexes its embeddings from the .npy file a chunk at a time (NpyRows,
    never mapped): the same training sample, the same lists, the same answers."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3000, 8)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    np.save(tmp_path / "x.npy", x)
    rows = vindex.NpyRows(tmp_path / "x.npy")
    assert rows.shape == x.shape and len(rows) == 3000
    np.testing.assert_array_equal(rows[10:20], x[10:20])
    picked = np.array([2999, 0, 1500, 7])
    np.testing.assert_array_equal(rows[picked], x[picked])
    x.tofile(tmp_path / "x.f32")
    np.testing.assert_array_equal(vindex.NpyRows.raw(tmp_path / "x.f32", np.float32, 8)[5:9], x[5:9])
    settings = IndexSettings(kind="ivf", ivf_nlist=16)
    old_chunk = vindex.ADD_CHUNK_ROWS
    vindex.ADD_CHUNK_ROWS = 700  # several chunks, the last one short
    try:
        from_disk = vindex.build_index(rows, settings)
    finally:
        vindex.ADD_CHUNK_ROWS = old_chunk
    in_memory = vindex.build_index(x, settings)
    q = x[:50]
    np.testing.assert_array_equal(vindex.search(from_disk, q, 10)[1], vindex.search(in_memory, q, 10)[1])
