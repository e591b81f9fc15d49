"""The char n-gram TF-IDF baseline: near-duplicates told apart, metrics over labelled mentions only,
k beyond the KB, chunking that changes nothing, and a module that stays light to import."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ameli_ray.evaluation.baseline import (
    char_tfidf_metrics,
    char_tfidf_rank,
    entity_doc_text,
    mention_query_text,
    rank_texts,
)
from ameli_ray.schema import NIL_ENTITY, Entity, Mention

ENTITIES = [
    Entity(id="cam1100", name="D-Link DCS-1100 Network Camera",
           attributes={"Product Name": "D-Link DCS-1100 Network Camera", "modelno": "DCS-1100", "brand": "D-Link", "price": "99.82"}),
    Entity(id="cam1130", name="D-Link DCS-1130 Network Camera",
           attributes={"Product Name": "D-Link DCS-1130 Network Camera", "modelno": "DCS-1130", "brand": "D-Link", "price": "129.99"}),
    Entity(id="ssd128", name="Samsung 860 EVO SSD 128GB", attributes={"capacity": "128GB", "brand": "Samsung"}),
    Entity(id="ssd256", name="Samsung 860 EVO SSD 256GB", attributes={"capacity": "256GB", "brand": "Samsung"}),
    Entity(id="tt", name="Sony PS-LX350H Belt-Drive Turntable", attributes={"brand": "Sony"}),
    Entity(id="spk", name="Bose Acoustimass 5 Series III Speaker System", attributes={"color": "black"}),
]


def mention(mid: str, surface: str, gold: str | None, text: str = "") -> Mention:
    return Mention(id=mid, surface=surface, text=text or surface, gold_entity_id=gold)


MENTIONS = [
    mention("m1", "dlink dcs1130 camera", "cam1130", "Great camera. model: DCS1130"),
    mention("m2", "D-Link DCS-1100", "cam1100"),
    mention("m3", "Samsung 860 EVO 256 GB", "ssd256", "Fast drive, 256 GB is plenty."),
    mention("m4", "Samsung EVO 128GB", "ssd128"),
    mention("m5", "Sony Turntable - PSLX350H", "tt"),
]


def test_near_duplicates_rank_the_right_one_first():
    ranked = char_tfidf_rank(ENTITIES, MENTIONS, k=3)
    assert [r[0] for r in ranked] == ["cam1130", "cam1100", "ssd256", "ssd128", "tt"]
    assert all(len(r) == 3 and len(set(r)) == 3 for r in ranked)
    # the near-duplicate comes second
    assert ranked[0][1] == "cam1100" and ranked[2][1] == "ssd128"


def test_texts_surface_plus_text_and_name_plus_values_without_price():
    assert mention_query_text(MENTIONS[0]) == "dlink dcs1130 camera Great camera. model: DCS1130"
    assert mention_query_text(Mention(id="x", text="only the review")) == "only the review"
    doc = entity_doc_text(ENTITIES[0])
    assert doc == "D-Link DCS-1100 Network Camera DCS-1100 D-Link"  # no echo of the name, no price, no keys


def test_metrics_skip_unlabelled_and_nil_mentions():
    extra = [
        mention("u1", "Bose Acoustimass speaker", None),  # unlabelled
        mention("n1", "Apple iPad 9.7 inch", NIL_ENTITY),  # labelled: not in the KB
        mention("w1", "Bose Acoustimass 5 speakers", "tt"),  # labelled, wrong at top-1
    ]
    m = char_tfidf_metrics(ENTITIES, MENTIONS + extra, ks=(1, 2, 6))
    assert m["n_mentions"] == 6 and m["n_nil_mentions"] == 1 and m["n_unlabelled"] == 1
    assert m["accuracy"] == pytest.approx(5 / 6) and m["recall@1"] == pytest.approx(5 / 6)
    assert m["recall@6"] == pytest.approx(1.0)  # every entity is among the first 6
    assert m["seconds"] >= 0
    assert set(m) == {"accuracy", "recall@1", "recall@2", "recall@6", "n_mentions", "n_nil_mentions", "n_unlabelled", "seconds"}


def test_metrics_without_labelled_mentions_are_zero_not_an_error():
    m = char_tfidf_metrics(ENTITIES, [mention("u", "Samsung SSD", None)], ks=(10,))
    assert m["n_mentions"] == 0 and m["accuracy"] == 0.0 and m["recall@10"] == 0.0


def test_k_larger_than_the_kb_gives_every_entity_once():
    ranked = char_tfidf_rank(ENTITIES, MENTIONS, k=1000)
    for r in ranked:
        assert sorted(r) == sorted(e.id for e in ENTITIES)
    assert [r[0] for r in ranked] == [r[0] for r in char_tfidf_rank(ENTITIES, MENTIONS, k=1)]


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 1000])
def test_chunking_gives_the_same_ranking_as_one_chunk(chunk_size):
    for k in (1, 4, 100):
        assert char_tfidf_rank(ENTITIES, MENTIONS, k=k, chunk_size=chunk_size) == char_tfidf_rank(
            ENTITIES, MENTIONS, k=k, chunk_size=len(MENTIONS)
        )


def test_ties_go_to_the_first_entity_whatever_k():
    # identical entity texts: equal scores everywhere, so KB order decides, for every k
    texts, ids = ["Canon PowerShot A590"] * 5 + ["Nikon Coolpix"], ["e0", "e1", "e2", "e3", "e4", "nikon"]
    for k in range(1, 7):
        assert rank_texts(texts, ["canon powershot"], ids, k) == [["e0", "e1", "e2", "e3", "e4", "nikon"][:k]]


def test_fit_mentions_only_shape_the_weights():
    ranked = char_tfidf_rank(ENTITIES, MENTIONS[:2], k=2, fit_mentions=MENTIONS[2:])
    assert len(ranked) == 2 and [r[0] for r in ranked] == ["cam1130", "cam1100"]


def test_edge_cases():
    assert char_tfidf_rank(ENTITIES, [], k=5) == []
    assert char_tfidf_rank([], MENTIONS[:2], k=5) == [[], []]
    assert rank_texts(["", ""], [" "], ["a", "b"], 5) == [["a", "b"]]  # nothing to compare: KB order
    with pytest.raises(ValueError):
        char_tfidf_rank(ENTITIES, MENTIONS, k=0)
    with pytest.raises(ValueError):
        char_tfidf_rank(ENTITIES, MENTIONS, chunk_size=0)


def test_importing_the_module_pulls_in_neither_sklearn_nor_ray():
    code = (
        "import sys, ameli_ray.evaluation.baseline\n"
        "print(sorted(m for m in ('sklearn', 'ray') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"
