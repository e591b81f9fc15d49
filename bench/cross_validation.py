"""Cross-validated linking quality with 95% intervals, calibrated confidence and the strongest
simple baseline, per dataset, in one run.

    .venv/bin/python bench/cross_validation.py [--folds 5] [--em abt_buy amazon_google walmart_amazon]
        [--demo-products 600] [--nil-products 0.1] [--data ../shared/data/em] [--workdir DIR]
        [--nil-only] [--no-ablations] [--set section.field=value ...]

For each dataset this is `ameli-ray evaluate --folds K` (in-process runner, Ray Train for the
streams, the demo's short training profile unless --set says otherwise): every mention is scored
once by the model of the fold that did not train or tune on it. The demo catalogue's train, dev and
test files are pooled and folded the same way. Baselines in the same run, on the same mentions:
the character n-gram TF-IDF (`ameli_ray.evaluation.baseline`) and retrieval alone (the ablation
row). Each ablation row also prints its paired difference from the full pipeline over all the
scored mentions, with its 95% interval and the mentions it gains and loses. With --nil-products S, a second run per entity-matching set removes a share S of the linked
products from the KB: their reviews become "no matching product" test reviews that no training or
dev part holds, and `disambiguation.fusion.target_precision` (0.9 unless --set) decides the answer.

Prints one table; each dataset's metrics.json and report.html are under WORKDIR/<dataset>/.
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
from ameli_ray.storage import ObjectStore


def pooled_demo_mentions(catalog: Path, out: Path) -> Path:
    """The demo's three split files as one AMELI mentions file (the folds make their own splits)."""
    reviews = []
    for split in ("train", "dev", "test"):
        reviews.extend(json.loads((catalog / f"mentions_{split}.json").read_text()))
    out.write_text(json.dumps(reviews))
    return out


def run(name: str, entities: str, mentions: str, workdir: Path, config: AmeliConfig, args, console, *,
        images: str | None = None, nil_products: float | None = None) -> dict:
    from ameli_ray.workflows import evaluate

    started = time.perf_counter()
    metrics = evaluate(config, entities, mentions, str(workdir), images_uri=images, engine="local",
                       ablations=args.ablations and not nil_products, folds=args.folds, nil_products=nil_products,
                       say=console.print)
    metrics["wall_seconds"] = round(time.perf_counter() - started, 1)
    console.print(f"  {name}: {metrics['wall_seconds']:.0f} s")
    return metrics


def cell(metrics: dict, key: str) -> str:
    pooled = metrics["folds"]["pooled"].get(key)
    if not pooled:
        return "n/a"
    lo, hi = pooled["ci95"]
    return f"{pooled['value']:.3f} [{lo:.3f}, {hi:.3f}]"


def ablation_cell(row: dict | None) -> str:
    """The row's accuracy, and its paired difference from the full pipeline on the same mentions."""
    if row is None:
        return "n/a"
    delta = row.get("accuracy_vs_full")
    if not delta:
        return f"{row['accuracy']:.3f}"
    lo, hi = delta["ci95"]
    return f"{row['accuracy']:.3f} ({delta['value']:+.3f} [{lo:+.3f}, {hi:+.3f}]; +{delta['gains']}/-{delta['losses']})"


def print_table(results: dict[str, dict], console: Console) -> None:
    table = Table(title="cross-validated (every mention scored once; 95% bootstrap interval over mentions)")
    table.add_column("metric")
    for name in results:
        table.add_column(name, justify="right")
    for key in ("accuracy", "baseline_char_tfidf_accuracy", "retrieval_accuracy", "recall@10", "disambiguation_f1",
                "nil_precision", "nil_recall"):
        table.add_row(key, *[cell(m, key) for m in results.values()])
    rows = list(dict.fromkeys(r for m in results.values() for r in m.get("ablations", {})))
    for row in rows:
        table.add_row(f"ablation: {row}", *[ablation_cell(m.get("ablations", {}).get(row)) for m in results.values()])
    table.add_row("accuracy per fold", *[", ".join(f"{v:.3f}" for v in m["folds"]["per_fold_summary"]["accuracy"]["per_fold"])
                                         for m in results.values()])
    for key, label in (("ece", "ECE (test)"), ("brier", "Brier (test)")):
        table.add_row(label, *[f"{m['calibration'][key]:.3f}" if m.get("calibration") else "n/a" for m in results.values()])
    for t in ("0.95", "0.99"):
        table.add_row(f"coverage at {float(t):.0%} precision",
                      *[f"{m['calibration']['coverage_at_precision'][t]:.1%}" if m.get("calibration") else "n/a" for m in results.values()])
    table.add_row("calibrator per fold", *[", ".join(str(x) for x in m["folds"]["calibration_method"]) for m in results.values()])
    table.add_row("fusion r/t/i per fold", *[
        "; ".join("/".join(f"{w[s]:.1f}" for s in ("retrieval", "text", "image")) for w in m["folds"]["fusion"] if w)
        for m in results.values()])
    table.add_row("retrieval t/i/bm25/char/name/attr/price/num/code per fold", *[
        "; ".join("/".join(f"{w.get(c, 0):g}" for c in ("text", "image", "lexical", "chargram", "name", "attributes", "price", "numbers",
                                                        "codes"))
                  for w in m["folds"].get("retrieval_weights", []) if w)
        for m in results.values()])
    table.add_row("mentions (NIL)", *[f"{m['n_mentions']} ({m.get('n_nil_mentions', 0)})" for m in results.values()])
    table.add_row("wall seconds", *[f"{m['wall_seconds']:.0f}" for m in results.values()])
    console.print(table)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--em", nargs="*", default=["abt_buy", "amazon_google", "walmart_amazon"])
    parser.add_argument("--demo-products", type=int, default=0, help="0 skips the demo catalogue")
    parser.add_argument("--nil-products", type=float, default=0.0, help="also run each EM set with this share of products held out")
    parser.add_argument("--nil-only", action="store_true", help="with --nil-products: only the held-out runs")
    parser.add_argument("--data", type=Path, default=DEFAULT_EM)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/ameli-bench-cv"))
    parser.add_argument("--no-ablations", dest="ablations", action="store_false")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    console = Console(width=200)
    from ameli_ray.workflows import demo_profile

    config = demo_profile(AmeliConfig.load(None, args.overrides))
    store = ObjectStore(config.s3)
    results: dict[str, dict] = {}
    if args.demo_products:
        cat = demo_catalog(args.workdir, args.demo_products, console)
        mentions = pooled_demo_mentions(cat, args.workdir / "demo" / "mentions_all.json")
        results["demo"] = run("demo", str(cat / "entities.json"), str(mentions), args.workdir / "demo" / "eval", config, args,
                              console, images=str(cat))
    for name in args.em:
        data = em_dataset(name, args.data, args.workdir, store, console)
        if data is None:
            continue
        if not (args.nil_products and args.nil_only):
            results[name] = run(name, str(data / "entities.json"), str(data / "mentions.json"), args.workdir / name / "eval",
                                config, args, console)
        if args.nil_products:
            held = config if config.disambiguation.fusion.target_precision is not None else AmeliConfig.load(
                None, [*args.overrides, "disambiguation.fusion.target_precision=0.9"])
            held = demo_profile(held)
            results[f"{name} (held-out products)"] = run(
                name, str(data / "entities.json"), str(data / "mentions.json"), args.workdir / name / "eval-nil", held, args,
                console, nil_products=args.nil_products)
    print_table(results, console)
    (args.workdir / "summary.json").write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
