"""The attribute vocabulary: what it keeps, how it matches, JSON round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ameli_ray.attributes.vocabulary import AttributeMatch, AttributeVocabulary
from ameli_ray.schema import Entity


def _entity(i: int, category: str = "Phones", **attributes: str) -> Entity:
    return Entity(id=str(i), name=f"product {i}", category=category, attributes=attributes)


@pytest.fixture(scope="module")
def vocab() -> AttributeVocabulary:
    entities = [
        Entity(id="0", name="Nova X2 256GB Midnight Blue", category="Phones", attributes={
            "Brand": "Novatek", "Color": "Midnight Blue", "Storage Capacity": "256 GB",
            "Model Number": "NV-AX2-256-BL", "Product Name": "Nova X2 256GB Midnight Blue", "Price": "999.99"}),
        Entity(id="1", name="Nova X2 128GB Royal Blue", category="Phones", attributes={
            "Brand": "Novatek", "color": "Royal Blue", "Storage Capacity": "128GB", "Model Number": "NV-AX2-128-RB"}),
        Entity(id="2", name="Nova X2 128GB Onyx Black", category="Phones", attributes={
            "Brand": "Novatek", "Color": "Onyx Black", "Storage Capacity": "128GB", "Model Number": "NVAX2128OB"}),
        Entity(id="3", name="Tee", category="Shirts", attributes={
            "Brand": "Threadline", "Color": "Red", "Clothing Size": "X-Large", "Series": "Envoy 2",
            "Shoe Size": "US 7.5", "Care Instructions": "Machine wash cold, tumble dry low, do not bleach or iron"}),
        Entity(id="4", name="Tee L", category="Shirts", attributes={
            "Brand": "Threadline", "Color": "Red", "Clothing Size": "Large", "Series": "Envoy 2 Pro",
            "Weight": "1.8", "Year": "2020", "modelno": "121066", "Pattern": "None", "Material": "The"}),
    ]
    return AttributeVocabulary.build(entities)


def _found(matches: list[AttributeMatch]) -> set[tuple[str, str]]:
    return {(m.key, m.value) for m in matches}


def test_build_keys_values_rows(vocab: AttributeVocabulary) -> None:
    assert vocab.n_entities == 5
    assert "color" in vocab.keys and "Color" not in vocab.keys  # keys compare case-insensitively
    assert "product name" not in vocab.keys and "price" not in vocab.keys  # echo of the name, an offer
    assert vocab.category_values("Phones", "Color") == {"midnight blue", "royal blue", "onyx black"}
    assert vocab.category_values("Phones", "storage capacity") == {"256gb", "128gb"}
    assert vocab.category_values(None, "color") == {"midnight blue", "royal blue", "onyx black", "red"}
    assert vocab.category_values("Nope", "color") == set() and vocab.category_values("Phones", "nope") == set()
    assert vocab.entity_attributes(1) == {
        "brand": "novatek", "color": "royal blue", "storage capacity": "128gb", "model number": "nv ax2 128 rb"}
    assert vocab.display_key("color") == "Color"
    with pytest.raises(IndexError):
        vocab.entity_attributes(5)


def test_entity_value_ids(vocab: AttributeVocabulary) -> None:
    kc, ks, kz = vocab.key_id("Color"), vocab.key_id("storage capacity"), vocab.key_id("clothing size")
    ids = vocab.entity_value_ids([0, 3, 2], [kc, ks, kz, -1])
    assert ids.shape == (3, 4)
    assert vocab.values[ids[0, 0]] == "midnight blue" and vocab.values[ids[0, 1]] == "256gb"
    assert ids[0, 2] == -1 and ids[1, 1] == -1 and (ids[:, 3] == -1).all()
    assert vocab.values[ids[1, 2]] == "xl"


def test_exact_units_and_token_boundaries(vocab: AttributeVocabulary) -> None:
    assert ("storage capacity", "256gb") in _found(vocab.match("With 256 gigs of storage"))
    assert ("storage capacity", "256gb") in _found(vocab.match("the 256GB model"))
    assert not _found(vocab.match("a 1128GB drive")) & {("storage capacity", "128gb")}
    assert not _found(vocab.match("a 128GB2 thing")) & {("storage capacity", "128gb")}
    assert ("color", "red") not in _found(vocab.match("I was bored and tired"))
    assert ("color", "red") in _found(vocab.match("Red!"))
    assert ("color", "red") in _found(vocab.match("(red)"))


def test_larger_value_wins_within_a_key(vocab: AttributeVocabulary) -> None:
    found = _found(vocab.match("I ordered an X-Large"))
    assert ("clothing size", "xl") in found and ("clothing size", "large") not in found
    found = _found(vocab.match("The Envoy 2 Pro is better than the Envoy 2."))
    assert ("series", "envoy 2 pro") in found and ("series", "envoy 2") in found  # both stated, at different places
    matches = [m for m in vocab.match("The Envoy 2 Pro rocks") if m.key == "series"]
    assert [m.value for m in matches] == ["envoy 2 pro"]  # "Envoy 2" inside it is not a second statement


def test_model_numbers_with_and_without_separators(vocab: AttributeVocabulary) -> None:
    for text in ("model NV-AX2-256-BL here", "model nv ax2 256 bl here", "model NVAX2256BL", "model NV-AX2-256BL.",
                 "(nv-ax2256-bl)"):
        found = {(m.key, m.value): m for m in vocab.match(text)}
        assert ("model number", "nv ax2 256 bl") in found, text
    m = [x for x in vocab.match("model NV-AX2-256-BL") if x.key == "model number"][0]
    assert m.confidence == 1.0 and m.kind == "exact" and m.surface == "NV-AX2-256-BL"
    m = [x for x in vocab.match("model NVAX2256BL") if x.key == "model number"][0]
    assert m.kind == "compact" and m.confidence < 1.0 and m.surface == "NVAX2256BL"
    m = [x for x in vocab.match("model NV-AX2-256BL.") if x.key == "model number"][0]
    assert m.kind == "compact" and m.surface == "NV-AX2-256BL"
    # a value stored without separators is found when written with them
    assert ("model number", "nvax2128ob") in _found(vocab.match("It's the NV-AX2-128-OB"))
    assert ("model number", "nvax2128ob") not in _found(vocab.match("the NVAX2128OB7 variant"))


def test_colours_direct_and_by_family(vocab: AttributeVocabulary) -> None:
    direct = vocab.match("Got the Midnight Blue one")
    assert [(m.value, m.kind, m.confidence) for m in direct if m.key == "color"] == [("midnight blue", "exact", 1.0)]
    family = [m for m in vocab.match("I went with the blue one") if m.key == "color"]
    assert {m.value for m in family} == {"midnight blue", "royal blue"}
    assert all(m.kind == "family" and m.confidence < 1.0 and m.surface == "blue" for m in family)
    assert {m.value for m in vocab.match("love the dark grey... no, the black") if m.key == "color"} == {"onyx black"}
    assert not [m for m in vocab.match("no colour here") if m.key == "color"]


def test_value_shared_by_keys_gives_one_match_per_key() -> None:
    v = AttributeVocabulary.build([
        _entity(0, **{"Display Type": "OLED", "Panel Type": "OLED"}),
        _entity(1, **{"Display Type": "LCD"}),
    ])
    matches = v.match("I love OLED")
    assert sorted(m.key for m in matches) == ["display type", "panel type"]
    assert {m.value for m in matches} == {"oled"} and all(m.confidence == 1.0 for m in matches)


def test_shared_value_context_names_the_key() -> None:
    v = AttributeVocabulary.build([
        _entity(0, **{"System Memory (RAM)": "32GB", "Solid State Drive Capacity": "1TB"}),
        _entity(1, **{"Storage Capacity": "32GB"}),
        _entity(2, **{"Storage Capacity": "1TB"}),
    ])
    conf = {m.key: m.confidence for m in v.match("The 32GB of RAM handles all my tabs")}
    assert conf["system memory (ram)"] == 1.0 and conf["storage capacity"] < 1.0  # kept, but less sure
    # the key's name must be in the same sentence
    conf = {m.key: m.confidence for m in v.match("My old drive died. I got the 1TB model")}
    assert conf == {"solid state drive capacity": 1.0, "storage capacity": 1.0}
    conf = {m.key: m.confidence for m in v.match("a 1TB solid state drive")}
    assert conf["solid state drive capacity"] == 1.0 and conf["storage capacity"] < 1.0


def test_skipped_values(vocab: AttributeVocabulary) -> None:
    found = _found(vocab.match("It weighs 1.8 and came in 2020, none the worse, the best"))
    assert not {k for k, _ in found} & {"weight", "year", "pattern", "material"}
    assert ("modelno", "121066") in _found(vocab.match("modelno 121066"))  # identifiers may be bare digits
    assert "care instructions" not in {m.key for m in vocab.match(
        "machine wash cold, tumble dry low, do not bleach or iron")}  # free text over 40 characters
    # ... but they remain the entity's values, for agreement
    assert vocab.entity_attributes(4)["weight"] == "1.8"


def test_alias_sizes(vocab: AttributeVocabulary) -> None:
    m = [x for x in vocab.match("I ordered a size 7.5 and it fits") if x.key == "shoe size"]
    assert [(x.value, x.kind) for x in m] == [("us 7.5", "alias")]
    assert [x.value for x in vocab.match("My usual US 7.5") if x.key == "shoe size"] == ["us 7.5"]
    assert not [x for x in vocab.match("US 7") if x.key == "shoe size"]


def test_offsets_point_at_the_original_text(vocab: AttributeVocabulary) -> None:
    text = "Café review — I got the 256 GB, “Midnight Blue”, model NV-AX2-256BL 😀 and it's red."
    matches = vocab.match(text)
    assert matches
    for m in matches:
        assert text[m.start : m.end] == m.surface
    surfaces = {(m.key, m.surface) for m in matches}
    assert ("storage capacity", "256 GB") in surfaces
    assert ("color", "Midnight Blue") in surfaces
    assert ("model number", "NV-AX2-256BL") in surfaces
    assert ("color", "red") in surfaces
    assert [m.start for m in matches] == sorted(m.start for m in matches)


def test_category_restriction(vocab: AttributeVocabulary) -> None:
    text = "the red one with 256GB"
    assert {m.key for m in vocab.match(text, categories=["Phones"])} == {"storage capacity"}
    assert {m.key for m in vocab.match(text, categories=["Shirts"])} == {"color"}
    assert vocab.match(text, categories=["Unknown"]) == []


@pytest.mark.parametrize(
    "text",
    ["", " ", "\ud800\udfff", "😀" * 50, "e\u0301" * 20, "\x00", "Red\ud800Blue 256\u0301GB", "'" * 10 + '"' * 5],
)
def test_odd_text_does_not_crash(vocab: AttributeVocabulary, text: str) -> None:
    for m in vocab.match(text):
        assert 0 <= m.start <= m.end <= len(text)


def test_json_round_trip(vocab: AttributeVocabulary) -> None:
    data = json.loads(json.dumps(vocab.to_json()))
    again = AttributeVocabulary.from_json(data)
    assert again.keys == vocab.keys and again.values == vocab.values and again.n_entities == vocab.n_entities
    for row in range(vocab.n_entities):
        assert again.entity_attributes(row) == vocab.entity_attributes(row)
    text = "Royal blue, NVAX2-256-BL, 128 GB, an XL, the blue one, size 7.5"
    assert again.match(text) == vocab.match(text)
    assert np.array_equal(again.entity_value_ids([0, 4], [0, 1]), vocab.entity_value_ids([0, 4], [0, 1]))


@pytest.mark.parametrize("bad", [{}, {"version": 99}, {"version": 1, "keys": []}, []])
def test_from_json_rejects_garbage(bad: object) -> None:
    with pytest.raises(ValueError):
        AttributeVocabulary.from_json(bad)  # type: ignore[arg-type]


def test_from_json_rejects_inconsistent_sizes(vocab: AttributeVocabulary) -> None:
    data = vocab.to_json()
    data["rows"]["ptr"] = data["rows"]["ptr"][:-1] + [10**6]
    with pytest.raises(ValueError):
        AttributeVocabulary.from_json(data)


def test_empty_vocabulary() -> None:
    v = AttributeVocabulary.build([])
    assert v.n_entities == 0 and v.match("red 256GB") == []
    assert v.entity_value_ids([], [0]).shape == (0, 1)
    assert AttributeVocabulary.from_json(v.to_json()).n_entities == 0
    v = AttributeVocabulary.build([_entity(0)])  # an entity without attributes
    assert v.entity_attributes(0) == {} and v.match("anything") == []


def test_pickle_ships_data_not_matcher(vocab: AttributeVocabulary) -> None:
    import pickle

    vocab.match("warm up")  # the automaton exists here
    again = pickle.loads(pickle.dumps(vocab))
    assert again._automaton is None  # rebuilt on first use where it lands
    text = "Royal blue, NVAX2-256-BL, 128 GB, an XL"
    assert again.match(text) == vocab.match(text)


def test_concurrent_first_use() -> None:
    from concurrent.futures import ThreadPoolExecutor

    v = AttributeVocabulary.build([_entity(i, Color=c) for i, c in enumerate(["Red", "Midnight Blue", "Black"])])
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: [m.value for m in v.match("the red and the midnight blue")], range(32)))
    assert all(r == ["red", "midnight blue"] for r in results)
