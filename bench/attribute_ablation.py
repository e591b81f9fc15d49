"""What attributes are worth: the linker with no / extracted / gold attributes, in one run.

    .venv/bin/python bench/attribute_ablation.py [--demo-products 600] [--em walmart_amazon abt_buy amazon_google]
        [--data ../shared/data/em] [--workdir DIR]

For each dataset (the generated demo catalogue's test split, and the entity-matching sets recast
as linking tasks) the KB is built once and the mentions encoded once (text, photos, OCR); then the
same candidates are linked under each attribute setting. The baseline row, computed in the same
run, is retrieval without attributes. Columns: top-1 accuracy, Recall@10, the ratio of accuracy to
the baseline's, and the attribute extraction P/R/F1 (the paper's substring rule) against the
attributes each mention is known to state. KBs are cached under --workdir between runs.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rich.console import Console
from rich.table import Table

from ameli_ray.config import AmeliConfig
from ameli_ray.evaluation import linking_metrics
from ameli_ray.evaluation.attributes import attribute_prf
from ameli_ray.formats import convert_em, read_entities, read_mentions
from ameli_ray.kb.assets import load_kb, write_kb
from ameli_ray.kb.build import build_kb_in_process
from ameli_ray.linker import link_result_row, load_linker
from ameli_ray.storage import ObjectStore

DEFAULT_EM = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "em"

ROWS = {
    "no attributes (retrieval only)": ["attributes.source=none"],
    "extracted, fusion only": ["attributes.filter=false"],
    "extracted, filter only": ["retrieval.weights.attributes=0"],
    "extracted (default)": [],
    "gold attributes": ["attributes.source=gold"],
}


def kb_for(name: str, entities_uri: str, workdir: Path, config: AmeliConfig, store: ObjectStore, console: Console):
    kb_root = workdir / name / "kb"
    if (kb_root / "LATEST").exists():
        console.print(f"  reusing KB {kb_root}")
        return load_kb(str(kb_root), store, config.index)
    entities = read_entities(entities_uri, store)
    start = time.perf_counter()
    kb, _ = build_kb_in_process(entities, config, store, name)
    console.print(f"  KB: {len(entities)} entities in {time.perf_counter() - start:.0f}s")
    write_kb(kb, str(kb_root), store)
    return kb


def run(name: str, entities_uri: str, mentions_uri: str, workdir: Path, console: Console) -> list[tuple]:
    store = ObjectStore()
    config = AmeliConfig()
    console.print(f"[bold]{name}[/]")
    kb = kb_for(name, entities_uri, workdir, config, store, console)
    mentions = read_mentions(mentions_uri, store)
    start = time.perf_counter()
    loaded = load_linker(config, kb, store, disambiguation=False)
    encoded = loaded.encoder.encode(mentions)
    console.print(f"  encoded {len(mentions)} mentions (text, photos, OCR) in {time.perf_counter() - start:.0f}s")
    gold_attrs = [m.gold_attributes for m in mentions]
    rows = []
    for label, overrides in ROWS.items():
        cfg = AmeliConfig.load(None, overrides)
        start = time.perf_counter()
        results = loaded.variant(cfg).link(encoded)
        seconds = time.perf_counter() - start
        metrics = linking_metrics([link_result_row(r) for r in results])
        prf = None
        if cfg.attributes.source == "extracted":
            predicted = [{a.key: a.value for a in sorted(r.attributes, key=lambda a: a.confidence)} for r in results]
            prf = attribute_prf(predicted, gold_attrs)
        rows.append((name, label, metrics, prf, len(mentions) / seconds))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo-products", type=int, default=600, help="0 skips the demo catalogue")
    parser.add_argument("--em", nargs="*", default=["walmart_amazon", "abt_buy", "amazon_google"])
    parser.add_argument("--data", type=Path, default=DEFAULT_EM)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    console = Console(width=170)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ameli-ablation-"))
    rows = []
    if args.demo_products:
        from ameli_ray.catalog import generate_catalog

        catalog = workdir / "demo" / "catalog"
        if not (catalog / "entities.json").exists():
            generate_catalog(catalog, n_products=args.demo_products, seed=0)
        rows += run("demo", str(catalog / "entities.json"), str(catalog / "mentions_test.json"), workdir, console)
    for name in args.em:
        out = workdir / name / "data"
        if not (out / "entities.json").exists():
            convert_em(name, str(args.data / name), str(out), ObjectStore())  # type: ignore[arg-type]
        rows += run(name, str(out / "entities.json"), str(out / "mentions.json"), workdir, console)

    table = Table(title="Attribute ablation (same KB, same encoded mentions; baseline = no attributes)")
    for col in ("dataset", "attributes", "accuracy", "R@10", "acc / baseline", "attr P", "attr R", "attr F1", "link mentions/s"):
        table.add_column(col, justify="left" if col in ("dataset", "attributes") else "right")
    base = {}
    for name, label, m, prf, speed in rows:
        base.setdefault(name, m["accuracy"])
        table.add_row(
            name, label, f"{m['accuracy']:.3f}", f"{m['recall@10']:.3f}", f"{m['accuracy'] / max(base[name], 1e-9):.3f}",
            *(f"{prf[k]:.3f}" for k in ("precision", "recall", "f1")) if prf else ("", "", ""), f"{speed:.1f}",
        )
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
