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
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

GENERATOR_VERSION = "2"
JPEG_QUALITY = 88
SPLITS = ("train", "dev", "test")
ProgressFn = Callable[[str, int, int], None]

# RNG stream ids: one independent stream per purpose and item, so adding reviews to one product
# never changes another product's images.
_S_FAMILIES, _S_FAMILY, _S_LAYOUT, _S_COUNTS, _S_REVIEW, _S_IDS, _S_SPLIT, _S_UNLISTED = range(8)


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
# Tables: colours and categories
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Color:
    rgb: tuple[int, int, int]
    group: str  # two colours of one family never share a group, so "the blue one" is unambiguous
    aliases: tuple[str, ...]  # indirect ways a reviewer names it
    code: str  # model-number suffix


COLORS: dict[str, _Color] = {
    "Midnight Blue": _Color((28, 40, 92), "blue", ("dark blue", "blue"), "MB"),
    "Royal Blue": _Color((40, 84, 196), "blue", ("blue", "bright blue"), "RB"),
    "Navy": _Color((24, 34, 74), "blue", ("dark blue",), "NY"),
    "Graphite": _Color((70, 72, 78), "gray", ("dark gray", "gray"), "GR"),
    "Heather Gray": _Color((152, 152, 158), "gray", ("gray", "light gray"), "HG"),
    "Silver": _Color((196, 198, 204), "silver", (), "SV"),
    "Stainless Steel": _Color((168, 170, 174), "silver", ("silver", "brushed metal"), "SS"),
    "Onyx Black": _Color((26, 26, 30), "black", ("black",), "OB"),
    "Black": _Color((22, 22, 22), "black", (), "BK"),
    "Arctic White": _Color((242, 242, 238), "white", ("white",), "AW"),
    "White": _Color((246, 246, 246), "white", (), "WH"),
    "Cream": _Color((238, 226, 196), "beige", ("off-white", "beige"), "CR"),
    "Sand": _Color((212, 192, 150), "beige", ("beige", "tan"), "SD"),
    "Rose Gold": _Color((212, 150, 140), "pink", ("pink", "pinkish gold"), "RG"),
    "Champagne Gold": _Color((214, 188, 128), "gold", ("gold",), "CG"),
    "Forest Green": _Color((38, 104, 62), "green", ("green", "dark green"), "FG"),
    "Olive": _Color((112, 116, 58), "green", ("army green",), "OL"),
    "Coral Red": _Color((226, 80, 70), "red", ("red",), "CO"),
    "Red": _Color((198, 30, 40), "red", (), "RD"),
    "Maroon": _Color((112, 22, 40), "red", ("dark red", "burgundy"), "MR"),
    "Lavender": _Color((178, 152, 222), "purple", ("purple", "light purple"), "LV"),
    "Sunburst Yellow": _Color((238, 198, 50), "yellow", ("yellow",), "SY"),
    "Sunset Orange": _Color((240, 122, 40), "orange", ("orange",), "SO"),
    "Teal": _Color((0, 128, 128), "teal", ("blue-green",), "TL"),
}
COLOR_RGB: dict[str, tuple[int, int, int]] = {name: c.rgb for name, c in COLORS.items()}
_MIN_FAMILY_COLOR_DISTANCE = 75.0  # RGB distance: family colours stay apart under brightness jitter


@dataclass(frozen=True)
class _Axis:
    """An attribute a family may vary along. `kind` decides paraphrases, printing and codes."""

    key: str
    kind: str
    values: tuple[str, ...]  # ordered; numeric families take a contiguous run
    weight: float  # how often families vary along it (0: never)
    printed: bool = True  # does it appear as text on product images


@dataclass(frozen=True)
class _Category:
    name: str
    noun: str  # in product names and descriptions
    nouns: tuple[str, ...]  # how reviewers call it
    plural: bool  # "these headphones"
    shape: str  # drawer
    brands: tuple[tuple[str, str], ...]  # (brand, model-number code)
    lines: tuple[str, ...]  # series stems
    axes: tuple[_Axis, ...]  # the Color axis included
    fixed: tuple[tuple[str, tuple[str, ...]], ...]  # family-level attributes and their options
    sections: tuple[tuple[str, tuple[str, ...]], ...]  # Spec subsection -> keys, in order
    name_format: str  # {Key} or {Key|display}
    says: dict[str, tuple[str, ...]]  # sentences stating a family-level attribute ({v})
    pros: tuple[str, ...]
    cons: tuple[str, ...]
    description: str
    features: tuple[tuple[str, str], ...]
    variant_feature: tuple[str, str, str] | None = None  # (axis key, header, text) naming the variant


_WARRANTY = ("Manufacturer's Warranty - Parts", ("1 year", "2 years"))
_GENERAL = ("General", ("Brand", "Series", "Model Number", "Color"))

