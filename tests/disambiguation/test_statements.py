"""Statements of the text stream: which keys, which slots, and deduplication of identical pairs."""

from __future__ import annotations

import numpy as np

from ameli_ray.disambiguation.statements import (
    NEUTRAL_SURFACE,
    build_pair_batch,
    candidate_pairs,
    choose_keys,
)
from ameli_ray.schema import Entity


def _card(i: int, capacity: str, colour: str, speed: str | None = "V30", **extra: str) -> Entity:
    attrs = {"Brand": "Veltro", "Series": "Prime Plus", "Storage Capacity": capacity, "Color": colour,
             "Model Number": f"VT-{i}", **extra}
    if speed is not None:
        attrs["Speed Class"] = speed
    return Entity(id=str(i), name=f"Veltro - Prime Plus {capacity} SDXC Memory Card - {colour}",
                  category="Memory Cards", description=f"A {capacity} card." if i != 2 else "", attributes=attrs)


CANDS = [
    _card(0, "128GB", "Black"),
    _card(1, "256GB", "Black"),
    _card(2, "256GB", "Red", speed=None),
    _card(3, "512GB", "Blue"),
]


def test_choose_keys_evidence_then_discriminating_then_shared():
    keys = choose_keys(["color"], CANDS, 10)
    # evidence first (in the entities' spelling), then differing keys by distinct values
    # (model number 4 > capacity 3; colour already taken), then shared keys by coverage
    assert keys[0] == "Color"
    assert keys[1:3] == ["Model Number", "Storage Capacity"]
    assert keys[3:] == ["Brand", "Series", "Speed Class"]  # 4, 4 (alphabetical), 3 candidates
    assert choose_keys(["color"], CANDS, 2) == ["Color", "Model Number"]
    # deterministic: the candidate order changes nothing but the spelling source
    assert choose_keys(["color"], CANDS[::-1], 10) == keys


def test_choose_keys_evidence_order_and_unknown_keys():
    keys = choose_keys(["SPEED CLASS", "storage capacity", "weight", "speed class"], CANDS, 5)
    # evidence that decides first; evidence the candidates agree on (every speed class is V30)
    # only after the other deciding keys; a key no candidate has is no evidence
    assert keys == ["Storage Capacity", "Model Number", "Color", "Speed Class", "Brand"]
    assert choose_keys(["color", "storage capacity"], CANDS, 2) == ["Color", "Storage Capacity"]
    assert choose_keys(["color"], CANDS, 0) == []
    assert choose_keys(["color"], [], 5) == []


def test_choose_keys_skips_name_echoes_and_name_like_keys():
    cands = [
        Entity(id="a", name="Acme Widget", attributes={"Product Name": "Acme Widget", "Title": "x", "Price": "9.99",
                                                        "Model": "Acme Widget", "Weight": "2 lb"}),
        Entity(id="b", name="Acme Widget 2", attributes={"Model": "W2", "Weight": "3 lb"}),
    ]
    # Model echoes candidate a's whole name (for one candidate is enough), the rest are SKIPPED_KEYS
    assert choose_keys(["price", "model"], cands, 5) == ["Weight"]


def test_candidate_pairs_slots():
    review = "Great card, the red one holds plenty."
    keys = ["Color", "Model Number", "Storage Capacity", "Speed Class"]
    slots = candidate_pairs(review, "Prime Plus", CANDS[2], keys, description_pair=True)
    assert len(slots) == 5
    assert slots[0] == (review, "Color of Prime Plus is Red")
    assert slots[2] == (review, "Storage Capacity of Prime Plus is 256GB")
    assert slots[3] is None  # this card has no speed class
    assert slots[4] == (CANDS[2].name, review)  # no description: the name stands in
    assert candidate_pairs(review, "Prime Plus", CANDS[0], keys, True)[4] == ("A 128GB card.", review)
    # with a name slot: the description slot holds the description alone, the name its own slot
    named = candidate_pairs(review, "Prime Plus", CANDS[2], keys, description_pair=True, name_pair=True)
    assert len(named) == 6 and named[4] is None and named[5] == (CANDS[2].name, review)
    named = candidate_pairs(review, "Prime Plus", CANDS[0], keys, description_pair=True, name_pair=True)
    assert named[4:] == [("A 128GB card.", review), (CANDS[0].name, review)]
    assert candidate_pairs(review, "", CANDS[0], [], description_pair=False, name_pair=True) == [(CANDS[0].name, review)]
    # keys match case-insensitively, the statement uses the key as given; empty surface is neutral
    lower = candidate_pairs(review, "  ", CANDS[0], ["storage capacity"], description_pair=False)
    assert lower == [(review, f"storage capacity of {NEUTRAL_SURFACE} is 128GB")]


def test_build_pair_batch_dedupes_and_pads():
    review = "Mine is the 256GB one."
    keys = ["Brand", "Storage Capacity", "Speed Class"]
    items = [
        [candidate_pairs(review, "Prime Plus", e, keys, True) for e in CANDS],
        [candidate_pairs("Other review.", "", e, keys, True) for e in CANDS[:2]],
    ]
    batch = build_pair_batch(items)
    assert batch.index.shape == (2, 4, 4) and batch.index.dtype == np.int64
    assert batch.candidate_mask.tolist() == [[True] * 4, [True, True, False, False]]
    assert (batch.index[1, 2:] == -1).all()
    # every slot points at exactly its text
    for b, cands in enumerate(items):
        for c, slots in enumerate(cands):
            for s, pair in enumerate(slots):
                i = batch.index[b, c, s]
                if pair is None:
                    assert i == -1
                else:
                    assert (batch.premises[i], batch.hypotheses[i]) == pair
    filled = sum(p is not None for cands in items for slots in cands for p in slots)
    assert batch.n_slots_filled == filled == 23  # 4*4 - 1 missing speed class, + 2*4
    # per mention: brand once, capacity per distinct value, speed once, one description each;
    # mention 1: 1 + 3 + 1 + 4, mention 2 (other review, so no sharing with mention 1): 1 + 2 + 1 + 2
    unique = {p for cands in items for slots in cands for p in slots if p is not None}
    assert batch.n_pairs == len(unique) == 9 + 6
    assert len(batch.premises) == len(batch.hypotheses) == batch.n_pairs


def test_build_pair_batch_empty():
    batch = build_pair_batch([])
    assert batch.index.shape == (0, 0, 0) and batch.n_pairs == 0
    batch = build_pair_batch([[[None, None]]])
    assert batch.index.tolist() == [[[-1, -1]]] and batch.candidate_mask.tolist() == [[True]]
