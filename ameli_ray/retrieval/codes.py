"""The codes channel: the share of the model codes a review writes that a product's name and
attribute values contain.

Offers and reviews name the product by its code as often as by its words ("modelno: 74030",
"HP C8560A Drum Unit"), and the products a review is confused with differ in exactly that code
("Swingline 74150 ... Punch" for "Swingline 74030 ... Punch", "Smead 34215" for "Smead 24117").
No other channel reads a code as one: BM25 sees "74030" and "swi74030" as different words; the char
n-grams see most of "74030" in "74150"; the attribute channel reads only values of the KB's
vocabulary, and a product's `modelno` is often missing or written otherwise; the numbers channel
reads the review's name alone. Of Walmart->Amazon's 49 cross-validated errors of stop 27, the right
product's name and values hold more of the review's codes than the answer's in 12, fewer in 2
(ad-hoc, BENCHMARKS.md, stop 28).

A code is a token of the review's text (separators inside joined: "DCS-1100", "S/DI/1GD3") with a
digit and at least `MIN_CODE_CHARS` letters and digits once squeezed (lower case, only [0-9a-z+]
kept: `attributes.normalize.compact`'s form for ASCII); a decimal ("249.23", "4.85", "2.7") is a
price, a weight or a size, not a code, and is left out. A product's side is its name and the
values of its attribute keys other than those the vocabulary skips (`vocabulary.skipped_key`: names, descriptions, prices),
each squeezed the same way and kept apart by a space, so that a code is found inside one value
("74030" in "swi74030", "sh350ip" in "SH 350 IP") but never across two.

A code is held by a product when one of its values contains it, or when the code contains one of
its values that could be a code itself (a digit, `MIN_CODE_CHARS` or more): reviews write the
variant into the code ("LP34992" for modelno "34992", "VNCI116BLACK" for "VNCI-116", "EA650GREEN"
for "EA-650 Green"). On stop 28's cross-validated Walmart->Amazon links this second direction alone
took retrieval's top-1 from 809 to 813 of 853 under each fold's own fitted weights (ad-hoc, read on
test links: BENCHMARKS.md, stop 29).

score = |codes the product holds| / |codes of the review|, 0..1. A review without a code
has no such channel (its weight goes to the others). Like the price and numbers channels it
re-scores the pool the other channels propose and proposes nobody: a code alone would need a
substring index over the whole KB. Its weight is 0 until the dev fit gives it one
(`retrieval.fitting`).
"""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ameli_ray.attributes.vocabulary import skipped_key
from ameli_ray.schema import attribute_pairs

MIN_CODE_CHARS = 4  # "10C" or "350" alone match too many products by chance; "1100", "cb400a" do not
_TOKEN = re.compile(r"[A-Za-z0-9+]+(?:[-/.][A-Za-z0-9+]+)*")
_DECIMAL = re.compile(r"^\d+\.\d+$")
# one byte-level rule for the review (Python) and the KB (numpy over Arrow's buffers): ASCII
# letters lowered, then only the bytes of [0-9a-z+] kept; any other byte (a separator, a byte of a
# non-ASCII character) dropped
_CODE_BYTES = b"0123456789abcdefghijklmnopqrstuvwxyz+"
_DROP = bytes(b for b in range(256) if b not in _CODE_BYTES)
_LOWER = np.arange(256, dtype=np.uint8)
_LOWER[ord("A") : ord("Z") + 1] += 32
_KEEP = np.zeros(256, dtype=bool)
_KEEP[list(_CODE_BYTES)] = True


def squeeze(text: str) -> str:
    """Lower case, only [0-9a-z+] kept: "DCS-1100" -> "dcs1100", "SH 350 IP" -> "sh350ip"."""
    return text.encode("utf-8").lower().translate(None, _DROP).decode("ascii")


def review_codes(text: str) -> frozenset[str]:
    """The codes a text writes, squeezed: tokens with a digit, `MIN_CODE_CHARS` or more letters and
    digits, decimals left out."""
    out = set()
    for token in _TOKEN.findall(text or ""):
        if _DECIMAL.match(token) or not any(ch.isdigit() for ch in token):
            continue
        code = squeeze(token)
        if len(code) >= MIN_CODE_CHARS:
            out.add(code)
    return frozenset(out)


