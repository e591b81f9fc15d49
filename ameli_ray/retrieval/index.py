"""Dense vector search with FAISS: exact for small KBs, IVF-Flat for large ones (inner product over
L2-normalised vectors, i.e. cosine); IVF-PQ and HNSW on request.

Why IVF-Flat above `index.flat_max_vectors` (bench/kb_scale.py, 1M MiniLM vectors of real and
perturbed Walmart->Amazon products, 300 real queries, one thread): exact search costs 60 ms a
query; IVF-Flat with 4,000 lists builds in 73 s on 2 cores and answers in 1.75 ms at recall@100
0.9965 (nprobe 64, the default; 0.92 ms at 0.992 with nprobe 32). It keeps the vectors whole, so its size is
the vectors' and the text channel's exact cosine rescoring of the pool agrees with it.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import faiss
import numpy as np

from ameli_ray.config import IndexSettings
from ameli_ray.errors import ConfigError

# nprobe = max(NPROBE_MIN, nlist * NPROBE_SHARE), at most nlist (bench/kb_scale.py, one thread):
# 64 lists give recall@100 0.9928 at 100k vectors (1,264 lists; 32 lists: 0.983) in 0.6 ms and
# 0.9965 at 1M (4,000 lists) in 1.75 ms; beyond 4M vectors the share keeps the searched fraction.
NPROBE_SHARE = 1 / 64
NPROBE_MIN = 64


def choose_kind(n_vectors: int, settings: IndexSettings) -> str:
    if settings.kind != "auto":
        return settings.kind
    return "flat" if n_vectors <= settings.flat_max_vectors else "ivf"


def gpu_count() -> int:
    """GPUs FAISS can use: 0 with faiss-cpu."""
    if not hasattr(faiss, "StandardGpuResources"):
        return 0
    return int(faiss.get_num_gpus())


@functools.cache
def _gpu_resources():
    return faiss.StandardGpuResources()


def _check_gpu(settings: IndexSettings) -> None:
    if settings.device == "cuda" and gpu_count() == 0:
        raise ConfigError(
            "index.device=cuda needs FAISS with GPU support and a GPU, and this one has "
            + ("no GPU support (pip uninstall faiss-cpu && pip install 'ameli-ray[gpu]')"
               if not hasattr(faiss, "StandardGpuResources") else "no GPU visible")
            + "; or set index.device=cpu"
        )


def to_gpu(index: faiss.Index, settings: IndexSettings) -> faiss.Index:
    """The GPU form of a CPU index (query knobs included) with `index.device=cuda`; the index
    itself otherwise, and for HNSW, which FAISS searches on the CPU only."""
    if settings.device != "cuda" or isinstance(index, faiss.IndexHNSW):
        return index
    _check_gpu(settings)
    options = faiss.GpuClonerOptions()
    options.useFloat16 = settings.gpu_float16
    return faiss.index_cpu_to_gpu(_gpu_resources(), 0, index, options)


ADD_CHUNK_ROWS = 65_536


class NpyRows:
    """The rows of a 2-d .npy file, read from disk when asked (a slice, or an array of row
    numbers), never memory-mapped: what a streamed KB build indexes from. Mapped pages count in
    the process's RSS until the kernel takes them back, so a build that mapped its embeddings
    would look (and be budgeted) a file's size larger than the index and one chunk it holds."""

    def __init__(self, path: Path):
        self.path = Path(path)
        with self.path.open("rb") as f:
            major, _ = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(f)
            self.offset = f.tell()
        if fortran or len(shape) != 2:
            raise ValueError(f"{path}: expected a C-order 2-d array, got shape {shape}")
        self.shape: tuple[int, int] = (int(shape[0]), int(shape[1]))
        self.dtype = np.dtype(dtype)

    @classmethod
    def raw(cls, path: Path, dtype, width: int) -> "NpyRows":
        """The rows of a headerless file of C-order values, `width` per row."""
        rows = cls.__new__(cls)
        rows.path, rows.offset, rows.dtype = Path(path), 0, np.dtype(dtype)
        rows.shape = (rows.path.stat().st_size // (rows.dtype.itemsize * width), width)
        return rows

    def __len__(self) -> int:
        return self.shape[0]

    def _read(self, start: int, stop: int) -> np.ndarray:
        count = max(0, stop - start)
        with self.path.open("rb") as f:
            f.seek(self.offset + start * self.shape[1] * self.dtype.itemsize)
            return np.fromfile(f, self.dtype, count * self.shape[1]).reshape(count, self.shape[1])

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step != 1:
                raise ValueError("NpyRows reads contiguous slices only")
            return self._read(start, stop)
        rows = np.asarray(key, dtype=np.int64)
        out = np.empty((len(rows), self.shape[1]), self.dtype)
        for first in range(0, len(self), ADD_CHUNK_ROWS):  # one pass over the file, a chunk at a time
            pick = np.flatnonzero((rows >= first) & (rows < first + ADD_CHUNK_ROWS))
            if len(pick):
                out[pick] = self._read(first, min(first + ADD_CHUNK_ROWS, len(self)))[rows[pick] - first]
        return out


def _add(index: faiss.Index, vectors: np.ndarray) -> None:
    """Adds in chunks: `vectors` may be read from disk (`NpyRows`, a streamed KB build) and is never held whole."""
    for start in range(0, len(vectors), ADD_CHUNK_ROWS):
        index.add(np.ascontiguousarray(vectors[start : start + ADD_CHUNK_ROWS], dtype=np.float32))


def build_index(vectors: np.ndarray, settings: IndexSettings) -> faiss.Index:
    """The index of `vectors` (an array, or `NpyRows` read a chunk at a time), on the CPU (what is stored);
    trained and filled on the GPU with `index.device=cuda` (k-means and adding are what a large
    build spends its time on)."""
    n, dim = vectors.shape
    kind = choose_kind(n, settings)
    if settings.device == "cuda" and kind != "hnsw" and n:
        _check_gpu(settings)
        nlist = ivf_nlist(n, settings.ivf_nlist)
        shell = faiss.IndexFlatIP(dim) if kind == "flat" else _ivf_shell(kind, dim, nlist, settings)
        gpu = faiss.index_cpu_to_gpu(_gpu_resources(), 0, shell)
        if not gpu.is_trained:
            gpu.train(training_sample(vectors, nlist))
        _add(gpu, vectors)
        index = faiss.index_gpu_to_cpu(gpu)
        tune_index(index, settings)
        return index
    if kind == "flat" or n == 0:
        index = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, settings.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = settings.hnsw_ef_construction
    elif kind in ("ivf", "ivfpq"):
        nlist = ivf_nlist(n, settings.ivf_nlist)
        index = _ivf_shell(kind, dim, nlist, settings)
        index.train(training_sample(vectors, nlist))
    else:  # pydantic restricts kind; this guards direct callers
        raise ValueError(f"unknown index kind {kind!r}")
    _add(index, vectors)
    tune_index(index, settings)
    return index


def _ivf_shell(kind: str, dim: int, nlist: int, settings: IndexSettings) -> faiss.Index:
    quantizer = faiss.IndexFlatIP(dim)
    if kind == "ivf":
        return faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    if dim % settings.pq_bytes:
        raise ConfigError(f"index.pq_bytes={settings.pq_bytes} must divide the embedding dimension {dim}")
    return faiss.IndexIVFPQ(quantizer, dim, nlist, settings.pq_bytes, 8, faiss.METRIC_INNER_PRODUCT)


def ivf_nlist(n: int, configured: int | None = None) -> int:
    """4*sqrt(n) lists, FAISS's usual starting point; never more lists than 1/39 of the points,
    below which k-means training warns and clusters badly."""
    nlist = configured or int(4 * math.sqrt(n))
    return max(1, min(nlist, n // 39 or 1))


def training_sample(vectors: np.ndarray, nlist: int) -> np.ndarray:
    """What the coarse quantizer is trained on: 64 points per list are plenty for k-means (FAISS
    itself subsamples to 256 per list), and a fixed-seed sample keeps builds reproducible."""
    n = len(vectors)
    want = max(64 * nlist, 10_000)
    if n <= want:
        return np.ascontiguousarray(vectors[:], dtype=np.float32)
    rows = np.sort(np.random.default_rng(0).choice(n, want, replace=False))
    return np.ascontiguousarray(vectors[rows], dtype=np.float32)


def default_nprobe(nlist: int) -> int:
    """The IVF lists searched per query when `index.ivf_nprobe` is not set: a share of the lists,
    so that recall holds as a KB (and with it nlist = 4*sqrt(n)) grows; see NPROBE_SHARE."""
    return min(nlist, max(NPROBE_MIN, math.ceil(nlist * NPROBE_SHARE)))


def tune_index(index: faiss.Index, settings: IndexSettings, recorded: dict | None = None) -> None:
    """Apply the query-time knobs (they are not part of the serialised index): the settings'
    where set, else those the KB's manifest recorded at build (`recorded`), else the defaults."""
    recorded = recorded or {}
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        ivf.nprobe = settings.ivf_nprobe or recorded.get("nprobe") or default_nprobe(ivf.nlist)
    if isinstance(index, faiss.IndexHNSW):
        index.hnsw.efSearch = settings.hnsw_ef_search


def describe(index: faiss.Index) -> dict:
    """What a KB manifest records of an index: its kind, size, structure and query knobs."""
    info: dict = {"kind": index_kind(index), "vectors": int(index.ntotal)}
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        info.update(nlist=int(ivf.nlist), nprobe=int(ivf.nprobe))
        concrete = faiss.downcast_index(ivf)
        if isinstance(concrete, faiss.IndexIVFPQ):
            info["pq_bytes"] = int(concrete.pq.M)
    if isinstance(index, faiss.IndexHNSW):
        info.update(m=int(index.hnsw.nb_neighbors(1)), ef_search=int(index.hnsw.efSearch))
    return info


def index_kind(index: faiss.Index) -> str:
    if isinstance(index, faiss.IndexHNSW):
        return "hnsw"
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        return "ivfpq" if isinstance(faiss.downcast_index(ivf), faiss.IndexIVFPQ) else "ivf"
    return "flat"


def search(index: faiss.Index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(scores, ids), each [n_queries, k']; k' = min(k, index size); id -1 marks an empty slot."""
    k = min(k, index.ntotal)
    if k == 0 or len(queries) == 0:
        return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
    return index.search(np.ascontiguousarray(queries, dtype=np.float32), k)


def serialize(index: faiss.Index) -> bytes:
    return faiss.serialize_index(index).tobytes()


def read_mapped(path: Path, settings: IndexSettings, recorded: dict | None = None) -> faiss.Index:
    """An index memory-mapped from a local file: the vectors (flat and HNSW codes, IVF lists) stay
    in the page cache, shared by every process that maps the same file, instead of in each one's
    heap (FAISS's IO_FLAG_MMAP_IFC, which maps flat, IVF and HNSW storage alike). A 1M-product
    replica holds 3.7 GB of anonymous memory this way against 6.6 GB read in (bench/kb_scale.py --mmap)."""
    index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY)
    tune_index(index, settings, recorded)
    return index


def deserialize(data: bytes, settings: IndexSettings, recorded: dict | None = None) -> faiss.Index:
    index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
    tune_index(index, settings, recorded)
    return index
