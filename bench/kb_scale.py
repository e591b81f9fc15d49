"""A KB of a million products: what it costs to build, to store, to hold in a retrieval replica
and to query, at 10k, 100k and 1M entities; and which approximate index to use.

    .venv/bin/python bench/kb_scale.py [--sizes 10000 100000 1000000] [--queries 300]
        [--builds memory streamed] [--no-replica] [--mmap] [--components N] [--sweep-size 1000000] [--data DIR]
        [--workdir DIR] [--set section.field=value ...]

Entities: Walmart->Amazon's 22,074 Amazon products and their MiniLM text embeddings (computed once
per workdir). Beyond those, entity j copies real entity j mod 22,074 with every digit of its name
and model number redrawn (seeded: a sibling model, "DCS-1130" -> "DCS-4702") and its embedding
moved by Gaussian noise of norm 0.15 (cosine ~0.99 to the original), then renormalised: families
of near-duplicates, the structure real catalogues have and attributes must break. No product
images: the image index costs like the text one, per image.
Queries: the Walmart records with a gold Amazon match, embedded by the same model.

Per size, each step in its own process (its peak RSS is its own), the KB on the local S3 server:
- build: the KB from entities and embeddings (dense index, BM25, char n-grams, attribute
  vocabulary) and its upload: seconds, the process's peak RSS, the KB's bytes on S3. The
  embeddings are given, so this is everything but the encoder (see BENCHMARKS.md for encoder
  throughput). Two builds of the same KB, each in its own process: in memory (`assemble_kb` +
  `write_kb`, every entity held: the baseline) and streamed (`kb.streamed`, what `build-kb` does:
  batches of 22,074 entities added, then indexed from the spill).
- replica: `load_kb` from S3 as a retrieval replica does: RSS after load; latency per query on one
  core (FAISS and torch on one thread; median and p95) of the dense channel (top-100), BM25 (the
  scores of every entity and their top pool), the char n-grams, attribute matching against the
  KB's vocabulary (Aho-Corasick) and the whole fused retriever, against the same retriever
  without the channels that only re-score its pool (price, numbers, codes: the baseline); the
  seconds and memory of making the retriever (the KB-wide tables those channels read); and
  dense recall@100 against exact search over the same vectors (the baseline, timed in the same
  process).
- components (`--components N`): BM25, the char n-grams and the attribute vocabulary built alone
  at N entities, each in its own process, against the builders the KB used before (bm25s's own
  `index`, sklearn's `fit_transform`): seconds, peak RSS over the input documents.
- sweep (`--sweep-size`, in-process, FAISS alone): exact search against IVF-Flat (several
  nprobe), HNSW (several efSearch) and IVF-PQ on the same vectors: build seconds, bytes, latency
  on one thread, recall@100. It is what `index.kind=auto` is chosen from.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

NOISE_NORM = 0.15
DENSE_K = 100


# ---------------------------------------------------------------------------- data

def base_data(data: Path, workdir: Path, overrides: list[str]) -> Path:
    """WORKDIR/base: the real entities and queries with their text embeddings (made once)."""
    from _data import em_dataset
    from rich.console import Console

    from ameli_ray.config import AmeliConfig
    from ameli_ray.encoders import TextEncoder
    from ameli_ray.formats import read_entities, read_mentions
    from ameli_ray.storage import ObjectStore

    base = workdir / "base"
    if (base / "done.json").exists():
        return base
    base.mkdir(parents=True, exist_ok=True)
    store = ObjectStore()
    src = em_dataset("walmart_amazon", data, workdir, store, Console())
    if src is None:
        raise SystemExit(f"no Walmart-Amazon data under {data} (pass --data)")
    entities = read_entities(str(src / "entities.json"), store)
    mentions = read_mentions(str(src / "mentions.json"), store)
    config = AmeliConfig.load(None, overrides)
    encoder = TextEncoder(config.text_encoder, store)
    start = time.perf_counter()
    np.save(base / "entity_text.npy", encoder.encode([e.text() for e in entities]))
    np.save(base / "query_text.npy", encoder.encode([m.text for m in mentions]))
    seconds = time.perf_counter() - start
    (base / "entities.jsonl").write_text("".join(e.model_dump_json() + "\n" for e in entities))
    (base / "queries.jsonl").write_text("".join(json.dumps({"text": m.text, "surface": m.surface}) + "\n" for m in mentions))
    (base / "done.json").write_text(json.dumps({"model": encoder.model_id, "entities": len(entities),
                                                "queries": len(mentions), "encode_s": round(seconds, 1)}))
    return base


_DIGITS = re.compile(r"\d+")


def _perturb(text: str, rng: np.random.Generator) -> str:
    return _DIGITS.sub(lambda m: "".join(str(d) for d in rng.integers(0, 10, len(m.group()))), text)


def synthesise_batches(base: Path, n: int):
    """n entities and their text embeddings in batches of 22,074 (one copy of the real ones):
    the real ones first, then perturbed copies."""
    from ameli_ray.schema import Entity

    real = [Entity.model_validate_json(line) for line in (base / "entities.jsonl").read_text().splitlines()]
    emb = np.load(base / "entity_text.npy")
    n0 = len(real)
    yield list(real[: min(n, n0)]), np.ascontiguousarray(emb[: min(n, n0)], dtype=np.float32)
    rng = np.random.default_rng(0)
    for start in range(n0, n, n0):
        count = min(n0, n - start)
        entities = []
        for j in range(count):
            e = real[j]
            entities.append(e.model_copy(update={
                "id": f"{e.id}~{start // n0}",
                "name": _perturb(e.name, rng),
                "attributes": {k: (_perturb(v, rng) if k == "modelno" else v) for k, v in e.attributes.items()},
            }))
        noise = rng.standard_normal((count, emb.shape[1])).astype(np.float32)
        noise *= NOISE_NORM / np.linalg.norm(noise, axis=1, keepdims=True)
        moved = emb[:count] + noise
        yield entities, np.ascontiguousarray(moved / np.linalg.norm(moved, axis=1, keepdims=True), dtype=np.float32)


def synthesise(base: Path, n: int):
    """All of `synthesise_batches` at once: entities, [n, dim] embeddings."""
    entities, vectors = [], []
    for batch, emb in synthesise_batches(base, n):
        entities.extend(batch)
        vectors.append(emb)
    return entities, np.ascontiguousarray(np.concatenate(vectors), dtype=np.float32)


def queries(base: Path, count: int):
    from ameli_ray.retrieval.retriever import MentionQuery

    emb = np.load(base / "query_text.npy")
    rows = [json.loads(line) for line in (base / "queries.jsonl").read_text().splitlines()][:count]
    return [MentionQuery(text=r["text"], text_emb=emb[i], image_emb=np.zeros((0, 1), np.float32), surface=r["surface"] or "")
            for i, r in enumerate(rows)]


# ---------------------------------------------------------------------------- measuring

def rss_mb(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def one_thread() -> None:
    import faiss
    import torch

    faiss.omp_set_num_threads(1)
    torch.set_num_threads(1)


def latency(fn, items) -> dict:
    return latencies([fn], items)[0]


def latencies(fns, items) -> list[dict]:
    """`latency` of several functions, each item through each in turn: the machine's drift and the
    caches a query warms fall on all of them alike."""
    times = [[] for _ in fns]
    for item in items:
        for fn, out in zip(fns, times):
            start = time.perf_counter()
            fn(item)
            out.append((time.perf_counter() - start) * 1000)
    return [{"median_ms": round(float(np.median(t)), 3), "p95_ms": round(float(np.percentile(t, 95)), 3)} for t in times]


def recall_at(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f[f >= 0]) & set(t)) / len(t) for f, t in zip(found, truth)]))


# ---------------------------------------------------------------------------- children

class _PhasePeaks:
    """The streamed builder's peak RSS per step of `finish`: its steps' functions are wrapped to
    name the step, and a thread samples RSS every 50 ms (a measurement, not part of the build)."""

    STEPS = (("ameli_ray.retrieval.index", "build_index", "dense index"),
             ("ameli_ray.retrieval.lexical.LexicalIndex", "build", "BM25"),
             ("ameli_ray.retrieval.chargram.CharGramIndex", "build", "char n-grams"),
             ("ameli_ray.attributes.vocabulary.AttributeVocabulary", "build", "vocabulary"),
             ("ameli_ray.kb.streamed", "write_version", "upload"))

    def __init__(self):
        self.step = "adding, copying"
        self.peaks: dict[str, int] = {}
        self._stop = False

    def __enter__(self):
        import threading

        for where, name, label in self.STEPS:
            owner = self._owner(where)
            original = getattr(owner, name)
            setattr(owner, name, self._named(original, label, isinstance(owner, type)))
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    @staticmethod
    def _owner(where: str):
        import importlib

        parts = where.split(".")
        for cut in range(len(parts), 0, -1):
            try:
                obj = importlib.import_module(".".join(parts[:cut]))
            except ImportError:
                continue
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
            return obj
        raise ImportError(where)

    def _named(self, fn, label: str, is_class: bool):
        peaks = self

        def run(*a, **k):
            before, peaks.step = peaks.step, label
            try:
                return fn(*a, **k)
            finally:
                peaks.step = before

        return classmethod(lambda cls, *a, **k: run(*a, **k)) if is_class and hasattr(fn, "__self__") else run

    def _sample(self) -> None:
        while not self._stop:
            self.peaks[self.step] = max(self.peaks.get(self.step, 0), round(rss_mb()))
            time.sleep(0.05)

    def __exit__(self, *exc) -> None:
        self._stop = True
        self._thread.join()


def child_build_streamed(args) -> dict:
    """The streamed build (kb.streamed, what `build-kb` does): batches in, never all entities held."""
    from ameli_ray.config import AmeliConfig
    from ameli_ray.kb.streamed import StreamedKBBuilder
    from ameli_ray.storage import ObjectStore

    config = AmeliConfig.load(None, args.set)
    store = ObjectStore(config.s3)
    store.ensure_bucket(args.kb)
    phases = _PhasePeaks()
    start = time.perf_counter()
    with phases, tempfile.TemporaryDirectory(prefix="kb-scale-spill-", dir=config.index.build_dir) as spill:
        builder = None
        for entities, vectors in synthesise_batches(Path(args.base), args.size):
            builder = builder or StreamedKBBuilder(Path(spill), vectors.shape[1], 0)
            builder.add(entities, vectors, [np.zeros(0, np.float32)] * len(entities))
        add_s = time.perf_counter() - start
        start = time.perf_counter()
        uri, manifest = builder.finish(args.kb, store, name=f"scale-{args.size}", text_model="all-MiniLM-L6-v2",
                                       image_model="none", image_fingerprint="", index_settings=config.index,
                                       lexical=config.retrieval.lexical, chargram=config.retrieval.chargram)
        finish_s = time.perf_counter() - start
    # synthesising is part of "add" here (it runs batch by batch): the build s is add + finish
    return {"uri": uri, "build": "streamed", "synthesise_s": 0.0, "build_s": round(add_s + finish_s, 1), "write_s": 0.0,
            "add_s": round(add_s, 1), "finish_s": round(finish_s, 1), "peak_rss_mb": round(rss_mb("VmHWM")),
            "phase_peak_rss_mb": phases.peaks,
            "kb_mb": round(sum(f.bytes for f in manifest.files.values()) / 2**20, 1), "text_index": manifest.text_index}


def child_build(args) -> dict:
    """The in-memory build (assemble_kb + write_kb): every entity and embedding held at once."""
    from ameli_ray.config import AmeliConfig
    from ameli_ray.kb.assets import assemble_kb, write_kb
    from ameli_ray.storage import ObjectStore

    config = AmeliConfig.load(None, args.set)
    store = ObjectStore(config.s3)
    start = time.perf_counter()
    entities, vectors = synthesise(Path(args.base), args.size)
    synth_s = time.perf_counter() - start
    start = time.perf_counter()
    kb = assemble_kb(entities, vectors, np.zeros((0, 0), np.float32), np.zeros(0, np.int32), name=f"scale-{args.size}",
                     text_model="all-MiniLM-L6-v2", image_model="none", image_fingerprint="", index_settings=config.index,
                     lexical=config.retrieval.lexical, chargram=config.retrieval.chargram)
    index_s = time.perf_counter() - start
    start = time.perf_counter()
    store.ensure_bucket(args.kb)
    uri = write_kb(kb, args.kb, store)
    write_s = time.perf_counter() - start
    return {"uri": uri, "build": "memory", "synthesise_s": round(synth_s, 1), "build_s": round(index_s, 1), "write_s": round(write_s, 1),
            "peak_rss_mb": round(rss_mb("VmHWM")), "kb_mb": round(sum(f.bytes for f in kb.manifest.files.values()) / 2**20, 1),
            "files_mb": {n: round(f.bytes / 2**20, 1) for n, f in kb.manifest.files.items() if f.bytes > 2**20},
            "text_index": kb.manifest.text_index}


COMPONENTS = ("bm25-bm25s", "bm25", "chargram-sklearn", "chargram", "vocabulary")


def child_component(args) -> dict:
    """One lexical structure of a KB of `size` entities, built alone in this process: seconds and
    its peak RSS above the input (the documents, held as a list by every variant alike).
    The baselines are what the KB used before: bm25s's own `index` over token lists, and
    sklearn's `TfidfVectorizer.fit_transform` then a transpose."""
    from ameli_ray.attributes.vocabulary import AttributeVocabulary
    from ameli_ray.retrieval.chargram import NGRAM_RANGE, CharGramIndex, entity_doc_text
    from ameli_ray.retrieval.lexical import LexicalIndex, tokenize

    kind = args.component
    if kind == "vocabulary":  # a stream of entities: nothing held but the vocabulary
        docs = None
    else:
        docs = [entity_doc_text(e) if kind.startswith("chargram") else e.text()
                for batch, _ in synthesise_batches(Path(args.base), args.size) for e in batch]
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM from here on
    before = rss_mb()
    start = time.perf_counter()
    if kind == "bm25-bm25s":
        import bm25s

        built = bm25s.BM25()
        built.index([tokenize(t) or ["<empty>"] for t in docs], show_progress=False)
    elif kind == "bm25":
        built = LexicalIndex.build(docs)
    elif kind == "chargram-sklearn":
        from sklearn.feature_extraction.text import TfidfVectorizer

        matrix = TfidfVectorizer(analyzer="char_wb", ngram_range=NGRAM_RANGE, sublinear_tf=True,
                                 dtype=np.float32).fit_transform(docs)
        built = matrix.T.tocsr()
        del matrix
    elif kind == "chargram":
        built = CharGramIndex.build(docs)
    else:
        built = AttributeVocabulary.build(e for batch, _ in synthesise_batches(Path(args.base), args.size) for e in batch)
        before_match = rss_mb()
        match_start = time.perf_counter()
        built.match("warm up")  # the Aho-Corasick automaton, built on first use
        automaton = {"automaton_s": round(time.perf_counter() - match_start, 1),
                     "automaton_mb": round(rss_mb() - before_match)}
    seconds = time.perf_counter() - start
    out = {"component": kind, "seconds": round(seconds, 1), "input_mb": round(before),
           "peak_over_input_mb": round(rss_mb("VmHWM") - before), "held_after_mb": round(rss_mb() - before)}
    if kind == "vocabulary":  # its input is a stream: the synthesis counts in its peak and seconds
        out.update(automaton)
    return out


