"""The price channel: how close the price a review states is to each product's listed price.

Prices stay out of attribute agreement (`attributes.vocabulary`: two shops rarely state the same
price for one product, so an exact match would mostly "contradict" the right product) and out of
the char n-grams (their digits match unrelated products). Closeness is another matter: two shops'
prices for one product differ by tens of percent, while the products a review is confused with
often differ by a factor. "Computrace LoJack for laptops, 4 year" at $119.99 is not the 1-year
subscription at $39.99, and an upgrade edition is not the full version at three times its price.
Over Amazon->Google's cross-validated errors, the right product's price was the closer one in 117 of the
215 errors and the answer's in 44 (ad-hoc, BENCHMARKS.md, stop 27).

closeness = max(0, 1 - |ln(stated / listed)| / ln(span)): 1 at the same price, 0 at `span` times
more or less (`retrieval.price_span`, 3). A product without a price gets NaN (the pool's lowest,
as for a product without images). A review that states no price has no such channel; its weight
is then spread over the others, as for a review without photos. The channel only re-scores the
pool the other channels propose: a price alone matches thousands of products.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ameli_ray.attributes.vocabulary import PRICE_KEY
from ameli_ray.schema import attribute_pairs

# a number as prices are written: 1,299.99 or 1299.99 or 12
_AMOUNT = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_NUMBER = f"({_AMOUNT})"
# "price: 599.99" (how the entity-matching tables' offers read), "price $12"
_LABELLED = re.compile(r"\bprice\b\s*(?:is|of|was)?\s*[:=]?\s*(?:us\s?\$|\$|usd\s?)?\s*" + _NUMBER, re.IGNORECASE)
# "$12.99", "US$ 12", "USD 12.99", "12.99 dollars", "12 bucks"
_CURRENCY = re.compile(
    r"(?:us\s?\$|\$|\busd\s?)\s*" + _NUMBER + r"|" + _NUMBER + r"\s?(?:usd|dollars|bucks)\b", re.IGNORECASE,
)
MAX_PRICE = 1e7  # beyond: a part number or a phone number, not a price


def _number(text: str) -> float | None:
    try:
        value = float(text.replace(",", ""))
    except ValueError:
        return None
    return value if 0 < value < MAX_PRICE and math.isfinite(value) else None


def stated_price(text: str) -> float | None:
    """The price a review states: a labelled one ("price: 599.99") first, else the first amount in
    a currency ("$12.99", "12 dollars"); None when it states none."""
    if not text:
        return None
    for pattern in (_LABELLED, _CURRENCY):
        for match in pattern.finditer(text):
            value = _number(next(g for g in match.groups() if g))
            if value is not None:
                return value
    return None


def listed_prices(table: pa.Table) -> np.ndarray:
    """[rows] float32: each product's listed price, the number in its first price key's value that
    reads as one (`PRICE_KEY`); NaN where it has none. `table`: entities as `schema.entities_to_table`
    writes them (attributes: map<string, string>). No Python dict per product: keys and values are
    flattened, the price keys picked and their numbers read by Arrow's regex kernels."""
    out = np.full(table.num_rows, np.nan, dtype=np.float32)
    pairs = attribute_pairs(table)
    if pairs is None:
        return out
    keys, values, owners = pairs
    is_price = pc.fill_null(pc.match_substring_regex(keys, PRICE_KEY.pattern, ignore_case=True), False)
    hits = np.flatnonzero(is_price.to_numpy(zero_copy_only=False))
    if not len(hits):
        return out
    extracted = pc.extract_regex(pc.take(values, pa.array(hits)), f"(?P<n>{_AMOUNT})")
    found = pc.if_else(pc.is_valid(extracted), extracted.field("n"), pa.scalar(None, pa.string()))  # no number: null
    numbers = pc.cast(pc.replace_substring(found, ",", ""), pa.float64()).to_numpy(zero_copy_only=False)
    readable = np.isfinite(numbers) & (numbers > 0) & (numbers < MAX_PRICE)
    rows, numbers = owners[hits][readable], numbers[readable]
    rows, first = np.unique(rows, return_index=True)  # hits run in attribute order: the first per row
    out[rows] = numbers[first]
    return out


def closeness(stated: float, listed: np.ndarray, span: float) -> np.ndarray:
    """1 at the stated price, falling linearly in log-price to 0 at `span` times more or less; NaN
    where a product has no price."""
    listed = np.asarray(listed, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        distance = np.abs(np.log(stated / listed)) / math.log(span)
    return np.where(np.isfinite(listed) & (listed > 0), np.clip(1.0 - distance, 0.0, 1.0), np.nan)
