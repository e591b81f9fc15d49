"""The paper's ablation table: retrieval alone against the trained disambiguation, per dataset.

    .venv/bin/python bench/disambiguation_ablation.py [--demo-products 600] [--em walmart_amazon abt_buy amazon_google]
        [--data ../shared/data/em] [--workdir DIR] [--set section.field=value ...]

For each dataset — the generated demo catalogue (train/dev/test splits, photos, "no matching
product" reviews) and the entity-matching sets recast as linking tasks (text only: no images;
the converter's train/dev/test split) — the KB is built (or reused
from --workdir), both streams are trained with Ray Train on the train part, fusion and the
threshold are tuned on dev, and the test part is linked with the full pipeline plus each
ablation. The baseline, in the same run, is retrieval alone (the ratio column divides by it).
Training uses the demo's short profile (`ameli_ray.workflows.demo_profile`) unless --set says otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from _data import DEFAULT_EM, demo_catalog, em_dataset
from rich.console import Console
from rich.table import Table

from ameli_ray.config import AmeliConfig
from ameli_ray.formats import read_entities, read_mentions
from ameli_ray.kb.assets import write_kb
from ameli_ray.kb.build import build_kb_in_process
from ameli_ray.storage import ObjectStore

BASELINE = "retrieval only"


def kb_uri_for(name: str, entities_uri: str, workdir: Path, config: AmeliConfig, store: ObjectStore, console) -> tuple[str, dict]:
    kb_root = workdir / name / "kb"
    if (kb_root / "LATEST").exists():
        console.print(f"  reusing KB {kb_root}")
        return str(kb_root), {"n_entities": -1, "entities_per_s": float("nan")}
    entities = read_entities(entities_uri, store)
    start = time.perf_counter()
    kb, _ = build_kb_in_process(entities, config, store, name)
    seconds = time.perf_counter() - start
    console.print(f"  KB: {len(entities)} entities in {seconds:.0f}s")
    write_kb(kb, str(kb_root), store)
    return str(kb_root), {"n_entities": len(entities), "entities_per_s": round(len(entities) / seconds, 1)}


def run_dataset(name: str, kb_uri: str, build_stats: dict, train, dev, test, workdir: Path, config: AmeliConfig, console) -> dict:
    from ameli_ray.distributed.runtime import ray_session
    from ameli_ray.training_run import train_model
    from ameli_ray.workflows import link_and_score, with_model

    console.print(f"  train {len(train)} / dev {len(dev)} / test {len(test)} mentions")
    with ray_session(config.ray):
        started = time.perf_counter()
        outcome = train_model(config, kb_uri, train, dev, str(workdir / name / "model"), engine="local", say=console.print)
        train_seconds = time.perf_counter() - started
        metrics = link_and_score(with_model(config, outcome["model"]), kb_uri, test, str(workdir / name / "links"),
                                 build_stats, engine="local", say=console.print)
    metrics["training"] = outcome["training"]
    metrics["fusion"] = {k: outcome["fusion"][k] for k in ("weights", "confidence_threshold", "calibration", "dev")}
    metrics["train_seconds"] = round(train_seconds, 1)
    (workdir / name / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo-products", type=int, default=600, help="0 skips the demo catalogue")
    parser.add_argument("--em", nargs="*", default=["walmart_amazon", "abt_buy", "amazon_google"])
    parser.add_argument("--data", type=Path, default=DEFAULT_EM)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/ameli-bench-disambiguation"))
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    console = Console()
    from ameli_ray.workflows import demo_profile

    config = demo_profile(AmeliConfig.load(None, args.overrides))
    store = ObjectStore(config.s3)
    results: dict[str, dict] = {}
    if args.demo_products:
        cat = demo_catalog(args.workdir, args.demo_products, console)
        kb_uri, stats = kb_uri_for("demo", str(cat / "entities.json"), args.workdir, config, store, console)
        split = {s: read_mentions(str(cat / f"mentions_{s}.json"), store) for s in ("train", "dev", "test")}
        results["demo"] = run_dataset("demo", kb_uri, stats, split["train"], split["dev"], split["test"], args.workdir, config, console)
    for name in args.em:
        data = em_dataset(name, args.data, args.workdir, store, console)
        if data is None:
            continue
        kb_uri, stats = kb_uri_for(name, str(data / "entities.json"), args.workdir, config, store, console)
        # the converter's own 60/20/20 split (as `ameli-ray convert-em` writes it)
        train, dev, test = (read_mentions(str(data / f"mentions_{s}.json"), store) for s in ("train", "dev", "test"))
        results[name] = run_dataset(name, kb_uri, stats, train, dev, test, args.workdir, config, console)
    print_table(results, console)


def print_table(results: dict[str, dict], console) -> None:
    table = Table(title="end-to-end accuracy (non-NIL test mentions); ratio = / retrieval only, same run")
    table.add_column("row")
    for name in results:
        table.add_column(name, justify="right")
    rows = list(dict.fromkeys(r for m in results.values() for r in m["ablations"]))
    for row in rows:
        cells = []
        for m in results.values():
            value = m["ablations"].get(row, {}).get("accuracy")
            base = m["ablations"][BASELINE]["accuracy"]
            cells.append("n/a" if value is None else f"{value:.3f} ({value / base:.2f}x)" if base else f"{value:.3f}")
        table.add_row(row, *cells)
    for key in ("nil_precision", "nil_recall", "disambiguation_f1"):
        table.add_row(f"full: {key}", *[f"{m[key]:.3f}" if key in m else "n/a" for m in results.values()])
    table.add_row("fusion weights r/t/i", *["/".join(f"{m['fusion']['weights'][s]:.1f}" for s in ("retrieval", "text", "image"))
                                             for m in results.values()])
    table.add_row("training seconds", *[str(m["train_seconds"]) for m in results.values()])
    console.print(table)


if __name__ == "__main__":
    sys.exit(main())