CATEGORIES: tuple[_Category, ...] = (
    _Category(
        name="Cell Phones",
        noun="Smartphone",
        nouns=("phone", "smartphone"),
        plural=False,
        shape="phone",
        brands=(("Nordvik", "NV"), ("Kestrel", "KS"), ("Lumora", "LM"), ("Veltro", "VT"), ("Aurion", "AU")),
        lines=("Aero", "Nova", "Pulse", "Zenith", "Orbit", "Vanta", "Lyra", "Helix", "Strata", "Echo"),
        axes=(
            _Axis("Storage Capacity", "storage", ("64GB", "128GB", "256GB", "512GB", "1TB"), 0.5),
            _Axis("Color", "color", ("Midnight Blue", "Graphite", "Rose Gold", "Silver", "Onyx Black",
                                     "Arctic White", "Forest Green", "Coral Red", "Lavender",
                                     "Sunburst Yellow", "Champagne Gold", "Teal"), 0.4),
            _Axis("Carrier", "plain", ("Unlocked", "Verizon", "AT&T", "T-Mobile"), 0.12, printed=False),
        ),
        fixed=(
            ("Screen Size", ("6.1 inches", "6.4 inches", "6.7 inches")),
            ("Operating System", ("Android 14", "Android 15")),
            ("Processor", ("Octa-core 3.2 GHz", "Octa-core 2.8 GHz", "Hexa-core 3.0 GHz")),
            ("System Memory (RAM)", ("8GB", "12GB")),
            ("Rear-Facing Camera Resolution", ("50 megapixels", "48 megapixels", "64 megapixels")),
            ("Battery Capacity", ("4500 milliampere hours", "5000 milliampere hours")),
            ("Display Type", ("OLED", "AMOLED", "LCD")),
            ("Refresh Rate", ("90 hertz", "120 hertz")),
            ("5G Capable", ("Yes",)),
            ("Water Resistance Rating", ("IP68", "IP67")),
            ("Product Weight", ("6.2 ounces", "6.8 ounces", "7.1 ounces")),
            _WARRANTY,
        ),
        sections=(
            ("Key Specs", ("Storage Capacity", "Screen Size", "Operating System")),
            _GENERAL,
            ("Display", ("Display Type", "Refresh Rate")),
            ("Performance", ("Processor", "System Memory (RAM)")),
            ("Camera", ("Rear-Facing Camera Resolution",)),
            ("Power", ("Battery Capacity",)),
            ("Connectivity", ("Carrier", "5G Capable")),
            ("Features", ("Water Resistance Rating",)),
            ("Dimensions", ("Product Weight",)),
            ("Warranty", ("Manufacturer's Warranty - Parts",)),
        ),
        name_format="{Brand} - {Series} Smartphone {Storage Capacity} ({Carrier}) - {Color}",
        says={
            "Screen Size": ("The screen measures {v} and is easy to read.",),
            "Operating System": ("It runs {v} smoothly.", "Coming from an older version, {v} feels snappy."),
            "Display Type": ("The {v} display is bright and colorful.",),
            "Water Resistance Rating": ("It's {v} rated, so a little rain is no problem.",),
            "System Memory (RAM)": ("With {v} of RAM, apps switch instantly.",),
        },
        pros=("Battery easily lasts a full day.", "The camera takes great photos even at night.",
              "Face recognition is quick.", "Calls sound clear.", "The screen is bright enough outdoors.",
              "It feels solid in the hand.", "Moving everything over from my old phone was easy."),
        cons=("The battery drains faster than I hoped.", "It gets warm while gaming.",
              "The camera bump makes it wobble on a desk.", "There is no charger in the box.",
              "It's too slippery without a case."),
        description=("The {Brand} {Series} pairs its {Display Type} display with a {Rear-Facing Camera Resolution} "
                     "camera and an all-day battery in a slim, durable design — made for people on the move."),
        features=(
            ("All-day battery", "A {Battery Capacity} battery keeps you going from morning to night."),
            ("Pro-grade camera", "Capture fine detail with the {Rear-Facing Camera Resolution} main camera."),
            ("Smooth display", "The {Refresh Rate} {Display Type} screen makes scrolling fluid."),
            ("Built to last", "{Water Resistance Rating} protection against dust and water."),
            ("Fast performance", "{Processor} processor with {System Memory (RAM)} of memory."),
        ),
        variant_feature=("Storage Capacity", "Room for everything",
                         "{Storage Capacity} of storage for photos, apps and videos."),
    ),
    _Category(
        name="Laptops",
        noun="Laptop",
        nouns=("laptop", "notebook"),
        plural=False,
        shape="laptop",
        brands=(("Nordvik", "NV"), ("Kestrel", "KS"), ("Altair", "AL"), ("Corvane", "CV")),
        lines=("Swift", "Vector", "Atlas", "Prism", "Summit", "Nimbus", "Forge", "Quill", "Meridian"),
        axes=(
            _Axis("System Memory (RAM)", "ram", ("8GB", "16GB", "32GB", "64GB"), 0.3),
            _Axis("Solid State Drive Capacity", "storage", ("256GB", "512GB", "1TB", "2TB"), 0.35),
            _Axis("Screen Size", "inches", ("13.3 inches", "14 inches", "15.6 inches", "16 inches"), 0.15),
            _Axis("Color", "color", ("Graphite", "Silver", "Midnight Blue", "Arctic White", "Rose Gold",
                                     "Onyx Black", "Champagne Gold", "Forest Green", "Lavender"), 0.2),
        ),
        fixed=(
            ("Processor Model", ("Intel Core i5-1335U", "Intel Core i7-1355U", "AMD Ryzen 5 7530U",
                                 "AMD Ryzen 7 7735HS")),
            ("Graphics", ("Integrated Graphics", "NVIDIA GeForce RTX 4050", "NVIDIA GeForce RTX 4060")),
            ("Operating System", ("Windows 11 Home", "Windows 11 Pro")),
            ("Screen Resolution", ("1920 x 1080", "2560 x 1600", "2880 x 1800")),
            ("Touch Screen", ("Yes", "No")),
            ("Battery Life", ("10 hours", "12 hours", "14 hours")),
            ("Backlit Keyboard", ("Yes",)),
            ("Number of USB Ports", ("2", "3")),
            ("Product Weight", ("3.1 pounds", "3.9 pounds", "4.6 pounds")),
            _WARRANTY,
        ),
        sections=(
            ("Key Specs", ("Screen Size", "System Memory (RAM)", "Solid State Drive Capacity", "Processor Model")),
            _GENERAL,
            ("Display", ("Screen Resolution", "Touch Screen")),
            ("Performance", ("Graphics", "Operating System")),
            ("Power", ("Battery Life",)),
            ("Features", ("Backlit Keyboard", "Number of USB Ports")),
            ("Dimensions", ("Product Weight",)),
            ("Warranty", ("Manufacturer's Warranty - Parts",)),
        ),
        name_format=('{Brand} - {Series} {Screen Size|inch} Laptop - {Processor Model} - '
                     '{System Memory (RAM)} Memory - {Solid State Drive Capacity} SSD - {Color}'),
        says={
            "Processor Model": ("The {v} handles everything I throw at it.",),
            "Graphics": ("The {v} runs my games fine.",),
            "Operating System": ("It came with {v} preinstalled.",),
            "Battery Life": ("I get close to the advertised {v} of battery life.",),
            "Screen Resolution": ("At {v} the panel looks crisp.",),
        },
        pros=("The keyboard is comfortable for long typing sessions.", "It boots up in seconds.",
              "The trackpad is smooth and precise.", "Fans stay quiet during normal work.",
              "Great build quality for the price.", "The speakers are surprisingly good."),
        cons=("The fans get loud under load.", "The webcam is grainy.", "Too much preinstalled bloatware.",
              "The charger is bulky.", "The screen could be brighter."),
        description=("The {Brand} {Series} laptop pairs an {Processor Model} processor with {Graphics} "
                     "and a {Screen Resolution} display for work, study and play."),
        features=(
            ("Power through your day", "Up to {Battery Life} of battery life on a single charge."),
            ("Sharp display", "A {Screen Resolution} panel shows every detail."),
            ("Responsive performance", "The {Processor Model} keeps multitasking smooth."),
            ("Ready to work", "{Operating System} comes preinstalled."),
        ),
        variant_feature=("Solid State Drive Capacity", "Fast storage",
                         "A {Solid State Drive Capacity} solid state drive boots in seconds."),
    ),
    _Category(
        name="Headphones",
        noun="Headphones",
        nouns=("headphones",),
        plural=True,
        shape="headphones",
        brands=(("Sonique", "SQ"), ("Kestrel", "KS"), ("Aurion", "AU"), ("Brisa", "BR")),
        lines=("Tempo", "Cadence", "Aria", "Resonance", "Hush", "Drift", "Solace", "Verve"),
        axes=(
            _Axis("Color", "color", ("Onyx Black", "Arctic White", "Midnight Blue", "Silver", "Rose Gold",
                                     "Forest Green", "Sand", "Lavender", "Coral Red", "Sunburst Yellow", "Teal"),
                  0.75),
            _Axis("Noise Cancellation", "plain", ("Active Noise Cancelling", "Passive Isolation"), 0.25),
        ),
        fixed=(
            ("Headphone Fit", ("Over-the-Ear", "On-Ear")),
            ("Connection Type", ("Bluetooth 5.3", "Bluetooth 5.2")),
            ("Battery Life", ("30 hours", "40 hours", "60 hours")),
            ("Driver Size", ("40 millimeters", "50 millimeters")),
            ("Frequency Response", ("20 - 20000 hertz", "10 - 40000 hertz")),
            ("Built-In Microphone", ("Yes",)),
            ("Foldable Design", ("Yes", "No")),
            ("Charging Interface", ("USB Type-C",)),
            ("Product Weight", ("8.8 ounces", "9.5 ounces")),
            _WARRANTY,
        ),
        sections=(
            ("Key Specs", ("Headphone Fit", "Noise Cancellation", "Battery Life")),
            _GENERAL,
            ("Audio", ("Driver Size", "Frequency Response")),
            ("Connectivity", ("Connection Type", "Charging Interface")),
            ("Features", ("Built-In Microphone", "Foldable Design")),
            ("Dimensions", ("Product Weight",)),
            ("Warranty", ("Manufacturer's Warranty - Parts",)),
        ),
        name_format="{Brand} - {Series} {Headphone Fit} Wireless Headphones with {Noise Cancellation} - {Color}",
        says={
            "Headphone Fit": ("The {v} design stays comfortable for hours.",),
            "Connection Type": ("Pairing over {v} was instant.",),
            "Battery Life": ("Battery life is close to {v} on a charge.",),
            "Driver Size": ("The {v} drivers give punchy bass.",),
        },
        pros=("Bass is punchy without being muddy.", "They stay comfortable even after hours of use.",
              "Pairing with my phone was instant.", "The carrying case is compact and sturdy.",
              "Call quality is clear."),
        cons=("The ear pads get warm after a while.", "The app is clunky.", "They clamp a bit tight at first.",
              "Touch controls are too sensitive."),
        description=("{Brand} {Series} headphones deliver rich sound from {Driver Size} drivers and up to "
                     "{Battery Life} of playback, with a comfortable {Headphone Fit} fit."),
        features=(
            ("Long battery life", "Up to {Battery Life} of listening on a full charge."),
            ("Big sound", "Custom {Driver Size} drivers tuned for deep bass and clear highs."),
            ("Stay connected", "{Connection Type} keeps a stable link to your devices."),
            ("Fast charging", "Charge over {Charging Interface} and get hours of playback in minutes."),
        ),
    ),
    _Category(
        name="TVs",
        noun="TV",
        nouns=("TV", "television"),
        plural=False,
        shape="tv",
        brands=(("Vistara", "VS"), ("Lumora", "LM"), ("Kestrel", "KS"), ("Orivex", "OX")),
        lines=("Q7", "Q9", "Vivid", "Lumen", "Cinema", "Horizon", "Spectra", "Luxe"),
        axes=(
            _Axis("Screen Size", "inches", ("43 inches", "50 inches", "55 inches", "65 inches", "75 inches",
                                            "85 inches"), 0.85),
            _Axis("Refresh Rate", "hertz", ("60 hertz", "120 hertz", "144 hertz"), 0.2),
            _Axis("Color", "color", ("Black", "Graphite"), 0.0),
        ),
        fixed=(
            ("Display Type", ("QLED", "OLED", "LED")),
            ("Resolution", ("4K (2160p)", "8K (4320p)")),
            ("High Dynamic Range Format", ("HDR10+", "Dolby Vision")),
            ("Smart Platform", ("Google TV", "Roku TV", "Fire TV")),
            ("Number of HDMI Inputs", ("4",)),
            ("Backlight Type", ("Full Array", "Edge-Lit")),
            ("Voice Assistant Built-in", ("Alexa", "Google Assistant")),
            ("Audio Output Power", ("20 watts", "40 watts")),
            _WARRANTY,
        ),
        sections=(
            ("Key Specs", ("Screen Size", "Resolution", "Display Type", "Refresh Rate")),
            _GENERAL,
            ("Display", ("High Dynamic Range Format", "Backlight Type")),
            ("Smart Features", ("Smart Platform", "Voice Assistant Built-in")),
            ("Connectivity", ("Number of HDMI Inputs",)),
            ("Audio", ("Audio Output Power",)),
            ("Warranty", ("Manufacturer's Warranty - Parts",)),
        ),
        name_format="{Brand} - {Screen Size|inch} Class {Series} {Display Type} {Resolution} Smart TV",
        says={
            "Display Type": ("The {v} panel has excellent contrast.",),
            "Smart Platform": ("{v} is easy to navigate.",),
            "High Dynamic Range Format": ("{v} content looks stunning.",),
        },
        pros=("The picture is bright and sharp.", "Colors pop right out of the box.", "Setup took ten minutes.",
              "Streaming apps load fast.", "Great for watching sports."),
        cons=("The built-in speakers are weak.", "The remote feels cheap.", "Viewing angles could be better.",
              "I had to turn off motion smoothing."),
        description=("Experience vivid color and deep contrast with the {Brand} {Series} {Display Type} TV, "
                     "with {High Dynamic Range Format} support and {Smart Platform} built in."),
        features=(
            ("Brilliant picture", "{Display Type} technology with {Backlight Type} backlighting."),
            ("Smart streaming", "{Smart Platform} brings your favorite apps together."),
            ("Cinematic HDR", "{High Dynamic Range Format} for lifelike highlights."),
            ("Hands-free control", "Works with {Voice Assistant Built-in}."),
        ),
        variant_feature=("Screen Size", "Immersive size", "A {Screen Size} screen fills your field of view."),
    ),
    _Category(
        name="Monitors",
        noun="Gaming Monitor",
        nouns=("monitor", "display"),
        plural=False,
        shape="monitor",
        brands=(("Vistara", "VS"), ("Corvane", "CV"), ("Pixelon", "PX"), ("Kestrel", "KS")),
        lines=("Raptor", "Apex", "Vantage", "Blaze", "Sight", "Focus", "Arc"),
        axes=(
            _Axis("Screen Size", "inches", ("24 inches", "27 inches", "32 inches", "34 inches"), 0.4),
            _Axis("Refresh Rate", "hertz", ("60 hertz", "75 hertz", "144 hertz", "165 hertz", "240 hertz"), 0.4),
            _Axis("Color", "color", ("Black", "Arctic White", "Silver"), 0.2),
        ),
        fixed=(
            ("Panel Type", ("IPS", "VA", "OLED")),
            ("Maximum Resolution", ("1920 x 1080", "2560 x 1440", "3840 x 2160")),
            ("Response Time", ("1 millisecond", "4 milliseconds")),
            ("Adaptive Sync", ("FreeSync Premium", "G-SYNC Compatible")),
            ("Inputs", ("HDMI, DisplayPort", "HDMI, DisplayPort, USB-C")),
            ("Stand Adjustments", ("Height, Tilt, Swivel", "Tilt")),
            ("VESA Mount", ("100 x 100 millimeters",)),
            ("Viewing Angle", ("178°",)),
            _WARRANTY,
        ),
        sections=(
            ("Key Specs", ("Screen Size", "Refresh Rate", "Maximum Resolution", "Panel Type")),
            _GENERAL,
            ("Display", ("Response Time", "Adaptive Sync", "Viewing Angle")),
            ("Connectivity", ("Inputs",)),
            ("Design", ("Stand Adjustments", "VESA Mount")),
            ("Warranty", ("Manufacturer's Warranty - Parts",)),
        ),
        name_format="{Brand} - {Series} {Screen Size|inch} {Panel Type} Gaming Monitor {Refresh Rate|hz} - {Color}",
        says={
            "Panel Type": ("The {v} panel has great colors.",),
            "Adaptive Sync": ("{v} works perfectly with my graphics card.",),
            "Maximum Resolution": ("At {v} text is sharp.",),
        },
        pros=("Games look incredibly smooth.", "No dead pixels on mine.", "The stand is sturdy.",
              "Text is sharp for office work too.", "It was easy to mount on my arm."),
        cons=("The on-screen menu is confusing.", "There is some backlight bleed in the corners.",
              "The built-in speakers are tinny.", "The power brick is huge."),
        description=("The {Brand} {Series} gaming monitor combines its {Panel Type} panel with "
                     "{Adaptive Sync} for tear-free play."),
        features=(
            ("Tear-free gaming", "{Adaptive Sync} keeps frames in sync with your GPU."),
            ("Fast response", "{Response Time} response time reduces motion blur."),
            ("Flexible setup", "{Stand Adjustments} adjustments and {VESA Mount} VESA support."),
        ),
        variant_feature=("Refresh Rate", "Fluid motion", "A {Refresh Rate} refresh rate for fluid motion."),
    ),
    _Category(
        name="Memory Cards",
        noun="Memory Card",
        nouns=("card", "memory card"),
        plural=False,
        shape="card",
        brands=(("Memtrix", "MX"), ("Kestrel", "KS"), ("Veltro", "VT"), ("Flashwell", "FW")),
        lines=("Extreme", "Ultra", "Pro Plus", "Endura", "Velocity", "Prime"),
        axes=(
            _Axis("Storage Capacity", "storage", ("32GB", "64GB", "128GB", "256GB", "512GB", "1TB"), 0.75),
            _Axis("Speed Class", "plain", ("V30", "V60", "V90"), 0.25),
            _Axis("Color", "color", ("Red", "Black", "Sunburst Yellow", "Royal Blue", "Graphite"), 0.0),
        ),
        fixed=(
            ("Card Type", ("microSDXC", "SDXC")),
            ("Maximum Read Speed", ("100 megabytes per second", "170 megabytes per second",
                                    "200 megabytes per second")),
            ("Maximum Write Speed", ("60 megabytes per second", "90 megabytes per second")),
            ("UHS Bus Interface", ("UHS-I", "UHS-II")),
            ("Adapter Included", ("Yes", "No")),
            ("Waterproof", ("Yes",)),
            ("Manufacturer's Warranty - Parts", ("Lifetime limited", "10 years")),
        ),
        sections=(
            ("Key Specs", ("Storage Capacity", "Card Type", "Speed Class")),
            _GENERAL,
            ("Performance", ("Maximum Read Speed", "Maximum Write Speed", "UHS Bus Interface")),
            ("Features", ("Adapter Included", "Waterproof")),
            ("Warranty", ("Manufacturer's Warranty - Parts",)),
        ),
        name_format="{Brand} - {Series} {Storage Capacity} {Card Type} {UHS Bus Interface} Memory Card",
        says={
            "Card Type": ("It works great as the {v} card for my camera.",),
            "Maximum Read Speed": ("Transfers hit close to {v}.",),
            "UHS Bus Interface": ("{v} speeds make offloading quick.",),
        },
        pros=("It works flawlessly in my camera.", "Offloading photos to my computer is quick.",
              "No dropped frames when recording video.", "It comes with a handy case."),
        cons=("It slows down when the card fills up.", "The adapter feels flimsy.",
              "Write speeds dip on long recordings."),
        description=("Capture more with the {Brand} {Series} memory card: read speeds up to "
                     "{Maximum Read Speed} and {UHS Bus Interface} performance for photos and video."),
        features=(
            ("Fast transfers", "Read speeds up to {Maximum Read Speed}."),
            ("Built tough", "Waterproof, temperature proof and shock proof."),
            ("Smooth recording", "Sustained writes up to {Maximum Write Speed}."),
        ),
        variant_feature=("Storage Capacity", "Plenty of space", "{Storage Capacity} holds hours of video."),
    ),
    _Category(
        name="Portable Drives",
        noun="Portable Drive",
        nouns=("drive",),
        plural=False,
        shape="drive",
        brands=(("Memtrix", "MX"), ("Veltro", "VT"), ("Strada", "SD"), ("Aurion", "AU")),
        lines=("Vault", "Transit", "Shield", "Rapid", "Nomad", "Keep"),
        axes=(
            _Axis("Storage Capacity", "storage", ("500GB", "1TB", "2TB", "4TB", "5TB"), 0.6),
            _Axis("Color", "color", ("Graphite", "Silver", "Midnight Blue", "Coral Red", "Onyx Black",
                                     "Arctic White", "Teal"), 0.4),
        ),
        fixed=(
            ("Drive Type", ("Portable SSD", "Portable Hard Drive")),
            ("Interface", ("USB 3.2 Gen 2", "USB 3.2 Gen 1", "Thunderbolt 4")),
            ("Connector Type", ("USB Type-C",)),
            ("Maximum Read Speed", ("1050 megabytes per second", "540 megabytes per second",
                                    "2000 megabytes per second")),
            ("Compatible Platforms", ("Windows, macOS", "Windows, macOS, Android")),
            ("Hardware Encryption", ("Yes", "No")),
            ("Drop Protection", ("2 meters", "3 meters")),
            ("Product Weight", ("2.1 ounces", "6.4 ounces")),
            _WARRANTY,
        ),
        sections=(
            ("Key Specs", ("Storage Capacity", "Drive Type", "Interface")),
            _GENERAL,
            ("Performance", ("Maximum Read Speed", "Connector Type")),
            ("Compatibility", ("Compatible Platforms",)),
            ("Features", ("Hardware Encryption", "Drop Protection")),
            ("Dimensions", ("Product Weight",)),
            ("Warranty", ("Manufacturer's Warranty - Parts",)),
        ),
        name_format="{Brand} - {Series} {Storage Capacity} External {Interface} {Drive Type} - {Color}",
        says={
            "Interface": ("Transfers over {v} are fast.",),
            "Maximum Read Speed": ("I measured close to {v} in benchmarks.",),
            "Drive Type": ("As a {v} it slips right into my pocket.",),
        },
        pros=("Backups finish much faster than with my old drive.", "It's tiny and light.",
              "It worked on my laptop without any setup.", "It feels rugged."),
        cons=("It gets warm during long transfers.", "The included cable is short.",
              "The bundled backup software is confusing."),
        description=("Take your files anywhere with the {Brand} {Series} {Drive Type}: {Interface} speeds "
                     "up to {Maximum Read Speed} in a pocket-size, drop-resistant shell."),
        features=(
            ("Blazing transfers", "Up to {Maximum Read Speed} over {Interface}."),
            ("Rugged design", "Drop protection up to {Drop Protection}."),
            ("Works everywhere", "Compatible with {Compatible Platforms}."),
        ),
        variant_feature=("Storage Capacity", "Room to grow", "{Storage Capacity} for your photos, videos and backups."),
    ),
    _Category(
        name="Sneakers",
        noun="Running Shoes",
        nouns=("shoes", "sneakers"),
        plural=True,
        shape="shoe",
        brands=(("Stridera", "ST"), ("Pacevia", "PV"), ("Kestrel", "KS"), ("Arvo", "AV")),
        lines=("Glide", "Sprint", "Cloudrun", "Trailhawk", "Flux", "Pace", "Bolt", "Ridge"),
        axes=(
            _Axis("Shoe Size", "shoe", ("US 7", "US 7.5", "US 8", "US 8.5", "US 9", "US 9.5", "US 10", "US 10.5",
                                        "US 11", "US 11.5", "US 12", "US 13"), 0.55),
            _Axis("Color", "color", ("Black", "White", "Navy", "Heather Gray", "Red", "Royal Blue", "Olive",
                                     "Sand", "Sunset Orange"), 0.45),
        ),
        fixed=(
            ("Gender", ("Men's", "Women's")),
            ("Upper Material", ("Engineered Mesh", "Knit", "Leather")),
            ("Sole Material", ("Rubber", "EVA Foam")),
            ("Closure", ("Lace-Up",)),
            ("Shoe Width", ("Standard Width", "Wide Width")),
            ("Heel-to-Toe Drop", ("8 millimeters", "10 millimeters")),
            ("Activity", ("Running", "Training", "Walking")),
            ("Product Weight", ("9.2 ounces", "10.1 ounces")),
            ("Care Instructions", ("Spot clean",)),
        ),
        sections=(
            ("Key Specs", ("Shoe Size", "Gender", "Activity")),
            _GENERAL,
            ("Materials", ("Upper Material", "Sole Material")),
            ("Fit", ("Closure", "Shoe Width", "Heel-to-Toe Drop")),
            ("Dimensions", ("Product Weight",)),
            ("Care", ("Care Instructions",)),
        ),
        name_format="{Brand} - {Gender} {Series} Running Shoes - Size {Shoe Size} - {Color}",
        says={
            "Upper Material": ("The {v} upper breathes well.",),
            "Sole Material": ("The {v} sole grips well on wet pavement.",),
            "Activity": ("I use them mostly for {v|lower}.",),
        },
        pros=("They are comfortable right out of the box.", "Great cushioning on long runs.",
              "They look even better in person.", "There's plenty of room in the toe box.",
              "Light and breathable."),
        cons=("The laces come undone easily.", "They squeak on hard floors.", "The tongue slides to one side.",
              "They run a bit narrow."),
        description=("The {Brand} {Series} keeps you moving with a breathable {Upper Material} upper and a "
                     "grippy {Sole Material} outsole."),
        features=(
            ("Breathable upper", "{Upper Material} keeps your feet cool."),
            ("Responsive cushioning", "A {Heel-to-Toe Drop} drop for a natural stride."),
            ("Secure fit", "{Closure} closure locks your foot in."),
        ),
    ),
    _Category(
        name="T-Shirts",
        noun="T-Shirt",
        nouns=("shirt", "tee", "t-shirt"),
        plural=False,
        shape="shirt",
        brands=(("Threadline", "TL"), ("Northwear", "NW"), ("Arvo", "AV"), ("Cotton & Co.", "CC")),
        lines=("Essential", "Heritage", "Everyday", "Classic", "Weekend", "Studio", "Canvas"),
        axes=(
            _Axis("Clothing Size", "clothing", ("Small", "Medium", "Large", "X-Large", "XX-Large"), 0.5),
            _Axis("Color", "color", ("Black", "White", "Navy", "Heather Gray", "Red", "Olive", "Royal Blue",
                                     "Maroon", "Sand", "Teal"), 0.5),
        ),
        fixed=(
            ("Material", ("100% Cotton", "Cotton/Polyester Blend", "Organic Cotton")),
            ("Fit", ("Regular Fit", "Slim Fit", "Relaxed Fit")),
            ("Sleeve Length", ("Short Sleeve", "Long Sleeve")),
            ("Neckline", ("Crew Neck", "V-Neck")),
            ("Gender", ("Men's", "Women's", "Unisex")),
            ("Care Instructions", ("Machine wash cold",)),
            ("Fabric Weight", ("5.3 ounces", "6.1 ounces")),
            ("Pattern", ("Solid",)),
        ),
        sections=(
            ("Key Specs", ("Clothing Size", "Material", "Fit")),
            _GENERAL,
            ("Style", ("Sleeve Length", "Neckline", "Gender", "Pattern")),
            ("Fabric", ("Fabric Weight", "Care Instructions")),
        ),
        name_format="{Brand} - {Gender} {Series} {Neckline} T-Shirt - Size {Clothing Size} - {Color}",
        says={
            "Material": ("The {v} fabric feels soft.",),
            "Fit": ("The {v|lower} is flattering.",),
            "Neckline": ("I like the {v|lower} cut.",),
        },
        pros=("The fabric is soft and doesn't pill.", "It held its shape after several washes.",
              "The stitching looks durable.", "A great basic for layering."),
        cons=("It shrank a bit after the first wash.", "The fabric is thinner than I expected.",
              "The collar stretched out quickly."),
        description=("A wardrobe staple: the {Brand} {Series} tee in soft {Material}, cut in a {Fit} "
                     "with a {Neckline}."),
        features=(
            ("Soft fabric", "{Material} feels great all day."),
            ("Easy care", "{Care Instructions}, tumble dry low."),
            ("Everyday fit", "{Fit} with a {Neckline} collar."),
        ),
    ),
    _Category(
        name="Printers",
        noun="Printer",
        nouns=("printer",),
        plural=False,
        shape="printer",
        brands=(("Printra", "PT"), ("Kestrel", "KS"), ("Docuvia", "DV"), ("Inkwell", "IW")),
        lines=("OfficeJet", "Studio", "Envoy", "Workforce", "Quillset", "Lumen"),
        axes=(
            _Axis("Functions", "functions", ("Print Only", "Print/Copy/Scan", "Print/Copy/Scan/Fax"), 0.6),
            _Axis("Color", "color", ("White", "Black", "Heather Gray", "Royal Blue"), 0.4),
        ),
        fixed=(
            ("Printing Technology", ("Inkjet", "Laser")),
            ("Print Speed", ("22 pages per minute", "30 pages per minute", "40 pages per minute")),
            ("Maximum Print Resolution", ("4800 x 1200 dpi", "1200 x 1200 dpi")),
            ("Automatic Duplex Printing", ("Yes", "No")),
            ("Paper Capacity", ("100 sheets", "150 sheets", "250 sheets")),
            ("Connectivity", ("Wi-Fi, USB", "Wi-Fi, Ethernet, USB")),
            ("Mobile Printing", ("Yes",)),
            ("Monthly Duty Cycle", ("1000 pages", "15000 pages")),
            _WARRANTY,
        ),
        sections=(
            ("Key Specs", ("Functions", "Printing Technology", "Print Speed")),
            _GENERAL,
            ("Printing", ("Maximum Print Resolution", "Automatic Duplex Printing", "Monthly Duty Cycle")),
            ("Paper Handling", ("Paper Capacity",)),
            ("Connectivity", ("Connectivity", "Mobile Printing")),
            ("Warranty", ("Manufacturer's Warranty - Parts",)),
        ),
        name_format="{Brand} - {Series} {Printing Technology} Printer ({Functions}) - {Color}",
        says={
            "Printing Technology": ("It's a {v|lower} printer and the prints are crisp.",),
            "Print Speed": ("It prints around {v}, plenty fast.",),
            "Paper Capacity": ("The {v} tray means fewer refills.",),
        },
        pros=("Prints come out crisp and clean.", "Setting it up on my home network was painless.",
              "Printing from my phone works well.", "It's quieter than my old one."),
        cons=("The cartridges are expensive.", "The app keeps asking me to sign in.", "Paper jams now and then.",
              "It takes a while to wake up."),
        description=("The {Brand} {Series} {Printing Technology} printer prints up to {Print Speed} at "
                     "{Maximum Print Resolution}, with easy mobile printing."),
        features=(
            ("Fast printing", "Up to {Print Speed}."),
            ("Big paper tray", "A {Paper Capacity} tray means fewer refills."),
            ("Connect your way", "{Connectivity} connections."),
        ),
    ),
    _Category(
        name="Coffee Makers",
        noun="Coffee Maker",
        nouns=("coffee maker", "machine"),
        plural=False,
        shape="coffee",
        brands=(("Cafeva", "CF"), ("Mornia", "MR"), ("Kestrel", "KS"), ("Aurion", "AU")),
        lines=("Brewline", "Daybreak", "Roastery", "Barista", "Percola", "Kettlebrook"),
        axes=(
            _Axis("Capacity", "cups", ("4 cups", "5 cups", "10 cups", "12 cups", "14 cups"), 0.4),
            _Axis("Wattage", "watts", ("900 watts", "1000 watts", "1200 watts", "1500 watts"), 0.2),
            _Axis("Color", "color", ("Onyx Black", "Stainless Steel", "Coral Red", "Arctic White", "Cream",
                                     "Teal"), 0.4),
        ),
        fixed=(
            ("Coffee Maker Type", ("Drip Coffee Maker", "Single-Serve and Carafe")),
            ("Carafe Material", ("Glass", "Thermal Stainless Steel")),
            ("Programmable", ("Yes", "No")),
            ("Automatic Shutoff", ("Yes",)),
            ("Brew Strength Control", ("Yes", "No")),
            ("Water Filter", ("Charcoal filter included", "Not included")),
            ("Product Height", ("14.2 inches", "15.1 inches")),
            _WARRANTY,
        ),
        sections=(
            ("Key Specs", ("Capacity", "Coffee Maker Type", "Wattage")),
            _GENERAL,
            ("Features", ("Carafe Material", "Programmable", "Automatic Shutoff", "Brew Strength Control",
                          "Water Filter")),
            ("Dimensions", ("Product Height",)),
            ("Warranty", ("Manufacturer's Warranty - Parts",)),
        ),
        name_format="{Brand} - {Series} {Capacity|cup} {Coffee Maker Type} - {Color}",
        says={
            "Carafe Material": ("The {v|lower} carafe pours cleanly.",),
            "Coffee Maker Type": ("As a {v|lower} it covers everything I need.",),
        },
        pros=("Coffee comes out hot and flavorful.", "The timer means coffee is ready when I wake up.",
              "It's easy to clean.", "It brews quickly.", "The buttons are simple to use."),
        cons=("The carafe drips when pouring.", "It's louder than expected.", "The water window is hard to see."),
        description=("Start every morning with café-quality coffee from the {Brand} {Series} "
                     "{Coffee Maker Type}, with a {Carafe Material} carafe."),
        features=(
            ("Brew your way", "Choose regular or bold flavor."),
            ("Keeps it hot", "{Carafe Material} carafe keeps coffee at the right temperature."),
            ("Set and forget", "Automatic shutoff for peace of mind."),
        ),
        variant_feature=("Capacity", "Brew for everyone", "Makes up to {Capacity} per pot."),
    ),
)
CATEGORY_NAMES: tuple[str, ...] = tuple(c.name for c in CATEGORIES)

