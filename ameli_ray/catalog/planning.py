"""Planning the demo catalogue: families of near-identical products, their attribute values,
names and model numbers, and the entity records of entities.json."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ameli_ray.catalog.tables import (
    _MIN_FAMILY_COLOR_DISTANCE,
    CATEGORIES,
    COLORS,
    _Axis,
    _Category,
)

# RNG stream ids: one independent stream per purpose and item, so adding reviews to one product
# never changes another product's images.
# They are shared by the whole catalogue package and live here, in the lowest module that draws
# from them, so that every id is assigned in one place.
_S_FAMILIES, _S_FAMILY, _S_LAYOUT, _S_COUNTS, _S_REVIEW, _S_IDS, _S_SPLIT, _S_UNLISTED = range(8)


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
