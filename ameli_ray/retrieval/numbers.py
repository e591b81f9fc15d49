"""The numbers channel: the share of the numbers in the review's product name that a product's name has.

Editions, versions, years and licence terms are written as numbers ("norton antivirus 2007",
"nero 7 ultra edition", "lojack for laptops - 3 year license"), and the products a review is
confused with differ in exactly those ("norton antivirus 2004", "nero 8 ultra edition", "1 year
license"). The char n-gram channel barely separates them: "2007" and "2004" share most of their
n-grams, and one digit is one n-gram among a name's dozens. Here a number is a number: "4.0" is
"4", "07" is "7", and a product either has it in its name or not.

score = |numbers of the review's name ∩ numbers of the product's name| / |numbers of the review's name|,
0..1. Only the review's name (its surface form) is read, not its text: a text's numbers are
prices, quantities and dates as often as editions. A review without a name, or whose name has no
number, has no such channel (its weight goes to the others). Like the price channel it re-scores
the pool the other channels propose and proposes nobody. Its weight is 0 until the dev fit gives
it one (`retrieval.fitting`).

A KB's names are read once into a compact index (each product's number ids, CSR-like: two int
arrays), when a retriever is made: 3.9-5.0 s over a million generated names (ad-hoc,
BENCHMARKS.md stop 27).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np

from ameli_ray.attributes.normalize import canonical_number

_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_LEADING_ZEROS = re.compile(r"^0+(?=\d)")


def _key(raw: str) -> str:
    """`attributes.normalize.canonical_number` ("4.0" is "4"), leading zeros dropped too ("07" is
    "7"): as strings, so that two long codes never meet in a float's rounding."""
    return canonical_number(_LEADING_ZEROS.sub("", raw))


def number_keys(text: str) -> set[str]:
    """The numbers a text writes, normalised: "4.0" and "4" are one, "07" is "7"."""
    return {_key(raw) for raw in _NUMBER.findall(text or "")}


class NameNumbers:
    """Which numbers each product's name has: `indptr`/`ids` (a product's number ids are
    ids[indptr[row]:indptr[row + 1]]) and the number -> id vocabulary."""

    def __init__(self, names: Iterable[str]):
        vocab: dict[str, int] = {}
        id_of_raw: dict[str, int] = {}  # "07" and "7.0" -> the id of "7": most names repeat a few numbers
        ids: list[int] = []
        indptr = [0]
        findall = _NUMBER.findall
        for name in names:
            raws = findall(name) if name else ()
            if raws:
                row = set()
                for raw in raws:
                    i = id_of_raw.get(raw)
                    if i is None:
                        i = id_of_raw[raw] = vocab.setdefault(_key(raw), len(vocab))
                    row.add(i)
                ids.extend(row)
            indptr.append(len(ids))
        self.vocab = vocab
        self.indptr = np.asarray(indptr, dtype=np.int64)
        self.ids = np.asarray(ids, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.indptr) - 1

    def shared(self, query: set[str], rows: np.ndarray) -> np.ndarray:
        """[len(rows)] the share of `query`'s numbers each row's name has (0..1); `query` non-empty."""
        rows = np.asarray(rows, dtype=np.int64)
        wanted = np.asarray([self.vocab[k] for k in query if k in self.vocab], dtype=np.int64)
        if not len(wanted) or not len(rows):
            return np.zeros(len(rows), dtype=np.float64)
        starts, ends = self.indptr[rows], self.indptr[rows + 1]
        lengths = ends - starts
        # every number id of the rows, flattened, and which row it belongs to
        flat = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths) + np.repeat(starts, lengths)
        owner = np.repeat(np.arange(len(rows)), lengths)
        hits = np.bincount(owner[np.isin(self.ids[flat], wanted)], minlength=len(rows))
        return hits / len(query)