# Values the AMELI code drops when it builds the attribute vocabulary: never stated, never gold.
_DROPPED_VALUES = frozenset({"yes", "no", "none", "other"})


def is_informative_value(value: str) -> bool:
    """Whether AMELI's preprocessing keeps this attribute value (see AMELI_NOTES.md)."""
    v = value.strip().lower()
    return len(v) > 1 and v not in _DROPPED_VALUES and not v.isdigit()


# ---------------------------------------------------------------------------------------------
# Planning: families and products
# ---------------------------------------------------------------------------------------------


@dataclass
class _Product:
    entity_id: int
    family: "_Family"
    attrs: dict[str, str]  # Spec key -> value, in Spec order
    name: str = ""
    image_views: tuple[int, ...] = ()

    @property
    def category(self) -> _Category:
        return self.family.category

    @property
    def rgb(self) -> tuple[int, int, int]:
        return COLORS[self.attrs["Color"]].rgb


@dataclass
class _Family:
    index: int
    category: _Category
    brand: str
    brand_code: str
    series: str
    varying: tuple[str, ...]  # axis keys whose values differ between members
    shared: dict[str, str]  # family-level attribute values
    description: str = ""
    features: list[tuple[str, str]] = field(default_factory=list)
    members: list[_Product] = field(default_factory=list)


