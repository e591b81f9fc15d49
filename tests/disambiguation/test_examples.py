"""Training examples: the gold among the candidates, pair slots, collation into tensors."""

import numpy as np
import torch

from ameli_ray.config import TextStreamSettings
from ameli_ray.disambiguation.examples import (
    collate_text,
    image_examples,
    mention_inputs,
    n_slots,
    text_example,
    training_candidates,
)
from ameli_ray.disambiguation.match_features import n_match_features
from ameli_ray.schema import Entity, Mention


def _entity(i: int, colour: str, capacity: str) -> Entity:
    return Entity(id=str(i), name=f"Aero X2 {capacity} {colour}", description=f"A {colour} phone.",
                  attributes={"Color": colour, "Storage Capacity": capacity, "Brand": "Nordvik"})


ENTITIES = [_entity(1, "Red", "128GB"), _entity(2, "Blue", "128GB"), _entity(3, "Red", "256GB")]
MENTION = Mention(id="m", text="Love the red one, 128GB is plenty.", surface="Aero X2", gold_entity_id="1")


def test_gold_keeps_its_rank_when_retrieved_and_is_inserted_when_missed():
    rng = np.random.default_rng(0)
    assert training_candidates(["a", "b", "c", "d"], "b", 3, rng) == (["a", "b", "c"], 1)
    ids, slot = training_candidates(["a", "b", "c", "d"], "z", 3, rng)
    assert len(ids) == 3 and ids[slot] == "z" and set(ids) - {"z"} <= {"a", "b"}
    slots = {training_candidates(["a", "b", "c"], "z", 3, np.random.default_rng(s))[1] for s in range(30)}
    assert slots == {0, 1, 2}  # a random slot, not always the last


def test_every_candidate_has_the_same_slots_with_the_description_and_the_name_last():
    settings = TextStreamSettings(statements=5)
    inputs = mention_inputs(MENTION, ["color"], ENTITIES, settings)
    pairs = inputs.pairs
    assert [len(p) for p in pairs] == [n_slots(settings)] * 3 and n_slots(settings) == 7
    assert [p[-2] for p in pairs] == [(e.description, MENTION.text) for e in ENTITIES]
    assert [p[-1] for p in pairs] == [(e.name, MENTION.text) for e in ENTITIES]
    unnamed = TextStreamSettings(statements=5, name_pair=False)
    assert n_slots(unnamed) == 6 and mention_inputs(MENTION, ["color"], ENTITIES, unnamed).pairs[0][-1] == (
        ENTITIES[0].description, MENTION.text)
    first = [p[0][1] for p in pairs]  # the evidence key comes first: colour
    assert first[0] != first[1] and "Red" in first[0] and "Blue" in first[1]


def test_collation_offsets_each_mentions_pairs_and_masks_padding():
    settings = TextStreamSettings(statements=2)
    a = text_example(MENTION, ["color"], ENTITIES, 0, settings)
    b = text_example(MENTION, [], ENTITIES[:2], 1, settings)
    premises, hypotheses, index, mask, gold, match = collate_text([a, b], n_slots(settings))
    assert index.shape == (2, 3, 4) and mask.tolist() == [[True, True, True], [True, True, False]]
    assert match.shape == (2, 3, n_match_features(2)) and (match[1, 2] == 0).all()  # padding: zeros
    np.testing.assert_array_equal(match[0].numpy(), mention_inputs(MENTION, ["color"], ENTITIES, settings).match)
    assert gold.tolist() == [0, 1] and len(premises) == len(a["premises"]) + len(b["premises"])
    # every slot of the second mention points past the first mention's pairs, at the same text
    local = torch.as_tensor(b["index"]).view(2, 4)
    for c in range(2):
        for s in range(4):
            if local[c, s] >= 0:
                j = int(index[1, c, s])
                assert j >= len(a["premises"])
                assert (premises[j], hypotheses[j]) == (b["premises"][local[c, s]], b["hypotheses"][local[c, s]])
    assert (index[1, 2] == -1).all()


def test_each_photo_is_paired_with_the_product_image_it_looks_most_like():
    photos = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    images = np.array([[0.1, 0.9], [0.9, 0.1]], np.float32)
    rows = image_examples(photos, images, group=7)
    assert [r["product_image"].tolist() for r in rows] == [images[1].tolist(), images[0].tolist()]
    assert {r["group"] for r in rows} == {7}
    assert image_examples(photos[:0], images, 7) == []


def test_match_features_can_be_switched_off():
    settings = TextStreamSettings(statements=2, match_features=False)
    a = text_example(MENTION, ["color"], ENTITIES, 0, settings)
    *_, match = collate_text([a], n_slots(settings))
    assert match.shape == (1, 3, 0)