def child_replica(args) -> dict:
    import faiss

    from ameli_ray.config import AmeliConfig
    from ameli_ray.kb.assets import load_kb
    from ameli_ray.retrieval import index as vindex
    from ameli_ray.retrieval.chargram import query_text
    from ameli_ray.retrieval.retriever import CandidateRetriever
    from ameli_ray.storage import ObjectStore

    config = AmeliConfig.load(None, args.set)
    store = ObjectStore(config.s3)
    one_thread()
    before = rss_mb()
    start = time.perf_counter()
    kb = load_kb(args.kb, store, config.index)
    load_s = time.perf_counter() - start
    after = rss_mb()
    qs = queries(Path(args.base), args.queries)
    q = np.stack([x.text_emb for x in qs]).astype(np.float32)
    out = {"load_s": round(load_s, 1), "rss_before_mb": round(before), "rss_after_load_mb": round(after),
           "anon_after_load_mb": round(rss_mb("RssAnon")), "file_after_load_mb": round(rss_mb("RssFile")),
           "text_index": kb.manifest.text_index, "text_index_params": kb.manifest.text_index_params,
           "mmap": bool(config.index.mmap_dir)}
    exact = faiss.IndexFlatIP(q.shape[1])
    exact.add(kb.text_emb)
    out["dense_exact"] = latency(lambda x: exact.search(x[None, :], DENSE_K), q)
    out["dense"] = latency(lambda x: vindex.search(kb.text_index, x[None, :], DENSE_K), q)
    _, found = vindex.search(kb.text_index, q, DENSE_K)
    _, truth = exact.search(q, DENSE_K)
    out["dense_recall_at_100"] = round(recall_at(found, truth), 4)
    exact.reset()  # frees its copy of the vectors before the fused retriever runs
    pool = config.retrieval.pool_per_channel

    def top_pool(scores: np.ndarray) -> np.ndarray:
        return np.argpartition(-scores, min(pool, len(scores)) - 1)[:pool]

    if kb.lexical is not None:
        out["bm25"] = latency(lambda x: top_pool(kb.lexical.scores(x.text)), qs)
    if kb.chargram is not None:
        out["chargram"] = latency(lambda x: top_pool(kb.chargram.scores(query_text(x.surface, x.text))), qs)
    kb.vocabulary.match("warm up")  # the Aho-Corasick automaton is built on first use: its cost is a load cost
    out["attribute_match"] = latency(lambda x: kb.vocabulary.match(x.text), qs)
    # The baseline: the fused retriever without the channels that only re-score the pool (price,
    # numbers, codes; stops 27-29). It reads no KB-wide table, so the full retriever's making
    # pays for them all; then each query goes through both in turn.
    rescoring = {"price": False, "numbers": False, "codes": False}
    bare = CandidateRetriever(kb, config.retrieval.model_copy(update=rescoring))
    before = rss_mb()
    start = time.perf_counter()
    retriever = CandidateRetriever(kb, config.retrieval)  # reads the listed prices, name numbers and code texts
    out["retriever_init_s"] = round(time.perf_counter() - start, 2)
    out["retriever_init_mb"] = round(rss_mb() - before)
    out["fused_without_rescoring"], out["fused"] = latencies([lambda x: bare.retrieve([x]),
                                                              lambda x: retriever.retrieve([x])], qs)
    out["rss_after_queries_mb"] = round(rss_mb())
    out["anon_after_queries_mb"] = round(rss_mb("RssAnon"))
    out["file_after_queries_mb"] = round(rss_mb("RssFile"))
    return out


