"""Retrieval on the real entity-matching benchmarks, against two TF-IDF baselines computed in the same run.

    .venv/bin/python bench/retrieval_em.py [--data ../shared/data/em] [--datasets walmart_amazon abt_buy amazon_google]

For each dataset: convert it to the AMELI format, compute two TF-IDF cosine baselines (sklearn): word
1-2-grams over the same entity and mention texts the linker sees, and character 2-4-grams
(ameli_ray.evaluation.baseline: the mention's surface form + text against the entity's name and
attribute values; far stronger at top-1 on Abt-Buy and Amazon-Google, level on Walmart-Amazon),
build the KB in-process, encode the mentions once, and retrieve with several channel mixes (text
only, BM25 only, char n-grams only, text + BM25 as before the char n-gram channel, and the default:
all three with the configured weights, no model, so no weights fitted on dev; and the default again
with the approximate index forced on the dense channels: IVF-Flat with the lists and nprobe it
gets from the KB's size, as `index.kind=auto` gives a KB above `flat_max_vectors`). Prints Recall@1/10/100 per row, the ratio of each
row's Recall@1 and Recall@10 to the best baseline's (the higher of the two baselines' figures, per
dataset and column: beating the weaker one proves nothing), and the KB build (entities/s) and
linking (mentions/s) throughput of the default configuration.
The data is read from its path and never copied into the repository.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
from rich.console import Console
from rich.table import Table

from ameli_ray.config import AmeliConfig
from ameli_ray.evaluation.baseline import char_tfidf_rank
from ameli_ray.formats import convert_em, read_entities, read_mentions
from ameli_ray.kb.build import build_kb_in_process
from ameli_ray.linker import load_linker
from ameli_ray.retrieval.index import build_index, describe
from ameli_ray.storage import ObjectStore

KS = (1, 10, 100)
WORD_BASELINE = "word TF-IDF baseline (1-2-grams)"
CHAR_BASELINE = "char TF-IDF baseline (2-4-grams)"
BASELINES = (WORD_BASELINE, CHAR_BASELINE)
DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "em"


def recall(ranked: list[list[str]], gold: list[str]) -> dict[int, float]:
    return {k: float(np.mean([g in r[:k] for r, g in zip(ranked, gold)])) for k in KS}


def tfidf_baseline(entity_texts: list[str], mention_texts: list[str], entity_ids: list[str]) -> list[list[str]]:
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)
    e = vec.fit_transform(entity_texts)
    m = vec.transform(mention_texts)
    sims = (m @ e.T).toarray()
    top = np.argsort(-sims, axis=1)[:, : max(KS)]
    return [[entity_ids[i] for i in row] for row in top]


def run_dataset(name: str, src: Path, workdir: Path, console: Console) -> list[tuple]:
    store = ObjectStore()
    out = workdir / name
    convert_em(name, str(src / name), str(out), store)  # type: ignore[arg-type]
    entities = read_entities(str(out / "entities.json"), store)
    mentions = read_mentions(str(out / "mentions.json"), store)
    gold = [m.gold_entity_id for m in mentions]
    console.print(f"[bold]{name}[/]: {len(entities)} entities, {len(mentions)} mentions")

    start = time.perf_counter()
    base = tfidf_baseline([e.text() for e in entities], [m.text for m in mentions], [e.id for e in entities])
    tfidf_s = time.perf_counter() - start
    start = time.perf_counter()
    char_base = char_tfidf_rank(entities, mentions, k=max(KS))
    char_tfidf_s = time.perf_counter() - start
    rows = [(name, WORD_BASELINE, recall(base, gold), None), (name, CHAR_BASELINE, recall(char_base, gold), None)]

    # retrieval alone: attributes (bench/attribute_ablation.py measures them) stay out of these rows
    config = AmeliConfig.load(None, ["attributes.source=none"])
    start = time.perf_counter()
    kb, _ = build_kb_in_process(entities, config, store, name)
    build_s = time.perf_counter() - start
    loaded = load_linker(config, kb, store, disambiguation=False)
    start = time.perf_counter()
    encoded = loaded.encoder.encode(mentions)
    results = loaded.linker.link(encoded)
    link_s = time.perf_counter() - start
    default_recall = recall([[c.entity_id for c in r.candidates] for r in results], gold)

    mixes = {
        "text only (MiniLM)": ["attributes.source=none", "retrieval.lexical=false", "retrieval.chargram=false",
                               "retrieval.weights.text=1"],
        "BM25 only": ["attributes.source=none", "retrieval.chargram=false", "retrieval.weights.text=0",
                      "retrieval.weights.lexical=1"],
        "char n-grams only": ["attributes.source=none", "retrieval.lexical=false", "retrieval.weights.text=0",
                              "retrieval.weights.chargram=1"],
        "text + BM25 (before the char n-gram channel)": ["attributes.source=none", "retrieval.chargram=false"],
    }
    for label, overrides in mixes.items():
        cfg = AmeliConfig.load(None, overrides)
        res = loaded.variant(cfg).link(encoded)
        rows.append((name, label, recall([[c.entity_id for c in r.candidates] for r in res], gold), None))
    rows.append((name, "ameli-ray default (text + BM25 + char n-grams)", default_recall, None))
    # the same KB with IVF-Flat forced on both dense indexes, everything else as it was
    ivf = config.index.model_copy(update={"kind": "ivf"})
    ivf_kb = dataclasses.replace(kb, text_index=build_index(kb.text_emb, ivf), image_index=build_index(kb.image_emb, ivf))
    res = load_linker(config, ivf_kb, store, disambiguation=False).linker.link(encoded)
    params = describe(ivf_kb.text_index)
    rows.append((name, f"ameli-ray default, IVF-Flat forced ({params['nlist']} lists, nprobe {params['nprobe']})",
                 recall([[c.entity_id for c in r.candidates] for r in res], gold), None))
    throughput = {
        "tfidf_s": tfidf_s,
        "char_tfidf_s": char_tfidf_s,
        "kb_entities_per_s": len(entities) / build_s,
        "link_mentions_per_s": len(mentions) / link_s,
    }
    return [(n, label, r, throughput) for n, label, r, _ in rows]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with abt_buy/, walmart_amazon/, amazon_google/")
    parser.add_argument("--datasets", nargs="+", default=["walmart_amazon", "abt_buy", "amazon_google"])
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    if not args.data.is_dir():
        print(f"no benchmark data at {args.data} (pass --data)", file=sys.stderr)
        return 2
    console = Console(width=170)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ameli-bench-"))
    rows = []
    for name in args.datasets:
        rows.extend(run_dataset(name, args.data, workdir, console))

    table = Table(title="Retrieval on entity-matching benchmarks (same-run word and char TF-IDF baselines)")
    for col in ("dataset", "method", "R@1", "R@10", "R@100", "R@1 / best baseline", "R@10 / best baseline"):
        table.add_column(col, justify="left" if col in ("dataset", "method") else "right")
    # per dataset and K, the higher of the two baselines' recall
    best = {}
    for name, label, r, _ in rows:
        if label in BASELINES:
            best[name] = {k: max(best.get(name, {}).get(k, 0.0), r[k]) for k in KS}

    def ratio(name: str, r: dict[int, float], k: int) -> str:
        return f"{r[k] / best[name][k]:.3f}" if best[name][k] else "-"

    for name, label, r, _ in rows:
        table.add_row(name, label, f"{r[1]:.3f}", f"{r[10]:.3f}", f"{r[100]:.3f}", ratio(name, r, 1), ratio(name, r, 10))
    console.print(table)
    speed = Table(title="Throughput, default configuration, in-process on this machine")
    for col in ("dataset", "KB build entities/s", "linking mentions/s", "word TF-IDF s", "char TF-IDF s"):
        speed.add_column(col, justify="right")
    for name in args.datasets:
        t = next(tp for n, _, _, tp in rows if n == name)
        speed.add_row(name, f"{t['kb_entities_per_s']:.1f}", f"{t['link_mentions_per_s']:.1f}",
                      f"{t['tfidf_s']:.1f}", f"{t['char_tfidf_s']:.1f}")
    console.print(speed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
