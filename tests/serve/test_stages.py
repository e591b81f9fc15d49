"""The stages' own logic without Ray: versions held and switched, and the response."""

import asyncio
import threading

import numpy as np
import pytest

from ameli_ray.schema import Candidate, LinkResult, MentionAttribute
from ameli_ray.serve.api import Versions
from ameli_ray.serve.stages import Retrieved, VersionCache, response, split_key, version_key


def test_a_version_cache_loads_once_switches_and_keeps_the_last_two():
    loads: list[str] = []
    gate = threading.Event()

    def load(key: str) -> str:
        loads.append(key)
        if key == "slow":
            gate.wait(5)
        if key == "bad":
            raise ValueError("checksum mismatch")
        return f"assets of {key}"

    async def scenario():
        cache = VersionCache(load, keep=2)
        assert await cache.switch("v1") == "assets of v1" and cache.current == "v1"
        # two requests for a version being loaded share one load
        waiting = [asyncio.create_task(cache.get("slow")) for _ in range(3)]
        await asyncio.sleep(0.05)
        gate.set()
        assert [await t for t in waiting] == [("slow", "assets of slow")] * 3
        assert loads.count("slow") == 1 and cache.current == "v1"  # loaded, not switched to
        await cache.switch("v2")
        # the version being replaced stays (requests in flight may still ask for it); the oldest
        # other one goes
        assert cache.current == "v2" and set(cache.held) == {"v1", "v2"}
        with pytest.raises(ValueError):
            await cache.switch("bad")
        assert cache.current == "v2" and "bad" not in cache.held  # a failed load changes nothing
        assert await cache.get() == ("v2", "assets of v2")

    asyncio.run(scenario())


def test_keys_name_both_versions():
    assert split_key(version_key("s3://b/kb/v1", None)) == ("s3://b/kb/v1", None)
    assert split_key(version_key("s3://b/kb/v1", "s3://b/m/v3")) == ("s3://b/kb/v1", "s3://b/m/v3")


def test_the_response_lists_candidates_by_fused_score_with_their_views():
    cands = [
        Candidate(entity_id="a", score=0.9, channel_scores={"text": 0.8, "final": 0.1, "text_stream": 0.2, "image_stream": float("nan")}),
        Candidate(entity_id="b", score=0.8, channel_scores={"text": 0.7, "final": 0.7, "text_stream": 0.9}),
        Candidate(entity_id="c", score=0.5, channel_scores={"text": 0.4}),
    ]
    result = LinkResult(mention_id="m", entity_id="b", score=0.7, candidates=cands, confidence=0.83, best_entity_id="b",
                        attributes=[MentionAttribute(key="color", value="red", source="ocr", confidence=0.9)])
    versions = Versions(kb="s3://b/kb/v1", kb_version="v1", model="s3://b/m/v2", model_version="v2")
    item = Retrieved("k", versions, result, None, {"a": ("A", [], ["color"]), "b": ("B", ["color"], [])}, True)
    out = response(result, item, n_candidates=2)
    assert out.entity_id == "b" and not out.no_match and out.confidence == pytest.approx(0.83)
    assert [c.entity_id for c in out.candidates] == ["b", "a"]  # by fused score, cut at 2
    assert out.candidates[0].matched == ["color"] and out.candidates[1].contradicted == ["color"]
    assert out.candidates[1].image_stream is None and out.candidates[0].channels == {"text": 0.7}
    assert out.attributes[0].source == "ocr" and out.versions.kb_version == "v1"
    nil = response(result.model_copy(update={"entity_id": "", "confidence": float("nan")}), item, 3)
    assert nil.entity_id is None and nil.no_match and nil.confidence is None and len(nil.candidates) == 3
    assert np.isfinite(nil.candidates[0].retrieval)
