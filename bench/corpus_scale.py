"""Relinking generated corpora at scale: driver memory against corpus size, the Ray Data job
against a plain in-process loop, 1 and 2 workers, and where the time goes.

    .venv/bin/python bench/corpus_scale.py [--sizes 10000 200000] [--products 600] [--workers 1 2]
        [--baseline-size 10000] [--plans fused stages] [--photos] [--model URI] [--workdir DIR] [--set section.field=value ...]

Data: the demo catalogue (`--products`), its KB built once, and corpora of each size written by
`generate-corpus` (50k-review gzip shards; without photos unless `--photos`: on 2 cores the image
tower would dominate every figure). Every link runs as its own `ameli-ray link` process, as a
user runs it, into a fresh output; the driver's peak RSS is its VmHWM, polled from /proc.

Rows:
- `ray PLAN, W workers`: the Ray Data job (`--engine ray`) with `link_plan=PLAN`: `fused`, W
  actors that each run the whole linker (the machine's cores split between them), or `stages`, W
  actors in each model stage.
- `in-process loop`: `--engine local` over the `--baseline-size` corpus, the same models, in the
  same run: the overhead ratio divides the Ray job's wall time by it.
- stage breakdown: in-process, over the first 2,000 reviews of the smallest corpus: parsing,
  mention encoding (text, photos, OCR), retrieval + attribute filter (+ disambiguation with
  `--model`), and writing the parquet part.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]


def peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def run_link(kb: str, corpus: str, out: Path, engine: str, overrides: list[str]) -> dict:
    """One `ameli-ray link` process: its summary, wall seconds and the driver's peak RSS."""
    cmd = [sys.executable, "-m", "ameli_ray.cli", "link", "--kb", kb, "--mentions", corpus, "--out", str(out),
           "--engine", engine, "--overwrite", *(a for o in overrides for a in ("--set", o))]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = [0.0]

    def poll() -> None:
        while proc.poll() is None:
            peak[0] = max(peak[0], peak_rss_mb(proc.pid) or 0.0)
            time.sleep(0.2)

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    stdout, stderr = proc.communicate()
    watcher.join()
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"link failed ({' '.join(cmd)}):\n{stderr[-3000:]}")
    return {**json.loads(stdout.strip().splitlines()[-1]), "wall_s": round(seconds, 1), "driver_peak_rss_mb": round(peak[0], 1)}