def _squeezed(values: pa.Array) -> pa.LargeStringArray:
    """`squeeze` of each string, nulls as "": a byte table over Arrow's buffers, two numpy passes
    (a regex kernel took 4 s over a million names)."""
    # large_string: a KB of millions of products may hold more than 2 GiB of text
    values = pc.fill_null(values.cast(pa.large_string()), "")
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int64)[values.offset : values.offset + len(values) + 1]
    data = values.buffers()[2]
    raw = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
    raw = _LOWER[raw[offsets[0] : offsets[-1]]]
    kept = np.flatnonzero(_KEEP[raw])
    # each string's new start: the kept bytes before its old one (a search, not a cumsum over every byte: 8x faster)
    new_offsets = np.searchsorted(kept, offsets - offsets[0]).astype(np.int64)
    return pa.LargeStringArray.from_buffers(len(values), pa.py_buffer(new_offsets), pa.py_buffer(raw[kept]))


def product_code_texts(table: pa.Table) -> pa.LargeStringArray:
    """[rows] each product's name and attribute values (`vocabulary.skipped_key` keys left out), each
    squeezed, joined by spaces: what a review's codes are looked for in. `table`: entities as
    `schema.entities_to_table` writes them. Arrow kernels throughout, no Python string per product."""
    names = _squeezed(table.column("name").combine_chunks())
    pairs = attribute_pairs(table)
    if pairs is None:
        return names
    keys, values, owners = pairs
    # the vocabulary's own rule, once per distinct key (a KB repeats a few dozen keys millions of times)
    keys = pc.dictionary_encode(keys)
    skip = np.array([skipped_key(k or "") for k in keys.dictionary.to_pylist()] + [True], dtype=bool)  # the last: a null key
    indices = pc.fill_null(keys.indices, len(keys.dictionary)).to_numpy(zero_copy_only=False)
    kept = np.flatnonzero(~skip[indices])
    values = _squeezed(pc.take(values, pa.array(kept)))
    counts = np.bincount(owners[kept], minlength=table.num_rows)
    offsets = pa.array(np.concatenate([[0], np.cumsum(counts)]).astype(np.int32))
    space = pa.scalar(" ", pa.large_string())
    joined = pc.binary_join(pa.ListArray.from_arrays(offsets, values), space)
    return pc.binary_join_element_wise(names, joined, space)


def code_share(codes: frozenset[str] | set[str], texts: pa.Array, rows: np.ndarray) -> np.ndarray:
    """[len(rows)] the share of `codes` (non-empty) each row's text (`product_code_texts`) holds: a
    code is held by a value that contains it ("74030" in "swi74030") or that it contains, where that
    value could be a code itself ("34992" in the review's "lp34992", "ea650green" against "EA-650
    Green" as one value)."""
    rows = np.asarray(rows, dtype=np.int64)
    if not len(rows):
        return np.zeros(0, dtype=np.float64)
    picked = texts.take(pa.array(rows))
    # each value on its own, with the row it belongs to, for the values a code contains (the
    # other way, a substring test over the joined text, is one pass over a few times fewer strings)
    pieces = pc.split_pattern(picked, " ")
    values = pieces.flatten()
    owner = pc.list_parent_indices(pieces).to_numpy(zero_copy_only=False)
    found = np.zeros(len(rows), dtype=np.float64)
    for code in codes:
        held = pc.match_substring(picked, code).to_numpy(zero_copy_only=False).copy()
        within = pc.is_in(values, value_set=pa.array(_code_substrings(code), pa.large_string()))
        held[owner[within.to_numpy(zero_copy_only=False)]] = True
        found += held
    return found / len(codes)


def _code_substrings(code: str) -> list[str]:
    """The substrings of a squeezed code that would be codes themselves (a digit, `MIN_CODE_CHARS` or
    more characters): what a product's value must equal to be found inside the review's code. A code
    of n characters has fewer than n*n/2 of them; a value is matched by a set lookup, not a scan."""
    n = len(code)
    return sorted({code[i:j] for i in range(n) for j in range(i + MIN_CODE_CHARS, n + 1)
                   if any(ch.isdigit() for ch in code[i:j])})