# ---------------------------------------------------------------------------- the index sweep

def sweep(base: Path, n: int, n_queries: int, kinds: list[str]) -> list[dict]:
    import faiss

    from ameli_ray.config import IndexSettings
    from ameli_ray.retrieval import index as vindex

    _, vectors = synthesise(base, n)
    q = np.stack([x.text_emb for x in queries(base, n_queries)]).astype(np.float32)
    rows = []
    truth = None

    def measure(label: str, make, knobs: list[tuple[str, dict]]):
        nonlocal truth
        faiss.omp_set_num_threads(os.cpu_count() or 1)  # builds use every core, as a KB build would
        start = time.perf_counter()
        index = make()
        build_s = time.perf_counter() - start
        size = len(vindex.serialize(index))
        faiss.omp_set_num_threads(1)
        for knob, values in knobs:
            settings = IndexSettings(**values)
            vindex.tune_index(index, settings)
            lat = latency(lambda x: index.search(x[None, :], DENSE_K), q)
            _, found = index.search(q, DENSE_K)
            if truth is None:
                truth = found
            rows.append({"index": label, "query knob": knob, "build_s": round(build_s, 1), "mb": round(size / 2**20),
                         **lat, "recall_at_100": round(recall_at(found, truth), 4)})
            print(json.dumps(rows[-1]), flush=True)

    nlist = vindex.ivf_nlist(n)
    # exact search first: it is the truth the others are scored against
    measure("flat (exact)", lambda: vindex.build_index(vectors, IndexSettings(kind="flat")), [("-", {})])
    if "ivf" in kinds:
        measure(f"IVF-Flat, {nlist} lists", lambda: vindex.build_index(vectors, IndexSettings(kind="ivf")),
                [(f"nprobe {p}", {"ivf_nprobe": p}) for p in (16, 32, 64, 128, 256)])
    if "ivfpq" in kinds:
        measure(f"IVF-PQ, {nlist} lists, 48 bytes", lambda: vindex.build_index(vectors, IndexSettings(kind="ivfpq")),
                [(f"nprobe {p}", {"ivf_nprobe": p}) for p in (32, 64, 128, 256)])
    if "hnsw" in kinds:
        measure("HNSW, M 32, efConstruction 40",
                lambda: vindex.build_index(vectors, IndexSettings(kind="hnsw", hnsw_ef_construction=40)),
                [(f"efSearch {e}", {"hnsw_ef_search": e}) for e in (64, 128, 256)])
    return rows


