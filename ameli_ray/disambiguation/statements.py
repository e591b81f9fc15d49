"""The inputs of the text stream: (premise, hypothesis) pairs per candidate, and their batching.

After the AMELI paper: for a mention (a review and the surface form it names the product by) and
each of its candidates, up to `n` statements `(review, "{key} of {mention} is {value}")` built from
the CANDIDATE's attribute values, then one `(entity description, review)` pair. A cross-encoder
scores every pair; the head reads the slots in order, so slot k must mean the same attribute for
every candidate of a mention: `choose_keys` picks the keys once per mention.

`build_pair_batch` deduplicates identical pairs within a batch: the candidates of one mention are
near-duplicates (same brand, category, series), so many of their statements are the same text and
need one cross-encoder pass, not one per candidate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ameli_ray.attributes.normalize import normalize_key, normalize_value
from ameli_ray.attributes.vocabulary import SKIPPED_KEYS
from ameli_ray.schema import Entity

__all__ = ["NEUTRAL_SURFACE", "Pair", "PairBatch", "build_pair_batch", "candidate_pairs", "choose_keys", "entity_values", "statement"]

Pair = tuple[str, str]  # (premise, hypothesis)
# A review that names no product gets a surface that favours no candidate (not the entity's name).
NEUTRAL_SURFACE = "the product"


def entity_values(entity: Entity) -> dict[str, tuple[str, str]]:
    """canonical key -> (key as the entity spells it, value); the first spelling wins."""
    out: dict[str, tuple[str, str]] = {}
    for key, value in entity.attributes.items():
        value = (value or "").strip()
        if value:
            out.setdefault(normalize_key(key), (key.strip(), value))
    return out


def choose_keys(mention_keys: Sequence[str], candidates: Sequence[Entity], n: int) -> list[str]:
    """Up to `n` attribute keys to state for every candidate of a mention, most useful first.

    1. keys of values read from the mention whose values differ among the candidates, in the
       caller's order: what the review talks about and what decides;
    2. other keys whose values differ among the candidates, more distinct values first: they
       decide between near-duplicates;
    3. the remaining keys read from the mention (the candidates agree on them: brand, series);
    4. keys the candidates share, held by more candidates first.
    Ties go by the canonical key. Keys no candidate holds are left out (a slot of nothing but
    "missing" says nothing), and so are name-like, free-text and price keys (`SKIPPED_KEYS`: a
    price is an offer, not a property) and keys whose value echoes a candidate's whole name.
    Keys are matched case-insensitively (`normalize_key`, as `ExtractedAttribute.key`); the
    spelling returned is the first candidate's that holds the key ("Storage Capacity").
    """
    if n <= 0 or not candidates:
        return []
    spelling: dict[str, str] = {}
    values: dict[str, list[str]] = {}  # canonical key -> normalised value per candidate holding it
    echoes: set[str] = set()
    for entity in candidates:
        name = normalize_value(entity.name)
        for canon, (key, value) in entity_values(entity).items():
            norm = normalize_value(value)
            if norm == name:
                echoes.add(canon)
            spelling.setdefault(canon, key)
            values.setdefault(canon, []).append(norm)
    usable = {k for k in values if k not in echoes and not SKIPPED_KEYS.search(k)}

    evidence: list[str] = []
    for key in mention_keys:
        canon = normalize_key(key)
        if canon in usable and canon not in evidence:
            evidence.append(canon)
    def differs(k: str) -> bool:
        return len(set(values[k])) > 1

    rest = sorted(
        (k for k in usable if k not in evidence),
        key=lambda k: (not differs(k), -len(set(values[k])), -len(values[k]), k),
    )
    ordered = (
        [k for k in evidence if differs(k)] + [k for k in rest if differs(k)]
        + [k for k in evidence if not differs(k)] + [k for k in rest if not differs(k)]
    )
    return [spelling[k] for k in ordered[:n]]


def statement(key: str, surface: str, value: str) -> str:
    return f"{key} of {surface.strip() or NEUTRAL_SURFACE} is {value}"


def candidate_pairs(
    review: str, surface: str, entity: Entity, keys: Sequence[str], description_pair: bool, name_pair: bool = False,
) -> list[Pair | None]:
    """One slot per key (None where the entity lacks it), then `(description, review)` and
    `(name, review)` if asked. Without a name slot, an entity with no description is described by
    its name; with one, its description slot stays empty rather than repeat the name.

    The key is written as given, not as this entity spells it, so that the statements of two
    candidates with the same value are the same text (and deduplicate)."""
    held = entity_values(entity)
    slots: list[Pair | None] = []
    for key in keys:
        found = held.get(normalize_key(key))
        slots.append(None if found is None else (review, statement(key, surface, found[1])))
    if description_pair:
        description = entity.description.strip() or ("" if name_pair else entity.name)
        slots.append((description, review) if description else None)
    if name_pair:
        slots.append((entity.name, review))
    return slots


@dataclass
class PairBatch:
    """The unique pairs of a batch of mentions and where each candidate's slots find them."""

    premises: list[str]
    hypotheses: list[str]
    index: np.ndarray  # int64 [B, C, S]: row of premises/hypotheses, -1 = missing slot or padding
    candidate_mask: np.ndarray  # bool [B, C]: False = padding (the mention has fewer candidates)

    @property
    def n_pairs(self) -> int:
        return len(self.premises)

    @property
    def n_slots_filled(self) -> int:
        """Pairs before deduplication: the cross-encoder passes without it."""
        return int((self.index >= 0).sum())


def build_pair_batch(items: Sequence[Sequence[Sequence[Pair | None]]]) -> PairBatch:
    """items[b][c][s] -> a PairBatch; identical pairs anywhere in the batch are stored once.

    Mentions may have different numbers of candidates (padded, masked out) and candidates
    different numbers of slots (padded with -1; callers normally give every candidate the same)."""
    n_b = len(items)
    n_c = max((len(cands) for cands in items), default=0)
    n_s = max((len(slots) for cands in items for slots in cands), default=0)
    index = np.full((n_b, n_c, n_s), -1, dtype=np.int64)
    mask = np.zeros((n_b, n_c), dtype=bool)
    row: dict[Pair, int] = {}
    premises: list[str] = []
    hypotheses: list[str] = []
    for b, cands in enumerate(items):
        mask[b, : len(cands)] = True
        for c, slots in enumerate(cands):
            for s, pair in enumerate(slots):
                if pair is None:
                    continue
                key = (pair[0], pair[1])
                i = row.get(key)
                if i is None:
                    i = row[key] = len(premises)
                    premises.append(key[0])
                    hypotheses.append(key[1])
                index[b, c, s] = i
    return PairBatch(premises, hypotheses, index, mask)