def plan_settings(plan: str, workers: int) -> list[str]:
    """W actors per model stage (stages), or W fused linker actors sharing the machine's cores."""
    if plan == "fused":
        threads = max(1, (os.cpu_count() or 1) // workers)
        return [f"link_stage.concurrency={workers}", f"link_stage.threads={threads}"]
    # every actor of every pool must fit at once: pools that hold the CPUs while waiting for an
    # upstream pool whose actors cannot start leave Ray Data waiting for ever (seen with 2 workers
    # per stage at 0.5 CPU each on 2 cores)
    stages = ("ocr_stage", "text_stage", "image_stage", "retrieve_stage", "disambiguate_stage")
    cpus = round(min(0.5, (os.cpu_count() or 1) / (len(stages) * workers)), 3)
    return [f"{s}.{k}={v}" for s in stages for k, v in (("concurrency", workers), ("num_cpus", cpus))]


def stage_breakdown(config, kb: str, corpus: str, n: int) -> dict[str, float]:
    """Seconds per stage of the in-process path over the first `n` reviews of a corpus."""
    import pyarrow as pa

    from ameli_ray.formats.shards import list_shards, read_shard
    from ameli_ray.linker import link_result_row, load_linker
    from ameli_ray.schema import LINK_RESULT_ARROW_SCHEMA
    from ameli_ray.storage import ObjectStore, parquet_bytes

    store = ObjectStore(config.s3)
    loaded = load_linker(config, kb, store)
    t = time.perf_counter()
    mentions = []
    for batch in read_shard(list_shards(corpus, store)[0].uri, store, batch_rows=1000):
        mentions.extend(batch.mentions)
        if len(mentions) >= n:
            break
    mentions = mentions[:n]
    times = {"parse": time.perf_counter() - t}
    t = time.perf_counter()
    encoded = loaded.encode(mentions)
    times["encode (text, photos, OCR)"] = time.perf_counter() - t
    t = time.perf_counter()
    results = loaded.linker.link(encoded)
    times["retrieve + filter" + (" + disambiguate" if loaded.disambiguator else "")] = time.perf_counter() - t
    t = time.perf_counter()
    parquet_bytes(pa.Table.from_pylist([link_result_row(r) for r in results], schema=LINK_RESULT_ARROW_SCHEMA))
    times["write part"] = time.perf_counter() - t
    return {k: round(v, 2) for k, v in times.items()}


def tiny_text_encoder(path: Path) -> str:
    """A sentence-transformers model of one 32-wide BERT layer with seeded random weights and
    MiniLM's tokenizer, saved as safetensors: the pipeline's machinery at full size, in minutes."""
    if (path / "modules.json").exists():
        return str(path)
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import AutoTokenizer, BertConfig, BertModel

    from ameli_ray.config import TextEncoderSettings
    from ameli_ray.encoders.loading import resolve_model_ref

    minilm = resolve_model_ref(TextEncoderSettings().model, None)
    tokenizer = AutoTokenizer.from_pretrained(minilm)
    torch.manual_seed(0)
    bert = BertModel(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                intermediate_size=64, max_position_embeddings=512))
    raw = path / "bert"
    bert.save_pretrained(raw, safe_serialization=True)
    tokenizer.save_pretrained(raw)
    word = models.Transformer(str(raw), max_seq_length=128)
    SentenceTransformer(modules=[word, models.Pooling(32, "mean"), models.Normalize()]).save(str(path), safe_serialization=True)
    return str(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 200_000])
    parser.add_argument("--baseline-size", type=int, default=10_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--plans", nargs="+", choices=["fused", "stages"], default=["fused", "stages"],
                        help="link_plan of the Ray Data runs; every plan runs at the smallest size, the first at the others")
    parser.add_argument("--products", type=int, default=600)
    parser.add_argument("--photos", action="store_true")
    parser.add_argument("--encoder", choices=["minilm", "tiny"], default="minilm",
                        help="tiny: a 1-layer random-weight text encoder (MiniLM's tokenizer), for the driver-memory "
                             "and machinery figures at sizes the real encoder would need hours for on 2 cores")
    parser.add_argument("--model", default=None, help="a disambiguation model (default: retrieval + attribute filter)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/ameli-bench-corpus"))
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    if args.baseline_size not in args.sizes:
        parser.error("--baseline-size must be one of --sizes (the overhead compares the same corpus)")
    console = Console()

    from ameli_ray import workflows
    from ameli_ray.catalog import generate_catalog
    from ameli_ray.catalog.corpus import generate_corpus
    from ameli_ray.config import AmeliConfig

    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    encoder = [f"text_encoder.model={tiny_text_encoder(work / 'tiny-encoder')}"] if args.encoder == "tiny" else []
    overrides = [*args.overrides, *encoder, *([f"disambiguation.model={args.model}"] if args.model else [])]
    config = AmeliConfig.load(None, overrides)
    cat = work / "catalog"
    if not (cat / "summary.json").exists():
        generate_catalog(cat, n_products=args.products, seed=0)
    kb = str(work / f"kb-{args.encoder}")
    if not (work / f"kb-{args.encoder}" / "LATEST").exists():
        workflows.build_kb(config, str(cat / "entities.json"), kb, engine="local")
    corpora = {}
    for n in sorted({*args.sizes, args.baseline_size}):
        path = work / f"corpus-{n}{'-photos' if args.photos else ''}"
        t = time.perf_counter()
        if not (path / "_corpus.json").exists():
            generate_corpus(str(cat / "entities.json"), str(path), n, photos=args.photos)
        console.print(f"corpus of {n} reviews: {path} ({time.perf_counter() - t:.1f} s)")
        corpora[n] = str(path)

    rows = []

    def record(name: str, n: int, run: dict) -> None:
        rows.append((name, n, run))
        console.print(f"{name}, {n} reviews: {json.dumps(run)}")

    for n in sorted(args.sizes):
        smallest = n == min(args.sizes)
        for plan in args.plans if smallest else args.plans[:1]:
            for w in args.workers if smallest else [min(args.workers)]:
                settings = [*overrides, f"link_plan={plan}", *plan_settings(plan, w)]
                record(f"ray {plan}, {w} worker(s)", n, run_link(kb, corpora[n], work / "out" / f"ray-{plan}-{n}-{w}", "ray", settings))
    baseline = run_link(kb, corpora[args.baseline_size], work / "out" / f"local-{args.baseline_size}", "local", overrides)
    record("in-process loop", args.baseline_size, baseline)

    what = "retrieval + attribute filter" + (" + model" if args.model else "") + f", {args.encoder} text encoder"
    table = Table(title=f"relinking generated corpora ({what})")
    for col in ("run", "reviews", "wall s", "mentions/s", "driver peak RSS MB", "x in-process wall"):
        table.add_column(col, justify="right" if col != "run" else "left")
    for name, n, run in rows:
        ratio = run["wall_s"] / baseline["wall_s"] * args.baseline_size / n if n else float("nan")
        table.add_row(name, f"{n:,}", f"{run['wall_s']:.1f}", f"{run['n_mentions'] / run['wall_s']:.1f}",
                      f"{run['driver_peak_rss_mb']:.0f}", f"{ratio:.2f}")
    console.print(table)
    ray_rows = [(n, run) for name, n, run in rows if name == f"ray {args.plans[0]}, {min(args.workers)} worker(s)"]
    if len(ray_rows) >= 2:
        (n0, r0), (n1, r1) = ray_rows[0], ray_rows[-1]
        console.print(f"driver peak RSS: {r0['driver_peak_rss_mb']:.0f} MB at {n0:,} reviews, {r1['driver_peak_rss_mb']:.0f} MB at "
                      f"{n1:,}: difference {r1['driver_peak_rss_mb'] - r0['driver_peak_rss_mb']:+.0f} MB (goal: under 100 MB)")
    breakdown = stage_breakdown(config, kb, corpora[min(corpora)], 2000)
    total = sum(breakdown.values())
    console.print("stage breakdown, in-process, 2,000 reviews: " + ", ".join(
        f"{k} {v:.2f} s ({v / total:.0%})" for k, v in breakdown.items()))
    (work / f"results-{args.encoder}.json").write_text(json.dumps({"encoder": args.encoder, "runs": [{"run": a, "reviews": n, **r} for a, n, r in rows],
                                                   "breakdown_2000": breakdown}, indent=2))


if __name__ == "__main__":
    main()