_FAMILY_SIZES = np.arange(2, 9)
_FAMILY_SIZE_P = np.array([0.22, 0.22, 0.18, 0.13, 0.1, 0.08, 0.07])


def _family_sizes(n_products: int, rng: np.random.Generator) -> list[int]:
    sizes: list[int] = []
    left = n_products
    while left > 0:
        size = min(int(rng.choice(_FAMILY_SIZES, p=_FAMILY_SIZE_P)), left)
        if left - size == 1:  # never leave a single product behind
            size = size + 1 if size < 8 else size - 1
        sizes.append(size)
        left -= size
    return sizes


def _plan_families(n_products: int, seed: int) -> list[_Family]:
    rng = np.random.default_rng([seed, _S_FAMILIES])
    sizes = _family_sizes(n_products, rng)
    # Cycle through categories in a shuffled order: small catalogues still cover many categories.
    order = [int(i) for i in rng.permutation(len(CATEGORIES))]
    used_series: set[str] = set()
    used_models: set[str] = set()
    families: list[_Family] = []
    products: list[_Product] = []
    for index, size in enumerate(sizes):
        category = CATEGORIES[order[index % len(order)]]
        family = _make_family(index, category, size, np.random.default_rng([seed, _S_FAMILY, index]),
                              used_series, used_models)
        families.append(family)
        products.extend(family.members)
    # Entity ids in a shuffled order, so an id says nothing about the family.
    ids = np.random.default_rng([seed, _S_IDS, 0]).permutation(len(products))
    for product, new_id in zip(products, ids):
        product.entity_id = int(new_id)
    return families


def _choose_axes(category: _Category, rng: np.random.Generator) -> list[_Axis]:
    axes = [a for a in category.axes if a.weight > 0]
    weights = np.array([a.weight for a in axes])
    n = 1 if len(axes) == 1 or rng.random() < 0.6 else 2
    picked = rng.choice(len(axes), size=n, replace=False, p=weights / weights.sum())
    return [axes[int(i)] for i in sorted(picked)]


def _pick_colors(names: Sequence[str], count: int, rng: np.random.Generator) -> list[str]:
    """Up to `count` colours with distinct groups and well-separated RGB values."""
    chosen: list[str] = []
    for i in rng.permutation(len(names)):
        name = names[int(i)]
        c = COLORS[name]
        if any(COLORS[o].group == c.group or _rgb_distance(COLORS[o].rgb, c.rgb) < _MIN_FAMILY_COLOR_DISTANCE
               for o in chosen):
            continue
        chosen.append(name)
        if len(chosen) == count:
            break
    return chosen


