"""The fused retriever on hand-made embeddings: what each channel contributes, and how they fuse."""

import numpy as np
import pytest

from ameli_ray.config import FusionWeights, IndexSettings, RetrievalSettings
from ameli_ray.kb.assets import assemble_kb
from ameli_ray.retrieval.retriever import CandidateRetriever, MentionQuery
from ameli_ray.schema import Entity


def _unit(x):
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _kb(image_emb, image_owner, names=None, attributes=None):
    entities = [Entity(id=f"e{i}", name=(names or {}).get(i, f"product {i}"), attributes=(attributes or {}).get(i, {}))
                for i in range(4)]
    text = _unit(np.eye(4) + 0.1)
    return assemble_kb(
        entities, text, _unit(image_emb), np.asarray(image_owner), name="t", text_model="t", image_model="i",
        image_fingerprint="f", index_settings=IndexSettings(),
    )


def _retriever(kb, **weights):
    return CandidateRetriever(kb, RetrievalSettings(top_k=4, pool_per_channel=4, weights=FusionWeights(**weights)))


def test_text_only_mention_ignores_image_channel():
    kb = _kb(np.eye(4, 8) + 0.01, [0, 1, 2, 3])
    query = MentionQuery("product", _unit(np.eye(4)[2] + 0.1), np.zeros((0, 8), np.float32))
    cands = _retriever(kb, text=1, image=1, lexical=0).retrieve([query])[0]
    assert cands[0].entity_id == "e2"
    assert "image" not in cands[0].channel_scores


def test_image_score_is_max_over_image_pairs():
    # entity 1 has two images; the mention's photo matches its second one
    image_emb = np.eye(5, 8) + 0.01
    owner = [0, 1, 1, 2, 3]
    kb = _kb(image_emb, owner)
    photo = kb.image_center + _unit(image_emb[2])  # image row 2 belongs to entity 1
    query = MentionQuery("product", _unit(np.ones(4)), np.asarray([photo], np.float32))
    cands = _retriever(kb, text=0.0001, image=1, lexical=0).retrieve([query])[0]
    assert cands[0].entity_id == "e1"


def test_lexical_channel_decides_on_exact_tokens():
    kb = _kb(np.eye(4, 8) + 0.01, [0, 1, 2, 3], names={3: "Widget ELPLP12"})
    query = MentionQuery("replacement lamp elplp12", _unit(np.ones(4)), np.zeros((0, 8), np.float32))
    assert _retriever(kb, text=0.5, image=0, lexical=0.5).retrieve([query])[0][0].entity_id == "e3"
    no_lexical = CandidateRetriever(kb, RetrievalSettings(top_k=4, pool_per_channel=4, lexical=False))
    assert "lexical" not in no_lexical.retrieve([query])[0][0].channel_scores


def test_candidates_are_sorted_and_cut_at_top_k():
    kb = _kb(np.eye(4, 8) + 0.01, [0, 1, 2, 3])
    query = MentionQuery("product", _unit(np.eye(4)[0] + 0.1), np.zeros((0, 8), np.float32))
    cands = CandidateRetriever(kb, RetrievalSettings(top_k=2, pool_per_channel=4)).retrieve([query])[0]
    assert len(cands) == 2 and cands[0].score >= cands[1].score


def test_the_name_channel_reads_the_reviews_name_alone():
    # a long description that repeats the other edition's words outweighs the name's "upgrade" in
    # the name + text channel; the name alone does not
    names = {0: "adobe premiere pro cs3 upgrade", 1: "adobe premiere pro cs3 full version for windows with encore and onlocation"}
    kb = _kb(np.eye(4, 8) + 0.01, [0, 1, 2, 3], names=names)
    text = ("the upgrade of premiere pro: edit in premiere pro cs3, author discs with encore, log shots with onlocation, "
            "full version features for windows")
    query = MentionQuery(text, _unit(np.ones(4)), np.zeros((0, 8), np.float32), surface="Adobe Premiere Pro CS3 Upgrade")
    text_and_name = _retriever(kb, text=1e-4, image=0, lexical=0, chargram=1, name=0, attributes=0).retrieve([query])[0]
    assert text_and_name[0].entity_id == "e1"
    by_name = _retriever(kb, text=1e-4, image=0, lexical=0, chargram=1, name=1.6, attributes=0).retrieve([query])[0]
    assert by_name[0].entity_id == "e0"
    scores = {c.entity_id: c.channel_scores for c in by_name}
    assert scores["e0"]["name"] > scores["e1"]["name"] and scores["e0"]["chargram"] < scores["e1"]["chargram"]
    # no name, or a name that is the whole text: no channel (its weight goes to the others)
    for surface, text in (("", text), ("Aero X2", "Aero X2")):
        q = MentionQuery(text, _unit(np.ones(4)), np.zeros((0, 8), np.float32), surface=surface)
        assert "name" not in _retriever(kb, name=1.0).retrieve([q])[0][0].channel_scores
    assert "name" not in CandidateRetriever(kb, RetrievalSettings(top_k=4, pool_per_channel=4, chargram=False)).retrieve(
        [query])[0][0].channel_scores


