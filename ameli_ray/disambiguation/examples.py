"""Training examples of both streams, built from retrieval output; and their collation into
tensors. Shared by the Ray Train loop and the in-process code so that a model is trained on
exactly the inputs it is later asked to score.

Text stream: one example per mention, its candidate list as retrieval ranked it with the gold
product put in at a random slot when retrieval missed it (the paper's training setup), every
candidate's (premise, hypothesis) pairs deduplicated within the mention, and its match features.
Image stream: one example per review photo, paired with the gold product's image it looks most
like (the image score at inference is the max over pairs; this trains the pair that decides it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ameli_ray.config import TextStreamSettings
from ameli_ray.disambiguation.match_features import match_features
from ameli_ray.disambiguation.statements import build_pair_batch, candidate_pairs, choose_keys
from ameli_ray.schema import Entity, Mention


def training_candidates(
    candidate_ids: list[str], gold: str, n: int, rng: np.random.Generator
) -> tuple[list[str], int]:
    """The first `n` retrieved candidates with the gold among them; returns (ids, gold slot).

    The gold keeps its rank when retrieval found it within `n`; otherwise it replaces the last
    one and takes a random slot, so the model never learns "the answer is at rank k"."""
    ids = [c for c in candidate_ids[:n]]
    if gold in ids:
        return ids, ids.index(gold)
    ids = ids[: n - 1]
    slot = int(rng.integers(len(ids) + 1))
    ids.insert(slot, gold)
    return ids, slot


@dataclass
class MentionInputs:
    """What the text stream reads of one mention's candidates."""

    pairs: list[list[tuple[str, str] | None]]  # [C][S] slots: the same attribute keys for all, then the description pair
    match: np.ndarray  # float32 [C, F] match features (F = 0 when the settings switch them off)


def mention_inputs(
    mention: Mention, attribute_keys: list[str], candidates: list[Entity], settings: TextStreamSettings
) -> MentionInputs:
    """Every candidate's slots (the same attribute keys for all, then the description pair) and
    match features, over the keys `choose_keys` picks once for the mention."""
    keys = choose_keys(attribute_keys, candidates, settings.statements)
    padding: list[tuple[str, str] | None] = [None] * (settings.statements - len(keys))  # fixed slot count: the head's input
    pairs = []
    for entity in candidates:
        slots = candidate_pairs(mention.text, mention.surface, entity, keys, settings.description_pair, settings.name_pair)
        pairs.append(slots[: len(keys)] + padding + slots[len(keys):])
    if settings.match_features:
        match = match_features(mention.text, mention.surface, candidates, keys, settings.statements)
    else:
        match = np.zeros((len(candidates), 0), np.float32)
    return MentionInputs(pairs, match)


def stack_match(items: list[np.ndarray], width: int) -> np.ndarray:
    """Per-mention [C_i, F] match features -> float32 [B, width, F], zero-padded candidates."""
    f = items[0].shape[1] if items else 0
    out = np.zeros((len(items), width, f), np.float32)
    for b, m in enumerate(items):
        out[b, : len(m)] = m
    return out


def n_slots(settings: TextStreamSettings) -> int:
    return settings.statements + int(settings.description_pair) + int(settings.name_pair)


def text_example(
    mention: Mention, attribute_keys: list[str], candidates: list[Entity], gold_slot: int,
    settings: TextStreamSettings,
) -> dict:
    """A row of the text-stream training dataset (plain lists: it travels through Ray Data)."""
    inputs = mention_inputs(mention, attribute_keys, candidates, settings)
    batch = build_pair_batch([inputs.pairs])
    return {
        "premises": batch.premises,
        "hypotheses": batch.hypotheses,
        "index": batch.index[0].reshape(-1).astype(np.int64).tolist(),
        "match": inputs.match.reshape(-1).tolist(),
        "n_candidates": len(candidates),
        "gold": gold_slot,
    }


def collate_text(
    rows: list[dict], slots: int
) -> tuple[list[str], list[str], torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rows -> (premises, hypotheses, index [B, C, S], candidate mask [B, C], gold [B],
    match features [B, C, F])."""
    width = max(int(r["n_candidates"]) for r in rows)
    index = torch.full((len(rows), width, slots), -1, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.bool)
    premises: list[str] = []
    hypotheses: list[str] = []
    for b, row in enumerate(rows):
        c = int(row["n_candidates"])
        local = torch.as_tensor(np.asarray(row["index"], dtype=np.int64)).view(c, slots)
        index[b, :c] = torch.where(local >= 0, local + len(premises), local)
        mask[b, :c] = True
        premises.extend(row["premises"])
        hypotheses.extend(row["hypotheses"])
    gold = torch.as_tensor([int(r["gold"]) for r in rows], dtype=torch.long)
    match = stack_match(
        [np.asarray(r["match"], np.float32).reshape(int(r["n_candidates"]), -1) for r in rows], width
    )
    return premises, hypotheses, index, mask, gold, torch.as_tensor(match)


def image_examples(photos: np.ndarray, gold_images: np.ndarray, group: int) -> list[dict]:
    """One row per review photo: its features, the gold product image it matches best, the
    product (so that two photos of one product in a batch are not each other's negatives)."""
    if not len(photos) or not len(gold_images):
        return []
    best = (photos @ gold_images.T).argmax(axis=1)
    return [
        {"photo": photos[i].astype(np.float32), "product_image": gold_images[int(j)].astype(np.float32), "group": group}
        for i, j in enumerate(best)
    ]
