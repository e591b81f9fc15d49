"""Training throughput (samples/s) of both streams with 1 and 2 Ray Train workers, and inference
throughput (candidate pairs/s) of the Disambiguator.

    .venv/bin/python bench/disambiguation_throughput.py [--products 200] [--mentions 96] [--workers 1 2]
        [--device cpu|cuda] [--workdir DIR] [--set section.field=value ...]

Data: the generated demo catalogue; training examples are built from real retrieval output
(so candidate lists and pair deduplication are what training sees). Each stream is trained for
one epoch per worker count (text: mentions/s; image: photo pairs/s), and the ratio column
divides by the 1-worker figure of the same run. Inference: every test mention's top_n candidates
scored by both streams, first with pairs deduplicated within a mention (what the linker does),
then pair by pair (the same-run baseline), in candidate pairs (mention, candidate) per second.
With `--device cuda` the text stream runs on the GPU with bf16 autocast (train.mixed_precision and
disambiguation.text.mixed_precision, both auto).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np
from rich.console import Console
from rich.table import Table

from ameli_ray.config import AmeliConfig
from ameli_ray.storage import ObjectStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--products", type=int, default=200)
    parser.add_argument("--mentions", type=int, default=96, help="training mentions (text: one example each; image: one per photo)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--inference-only", action="store_true", help="skip the training table")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/ameli-bench-throughput"))
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    console = Console()

    from ameli_ray.catalog import generate_catalog
    from ameli_ray.formats import read_entities, read_mentions
    from ameli_ray.kb.assets import write_kb
    from ameli_ray.kb.build import build_kb_in_process
    from ameli_ray.training_run import image_examples, retrieve, text_examples
    from ameli_ray.workflows import demo_profile

    gpu = args.device == "cuda"
    base = demo_profile(AmeliConfig.load(None, [*(["train.use_gpu=true"] if gpu else []), *args.overrides]))
    store = ObjectStore(base.s3)
    cat = args.workdir / "catalog"
    if not (cat / "summary.json").exists():
        generate_catalog(cat, n_products=args.products, seed=1)
    kb, _ = build_kb_in_process(read_entities(str(cat / "entities.json"), store), base, store, "bench")
    kb_uri = write_kb(kb, str(args.workdir / "kb"), store)
    train = read_mentions(str(cat / "mentions_train.json"), store)[: args.mentions]
    test = [m for m in read_mentions(str(cat / "mentions_test.json"), store) if m.gold_entity_id][:64]
    items = retrieve(base, kb, kb_uri, train, "local")
    text_rows = text_examples(items, kb, base)
    image_rows = image_examples(items, kb)
    console.print(f"{len(text_rows)} text examples, {len(image_rows)} image examples, device {args.device}")

    table = Table(title=f"training throughput, text: one epoch, image: 5th epoch ({args.device}; ratio = / 1 worker, same run)")
    for col in ("stream", "workers", "samples", "seconds", "samples/s", "ratio"):
        table.add_column(col, justify="right")
    from ameli_ray.disambiguation.tasks import task_for
    from ameli_ray.distributed.runtime import start_ray, stop_ray
    from ameli_ray.distributed.train import train_stream

    start_ray(base.ray)
    try:
        for stream, rows in () if args.inference_only else (("text", text_rows), ("image", image_rows)):
            first = None
            for workers in args.workers:
                t = base.train.model_copy(update={
                    # the image epoch is short: time the last of 5, after start-up effects
                    "num_workers": workers, "text_epochs": 1, "image_epochs": 5,
                    # the machine's cores split over the workers
                    "cpus_per_worker": max(0.5, (os.cpu_count() or 2) / workers - 0.5) if not gpu else 1.0,
                    "threads": max(1, (os.cpu_count() or 2) // workers),
                })
                config = base.model_copy(update={"train": t})
                task = task_for(stream, config, image_dim=kb.image_emb.shape[1])
                outcome = train_stream(task, rows, str(args.workdir / f"run-{stream}-{workers}"))
                h = outcome.history[-1]
                first = first or h["samples_per_s"]
                table.add_row(stream, str(workers), str(h["samples"]), f"{h['seconds']:.1f}",
                              f"{h['samples_per_s']:.1f}", f"{h['samples_per_s'] / first:.2f}")
                store.delete_prefix(str(args.workdir / f"run-{stream}-{workers}"))
    finally:
        stop_ray()
    if not args.inference_only:
        console.print(table)
    console.print(inference_table(base, kb, test, args.device))


def inference_table(config: AmeliConfig, kb, mentions, device: str) -> Table:
    """Candidate pairs/s of the Disambiguator with freshly initialised streams (speed does not
    depend on the weights), deduplicated pairs vs one pair at a time."""
    from ameli_ray.disambiguation import statements
    from ameli_ray.disambiguation.model import DisambiguationModel, Disambiguator, new_manifest
    from ameli_ray.disambiguation.tasks import ImageTask, TextTask
    from ameli_ray.fusion import FusionModel
    from ameli_ray.linker import evidence_of, load_linker

    store = ObjectStore(config.s3)
    loaded = load_linker(config, kb, store, disambiguation=False)
    encoded = loaded.encoder.encode(mentions)
    results = loaded.linker.retrieve(encoded)
    evidence = [evidence_of(e) for e in encoded]
    text = TextTask(config).build_model(store).to(device).eval()
    image = ImageTask(config, kb.image_emb.shape[1]).build_model().eval()
    fusion = FusionModel(weights={"retrieval": 0.4, "text": 0.4, "image": 0.2},
                         standardisation={s: (0.0, 1.0) for s in ("retrieval", "text", "image")})
    manifest = new_manifest("bench", kb, config.disambiguation, fusion, text=True, image=True)
    n = config.disambiguation.fusion.top_n
    n_pairs = sum(min(n, len(r.candidates)) for r in results)
    table = Table(title=f"inference: {len(mentions)} mentions x top {n} ({device}; ratio = / pair by pair, same run)")
    for col in ("variant", "candidate pairs", "cross-encoder passes", "seconds", "candidate pairs/s", "ratio"):
        table.add_column(col, justify="right")
    from ameli_ray.disambiguation.examples import mention_inputs, stack_match

    inputs = [
        mention_inputs(ev.mention, ev.attribute_keys, [kb.entities[kb.row_of[c.entity_id]] for c in r.candidates[:n]],
                       text.settings)
        for ev, r in zip(evidence, results)
    ]
    items = [i.pairs for i in inputs]
    rows = []
    for variant, build in (("text stream, pairs deduplicated (default)", statements.build_pair_batch),
                           ("text stream, pair by pair (baseline)", _without_dedupe(statements.build_pair_batch))):
        passes = 0
        start = time.perf_counter()  # bf16 on a GPU: the stream's own disambiguation.text.mixed_precision=auto
        for i in range(0, len(items), 32):
            batch = build(items[i : i + 32])
            passes += batch.n_pairs
            text.score(batch, match=stack_match([m.match for m in inputs[i : i + 32]], batch.candidate_mask.shape[1]))
        rows.append((variant, passes, time.perf_counter() - start))
    # the whole Disambiguator: both streams, fusion, filter (its pair cache starts empty)
    dis = Disambiguator(DisambiguationModel(manifest, text, image), kb, config.disambiguation)
    start = time.perf_counter()
    for i in range(0, len(results), 32):
        dis.rerank(evidence[i : i + 32], results[i : i + 32])
    rows.append(("Disambiguator.rerank (both streams + fusion)", None, time.perf_counter() - start))
    baseline = n_pairs / rows[1][2]
    for variant, passes, seconds in rows:
        rate = n_pairs / seconds
        table.add_row(variant, str(n_pairs), "" if passes is None else str(passes), f"{seconds:.1f}", f"{rate:.1f}",
                      f"{rate / baseline:.2f}")
    return table


def _without_dedupe(build):
    """build_pair_batch with every slot kept as its own pair (no sharing across candidates)."""
    def build_all(items):
        batch = build(items)
        flat_p, flat_h = [], []
        index = np.full_like(batch.index, -1)
        for b in range(batch.index.shape[0]):
            for c in range(batch.index.shape[1]):
                for s in range(batch.index.shape[2]):
                    j = batch.index[b, c, s]
                    if j >= 0:
                        index[b, c, s] = len(flat_p)
                        flat_p.append(batch.premises[j])
                        flat_h.append(batch.hypotheses[j])
        return type(batch)(premises=flat_p, hypotheses=flat_h, index=index, candidate_mask=batch.candidate_mask)
    return build_all


if __name__ == "__main__":
    sys.exit(main())
