"""The embedded default catalogue: a synthetic AMELI-format KB of products and reviews.

It exists so that every stage (readers, retrieval, OCR, attribute extraction, disambiguation)
can run end to end with no download. It reproduces what makes AMELI hard: products come in
FAMILIES of near-identical items that differ only in one or two attribute values (colour,
capacity, size, ...), so name/description text finds the family and the attributes decide.

Output layout (exactly the release format of AMELI_NOTES.md, plus two mention extension fields):

    out_dir/entities.json                   one JSON array of products
    out_dir/product_images/*.jpg            rendered product images
    out_dir/mentions_{train,dev,test}.json  JSON arrays of reviews
    out_dir/cleaned_review_images/*.jpg     review photos
    out_dir/summary.json                    counts and statistics

Every review records in `gold_attributes` exactly the Spec values it states in text (directly,
or paraphrased: "256 gigs", "the blue one") or shows readably in a photo (a printed label an
OCR engine can read, or the product body in its colour), and in `gold_attribute_sources`
where ("text" wins over "ocr", which wins over "image"). Reviews are planned so that text alone
or photos alone often do NOT decide the product; `summary.json` reports how often.

Everything is derived from `numpy.random.default_rng([seed, stream, index])`, so the same
arguments give byte-identical files, and each product's output does not depend on the others.

The parts live in their own modules, in dependency order: `tables` (colours, categories),
`planning` (families, products), `render` (product images), `photos` (review photos) and
`reviews` (review scenarios and text). This module holds the public API and writes the files.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ameli_ray.catalog.planning import (
    _S_COUNTS,
    _S_IDS,
    _S_REVIEW,
    _S_SPLIT,
    _S_UNLISTED,
    _entity_json,
    _plan_families,
    _Product,
)
from ameli_ray.catalog.render import _N_VIEWS, _render_view, _write_product_images
from ameli_ray.catalog.reviews import _make_review, _Review

GENERATOR_VERSION = "2"
SPLITS = ("train", "dev", "test")
ProgressFn = Callable[[str, int, int], None]


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CatalogSummary:
    """What `generate_catalog` wrote. Paths are absolute here and relative in summary.json."""

    out_dir: Path
    n_entities: int
    n_mentions: dict[str, int]
    n_entity_images: int
    n_mention_images: int
    categories: list[str]
    n_families: int
    entities_path: Path
    mention_paths: dict[str, Path]
    product_images_dir: Path
    review_images_dir: Path
    summary_path: Path
    stats: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The content of summary.json: relative paths, so two runs anywhere give equal bytes."""

        def rel(path: Path) -> str:
            return path.relative_to(self.out_dir).as_posix()

        return {
            "generator_version": GENERATOR_VERSION,
            "n_entities": self.n_entities,
            "n_mentions": dict(self.n_mentions),
            "n_entity_images": self.n_entity_images,
            "n_mention_images": self.n_mention_images,
            "categories": list(self.categories),
            "n_families": self.n_families,
            "files": {
                "entities": rel(self.entities_path),
                "mentions": {k: rel(v) for k, v in self.mention_paths.items()},
                "product_images": rel(self.product_images_dir),
                "review_images": rel(self.review_images_dir),
                "summary": rel(self.summary_path),
            },
            "stats": self.stats,
        }


