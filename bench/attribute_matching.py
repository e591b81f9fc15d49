"""Attribute vocabulary at KB scale: build time, size, matching throughput, against a naive scan.

    .venv/bin/python bench/attribute_matching.py [--copies 4] [--catalog-copies 400]
        [--em-dir /tmp/em/walmart_amazon] [--catalog DIR] [--slice 5000]

The KB is synthesised from real records, so that its values look like a product KB's:
- `--copies` replicas of the Walmart-Amazon conversion's entities (22,074 Amazon products:
  brand, modelno, dimensions, shipweight, price, product name). Replica 0 is the original;
  the others get perturbed model numbers (one character changed and a replica suffix, so each
  is a new distinct identifier) and perturbed dimensions; brands are shared, as in a real KB.
- `--catalog-copies` replicas of the demo catalogue's entities (Spec values such as "256GB",
  "Midnight Blue", "Size 10", model numbers like "AU515RX1A"), with perturbed model numbers and
  series names, and colours drawn from a few hundred colour names (adjective + colour word).
The mention texts are real: every Walmart-Amazon mention (title + record) and every review of
the demo catalogue. Matching runs over all of them, with the full vocabulary.

The naive baseline looks for every surface variant of every matchable value of a
`--slice`-entity slice with `" variant " in " normalised text "` (the same normalisation and
token boundaries as the automaton, so it finds the same values); its per-mention time is measured
on the slice and extrapolated linearly to the full KB's number of variants.
Also reported: the agreement of the two on the slice (pairs the naive scan finds that the
automaton also reports) and the linker's hot path, `agreement_scores` over 100 candidates.
The Walmart-Amazon conversion is read from --em-dir, or converted from ../shared/data/em when
missing; the demo catalogue (60 products, seed 3, like /tmp/cat60) is generated privately in a
temporary folder unless --catalog names one (a shared /tmp folder may be regenerated mid-run).
Times are CPU seconds of this process (`time.process_time`), so that a busy shared machine does
not distort the ratios; wall-clock figures are printed beside them.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from ameli_ray.attributes.extract import agreement_scores, extract_attributes, prepare_agreement
from ameli_ray.attributes.normalize import normalize_value, value_variants
from ameli_ray.attributes.vocabulary import AttributeVocabulary
from ameli_ray.formats import read_entities, read_mentions
from ameli_ray.schema import Entity
from ameli_ray.storage import ObjectStore

SHARED_EM = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "em"
_ALNUM = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
_COLOR_ADJ = ("Midnight", "Royal", "Deep", "Arctic", "Onyx", "Forest", "Ocean", "Sunset", "Cosmic", "Matte", "Pearl",
              "Glacier", "Desert", "Storm", "Electric", "Pastel", "Burnt", "Frost", "Lunar", "Velvet")
_COLOR_BASE = ("Blue", "Black", "White", "Gray", "Silver", "Gold", "Green", "Red", "Pink", "Purple", "Orange",
               "Yellow", "Teal", "Bronze", "Beige", "Navy", "Graphite", "Lavender", "Maroon", "Olive")


def _mutate(code: str, rng: random.Random, replica: int) -> str:
    chars = list(code)
    positions = [i for i, c in enumerate(chars) if c.isalnum()]
    if positions:
        i = rng.choice(positions)
        chars[i] = rng.choice(_ALNUM)
    return "".join(chars) + f"{_ALNUM[replica % len(_ALNUM)]}{replica}"


def _dims(value: str, rng: random.Random) -> str:
    parts = []
    for token in value.split():
        try:
            parts.append(f"{float(token) * rng.uniform(0.8, 1.25):.1f}")
        except ValueError:
            parts.append(token)
    return " ".join(parts)


def synthesise_kb(em_entities: list[Entity], cat_entities: list[Entity], copies: int, cat_copies: int,
                  seed: int = 0) -> list[Entity]:
    rng = random.Random(seed)
    colours = [f"{a} {b}" for a in _COLOR_ADJ for b in _COLOR_BASE]
    out: list[Entity] = []
    for replica in range(copies):
        for e in em_entities:
            attrs = dict(e.attributes)
            if replica:
                if "modelno" in attrs:
                    attrs["modelno"] = _mutate(attrs["modelno"], rng, replica)
                if "dimensions" in attrs:
                    attrs["dimensions"] = _dims(attrs["dimensions"], rng)
            out.append(Entity(id=f"{e.id}-r{replica}", name=e.name, category=e.category, attributes=attrs))
    for replica in range(cat_copies):
        for e in cat_entities:
            attrs = dict(e.attributes)
            if replica:
                for key in attrs:
                    if key == "Model Number":
                        attrs[key] = _mutate(attrs[key], rng, replica)
                    elif key == "Series":
                        attrs[key] = f"{attrs[key]} {_ALNUM[rng.randrange(len(_ALNUM))]}{replica % 97}"
                    elif key == "Color":
                        attrs[key] = rng.choice(colours)
            out.append(Entity(id=f"c{e.id}-r{replica}", name=e.name, category=e.category, attributes=attrs))
    return out


def naive_scan(vocab: AttributeVocabulary, texts: list[str]) -> tuple[float, list[set[tuple[str, str]]], int]:
    """Per mention: every variant of every matchable value, searched with `in` in the normalised text."""
    patterns: list[tuple[str, str, str]] = []
    for pid in range(vocab.n_pairs):
        if not vocab.pair_flags[pid] & 2:
            continue
        key, vid = vocab.keys[int(vocab.pair_key[pid])], int(vocab.pair_value[pid])
        compact = vocab.compacts.get(vid) if vocab.pair_is_model_like(pid) else None
        for variant, _ in value_variants(key, vocab.values[vid], compact):
            patterns.append((f" {variant} ", key, vocab.values[vid]))
    found: list[set[tuple[str, str]]] = []
    start = time.process_time()
    for text in texts:
        padded = f" {normalize_value(text)} "
        found.append({(k, v) for p, k, v in patterns if p in padded})
    return time.process_time() - start, found, len(patterns)


class _Timer:
    """CPU and wall seconds of a block."""

    def __enter__(self) -> "_Timer":
        self._cpu, self._wall = time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cpu = time.process_time() - self._cpu
        self.wall = time.perf_counter() - self._wall


def _variant_count(vocab: AttributeVocabulary) -> int:
    vocab._ensure_automaton()
    return len(vocab._var_len)  # type: ignore[arg-type]


def _ensure_inputs(em_dir: Path | None, catalog: Path | None, work: Path) -> tuple[Path, Path]:
    store = ObjectStore()
    if em_dir is None or not (em_dir / "entities.json").is_file():
        from ameli_ray.formats import convert_em

        em_dir = work / "walmart_amazon"
        convert_em("walmart_amazon", str(SHARED_EM / "walmart_amazon"), str(em_dir), store)
    if catalog is None or not (catalog / "entities.json").is_file():
        from ameli_ray.catalog import generate_catalog

        catalog = work / "cat60"
        generate_catalog(catalog, n_products=60, seed=3)
    return em_dir, catalog


def run(args: argparse.Namespace, em_dir: Path, catalog: Path, console: Console, store: ObjectStore) -> int:
    """Build, match, compare; print the table."""
    em_entities = read_entities(str(em_dir / "entities.json"), store)
    cat_entities = read_entities(str(catalog / "entities.json"), store)
    mentions = read_mentions(str(em_dir / "mentions.json"), store)
    for split in ("train", "dev", "test"):
        path = catalog / f"mentions_{split}.json"
        if path.is_file():
            mentions += read_mentions(str(path), store)
    texts = [m.text for m in mentions]
    kb = synthesise_kb(em_entities, cat_entities, args.copies, args.catalog_copies)
    n_attr = sum(len(e.attributes) for e in kb)
    console.print(f"KB: {len(kb):,} entities ({args.copies} x {len(em_entities):,} Walmart-Amazon + "
                  f"{args.catalog_copies} x {len(cat_entities)} catalogue), {n_attr:,} attribute values; "
                  f"{len(texts):,} mention texts (mean {np.mean([len(t) for t in texts]):.0f} chars)")

    with _Timer() as t_build:
        vocab = AttributeVocabulary.build(kb)
    with _Timer() as t_automaton:
        n_variants = _variant_count(vocab)
    with _Timer() as t_json:
        blob = json.dumps(vocab.to_json())
        again = AttributeVocabulary.from_json(json.loads(blob))
    assert again.n_entities == vocab.n_entities

    vocab.match(texts[0])  # warm caches
    with _Timer() as t_match:
        n_matches = sum(len(vocab.match(t)) for t in texts)
    with _Timer() as t_extract:
        extracted = [extract_attributes(t, [], vocab) for t in texts]
    with _Timer() as t_tables:
        prepare_agreement(vocab)
    # candidates: random rows (a worst case: a retriever's top 100 share brands, colours, capacities)
    rng = np.random.default_rng(0)
    cands = [rng.choice(vocab.n_entities, size=min(args.candidates, vocab.n_entities), replace=False) for _ in texts]
    with _Timer() as t_agree:
        for ex, rows in zip(extracted, cands):
            agreement_scores(ex, rows, vocab)

    # the naive baseline on two slices (is it linear in the patterns?), the automaton on the first
    slice_vocab = AttributeVocabulary.build(kb[: args.slice])
    naive_s, naive_found, n_slice_patterns = naive_scan(slice_vocab, texts)
    big_vocab = AttributeVocabulary.build(kb[: 4 * args.slice])
    naive_big_s, _, n_big_patterns = naive_scan(big_vocab, texts)
    slice_vocab.match(texts[0])
    with _Timer() as t_slice:
        auto_found = [{(m.key, m.value) for m in slice_vocab.match(t) if m.kind != "family"} for t in texts]
    naive_pairs = sum(len(s) for s in naive_found)
    both = sum(len(a & b) for a, b in zip(naive_found, auto_found))
    naive_full_ms = naive_big_s / len(texts) * 1000 * n_variants / max(n_big_patterns, 1)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    n = len(texts)

    def per(t: _Timer) -> str:
        return f"{t.cpu / n * 1000:.3f} ms/mention"

    def rate(t: _Timer) -> str:
        return f"{n / t.cpu:,.0f} mentions/s (wall {t.wall / n * 1000:.3f} ms)"

    table = Table(title="Attribute vocabulary and matching (one process; CPU time, wall time beside)")
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_column("note")
    table.add_row("entities / attribute values", f"{len(kb):,} / {n_attr:,}", "synthesised from real records")
    table.add_row("distinct values / (key, value) pairs", f"{len(vocab.values):,} / {vocab.n_pairs:,}",
                  f"{int((vocab.pair_flags & 2 > 0).sum()):,} matchable pairs")
    table.add_row("automaton patterns", f"{n_variants:,}", "value variants + colour words")
    table.add_row("build (vocabulary)", f"{t_build.cpu:.2f} s",
                  f"{len(kb) / t_build.cpu:,.0f} entities/s, {n_attr / t_build.cpu:,.0f} values/s "
                  f"(wall {t_build.wall:.1f} s)")
    table.add_row("build (automaton, lazy)", f"{t_automaton.cpu:.2f} s",
                  f"on first match() (wall {t_automaton.wall:.1f} s)")
    table.add_row("JSON dump + load", f"{t_json.cpu:.2f} s", f"{len(blob) / 1e6:.1f} MB")
    table.add_row("match()", per(t_match), f"{rate(t_match)}, {n_matches / n:.1f} matches/mention")
    table.add_row("extract_attributes()", per(t_extract), rate(t_extract))
    table.add_row("agreement tables (once per KB)", f"{t_tables.cpu:.2f} s", "prepare_agreement()")
    table.add_row(f"agreement_scores(), {args.candidates} random candidates", per(t_agree),
                  f"{rate(t_agree)}, {np.mean([len(e) for e in extracted]):.1f} extracted values/mention")
    table.add_row(f"naive scan, {args.slice:,}-entity slice", f"{naive_s / n * 1000:.3f} ms/mention",
                  f"{n_slice_patterns:,} patterns, measured")
    table.add_row(f"automaton, same {args.slice:,}-entity slice", per(t_slice),
                  f"naive / automaton {naive_s / t_slice.cpu:,.1f}x")
    table.add_row(f"naive scan, {4 * args.slice:,}-entity slice", f"{naive_big_s / n * 1000:.3f} ms/mention",
                  f"{n_big_patterns:,} patterns, measured")
    table.add_row("naive scan, full KB", f"{naive_full_ms:.1f} ms/mention",
                  f"extrapolated from the larger slice: x {n_variants:,} / {n_big_patterns:,} patterns")
    table.add_row("[bold]speed-up at full KB[/]", f"[bold]{naive_full_ms / (t_match.cpu / n * 1000):,.0f}x[/]",
                  "naive (extrapolated) / automaton (measured, full KB)")
    table.add_row("slice: naive pairs the automaton also finds", f"{both:,} / {naive_pairs:,}",
                  "the others: a value inside a longer value of its key")
    table.add_row("peak RSS", f"{rss_mb:,.0f} MB", "whole process")
    console.print(table)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=4, help="replicas of the Walmart-Amazon entities")
    parser.add_argument("--catalog-copies", type=int, default=400, help="replicas of the demo catalogue's entities")
    parser.add_argument("--em-dir", type=Path, default=Path("/tmp/em/walmart_amazon"))
    parser.add_argument("--catalog", type=Path, default=None, help="a generated catalogue (default: generate one)")
    parser.add_argument("--slice", type=int, default=5000, help="entities in the naive baseline's slice")
    parser.add_argument("--candidates", type=int, default=100, help="candidates per mention for agreement_scores")
    args = parser.parse_args()
    console = Console(width=150)
    store = ObjectStore()
    with tempfile.TemporaryDirectory(prefix="ameli-attr-bench-") as work:
        em_dir, catalog = _ensure_inputs(args.em_dir, args.catalog, Path(work))
        return run(args, em_dir, catalog, console, store)


if __name__ == "__main__":
    sys.exit(main())
