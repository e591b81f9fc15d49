"""Dense vector search with FAISS: exact for small KBs, IVF or HNSW for large ones (inner product
over L2-normalised vectors, i.e. cosine)."""

from __future__ import annotations

import math

import faiss
import numpy as np

from ameli_ray.config import IndexSettings


def choose_kind(n_vectors: int, settings: IndexSettings) -> str:
    if settings.kind != "auto":
        return settings.kind
    return "flat" if n_vectors <= settings.flat_max_vectors else "hnsw"


def build_index(vectors: np.ndarray, settings: IndexSettings) -> faiss.Index:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n, dim = vectors.shape
    kind = choose_kind(n, settings)
    if kind == "flat" or n == 0:
        index = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, settings.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = settings.hnsw_ef_construction
    elif kind == "ivf":
        # 4*sqrt(n) lists is FAISS's usual starting point; never more lists than 1/39 of the points,
        # below which k-means training warns and clusters badly.
        nlist = settings.ivf_nlist or int(4 * math.sqrt(n))
        nlist = max(1, min(nlist, n // 39 or 1))
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(vectors)
    else:  # pydantic restricts kind; this guards direct callers
        raise ValueError(f"unknown index kind {kind!r}")
    if n:
        index.add(vectors)
    tune_index(index, settings)
    return index


def tune_index(index: faiss.Index, settings: IndexSettings) -> None:
    """Apply the query-time knobs (they are not part of the serialised index)."""
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        ivf.nprobe = settings.ivf_nprobe
    if isinstance(index, faiss.IndexHNSW):
        index.hnsw.efSearch = settings.hnsw_ef_search


def index_kind(index: faiss.Index) -> str:
    if isinstance(index, faiss.IndexHNSW):
        return "hnsw"
    if faiss.try_extract_index_ivf(index) is not None:
        return "ivf"
    return "flat"


def search(index: faiss.Index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(scores, ids), each [n_queries, k']; k' = min(k, index size); id -1 marks an empty slot."""
    k = min(k, index.ntotal)
    if k == 0 or len(queries) == 0:
        return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
    return index.search(np.ascontiguousarray(queries, dtype=np.float32), k)


def serialize(index: faiss.Index) -> bytes:
    return faiss.serialize_index(index).tobytes()


def deserialize(data: bytes, settings: IndexSettings) -> faiss.Index:
    index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
    tune_index(index, settings)
    return index