# ---------------------------------------------------------------------------- main

def run_child(step: str, size: int, base: Path, kb: str, n_queries: int, overrides: list[str], env: dict) -> dict:
    cmd = [sys.executable, __file__, "--child", step, "--size", str(size), "--base", str(base), "--kb", kb,
           "--queries", str(n_queries), *(a for o in overrides for a in ("--set", o))]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{step} at {size} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    from _data import DEFAULT_EM

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="*", type=int, default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--sweep-size", type=int, default=0, help="also compare the index kinds at this size (0: no)")
    parser.add_argument("--mmap", action="store_true", help="also load each KB memory-mapped (index.mmap_dir)")
    parser.add_argument("--sweep-kinds", nargs="+", default=["ivf", "ivfpq", "hnsw"], choices=["ivf", "ivfpq", "hnsw"])
    parser.add_argument("--data", type=Path, default=DEFAULT_EM)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--set", action="append", default=[], metavar="section.field=value")
    parser.add_argument("--builds", nargs="+", default=["memory", "streamed"], choices=["memory", "streamed"],
                        help="KB builds to measure, each in its own process: in memory (assemble_kb + write_kb, the "
                             "baseline) and streamed (kb.streamed, what build-kb does); replicas load the last")
    parser.add_argument("--no-replica", action="store_true", help="builds only")
    parser.add_argument("--components", type=int, default=0, metavar="N",
                        help="also build each lexical structure alone at N entities, against its former builder (0: no)")
    parser.add_argument("--component", choices=COMPONENTS, help=argparse.SUPPRESS)
    parser.add_argument("--child", choices=["build-memory", "build-streamed", "replica", "component"], help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    parser.add_argument("--kb", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child = {"build-memory": child_build, "build-streamed": child_build_streamed, "replica": child_replica,
                 "component": child_component}[args.child]
        result = child(args)
        print(json.dumps(result), flush=True)
        return 0

    from rich.console import Console
    from rich.table import Table

    from ameli_ray.storage import LocalS3Server

    console = Console(width=180)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ameli-kb-scale-"))
    base = base_data(args.data, workdir, args.set)
    console.print(f"base: {json.loads((base / 'done.json').read_text())}  (workdir {workdir})")
    results = {}
    if args.sizes:
        with LocalS3Server() as server:
            s3 = server.settings()
            env = {**os.environ, "AMELI_S3__ENDPOINT_URL": s3.endpoint_url,
                   "AMELI_S3__ACCESS_KEY_ID": s3.access_key_id.get_secret_value(),
                   "AMELI_S3__SECRET_ACCESS_KEY": s3.secret_access_key.get_secret_value()}
            for n in args.sizes:
                kb = f"s3://kb-scale/kb-{n}"
                builds = {b: run_child(f"build-{b}", n, base, f"{kb}-{b}", args.queries, args.set, env) for b in args.builds}
                for b, built in builds.items():
                    console.print(f"{n:>9,} build ({b}) {built}")
                build = builds[args.builds[-1]]  # replicas load the last one built (the streamed one by default)
                results[n] = {"build": build, "builds": builds}
                if args.no_replica:
                    continue
                replica = run_child("replica", n, base, build["uri"], args.queries, args.set, env)
                console.print(f"{n:>9,} replica {replica}")
                results[n]["replica"] = replica
                if args.mmap:  # a second replica, its vectors and indexes mapped from a local copy
                    mapped = run_child("replica", n, base, build["uri"], args.queries,
                                       [*args.set, f"index.mmap_dir={workdir / 'maps'}"], env)
                    console.print(f"{n:>9,} replica, mmap {mapped}")
                    results[n]["replica_mmap"] = mapped
        table = Table(title=f"KB cost curve (Walmart->Amazon entities + perturbed copies; {args.queries} queries; one core per query)")
        for col in ("entities", "index", "build s", "build peak RSS MB", "KB MB on S3", "replica RSS MB (anon + file)",
                    "dense ms (exact)", "dense ms", "dense p95", "recall@100", "BM25 ms", "char n-gram ms", "attribute match ms",
                    "fused ms w/o re-scoring", "fused ms", "fused p95", "retriever init s (MB)"):
            table.add_column(col, justify="right")
        for n, r in results.items():
            b = r["build"]
            for key in ("replica", "replica_mmap"):
                if key not in r:
                    continue
                p = r[key]
                table.add_row(f"{n:,}", p["text_index"] + (", mmap" if p["mmap"] else ""),
                              f"{b['build_s'] + b['write_s']:.1f}", f"{b['peak_rss_mb']:,}", f"{b['kb_mb']:,}",
                              f"{p['rss_after_load_mb']:,} ({p['anon_after_load_mb']:,} + {p['file_after_load_mb']:,})",
                              f"{p['dense_exact']['median_ms']:.2f}", f"{p['dense']['median_ms']:.2f}",
                              f"{p['dense']['p95_ms']:.2f}", f"{p['dense_recall_at_100']:.3f}",
                              f"{p.get('bm25', {}).get('median_ms', float('nan')):.2f}",
                              f"{p.get('chargram', {}).get('median_ms', float('nan')):.2f}",
                              f"{p.get('attribute_match', {}).get('median_ms', float('nan')):.2f}",
                              f"{p['fused_without_rescoring']['median_ms']:.2f}",
                              f"{p['fused']['median_ms']:.2f}", f"{p['fused']['p95_ms']:.2f}",
                              f"{p['retriever_init_s']:.1f} ({p['retriever_init_mb']:,})")
        console.print(table)
        builds = Table(title="KB builds: in memory (the baseline) against streamed, each in its own process")
        for col in ("entities", "build", "seconds", "peak RSS MB", "KB MB on S3", "text index"):
            builds.add_column(col, justify="right")
        for n, r in results.items():
            for b, built in r["builds"].items():
                builds.add_row(f"{n:,}", b, f"{built['build_s'] + built['synthesise_s'] + built['write_s']:.1f}",
                               f"{built['peak_rss_mb']:,}", f"{built['kb_mb']:,}", built["text_index"])
        console.print(builds)
    if args.components:
        rows = []
        for kind in COMPONENTS:
            cmd = [sys.executable, __file__, "--child", "component", "--component", kind, "--size", str(args.components),
                   "--base", str(base)]
            proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(f"component {kind} failed:\n{proc.stderr[-3000:]}")
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            console.print(rows[-1])
        table = Table(title=f"Lexical structures of a KB of {args.components:,} entities, each built alone in its own process")
        for col in ("structure", "seconds", "peak RSS over its input MB", "held after MB"):
            table.add_column(col, justify="right")
        for r in rows:
            table.add_row(r["component"], f"{r['seconds']:.1f}", f"{r['peak_over_input_mb']:,}", f"{r['held_after_mb']:,}")
        console.print(table)
        results["components"] = rows
    if args.sweep_size:
        rows = sweep(base, args.sweep_size, args.queries, args.sweep_kinds)
        table = Table(title=f"Dense index kinds at {args.sweep_size:,} vectors ({args.queries} queries, top-{DENSE_K}, one thread per query)")
        for col in ("index", "query knob", "build s", "MB", "median ms", "p95 ms", "recall@100"):
            table.add_column(col, justify="left" if col in ("index", "query knob") else "right")
        for r in rows:
            table.add_row(r["index"], r["query knob"], f"{r['build_s']:.1f}", f"{r['mb']:,}", f"{r['median_ms']:.3f}",
                          f"{r['p95_ms']:.3f}", f"{r['recall_at_100']:.4f}")
        console.print(table)
        results["sweep"] = rows
    (workdir / "results.json").write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