def test_the_price_channel_prefers_the_product_listed_near_the_stated_price():
    # two editions with one name; the review says what it cost
    names = {0: "lojack for laptops subscription", 1: "lojack for laptops subscription"}
    prices = {0: {"price": "49.99"}, 1: {"Price": "$119.99"}, 2: {"brand": "absolute"}}
    kb = _kb(np.eye(4, 8) + 0.01, [0, 1, 2, 3], names=names, attributes=prices)
    assert np.isnan(kb.prices[2:]).all() and kb.prices[:2].tolist() == [np.float32(49.99), np.float32(119.99)]
    query = MentionQuery("lojack for laptops subscription. price: 119.99", _unit(np.ones(4)), np.zeros((0, 8), np.float32),
                         surface="lojack for laptops subscription")
    assert query.price == 119.99
    without = _retriever(kb, text=1e-4, image=0, lexical=0, chargram=1, name=0, attributes=0, price=0).retrieve([query])[0]
    with_price = _retriever(kb, text=1e-4, image=0, lexical=0, chargram=1, name=0, attributes=0, price=0.4).retrieve([query])[0]
    assert without[0].entity_id == "e0" and with_price[0].entity_id == "e1"  # a tie broken by row order, then by price
    scores = {c.entity_id: c.channel_scores["price"] for c in with_price}
    # float32 prices: 1 up to rounding; 49.99 against 119.99 is 2.4 times less, 0.2 at span 3
    assert scores["e1"] == pytest.approx(1.0) and scores["e0"] == pytest.approx(0.2, abs=0.01) and np.isnan(scores["e2"])
    # a review that states no price, or the channel switched off: no channel, its weight goes to the others
    quiet = MentionQuery("lojack for laptops subscription", _unit(np.ones(4)), np.zeros((0, 8), np.float32))
    assert quiet.price is None and "price" not in _retriever(kb, price=1.0).retrieve([quiet])[0][0].channel_scores
    off = CandidateRetriever(kb, RetrievalSettings(top_k=4, pool_per_channel=4, price=False, weights=FusionWeights(price=1.0)))
    assert "price" not in off.retrieve([query])[0][0].channel_scores
    # a KB that lists no prices: none either
    bare = _kb(np.eye(4, 8) + 0.01, [0, 1, 2, 3], names=names)
    assert "price" not in _retriever(bare, price=1.0).retrieve([query])[0][0].channel_scores


def test_the_numbers_channel_tells_editions_apart_by_the_numbers_in_their_names():
    names = {0: "norton antivirus 2004", 1: "norton antivirus 2007", 2: "norton internet security"}
    kb = _kb(np.eye(4, 8) + 0.01, [0, 1, 2, 3], names=names)
    query = MentionQuery("norton antivirus 2007 protects your pc", _unit(np.ones(4)), np.zeros((0, 8), np.float32),
                         surface="Norton AntiVirus 2007")
    got = _retriever(kb, text=1e-4, image=0, lexical=0, chargram=0, name=1, attributes=0, numbers=0.4).retrieve([query])[0]
    scores = {c.entity_id: c.channel_scores["numbers"] for c in got}
    assert got[0].entity_id == "e1" and scores == {"e0": 0.0, "e1": 1.0, "e2": 0.0, "e3": 0.0}
    # no number in the name, no name, or the channel off: no channel
    for surface in ("Norton AntiVirus", ""):
        q = MentionQuery("norton antivirus 2007", _unit(np.ones(4)), np.zeros((0, 8), np.float32), surface=surface)
        assert "numbers" not in _retriever(kb, numbers=1.0).retrieve([q])[0][0].channel_scores
    off = CandidateRetriever(kb, RetrievalSettings(top_k=4, pool_per_channel=4, numbers=False, weights=FusionWeights(numbers=1.0)))
    assert "numbers" not in off.retrieve([query])[0][0].channel_scores


def test_the_codes_channel_finds_the_review_s_model_code_in_the_product_s_name_or_values():
    # the Walmart->Amazon confusion: one series, the code in the review's text decides
    names = {0: "Swingline 74150 Heavy-Duty Punch", 1: "New-Swingline 74030 - Light Touch Punch - SWI74030",
             2: "Swingline Light Touch Punch", 3: "Stapler"}
    attributes = {2: {"modelno": "74030"}, 3: {"price": "74030"}}  # a price is no place for a code
    kb = _kb(np.eye(4, 8) + 0.01, [0, 1, 2, 3], names=names, attributes=attributes)
    query = MentionQuery("Swingline Light Touch Punch. modelno: 74030. price: 21.94", _unit(np.ones(4)),
                         np.zeros((0, 8), np.float32), surface="Swingline Light Touch Punch")
    assert query.codes == {"74030"}  # the price is a decimal, not a code
    got = _retriever(kb, text=1e-4, image=0, lexical=0, chargram=0, name=0, attributes=0, codes=1).retrieve([query])[0]
    scores = {c.entity_id: c.channel_scores["codes"] for c in got}
    assert scores == {"e0": 0.0, "e1": 1.0, "e2": 1.0, "e3": 0.0}
    # a review without a code, or the channel off: no channel, its weight goes to the others
    quiet = MentionQuery("a light touch punch", _unit(np.ones(4)), np.zeros((0, 8), np.float32), surface="Punch")
    assert not quiet.codes and "codes" not in _retriever(kb, codes=1.0).retrieve([quiet])[0][0].channel_scores
    off = CandidateRetriever(kb, RetrievalSettings(top_k=4, pool_per_channel=4, codes=False, weights=FusionWeights(codes=1.0)))
    assert "codes" not in off.retrieve([query])[0][0].channel_scores
