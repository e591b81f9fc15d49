"""Cross-domain: a disambiguation model trained on one entity-matching set, scored on another,
beside the in-domain figure (the AMELI paper's open check).

    .venv/bin/python bench/cross_domain.py [--em abt_buy amazon_google] [--data ../shared/data/em]
        [--workdir DIR] [--set section.field=value ...]

For each set: a KB, and one model trained on its 60% and tuned on its 20% (the split `evaluate`
uses, by hash of mention id; the demo's short training profile unless --set says otherwise). Then
every model links every set's held-out 20% against that set's KB: the diagonal is in-domain, the
rest cross-domain. Baselines in the same run, on the same held-out mentions: retrieval alone (top-1
before disambiguation) and the character n-gram TF-IDF.
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

from _data import DEFAULT_EM, em_dataset
from rich.console import Console
from rich.table import Table

from ameli_ray.config import AmeliConfig, with_model
from ameli_ray.formats import read_entities, read_mentions
from ameli_ray.storage import ObjectStore


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--em", nargs="+", default=["abt_buy", "amazon_google"])
    parser.add_argument("--data", type=Path, default=DEFAULT_EM)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/ameli-bench-cross-domain"))
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    console = Console(width=160)
    from ameli_ray.distributed.runtime import ray_session
    from ameli_ray.training_run import train_model
    from ameli_ray.workflows import build_kb, demo_profile, link_and_score, split_mentions

    config = demo_profile(AmeliConfig.load(None, args.overrides))
    store = ObjectStore(config.s3)
    sets: dict[str, dict] = {}
    with ray_session(config.ray):
        for name in args.em:
            data = em_dataset(name, args.data, args.workdir, store, console)
            if data is None:
                continue
            entities = read_entities(str(data / "entities.json"), store)
            train, dev, test = split_mentions(read_mentions(str(data / "mentions.json"), store))
            kb_uri, _, stats = build_kb(config, "", str(args.workdir / name / "kb"), entities=entities, engine="local",
                                        say=console.print)
            started = time.perf_counter()
            model = train_model(config, kb_uri, train, dev, str(args.workdir / name / "model"), engine="local", say=console.print)
            sets[name] = {"entities": entities, "test": test, "kb": kb_uri, "stats": stats, "model": model["model"],
                          "corpus": train + dev + test, "train_seconds": round(time.perf_counter() - started, 1)}
        results: dict[tuple[str, str], dict] = {}
        for source, s in sets.items():
            for target, t in sets.items():
                console.print(f"model of {source} on {target}")
                results[source, target] = link_and_score(
                    with_model(config, s["model"]), t["kb"], t["test"], str(args.workdir / f"{source}-on-{target}"), t["stats"],
                    engine="local", ablations=False, entities=t["entities"], corpus=t["corpus"], say=console.print)
    table = Table(title="accuracy on each set's held-out 20% (rows: the model's training set; same run)")
    table.add_column("trained on \\ scored on")
    for target in sets:
        table.add_column(target, justify="right")
    for source in sets:
        table.add_row(source, *[f"{results[source, t]['accuracy']:.3f}" + (" (in-domain)" if source == t else "") for t in sets])
    first = next(iter(sets))
    table.add_row("retrieval alone", *[f"{results[first, t]['retrieval_accuracy']:.3f}" for t in sets])
    table.add_row("char n-gram TF-IDF", *[f"{results[first, t]['baseline']['char_tfidf']['accuracy']:.3f}" for t in sets])
    table.add_row("held-out mentions", *[str(results[first, t]["n_mentions"]) for t in sets])
    console.print(table)
    for source, s in sets.items():
        fusion = _fusion(s["model"], store)
        w = fusion.weights
        console.print(f"{source} model: fusion retrieval/text/image {w['retrieval']:.1f}/{w['text']:.1f}/{w['image']:.1f}, "
                      f"gate {fusion.gate:g}, filter {fusion.filter}, training {s['train_seconds']:.0f} s")
    summary = {f"{s}->{t}": {k: v for k, v in m.items() if isinstance(v, (int, float, str))} for (s, t), m in results.items()}
    (args.workdir / "summary.json").write_text(json.dumps(summary, indent=2))
    return 0


def _fusion(model_uri: str, store: ObjectStore):
    from ameli_ray.disambiguation.manifest import read_model_manifest

    return read_model_manifest(model_uri, store)[1].fusion


if __name__ == "__main__":
    sys.exit(main())