def generate_catalog(
    out_dir: str | Path,
    n_products: int = 600,
    seed: int = 0,
    reviews_per_product: float = 3.0,
    image_size: int = 224,
    progress: ProgressFn | None = None,
    unlisted_share: float = 0.03,
) -> CatalogSummary:
    """Write a synthetic AMELI-format catalogue to `out_dir` and return what was written.

    `n_products` products (>= 2) in families of 2-8 across the categories of `CATEGORY_NAMES`;
    about `reviews_per_product` reviews per product on average; square JPEGs of `image_size`
    pixels. `progress(stage, done, total)` is called now and then (stages: "plan", "products",
    "write"). About `unlisted_share` of the products (never the only one of their family) are
    left out of entities.json: their reviews go to dev and test as "no matching product" mentions
    (`gold_entity_info.nil`), the hard kind, whose near-identical siblings are in the KB.
    An existing `out_dir` is reused only when empty or holding an earlier generated
    catalogue (whose images are replaced), never over somebody's real data.
    """
    if n_products < 2:
        raise ValueError("n_products must be at least 2 (products come in families of 2-8)")
    if reviews_per_product < 0:
        raise ValueError("reviews_per_product must be >= 0")
    if image_size < 64:
        raise ValueError("image_size must be at least 64 pixels")
    report = progress or (lambda stage, done, total: None)
    out = Path(out_dir)
    product_dir, review_dir = out / "product_images", out / "cleaned_review_images"
    _prepare_out_dir(out, (product_dir, review_dir))

    report("plan", 0, 1)
    families = _plan_families(n_products, seed)
    products = sorted((p for f in families for p in f.members), key=lambda p: p.entity_id)
    counts = _review_counts(len(products), reviews_per_product, seed)
    review_ids = _review_ids(int(counts.sum()), seed)
    report("plan", 1, 1)

    unlisted = _unlisted_products(families, unlisted_share, seed)
    entities: list[dict[str, Any]] = []
    reviews: list[_Review] = []
    n_entity_images = 0
    step = max(1, len(products) // 50)
    next_review = 0
    for i, product in enumerate(products):
        views = [_render_view(product, v, image_size, seed) for v in range(_N_VIEWS)]
        if product.entity_id not in unlisted:  # an unlisted product's reviews still show it
            image_names = _write_product_images(product, views, product_dir)
            n_entity_images += len(image_names)
            entities.append(_entity_json(product, image_names))
        for _ in range(int(counts[i])):
            rid = int(review_ids[next_review])
            rng = np.random.default_rng([seed, _S_REVIEW, next_review])
            reviews.append(_make_review(rid, product, views, rng, review_dir))
            next_review += 1
        if (i + 1) % step == 0 or i + 1 == len(products):
            report("products", i + 1, len(products))

    report("write", 0, 3)
    split_of = _assign_splits([r for r in reviews if r.product.entity_id not in unlisted], seed)
    split_of.update(_nil_splits([r for r in reviews if r.product.entity_id in unlisted], seed))
    entities_path = out / "entities.json"
    _write_json_array(entities_path, entities)
    report("write", 1, 3)
    mention_paths: dict[str, Path] = {}
    n_mentions: dict[str, int] = {}
    for split in SPLITS:
        rows = [r.to_json(nil=r.product.entity_id in unlisted) for r in reviews if split_of[r.review_id] == split]
        rows.sort(key=lambda row: row["review_id"])
        mention_paths[split] = out / f"mentions_{split}.json"
        n_mentions[split] = len(rows)
        _write_json_array(mention_paths[split], rows)
    report("write", 2, 3)

    summary = CatalogSummary(
        out_dir=out,
        n_entities=len(entities),
        n_mentions=n_mentions,
        n_entity_images=n_entity_images,
        n_mention_images=sum(len(r.image_names) for r in reviews),
        categories=sorted({f.category.name for f in families}),
        n_families=len(families),
        entities_path=entities_path,
        mention_paths=mention_paths,
        product_images_dir=product_dir,
        review_images_dir=review_dir,
        summary_path=out / "summary.json",
        stats=_stats(products, reviews, seed, n_products, reviews_per_product, image_size),
    )
    summary.summary_path.write_text(
        json.dumps(summary.to_json(), ensure_ascii=False, sort_keys=True, indent=1) + "\n", encoding="utf-8"
    )
    report("write", 3, 3)
    return summary


# ---------------------------------------------------------------------------------------------
# Counts, ids, splits, statistics, writing
# ---------------------------------------------------------------------------------------------


def _review_counts(n_products: int, mean: float, seed: int) -> np.ndarray:
    """Over-dispersed counts (gamma-Poisson): a few popular products, many with 0-2 reviews."""
    rng = np.random.default_rng([seed, _S_COUNTS])
    if mean <= 0:
        return np.zeros(n_products, dtype=np.int64)
    rates = rng.gamma(shape=1.5, scale=mean / 1.5, size=n_products)
    return rng.poisson(rates)


def _review_ids(n: int, seed: int) -> np.ndarray:
    return 100_000 + np.random.default_rng([seed, _S_IDS, 1]).permutation(n)


def _assign_splits(reviews: list[_Review], seed: int) -> dict[int, str]:
    """About 80/10/10, with one review of every family forced into train."""
    rng = np.random.default_rng([seed, _S_SPLIT])
    by_family: dict[int, list[_Review]] = {}
    for r in sorted(reviews, key=lambda r: r.review_id):
        by_family.setdefault(r.product.family.index, []).append(r)
    split: dict[int, str] = {}
    pool: list[_Review] = []
    for index in sorted(by_family):
        members = by_family[index]
        first = int(rng.integers(len(members)))
        split[members[first].review_id] = "train"
        pool.extend(r for i, r in enumerate(members) if i != first)
    n_dev = n_test = round(0.1 * len(reviews))
    order = rng.permutation(len(pool))
    for rank, i in enumerate(order):
        rid = pool[int(i)].review_id
        split[rid] = "dev" if rank < n_dev else "test" if rank < n_dev + n_test else "train"
    return split


def _unlisted_products(families: list, share: float, seed: int) -> set[int]:
    """Products left out of the KB: one member of some families with three or more."""
    rng = np.random.default_rng([seed, _S_UNLISTED])
    eligible = [f for f in families if len(f.members) >= 3]
    n = min(len(eligible), round(share * sum(len(f.members) for f in families)))
    picked = rng.choice(len(eligible), size=n, replace=False) if n else []
    return {eligible[int(i)].members[int(rng.integers(len(eligible[int(i)].members)))].entity_id for i in picked}


def _nil_splits(reviews: list[_Review], seed: int) -> dict[int, str]:
    """Reviews of unlisted products: half dev (to calibrate the threshold), half test."""
    rng = np.random.default_rng([seed, _S_UNLISTED, 1])
    order = rng.permutation(len(reviews))
    ordered = sorted(reviews, key=lambda r: r.review_id)
    return {ordered[int(i)].review_id: "dev" if rank % 2 == 0 else "test" for rank, i in enumerate(order)}


def _determined(product: _Product, values: dict[str, str]) -> bool:
    """Whether `values` single out `product` within its family."""
    alike = [m for m in product.family.members if all(m.attrs.get(k) == v for k, v in values.items())]
    return len(alike) == 1


def _stats(products: list[_Product], reviews: list[_Review], seed: int, n_products: int,
           reviews_per_product: float, image_size: int) -> dict[str, Any]:
    n = max(1, len(reviews))
    text_only = sum(_determined(r.product, r.text_values) for r in reviews)
    photo_only = sum(_determined(r.product, r.photo_values) for r in reviews)
    combined = sum(_determined(r.product, {**r.photo_values, **r.text_values}) for r in reviews)
    sources: dict[str, int] = {}
    for r in reviews:
        for s in r.sources.values():
            sources[s] = sources.get(s, 0) + 1
    scenarios: dict[str, int] = {}
    for r in reviews:
        scenarios[r.scenario] = scenarios.get(r.scenario, 0) + 1
    n_attrs = sum(len(p.attrs) for p in products)
    return {
        "params": {"n_products": n_products, "seed": seed, "reviews_per_product": reviews_per_product,
                   "image_size": image_size},
        "attributes_per_entity": round(n_attrs / max(1, len(products)), 3),
        "mentions_with_images": sum(1 for r in reviews if r.image_names),
        # Shares of mentions whose gold product is singled out within its family by ...
        "determined_by_text": round(text_only / n, 4),
        "determined_by_photos": round(photo_only / n, 4),
        "determined_by_text_and_photos": round(combined / n, 4),
        "undetermined": round(1 - combined / n, 4),
        "gold_attribute_sources": dict(sorted(sources.items())),
        "scenarios": dict(sorted(scenarios.items())),
    }


def _prepare_out_dir(out: Path, image_dirs: tuple[Path, ...]) -> None:
    """Create the folders; clear the images of an earlier generated catalogue, refuse anything else.

    Left-over images of a larger earlier run would otherwise sit next to the new ones.
    """
    previous = out / "summary.json"
    ours = False
    if previous.is_file():
        try:
            ours = "generator_version" in json.loads(previous.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            ours = False
    for folder in image_dirs:
        if folder.is_dir() and any(folder.iterdir()):
            if not ours:
                raise FileExistsError(f"{folder} is not empty and {out} holds no generated catalogue")
            for path in folder.glob("*.jpg"):
                path.unlink()
        folder.mkdir(parents=True, exist_ok=True)


def _write_json_array(path: Path, rows: list[dict[str, Any]]) -> None:
    """One record per line: valid JSON, diff-friendly, byte-stable (sorted keys, no ASCII escapes)."""
    body = ",\n".join(json.dumps(r, ensure_ascii=False, sort_keys=True) for r in rows)
    path.write_text("[\n" + body + "\n]\n" if rows else "[]\n", encoding="utf-8")