def _rgb_distance(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    return math.dist(a, b)


def _axis_values(axis: _Axis, count: int, rng: np.random.Generator) -> list[str]:
    if axis.kind == "color":
        return _pick_colors(axis.values, count, rng)
    count = min(count, len(axis.values))
    if axis.kind in ("plain", "functions"):
        return [axis.values[int(i)] for i in sorted(rng.choice(len(axis.values), size=count, replace=False))]
    start = int(rng.integers(0, len(axis.values) - count + 1))  # a realistic contiguous line-up
    return list(axis.values[start:start + count])


def _make_family(index: int, category: _Category, size: int, rng: np.random.Generator,
                 used_series: set[str], used_models: set[str]) -> _Family:
    brand, brand_code = category.brands[int(rng.integers(len(category.brands)))]
    series = _unique_series(category, rng, used_series)
    axes, combos = _choose_variants(category, size, rng)
    if len(combos) < size:  # every category can reach 8 members; a shortfall is a table bug
        raise RuntimeError(f"{category.name}: could only make {len(combos)} of {size} family members")

    shared: dict[str, str] = {}
    for axis in category.axes:  # non-varying axes get one family-wide value
        if axis not in axes:
            shared[axis.key] = (_pick_colors(axis.values, 1, rng)[0] if axis.kind == "color"
                                else axis.values[int(rng.integers(len(axis.values)))])
    for key, options in category.fixed:
        shared[key] = options[int(rng.integers(len(options)))]
    varying = tuple(a.key for i, a in enumerate(axes) if len({c[i] for c in combos}) > 1)
    family = _Family(index, category, brand, brand_code, series, varying, shared)
    # Templates are filled per product; those of a family name only shared values, so the
    # description cannot tell family members apart (the optional variant feature can).
    family.description = category.description
    order = rng.permutation(len(category.features))
    family.features = [category.features[int(i)] for i in order[: int(rng.integers(3, len(order) + 1))]]
    base = {"Brand": brand, "Series": series, **shared}

    style = int(rng.integers(3))
    base_digits = int(rng.integers(100, 999))
    use_variant_feature = category.variant_feature is not None and rng.random() < 0.5
    n_images = rng.choice([1, 2, 3], size=len(combos), p=[0.3, 0.4, 0.3])
    for m, combo in enumerate(combos):
        values = dict(base)
        for axis, value in zip(axes, combo):
            values[axis.key] = value
        model = _model_number(family, values, style, base_digits, m, used_models)
        values["Model Number"] = model
        attrs = _ordered_spec(category, values)
        product = _Product(entity_id=-1, family=family, attrs=attrs)
        product.name = _fill(category.name_format, attrs)
        views = [0] + sorted(int(v) for v in rng.choice([1, 2], size=int(n_images[m]) - 1, replace=False))
        product.image_views = tuple(views)
        family.members.append(product)
    if use_variant_feature and category.variant_feature is not None:
        family.features.append(category.variant_feature[1:])
    return family


def _choose_variants(category: _Category, size: int, rng: np.random.Generator
                     ) -> tuple[list[_Axis], list[tuple[str, ...]]]:
    """The axes a family varies along and `size` distinct value combinations (fewer only on failure)."""
    best: tuple[list[_Axis], list[tuple[str, ...]]] = ([], [])
    for attempt in range(13):
        if attempt < 12:
            axes = _choose_axes(category, rng)
            if len(axes) == 1:
                value_lists = [_axis_values(axes[0], size, rng)]
            else:
                first = _axis_values(axes[0], int(rng.integers(2, min(4, len(axes[0].values)) + 1)), rng)
                value_lists = [first, _axis_values(axes[1], math.ceil(size / max(1, len(first))), rng)]
        else:  # last resort: the two most common axes with every value they have
            axes = sorted((a for a in category.axes if a.weight > 0), key=lambda a: -a.weight)[:2]
            value_lists = [_axis_values(a, len(a.values), rng) for a in axes]
        combos = _grid(value_lists)
        if len(axes) == 2:
            combos = [combos[int(i)] for i in rng.permutation(len(combos))]
        if len(combos) >= size:
            return axes, combos[:size]
        if len(combos) > len(best[1]):
            best = (axes, combos)
    return best


def _grid(value_lists: list[list[str]]) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = [()]
    for values in value_lists:
        out = [o + (v,) for o in out for v in values]
    return out


def _unique_series(category: _Category, rng: np.random.Generator, used: set[str]) -> str:
    suffixes = ("2", "3", "5", "7", "X", "X2", "S", "Pro", "Max", "Lite", "Plus", "Neo", "One", "Air")
    for _ in range(200):
        stem = category.lines[int(rng.integers(len(category.lines)))]
        series = f"{stem} {suffixes[int(rng.integers(len(suffixes)))]}"
        if series not in used:
            used.add(series)
            return series
    n = len(used)  # catalogues far beyond the default size: number the series
    series = f"{category.lines[0]} {n}"
    used.add(series)
    return series


def _ordered_spec(category: _Category, values: dict[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for _, keys in category.sections:
        for key in keys:
            if key in values and key not in out:
                out[key] = values[key]
    for key, value in values.items():  # anything a section list forgot still lands in the Spec
        out.setdefault(key, value)
    return out


def _spec_sections(product: _Product) -> list[dict[str, Any]]:
    placed: set[str] = set()
    sections: list[dict[str, Any]] = []
    for title, keys in product.category.sections:
        rows = [{"specification": k, "value": product.attrs[k]} for k in keys if k in product.attrs and k not in placed]
        placed.update(r["specification"] for r in rows)
        if rows:
            sections.append({"subsection": title, "text": rows})
    rest = [{"specification": k, "value": v} for k, v in product.attrs.items() if k not in placed]
    if rest:
        sections.append({"subsection": "Other", "text": rest})
    return sections


def _axis_code(kind: str, value: str) -> str:
    if kind == "color":
        return COLORS[value].code
    if kind == "storage":
        return value.replace("GB", "").replace("TB", "T")
    if kind == "clothing":
        return {"Small": "S", "Medium": "M", "Large": "L", "X-Large": "XL", "XX-Large": "XXL"}[value]
    if kind == "functions":
        return {"Print Only": "P", "Print/Copy/Scan": "M", "Print/Copy/Scan/Fax": "F"}[value]
    if kind == "watts":
        return value.split()[0][:2]
    if kind == "plain":
        return "".join(w[0] for w in re.findall(r"[A-Za-z0-9]+", value)).upper()[:3]
    return re.sub(r"[^0-9]", "", value) or value[:2].upper()


def _model_number(family: _Family, values: dict[str, str], style: int, base_digits: int, member: int,
                  used: set[str]) -> str:
    """A realistic, unique model number: 'NV-AX2-256-MB', 'KS-G991B' or 'VS55Q7B' style."""
    category = family.category
    stem_code = "".join(w[0] for w in family.series.split()).upper() + str(base_digits % 10)
    codes = [_axis_code(a.kind, values[a.key]) for a in category.axes]
    if style == 0:
        model = f"{family.brand_code}-{stem_code}-" + "-".join(codes)
    elif style == 1:
        letters = "BUNWXAEF"
        model = f"{family.brand_code}-{family.series[0].upper()}{base_digits}{letters[member % len(letters)]}"
        model += "" if member < len(letters) else str(member // len(letters))
    else:
        model = f"{family.brand_code}{''.join(codes[:2])}{stem_code}{'ABCDEFGH'[member % 8]}"
    candidate, k = model, 1
    while candidate in used:  # rare collisions between families: add a revision digit
        k += 1
        candidate = f"{model}{k}"
    used.add(candidate)
    return candidate


_FILL = re.compile(r"\{([^{}|]+)(?:\|([a-z]+))?\}")


def _display(value: str, how: str | None) -> str:
    number = value.split()[0]
    if how == "inch":
        return f'{number}"'
    if how == "hz":
        return f"{number}Hz"
    if how == "cup":
        return f"{number}-Cup"
    if how == "lower":
        return value.lower()
    return value


def _fill(template: str, values: dict[str, str]) -> str:
    return _FILL.sub(lambda m: _display(values[m.group(1)], m.group(2)), template)


def _entity_json(product: _Product, image_names: list[str]) -> dict[str, Any]:
    family = product.family
    sku = 6_400_000 + product.entity_id * 7
    slug = re.sub(r"[^a-z0-9]+", "-", product.name.lower()).strip("-")[:90]
    features = [{"header": h, "description": _fill(t, product.attrs)} for h, t in family.features]
    description = _fill(family.description, product.attrs)
    return {
        "id": product.entity_id,
        "product_name": product.name,
        "product_category": product.category.name,
        "url": f"https://example.com/site/{slug}/{sku}.p?skuId={sku}",
        "overview_section": {"description": description, "features": features},
        "Spec": _spec_sections(product),
        "image_path": image_names,
    }


# ---------------------------------------------------------------------------------------------
# Rendering product images
# ---------------------------------------------------------------------------------------------

_N_VIEWS = 3  # 0: the product, 1: its retail box, 2: another side (with the model sticker)
_BG = (247, 247, 245)
_OUTLINE = (70, 70, 74)
_LABEL_BG = (250, 250, 246)
_INK = (16, 16, 18)
_DARK = (22, 24, 30)
_Line = tuple[str, tuple[str, ...], int]  # a label line: text, the Spec keys it shows, font px at 224


@dataclass(frozen=True)
class _TextLine:
    """One printed line: where its glyphs are, how big, and which Spec values it shows."""

    text: str
    box: tuple[int, int, int, int]
    font_px: int
    keys: tuple[str, ...]
    group: int  # lines of one label share a group; a close-up photo frames a whole group


@dataclass
class _Rendered:
    image: Image.Image
    body: np.ndarray  # bool mask: pixels painted in the product's colour
    foreground: np.ndarray  # bool mask: everything that is not background
    lines: list[_TextLine]


@lru_cache(maxsize=64)
def _font(px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=px)


class _Canvas:
    """Draws each shape three times: the picture, a product-colour mask and a foreground mask."""

    def __init__(self, size: int, layout: np.random.Generator) -> None:
        self.size = size
        self.image = Image.new("RGB", (size, size), _BG)
        self._body = Image.new("L", (size, size), 0)
        self._fg = Image.new("L", (size, size), 0)
        self._draws = (ImageDraw.Draw(self.image), ImageDraw.Draw(self._body), ImageDraw.Draw(self._fg))
        self.lines: list[_TextLine] = []
        # Family-level layout jitter: members of a family look alike except colour and labels.
        self.dx, self.dy = (float(v) for v in layout.uniform(-0.03, 0.03, size=2))
        self.scale = float(layout.uniform(0.92, 1.04))

    def pt(self, x: float, y: float) -> tuple[int, int]:
        s = self.size
        return (round(((x - 0.5) * self.scale + 0.5 + self.dx) * s),
                round(((y - 0.5) * self.scale + 0.5 + self.dy) * s))

    def box(self, x0: float, y0: float, x1: float, y1: float) -> tuple[int, int, int, int]:
        return (*self.pt(x0, y0), *self.pt(x1, y1))

    def px(self, v: float) -> int:
        return max(1, round(v * self.size * self.scale))

    def shape(self, kind: str, xy: Any, fill: tuple[int, int, int], *, body: bool, outline: bool = True,
              **kw: Any) -> None:
        img, bmask, fmask = self._draws
        width = max(1, self.px(0.008)) if outline else 0
        if kind in ("line", "arc"):
            w = kw.pop("width")
            getattr(img, kind)(xy, fill=fill, width=w, **kw)
            getattr(bmask, kind)(xy, fill=255 if body else 0, width=w, **kw)
            getattr(fmask, kind)(xy, fill=255, width=w, **kw)
            return
        line_color = _OUTLINE if outline else None
        getattr(img, kind)(xy, fill=fill, outline=line_color, width=width, **kw)
        getattr(bmask, kind)(xy, fill=255 if body else 0, outline=0 if outline else None, width=width, **kw)
        getattr(fmask, kind)(xy, fill=255, outline=255 if outline else None, width=width, **kw)

    def label(self, xy: tuple[int, int, int, int], lines: Sequence[_Line],
              *, background: bool = True) -> None:
        """A light label with dark, centred lines of text, each shrunk to fit the label width."""
        x0, y0, x1, y1 = xy
        if background:
            self.shape("rectangle", xy, _LABEL_BG, body=False)
        width, height = x1 - x0, y1 - y0
        sizes = []
        for text, _, max_px in lines:
            px = max(6, round(max_px * self.size / 224 * self.scale))
            while px > 6 and _font(px).getlength(text) > 0.9 * width:
                px -= 1
            sizes.append(px)
        total = sum(1.25 * p for p in sizes)
        if total > 0.92 * height:  # too tall: shrink every line alike
            factor = 0.92 * height / total
            sizes = [max(6, int(p * factor)) for p in sizes]
            total = sum(1.25 * p for p in sizes)
        group = len({ln.group for ln in self.lines})
        y = y0 + (height - total) / 2
        draw = self._draws[0]
        for (text, keys, _), px in zip(lines, sizes):
            cx, cy = (x0 + x1) / 2, y + 0.625 * px
            draw.text((cx, cy), text, fill=_INK, font=_font(px), anchor="mm")
            bbox = draw.textbbox((cx, cy), text, font=_font(px), anchor="mm")
            self.lines.append(_TextLine(text, tuple(int(v) for v in bbox), px, keys, group))  # type: ignore[arg-type]
            y += 1.25 * px

    def done(self) -> _Rendered:
        return _Rendered(self.image, np.asarray(self._body) > 127, np.asarray(self._fg) > 127, self.lines)


def _printed(kind: str, value: str) -> str:
    """How a value is printed on a label (OCR reads this; `gold` then records the Spec value)."""
    number = value.split()[0]
    return {
        "inches": f"{number} INCH",
        "hertz": f"{number}Hz",
        "watts": f"{number}W",
        "cups": f"{number} CUP",
        "ram": f"{value} RAM",
    }.get(kind, value.upper() if kind in ("clothing", "functions", "plain") else value)


def _printed_lines(product: _Product, *, big: int, keys: Iterable[str] | None = None) -> list[_Line]:
    """Label lines for the printable axis values of `product` (all of them unless `keys` given)."""
    out = []
    for axis in product.category.axes:
        if axis.kind == "color" or not axis.printed or (keys is not None and axis.key not in keys):
            continue
        value = product.attrs[axis.key]
        text = _printed(axis.kind, value)
        if axis.kind == "storage" and axis.key == "Solid State Drive Capacity":
            text = f"{value} SSD"
        out.append((text, (axis.key,), big))
    return out


def _render_view(product: _Product, view: int, size: int, seed: int) -> _Rendered:
    canvas = _Canvas(size, np.random.default_rng([seed, _S_LAYOUT, product.family.index, view]))
    if view == 1:
        _draw_box(canvas, product)
    else:
        _DRAWERS[product.category.shape](canvas, product, view)
    return canvas.done()


def _brand_line(product: _Product, px: int) -> _Line:
    return (product.family.brand.upper(), ("Brand",), px)


def _model_line(product: _Product, px: int) -> _Line:
    return (product.attrs["Model Number"], ("Model Number",), px)


def _draw_box(c: _Canvas, p: _Product) -> None:
    """The retail box: a band in the product colour and a printed face naming the variant."""
    c.shape("rectangle", c.box(0.12, 0.08, 0.88, 0.92), (232, 230, 224), body=False)
    c.shape("rectangle", c.box(0.12, 0.08, 0.88, 0.30), p.rgb, body=True)
    series = (f"{p.family.series.upper()} {p.category.noun.upper()}", ("Series",), 13)
    lines = [_brand_line(p, 22), series, *_printed_lines(p, big=24), _model_line(p, 11)]
    c.label(c.box(0.16, 0.34, 0.84, 0.88), lines, background=False)


def _draw_phone(c: _Canvas, p: _Product, view: int) -> None:
    body = c.box(0.30, 0.06, 0.70, 0.94)
    c.shape("rounded_rectangle", body, p.rgb, body=True, radius=c.px(0.06))
    if view == 0:
        c.shape("rounded_rectangle", c.box(0.325, 0.10, 0.675, 0.90), _DARK, body=False, radius=c.px(0.03))
        c.label(c.box(0.335, 0.38, 0.665, 0.62), [*_printed_lines(p, big=26), _brand_line(p, 12)])
    else:
        c.shape("rounded_rectangle", c.box(0.34, 0.10, 0.50, 0.30), _DARK, body=False, radius=c.px(0.03))
        for y in (0.15, 0.24):
            c.shape("ellipse", c.box(0.37, y - 0.035, 0.44, y + 0.035), (60, 62, 70), body=False)
        c.label(c.box(0.325, 0.74, 0.675, 0.86), [_brand_line(p, 9), _model_line(p, 9)])


def _draw_laptop(c: _Canvas, p: _Product, view: int) -> None:
    if view == 0:
        c.shape("rectangle", c.box(0.16, 0.10, 0.84, 0.62), p.rgb, body=True)
        c.shape("rectangle", c.box(0.19, 0.13, 0.81, 0.59), _DARK, body=False, outline=False)
        c.shape("polygon", [c.pt(0.16, 0.62), c.pt(0.84, 0.62), c.pt(0.95, 0.76), c.pt(0.05, 0.76)], p.rgb, body=True)
        c.shape("polygon", [c.pt(0.20, 0.64), c.pt(0.80, 0.64), c.pt(0.86, 0.71), c.pt(0.14, 0.71)],
                (40, 40, 46), body=False, outline=False)
        c.label(c.box(0.28, 0.22, 0.72, 0.50), [*_printed_lines(p, big=18), _brand_line(p, 10)])
    else:  # closed lid from above, brand plate and a service sticker
        c.shape("rounded_rectangle", c.box(0.10, 0.18, 0.90, 0.82), p.rgb, body=True, radius=c.px(0.03))
        c.label(c.box(0.36, 0.40, 0.64, 0.52), [_brand_line(p, 16)])
        c.label(c.box(0.56, 0.66, 0.86, 0.78), [_model_line(p, 9)])


def _draw_headphones(c: _Canvas, p: _Product, view: int) -> None:
    c.shape("arc", c.box(0.22, 0.12, 0.78, 0.80), p.rgb, body=True, start=180, end=360, width=c.px(0.06))
    for x in (0.16, 0.64):
        c.shape("ellipse", c.box(x, 0.40, x + 0.20, 0.74), p.rgb, body=True)
        c.shape("ellipse", c.box(x + 0.04, 0.46, x + 0.16, 0.68), (44, 44, 48), body=False, outline=False)
    if view == 0:
        c.label(c.box(0.36, 0.78, 0.64, 0.86), [_brand_line(p, 12)])
    else:
        c.label(c.box(0.26, 0.80, 0.74, 0.95), [*_printed_lines(p, big=11), _model_line(p, 10)])


def _draw_screen(c: _Canvas, p: _Product, view: int, *, monitor: bool) -> None:
    top, bottom = (0.14, 0.66) if monitor else (0.12, 0.70)
    if view == 0:
        c.shape("rectangle", c.box(0.06, top, 0.94, bottom), p.rgb, body=True)
        c.shape("rectangle", c.box(0.09, top + 0.03, 0.91, bottom - 0.03), (38, 60, 110), body=False, outline=False)
        c.shape("polygon", [c.pt(0.09, bottom - 0.03), c.pt(0.50, top + 0.10), c.pt(0.91, bottom - 0.03)],
                (90, 120, 170), body=False, outline=False)
        c.label(c.box(0.60, top + 0.05, 0.89, top + 0.21), _printed_lines(p, big=16))
    else:  # the back: vents and the model sticker
        c.shape("rectangle", c.box(0.10, top, 0.90, bottom), p.rgb, body=True)
        for i in range(5):
            y = top + 0.06 + 0.03 * i
            c.shape("line", [c.pt(0.30, y), c.pt(0.70, y)], _OUTLINE, body=False, width=c.px(0.008))
        c.label(c.box(0.34, bottom - 0.20, 0.66, bottom - 0.05), [_brand_line(p, 10), _model_line(p, 9)])
    if monitor:
        c.shape("rectangle", c.box(0.46, bottom, 0.54, 0.84), p.rgb, body=True)
        c.shape("rectangle", c.box(0.30, 0.84, 0.70, 0.88), p.rgb, body=True)
    else:
        for x in (0.18, 0.76):
            c.shape("polygon", [c.pt(x, bottom), c.pt(x + 0.06, bottom), c.pt(x + 0.09, 0.80), c.pt(x - 0.03, 0.80)],
                    p.rgb, body=True)


def _draw_tv(c: _Canvas, p: _Product, view: int) -> None:
    _draw_screen(c, p, view, monitor=False)


def _draw_monitor(c: _Canvas, p: _Product, view: int) -> None:
    _draw_screen(c, p, view, monitor=True)


def _draw_card(c: _Canvas, p: _Product, view: int) -> None:
    micro = p.attrs.get("Card Type", "").startswith("micro")
    x0, x1, y0, y1 = (0.26, 0.74, 0.14, 0.86) if micro else (0.20, 0.80, 0.08, 0.92)
    notch = 0.12 if micro else 0.14
    outline = [c.pt(x0, y0), c.pt(x1 - notch, y0), c.pt(x1, y0 + notch), c.pt(x1, y1), c.pt(x0, y1)]
    c.shape("polygon", outline, p.rgb, body=True)
    if view == 0:
        c.label(c.box(x0 + 0.03, y0 + 0.24, x1 - 0.03, y1 - 0.10),
                [_brand_line(p, 12), *_printed_lines(p, big=26)])
    else:  # the back: gold contacts and a fine-print model number
        for i in range(7):
            x = x0 + 0.05 + i * (x1 - x0 - 0.10) / 7
            c.shape("rectangle", c.box(x, y0 + 0.04, x + 0.035, y0 + 0.16), (200, 170, 80), body=False, outline=False)
        c.label(c.box(x0 + 0.04, y1 - 0.22, x1 - 0.04, y1 - 0.06), [_model_line(p, 9)])


def _draw_drive(c: _Canvas, p: _Product, view: int) -> None:
    c.shape("rounded_rectangle", c.box(0.22, 0.12, 0.78, 0.88), p.rgb, body=True, radius=c.px(0.05))
    c.shape("ellipse", c.box(0.48, 0.16, 0.52, 0.20), (90, 200, 255), body=False, outline=False)
    if view == 0:
        c.label(c.box(0.28, 0.36, 0.72, 0.64), [_brand_line(p, 13), *_printed_lines(p, big=26)])
    else:
        c.label(c.box(0.28, 0.70, 0.72, 0.82), [_model_line(p, 9), *_printed_lines(p, big=9)])


def _draw_shoe(c: _Canvas, p: _Product, view: int) -> None:
    flip = view == 2  # the other shoe of the pair, seen from the other side
    fx: Callable[[float], float] = (lambda x: 1 - x) if flip else (lambda x: x)
    sole = [(0.07, 0.68), (0.95, 0.68), (0.96, 0.74), (0.90, 0.79), (0.10, 0.80), (0.06, 0.75)]
    upper = [(0.09, 0.69), (0.10, 0.48), (0.20, 0.40), (0.33, 0.45), (0.45, 0.34), (0.55, 0.42), (0.76, 0.52),
             (0.89, 0.57), (0.94, 0.64), (0.93, 0.69)]
    c.shape("polygon", [c.pt(fx(x), y) for x, y in sole], (236, 236, 232), body=False)
    c.shape("polygon", [c.pt(fx(x), y) for x, y in upper], p.rgb, body=True)
    for i in range(4):
        x = 0.46 + 0.06 * i
        c.shape("line", [c.pt(fx(x), 0.40 + 0.035 * i), c.pt(fx(x + 0.05), 0.45 + 0.035 * i)], (235, 235, 235),
                body=False, width=c.px(0.012))
    if view == 0:  # the hang tag
        c.shape("line", [c.pt(0.30, 0.38), c.pt(0.30, 0.14)], _OUTLINE, body=False, width=c.px(0.006))
        c.label(c.box(0.20, 0.06, 0.56, 0.22), [*_printed_lines(p, big=20), _brand_line(p, 10)])
    else:  # the tongue label
        c.label(c.box(0.30, 0.12, 0.70, 0.30), [*_printed_lines(p, big=14), _model_line(p, 9)])


def _draw_shirt(c: _Canvas, p: _Product, view: int) -> None:
    shirt = [(0.30, 0.10), (0.42, 0.10), (0.50, 0.16), (0.58, 0.10), (0.70, 0.10), (0.92, 0.28), (0.82, 0.40),
             (0.74, 0.34), (0.74, 0.92), (0.26, 0.92), (0.26, 0.34), (0.18, 0.40), (0.08, 0.28)]
    c.shape("polygon", [c.pt(x, y) for x, y in shirt], p.rgb, body=True)
    if view == 0:  # the neck tag
        c.label(c.box(0.40, 0.17, 0.60, 0.27), _printed_lines(p, big=14))
    else:  # the hang tag on the sleeve
        c.label(c.box(0.52, 0.52, 0.86, 0.72), [_brand_line(p, 11), *_printed_lines(p, big=14), _model_line(p, 8)])


def _draw_printer(c: _Canvas, p: _Product, view: int) -> None:
    c.shape("polygon", [c.pt(0.28, 0.36), c.pt(0.36, 0.16), c.pt(0.64, 0.16), c.pt(0.72, 0.36)], (240, 240, 236),
            body=False)
    c.shape("rounded_rectangle", c.box(0.10, 0.34, 0.90, 0.80), p.rgb, body=True, radius=c.px(0.02))
    c.shape("rectangle", c.box(0.24, 0.66, 0.76, 0.70), _DARK, body=False, outline=False)
    if view == 0:
        c.label(c.box(0.14, 0.40, 0.60, 0.60), [_brand_line(p, 14), *_printed_lines(p, big=14)])
    else:
        c.label(c.box(0.56, 0.40, 0.86, 0.56), [_model_line(p, 9)])


def _draw_coffee(c: _Canvas, p: _Product, view: int) -> None:
    c.shape("rounded_rectangle", c.box(0.24, 0.08, 0.76, 0.90), p.rgb, body=True, radius=c.px(0.03))
    c.shape("rectangle", c.box(0.30, 0.52, 0.70, 0.84), (210, 214, 218), body=False)  # the carafe bay
    c.shape("ellipse", c.box(0.34, 0.56, 0.66, 0.82), (120, 80, 50), body=False)  # coffee in the carafe
    if view == 0:
        c.label(c.box(0.30, 0.14, 0.70, 0.44), [_brand_line(p, 12), *_printed_lines(p, big=20)])
    else:
        c.label(c.box(0.30, 0.30, 0.70, 0.46), [_model_line(p, 9), *_printed_lines(p, big=9, keys=("Wattage",))])


_DRAWERS: dict[str, Callable[[_Canvas, _Product, int], None]] = {
    "phone": _draw_phone, "laptop": _draw_laptop, "headphones": _draw_headphones, "tv": _draw_tv,
    "monitor": _draw_monitor, "card": _draw_card, "drive": _draw_drive, "shoe": _draw_shoe,
    "shirt": _draw_shirt, "printer": _draw_printer, "coffee": _draw_coffee,
}


def _save_jpeg(image: Image.Image, path: Path) -> None:
    image.save(path, format="JPEG", quality=JPEG_QUALITY, optimize=False, progressive=False)


def _write_product_images(product: _Product, views: list[_Rendered], folder: Path) -> list[str]:
    names = []
    for k, view in enumerate(product.image_views):
        name = f"{product.entity_id}_{k}.jpg"
        _save_jpeg(views[view].image, folder / name)
        names.append(name)
    return names


# ---------------------------------------------------------------------------------------------
# Review photos
# ---------------------------------------------------------------------------------------------

# Calibrated with RapidOCR (PP-OCR) on these photos: text whose font is >= 10 px in the photo,
# blurred by a Gaussian radius <= px / 12, is read ~95% of the time (model numbers ~88%, letter
# confusions); below 8 px hardly ever. Between the two, a secret (a value the scenario hides) is
# not safe, so hidden values must stay under the lower bound.
# The *_CUT shares say how much of a line's height may be cut off by the photo's edge (OCR reads
# through slight clipping).
_READABLE_PX, _READABLE_BLUR, _READABLE_CUT = 10.0, 1 / 12, 0.15
_PERHAPS_PX, _PERHAPS_BLUR, _PERHAPS_CUT = 7.5, 1 / 6, 0.4
# Share of a photo in the product's colour from which it "shows the colour" (5%: a few thousand
# pixels, e.g. the headband and cups of headphones), and below which a hidden colour is safe.
_COLOR_SHOWN, _COLOR_PERHAPS = 0.05, 0.01
_BACKGROUNDS = ((150, 110, 70), (120, 120, 125), (44, 44, 50), (70, 90, 120), (214, 212, 204), (90, 120, 90),
                (176, 150, 120), (200, 190, 210))


@dataclass(frozen=True)
class _Photo:
    view: int
    crop: tuple[float, float, float]  # x0, y0, side in source pixels (a square)
    quarter_turns: int
    angle: float
    blur: float
    noise: float
    brightness: float
    contrast: float
    background: int


def _sample_photo(views: list[_Rendered], rng: np.random.Generator, target: str | None) -> _Photo:
    """A random photo of one view: the whole thing, a close-up of a label, or a detail of the body.

    Unplanned photos mostly show the product itself, as reviewers' photos do; the retail box,
    which names the variant in big letters, is photographed less often.
    """
    size = views[0].image.size[0]
    view = int(rng.choice(_N_VIEWS, p=[0.4, 0.3, 0.3] if target else [0.5, 0.15, 0.35]))
    kind = target or str(rng.choice(["full", "label", "detail"], p=[0.45, 0.2, 0.35]))
    rendered = views[view]
    if kind == "label" and rendered.lines:
        groups = sorted({ln.group for ln in rendered.lines})
        group = groups[int(rng.integers(len(groups)))]
        boxes = np.array([ln.box for ln in rendered.lines if ln.group == group], dtype=float)
        x0, y0 = boxes[:, 0].min(), boxes[:, 1].min()
        x1, y1 = boxes[:, 2].max(), boxes[:, 3].max()
        side = max(x1 - x0, y1 - y0) * float(rng.uniform(1.15, 1.9))
        side = min(max(side, 0.18 * size), size)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    elif kind == "detail":
        ys, xs = np.nonzero(rendered.body)
        side = float(rng.uniform(0.25, 0.5)) * size
        if len(xs):
            i = int(rng.integers(len(xs)))
            cx, cy = float(xs[i]), float(ys[i])
        else:
            cx = cy = size / 2
    else:
        side = float(rng.uniform(0.72, 1.0)) * size
        cx, cy = size / 2 + float(rng.uniform(-0.1, 0.1)) * size, size / 2 + float(rng.uniform(-0.1, 0.1)) * size
    side = min(side, float(size))
    x0 = min(max(cx - side / 2, 0.0), size - side)
    y0 = min(max(cy - side / 2, 0.0), size - side)
    quarter = int(rng.choice(4, p=[0.7, 0.1, 0.1, 0.1]))
    angle = 0.0 if rng.random() < 0.5 else float(rng.uniform(-14, 14))
    blur = 0.0 if rng.random() < 0.6 else float(rng.uniform(0.4, 2.2))
    return _Photo(view, (x0, y0, side), quarter, angle, blur, float(rng.uniform(0, 9)),
                  float(rng.uniform(0.9, 1.1)), float(rng.uniform(0.88, 1.12)), int(rng.integers(len(_BACKGROUNDS))))


def _photo_shows(photo: _Photo, views: list[_Rendered]) -> tuple[set[str], set[str], set[str], set[str]]:
    """For a planned photo, the keys (OCR reads, OCR might read, it shows, it might show).

    Quarter turns do not matter: OCR pipelines (AMELI's included) try all four orientations.
    """
    rendered = views[photo.view]
    size = rendered.image.size[0]
    x0, y0, side = photo.crop
    scale = size / side
    cos, sin = math.cos(math.radians(photo.angle)), math.sin(math.radians(photo.angle))
    half = size / 2
    ocr: set[str] = set()
    perhaps: set[str] = set()

    def inside(box: tuple[float, float, float, float]) -> bool:
        # The box's corners in the photo: crop, scale, then the tilt about the centre (which cuts
        # the corners off). Quarter turns map the surviving region onto itself.
        bx0, by0, bx1, by1 = box
        corners = [((x - x0) * scale - half, (y - y0) * scale - half) for x in (bx0, bx1) for y in (by0, by1)]
        return all(abs(dx * cos + dy * sin) <= half - 1 and abs(-dx * sin + dy * cos) <= half - 1
                   for dx, dy in corners)

    def inside_but(box: tuple[int, int, int, int], share: float) -> bool:
        cut = share * (box[3] - box[1])
        return inside((box[0] + cut, box[1] + cut, box[2] - cut, box[3] - cut))

    for line in rendered.lines:
        px = line.font_px * scale
        if px >= _PERHAPS_PX and photo.blur <= _PERHAPS_BLUR * px and inside_but(line.box, _PERHAPS_CUT):
            perhaps.update(line.keys)
            if px >= _READABLE_PX and photo.blur <= _READABLE_BLUR * px and inside_but(line.box, _READABLE_CUT):
                ocr.update(line.keys)
    ix0, iy0, iside = int(x0), int(y0), max(1, int(side))
    body_share = float(rendered.body[iy0:iy0 + iside, ix0:ix0 + iside].mean())
    image = {"Color"} if body_share >= _COLOR_SHOWN else set()
    image_perhaps = {"Color"} if body_share >= _COLOR_PERHAPS else set()
    return ocr, perhaps, image, image_perhaps


def _background(size: int, index: int, rng: np.random.Generator) -> np.ndarray:
    base = np.array(_BACKGROUNDS[index], dtype=np.float32)
    ramp = np.linspace(-18, 18, size, dtype=np.float32)
    grain = np.sin(np.linspace(0, float(rng.uniform(6, 30)), size, dtype=np.float32) + float(rng.uniform(0, 6)))
    shade = (ramp[:, None] + 6 * grain[None, :])[..., None]
    return np.clip(base + shade, 0, 255)


def _render_photo(photo: _Photo, views: list[_Rendered], rng: np.random.Generator) -> Image.Image:
    rendered = views[photo.view]
    size = rendered.image.size[0]
    pixels = np.asarray(rendered.image, dtype=np.float32)
    mixed = np.where(rendered.foreground[..., None], pixels, _background(size, photo.background, rng))
    img = Image.fromarray(mixed.astype(np.uint8))
    x0, y0, side = photo.crop
    img = img.resize((size, size), Image.Resampling.BILINEAR, box=(x0, y0, x0 + side, y0 + side))
    if photo.quarter_turns:
        img = img.transpose([Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180,
                             Image.Transpose.ROTATE_270][photo.quarter_turns - 1])
    if photo.angle:
        img = img.rotate(photo.angle, resample=Image.Resampling.BILINEAR, fillcolor=_BACKGROUNDS[photo.background])
    if photo.blur:
        img = img.filter(ImageFilter.GaussianBlur(photo.blur))
    arr = np.asarray(img, dtype=np.float32)
    arr = (arr - 128.0) * photo.contrast + 128.0
    arr = arr * photo.brightness + rng.normal(0.0, photo.noise, size=arr.shape).astype(np.float32)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def _plan_photo(views: list[_Rendered], rng: np.random.Generator, want: set[str], avoid: set[str],
                sensitive: set[str], tries: int = 16) -> tuple[_Photo, set[str], set[str]] | None:
    """Rejection-sample a photo that shows every key in `want` and none in `avoid`.

    The first two thirds of the tries also refuse photos where a `sensitive` value (one that
    decides between family members) is only half-legible, so gold stays crisp where it matters.
    """
    printed = {k for v in views for ln in v.lines for k in ln.keys}
    for attempt in range(tries):
        if want & printed and rng.random() < 0.75:
            target: str | None = "label"
        elif "Color" in want:
            target = "full" if rng.random() < 0.6 else "detail"
        else:
            target = None
        photo = _sample_photo(views, rng, target)
        ocr, perhaps, image, image_perhaps = _photo_shows(photo, views)
        if not want <= ocr | image or avoid & (perhaps | image_perhaps):
            continue
        if attempt < 2 * tries // 3 and sensitive & ((perhaps - ocr) | (image_perhaps - image)):
            continue
        return photo, ocr, image
    return None


# ---------------------------------------------------------------------------------------------
# Review text
# ---------------------------------------------------------------------------------------------

_OPENERS = (
    "I bought {m} {when}.", "Been using {m} for {dur} now.", "{M} arrived quickly and well packed.",
    "Picked up {m} {when}.", "So far {m} has been {verdict}.", "Ordered {m} online {when}.",
)
_WHEN = ("last month", "a few weeks ago", "as a gift", "to replace my old one", "on sale", "for my son",
         "during a holiday sale", "for my home office")
_DURATIONS = ("two weeks", "about a month", "three months", "half a year", "a couple of weeks")
_VERDICTS = {True: ("great", "excellent", "a good buy", "better than expected"),
             False: ("disappointing", "just okay", "a letdown", "frustrating")}
# Family words (brand, series) by sentiment: 1 = rating 4-5, 0 = rating 3, -1 = rating 1-2.
_FAMILY_SENTENCES: dict[tuple[str, int], tuple[str, ...]] = {
    ("both", 1): ("It's my second {b} product and the {s} line keeps getting better.",
                  "{b} really nailed it with the {s}.", "I compared a few options and the {b} {s} won.",
                  "Coming from an older {b}, the {s} is a big upgrade."),
    ("both", 0): ("I picked the {b} {s} after comparing a few options.", "The {b} {s} is fine, nothing special."),
    ("both", -1): ("I expected more from the {b} {s}.", "I usually like {b}, but the {s} let me down."),
    ("brand", 1): ("{b} makes solid stuff.", "I have always trusted {b}.", "Another good product from {b}."),
    ("brand", 0): ("It's my first {b} product.", "{b} is a brand I had not tried before."),
    ("brand", -1): ("I usually like {b}, but not this time.", "Not {b}'s best work."),
    ("series", 1): ("The {s} looks just like the pictures.", "I had read good things about the {s}.",
                    "The {s} is popular for a reason."),
    ("series", 0): ("The {s} does what it says.", "The {s} looks like the pictures."),
    ("series", -1): ("The {s} got good reviews, but I don't see why.", "I had high hopes for the {s}."),
}
_GENERIC_POS = ("Shipping was quick.", "Would buy again.", "Customer service answered my question fast.",
                "Good value for the money.", "Exactly what I was looking for.", "My wife likes it too.")
_GENERIC_MILD = ("The packaging was a bit battered.", "Instructions were unclear.")
_GENERIC_NEG = ("The packaging was damaged.", "I expected better for the price.", "Support never replied to my email.",
                "I might return it.")
_CLOSERS_POS = ("Highly recommend.", "Five stars from me.", "No regrets.", "Totally worth it.")
_CLOSERS_NEG = ("Can't recommend it.", "Look elsewhere.", "Two thumbs down.", "Not worth it.")
_HEADERS_POS = ("Love it", "Great {n}", "Excellent {n}", "Best {n} I've owned", "Great value", "Very happy",
                "Exactly as described", "Sturdy {n}")
_HEADERS_MID = ("Decent {n}", "Good but not great", "It's okay", "Mixed feelings", "Fine for the price")
_HEADERS_NEG = ("Disappointed", "Returned it", "Not worth it", "Poor quality", "Stopped working")
_FIRST_NAMES = ("Maria", "James", "Aisha", "Chen", "Olivia", "Mateo", "Priya", "Noah", "Sofia", "Liam", "Grace",
                "Omar", "Hannah", "Diego", "Yuki", "Ethan", "Zoe", "Ravi", "Emma", "Lucas")
_USER_SUFFIXES = ("", "", "T", "K", "_reviews", "88", "2024", "J", "Fan", "Tech")


def _storage_words(value: str) -> list[str]:
    number, unit = value[:-2], value[-2:]
    if unit == "TB":
        words = [f"{number} TB", f"{number} terabyte" + ("s" if number != "1" else "")]
        return words + (["one terabyte", "a full terabyte"] if number == "1" else [])
    words = [f"{number} GB", f"{number} gigs", f"{number} gigabytes"]
    return words + {"256": ["a quarter terabyte"], "512": ["half a terabyte"]}.get(number, [])


# Indirect forms for values that have no pattern-based paraphrase (each names exactly one value).
_INDIRECT_PLAIN = {
    "Active Noise Cancelling": ("I got the version with ANC and it blocks out the train.",
                                "The noise cancelling version was worth the extra money."),
    "Passive Isolation": ("I went with the version without ANC.",),
    "Print Only": ("It only prints, no scanner, which is all I need.",),
    "Print/Copy/Scan": ("It prints, copies and scans, but there is no fax.",),
    "Print/Copy/Scan/Fax": ("It prints, copies, scans and even faxes, which my office still needs.",),
}


def _axis_sentence(kind: str, value: str, direct: bool, product: _Product, rng: np.random.Generator) -> str:
    """One sentence stating `value` of a varying axis, literally or in other words."""
    pick = _picker(rng)
    number = value.split()[0]
    if kind == "color":
        aliases = COLORS[value].aliases
        word = value.lower() if direct or not aliases else pick(aliases)
        return pick((f"I went with the {word} one.", f"The {word} looks even better in person.",
                     f"Got it in {word}.", f"Love the {word} color."))
    if kind == "storage":
        amount = value if direct else pick(_storage_words(value))
        return pick((f"I got the {amount} model and have plenty of space.",
                     f"With {amount} of storage I never worry about space.", f"Went for the {amount} version."))
    if kind == "ram":
        amount = value if direct else pick((f"{value[:-2]} gigs", f"{value[:-2]} gigabytes"))
        return pick((f"The {amount} of RAM handles all my browser tabs.",
                     f"Configured with {amount} of memory, it never slows down."))
    if kind == "inches":
        if direct:
            return pick((f"The screen is {value} diagonally, which is just right for me.",
                         f"I chose the {value} size."))
        return pick((f"The {number}-inch screen is just right for me.", f'I chose the {number}" size.',
                     f"Went with the {number} inch model."))
    if kind == "hertz":
        if direct:
            return f"The {value} refresh rate makes games smooth."
        return pick((f"The {number}Hz refresh rate makes games smooth.", f"Running at {number} Hz is buttery smooth."))
    if kind == "shoe":
        size = value.split()[1]
        if direct:
            return pick((f"I ordered a {value} and it fits true to size.", f"My usual {value} fits perfectly."))
        gender = product.attrs.get("Gender", "").lower()
        return pick((f"I ordered a size {size} and it fits true to size.", f"My usual {gender} {size} fits perfectly."))
    if kind == "clothing":
        short = {"Small": "S", "Medium": "M", "Large": "L", "X-Large": "XL", "XX-Large": "XXL"}[value]
        if direct:
            return pick((f"I ordered a {value.lower()} and it fits well.", f"The {value} fits as expected."))
        extra = {"X-Large": ["an extra large"], "XX-Large": ["a 2XL"]}.get(value, [])
        word = pick([f"a size {short}", *extra] + ([f"an {short}"] if len(short) > 1 else []))
        return f"I ordered {word} and it fits well."
    if kind == "watts":
        if direct:
            return f"At {value} it heats up fast."
        return pick((f"The {number}W heater brews quickly.", f"The {number}-watt element heats up fast."))
    if kind == "cups":
        if direct:
            return f"It makes {value} at a time, perfect for us."
        options = [f"The {number}-cup carafe is perfect for us."]
        if number == "12":
            options.append("It brews a dozen cups at a time.")
        return pick(options)
    if not direct and value in _INDIRECT_PLAIN:
        return pick(_INDIRECT_PLAIN[value])
    return pick((f"I got the {value} version.", f"Mine is the {value} model.", f"Went with the {value} one."))


@lru_cache(maxsize=4096)
def _literal(value: str) -> re.Pattern[str]:
    """`value` as written in lower-cased text, with boundaries that keep "Large" out of "X-Large"
    and "US 10" out of "US 10.5"."""
    return re.compile(r"(?<![\w\-/.])" + re.escape(value.lower()) + r"(?![\w/]|[-.]\w)")


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


@dataclass
class _Review:
    review_id: int
    product: _Product
    header: str
    body: str
    mention: str
    image_names: list[str]
    gold: dict[str, str]
    sources: dict[str, str]
    user: str
    rating: int
    recommendation: bool
    feedback: dict[str, int]
    text_values: dict[str, str]  # what the text states (also where a photo shows it too)
    photo_values: dict[str, str]  # what the photos show (also where the text says it too)
    scenario: str

    def to_json(self, nil: bool = False) -> dict[str, Any]:
        p = self.product
        gold = {"id": None, "nil": True} if nil else {"id": p.entity_id}
        return {
            "review_id": self.review_id,
            "header": self.header,
            "body": self.body,
            "mention": self.mention,
            "review_image_path": self.image_names,
            "gold_entity_info": {**gold, "product_name": p.name, "product_category": p.category.name},
            "user": self.user,
            "rating": self.rating,
            "recommendation": self.recommendation,
            "feedback": self.feedback,
            "gold_attributes": self.gold,
            "gold_attribute_sources": self.sources,
        }


_SCENARIOS = ("text_all", "split", "photo_only", "partial", "none")
_SCENARIO_P = np.array([0.33, 0.22, 0.23, 0.10, 0.12])


def _plan_scenario(deciding: tuple[str, ...], photographable: set[str], rng: np.random.Generator
                   ) -> tuple[str, list[str], set[str], set[str]]:
    """(scenario, keys the text states, keys a photo must show, keys no photo may show)."""
    scenario = str(rng.choice(_SCENARIOS, p=_SCENARIO_P))
    keys = list(deciding)
    rng.shuffle(keys)  # type: ignore[arg-type]
    shown = [k for k in keys if k in photographable]
    if len(keys) == 1:  # one deciding axis: "split" and "partial" collapse onto the others
        scenario = {"split": "photo_only" if rng.random() < 0.5 else "text_all", "partial": "text_all"}.get(
            scenario, scenario)
    if scenario in ("photo_only", "split") and not shown:
        scenario = "text_all" if rng.random() < 0.6 else "none"
    if scenario == "text_all":
        return scenario, keys, set(), set()
    if scenario == "split":
        want = shown[0]
        return scenario, [k for k in keys if k != want], {want}, set()
    if scenario == "photo_only":
        return scenario, [], set(shown), set(keys) - set(shown)
    if scenario == "partial":
        return scenario, keys[:1], set(), set(keys[1:])
    return scenario, [], set(), set(keys)


def _make_review(review_id: int, product: _Product, views: list[_Rendered], rng: np.random.Generator,
                 folder: Path) -> _Review:
    family = product.family
    printed = {k for v in views for ln in v.lines for k in ln.keys}
    photographable = {k for k in family.varying if k == "Color" or k in printed}
    scenario, text_keys, want, avoid = _plan_scenario(family.varying, photographable, rng)
    image_names, ocr_keys, image_keys = _take_photos(review_id, views, want, avoid,
                                                     {*family.varying, "Model Number"}, rng, folder)
    rating = int(rng.choice([1, 2, 3, 4, 5], p=[0.06, 0.06, 0.12, 0.3, 0.46]))
    header, body, mention = _write_review_text(product, text_keys, scenario, rating, rng)

    # Gold: the planned statements, plus every Spec value that appears literally anywhere in the
    # text (brand and series in the family sentence, a value quoted by a "says" sentence, ...).
    text = f"{header}. {body}".lower()
    text_values = {k: product.attrs[k] for k in text_keys}
    for key, value in product.attrs.items():
        if key not in text_values and is_informative_value(value) and _literal(value).search(text):
            text_values[key] = value
    photo_values = {k: product.attrs[k] for k in sorted(ocr_keys | image_keys)
                    if is_informative_value(product.attrs[k])}
    gold: dict[str, str] = {}
    sources: dict[str, str] = {}
    for key in product.attrs:
        if key in text_values:
            gold[key], sources[key] = text_values[key], "text"
        elif key in photo_values:
            gold[key], sources[key] = photo_values[key], "ocr" if key in ocr_keys else "image"

    pick = _picker(rng)
    user = pick(_FIRST_NAMES) + pick(_USER_SUFFIXES)
    recommendation = (rating >= 4) != (rng.random() < 0.05)  # a few reviewers contradict their stars
    feedback = {"helpful": int(rng.poisson(2.0)), "unhelpful": int(rng.poisson(0.5))}
    return _Review(review_id, product, header, body, mention, image_names, gold, sources, user, rating,
                   recommendation, feedback, text_values, photo_values, scenario)


def _picker(rng: np.random.Generator) -> Callable[[Sequence[str]], str]:
    return lambda options: str(options[int(rng.integers(len(options)))])


def _take_photos(review_id: int, views: list[_Rendered], want: set[str], avoid: set[str], sensitive: set[str],
                 rng: np.random.Generator, folder: Path) -> tuple[list[str], set[str], set[str]]:
    """Write 0-3 photos; the first ones carry the planned evidence (one key each), the others
    only keep the scenario's secrets. Returns (file names, keys OCR reads, keys shown)."""
    targets = sorted(want)
    n_photos = max(len(targets), int(rng.choice(4, p=[0.4, 0.35, 0.17, 0.08])))
    names: list[str] = []
    ocr_keys: set[str] = set()
    image_keys: set[str] = set()
    for k in range(n_photos):
        wanted = {targets[k]} if k < len(targets) else set()
        planned = _plan_photo(views, rng, wanted, avoid, sensitive, tries=40 if wanted else 12)
        if planned is None:  # no photo keeps the secrets: the reviewer posts one photo fewer
            continue
        photo, ocr, image = planned
        name = f"{review_id}_{len(names)}.jpg"
        _save_jpeg(_render_photo(photo, views, rng), folder / name)
        names.append(name)
        ocr_keys |= ocr
        image_keys |= image
    return names, ocr_keys, image_keys


def _write_review_text(product: _Product, text_keys: list[str], scenario: str, rating: int,
                       rng: np.random.Generator) -> tuple[str, str, str]:
    """(header, body, mention): family words, the planned attribute statements, chatter."""
    family, category = product.family, product.category
    axes = {a.key: a for a in category.axes}
    pick = _picker(rng)
    noun = pick(category.nouns)
    words = str(rng.choice(["both", "series", "brand", "none"], p=[0.45, 0.3, 0.15, 0.1]))
    b, s = family.brand, family.series
    this = ("these " if category.plural else "this ") + noun
    mention = {"both": pick([f"{b} {s}", f"the {s}", this]), "series": pick([s, this]),
               "brand": pick([this, f"this {b}"]), "none": this}[words]
    opener = pick(_OPENERS).format(m=mention, M=_cap(mention), when=pick(_WHEN), dur=pick(_DURATIONS),
                                   verdict=pick(_VERDICTS[rating >= 3]))
    middle: list[str] = []
    if words != "none" and mention != f"{b} {s}":
        mood = 1 if rating >= 4 else 0 if rating == 3 else -1
        middle.append(pick(_FAMILY_SENTENCES[(words, mood)]).format(b=b, s=s))
    for key in text_keys:
        middle.append(_axis_sentence(axes[key].kind, product.attrs[key], rng.random() < 0.55, product, rng))
    says = [k for k in category.says if is_informative_value(product.attrs.get(k, ""))]
    for key in [says[int(i)] for i in rng.permutation(len(says))[: int(rng.choice(3, p=[0.5, 0.35, 0.15]))]]:
        value = product.attrs[key]
        middle.append(pick(category.says[key]).replace("{v}", value).replace("{v|lower}", value.lower()))
    if scenario == "text_all" and rng.random() < 0.05:  # a reviewer who quotes the model number
        middle.append(f"Model {product.attrs['Model Number']} for anyone searching.")
    # A few reviewers name a sibling they did NOT buy: a trap for plain string matching.
    siblings = [m for m in family.members if m is not product]
    compare_keys = [k for k in family.varying if axes[k].kind in ("color", "storage", "inches", "shoe")]
    if siblings and compare_keys and rng.random() < 0.05:
        key = compare_keys[0]
        other = siblings[int(rng.integers(len(siblings)))].attrs[key]
        if other != product.attrs[key]:
            said = f"{other.split()[0]}-inch" if axes[key].kind == "inches" else other
            middle.append(f"I almost bought the {said} one instead.")
    pros = list(category.pros) + list(_GENERIC_POS)
    cons = list(category.cons) + list(_GENERIC_MILD) + (list(_GENERIC_NEG) if rating <= 2 else [])
    n_pos, n_neg = {5: (2, 0), 4: (2, 1), 3: (1, 1), 2: (0, 2), 1: (0, 2)}[rating]
    middle += [pros[int(i)] for i in rng.permutation(len(pros))[:n_pos]]
    middle += [cons[int(i)] for i in rng.permutation(len(cons))[:n_neg]]
    sentences = [opener] + [middle[int(i)] for i in rng.permutation(len(middle))]
    if rng.random() < 0.5:
        sentences.append(pick(_CLOSERS_POS if rating >= 4 else _CLOSERS_NEG if rating <= 2 else ("Fair enough.",)))
    body = " ".join(_cap(x) for x in sentences)
    header = pick(_HEADERS_POS if rating >= 4 else _HEADERS_MID if rating == 3 else _HEADERS_NEG).format(n=noun)
    if words in ("both", "series") and rng.random() < 0.25:
        header = f"{s}: {header[0].lower()}{header[1:]}"
    return header, body, mention


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
