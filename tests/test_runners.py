"""One runner interface: in-process and Ray Data behind the same methods, with the same answers."""

from __future__ import annotations

import pytest

from ameli_ray.config import AmeliConfig
from ameli_ray.formats import read_entities, read_mentions
from ameli_ray.kb.assets import write_kb
from ameli_ray.runners import LocalRunner, make_runner
from ameli_ray.storage import ObjectStore


def test_engine_is_chosen_once_and_a_runner_passes_through():
    local = make_runner("local")
    assert isinstance(local, LocalRunner) and make_runner(local) is local
    with pytest.raises(ValueError, match="engine must be one of ray, local"):
        make_runner("spark")


@pytest.mark.slow
@pytest.mark.ray
def test_both_runners_build_link_and_retrieve_alike(toy_dir, tmp_path):
    from ameli_ray.retrieval.chargram import mention_query_text
    from ameli_ray.workflows import read_link_results

    config = AmeliConfig.load(None, ["ray.num_cpus=2"])
    store = ObjectStore()
    entities = read_entities(str(toy_dir / "entities.json"), store)
    mentions = read_mentions(str(toy_dir / "mentions.json"), store)
    local, ray_runner = make_runner("local"), make_runner("ray")
    with ray_runner.session(config):
        kbs = {r.name: r.build_kb(config, entities, "toy")[0] for r in (local, ray_runner)}
        assert kbs["ray"].manifest.image_fingerprint == kbs["local"].manifest.image_fingerprint
        kb_uri = write_kb(kbs["local"], str(tmp_path / "kb"), store)
        answers, retrieved, grams = {}, {}, {}
        for runner in (local, ray_runner):
            out = str(tmp_path / f"links-{runner.name}")
            runner.link(config, kb_uri, mentions, out)
            rows = read_link_results(out, store).to_pylist()
            answers[runner.name] = {r["mention_id"]: (r["entity_id"], r["candidate_ids"][:3]) for r in rows}
            retrieved[runner.name] = [
                (result.mention_id, evidence.mention.id, [c.entity_id for c in result.candidates[:3]], evidence.attribute_keys)
                for result, evidence in runner.retrieve(config, kb_uri, mentions)
            ]
            # training's char n-gram idf (fitted with the mention texts) reaches Ray's retrieval actors too
            for idf in (None, kbs["local"].chargram.fitted_idf(mention_query_text(m) for m in mentions)):
                grams[runner.name, idf is None] = [
                    {c.entity_id: round(c.channel_scores.get("chargram", 0.0), 5) for c in result.candidates[:3]}
                    for result, _ in runner.retrieve(config, kb_uri, mentions, chargram_idf=idf)
                ]
    assert grams["ray", False] == grams["local", False] != grams["local", True] == grams["ray", True]
    assert answers["ray"] == answers["local"] and len(answers["local"]) == len(mentions)
    # retrieve keeps the order it was given, whatever order Ray's actors finish in
    assert [r[0] for r in retrieved["ray"]] == [m.id for m in mentions] == [r[1] for r in retrieved["local"]]
    assert retrieved["ray"] == retrieved["local"]
