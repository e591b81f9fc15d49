"""The train verb end to end on a small generated catalogue: Ray Train for both streams, fusion
tuned on dev, a versioned model on S3 that the linker then uses."""

import json

import pytest

from ameli_ray.config import AmeliConfig

pytestmark = [pytest.mark.ray, pytest.mark.slow]

QUICK = [
    "train.text_epochs=1", "train.image_epochs=2", "train.max_train_mentions=12", "train.candidates=3",
    "disambiguation.text.max_seq_length=32", "disambiguation.text.frozen_layers=5", "disambiguation.fusion.top_n=5",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, s3_settings):
    from ameli_ray.catalog import generate_catalog
    from ameli_ray.distributed.runtime import ray_session
    from ameli_ray.formats import read_mentions
    from ameli_ray.storage import ObjectStore
    from ameli_ray.training_run import train_model
    from ameli_ray.workflows import build_kb

    root = tmp_path_factory.mktemp("train")
    generate_catalog(root / "catalog", n_products=30, seed=5)
    config = AmeliConfig.load(None, QUICK + ["ray.num_cpus=2"]).model_copy(update={"s3": s3_settings})
    store = ObjectStore(s3_settings)
    store.ensure_bucket("s3://train-run")
    split = {s: read_mentions(str(root / "catalog" / f"mentions_{s}.json"), store) for s in ("train", "dev", "test")}
    with ray_session(config.ray):
        kb_uri, _, _ = build_kb(config, str(root / "catalog" / "entities.json"), "s3://train-run/kb", engine="local")
        outcome = train_model(config, kb_uri, split["train"], split["dev"], "s3://train-run/model", engine="local")
    return config, store, kb_uri, outcome, split


def test_training_writes_a_verified_model_version_and_cleans_its_checkpoints(trained):
    from ameli_ray.disambiguation.manifest import read_model_manifest
    from ameli_ray.distributed.train import checkpoint_root

    config, store, _, outcome, _ = trained
    version_uri, manifest = read_model_manifest("s3://train-run/model", store)  # LATEST points at it
    assert version_uri == outcome["model"]
    assert manifest.text_model == config.disambiguation.text.model and manifest.has_image
    assert any(name.startswith("text/backbone/") and name.endswith(".safetensors") for name in manifest.files)
    assert abs(sum(manifest.fusion.weights.values()) - 1) < 1e-9 and manifest.fusion.grid
    record = outcome["training"]
    assert [h["epoch"] for h in record["image"]["history"]] == [1, 2]
    assert record["text"]["examples"] == 12 and record["text"]["history"][0]["samples"] == 12
    assert store.list_files(checkpoint_root("s3://train-run/model")) == []


def test_the_linker_uses_the_trained_model(trained, tmp_path):
    from ameli_ray.workflows import link_mentions, read_link_results, with_model

    config, store, kb_uri, outcome, split = trained
    run = link_mentions(with_model(config, outcome["model"]), kb_uri, split["test"], str(tmp_path / "links"), engine="local")
    rows = read_link_results(str(tmp_path / "links"), store).to_pylist()
    assert run.stats["n_mentions"] == len(rows) == len(split["test"])
    for row in rows:
        n = min(5, len(row["candidate_ids"]))
        finals = row["final_scores"][:n]
        assert all(v == v for v in finals)  # the top_n are scored (no NaN)
        assert all(v != v for v in row["final_scores"][n:])  # and only they
        assert all(v == v for v in row["text_stream_scores"][:n])
        if row["entity_id"]:
            assert row["entity_id"] in row["candidate_ids"][:n]


def test_the_retrieval_weights_fitted_on_dev_travel_with_the_model(trained):
    from ameli_ray.disambiguation.manifest import read_model_manifest
    from ameli_ray.linker import load_linker
    from ameli_ray.retrieval.retriever import CHANNELS
    from ameli_ray.workflows import with_model

    config, store, kb_uri, outcome, _ = trained
    fusion = read_model_manifest(outcome["model"], store)[1].fusion
    fitted = fusion.retrieval_weights
    assert set(fitted) == set(CHANNELS)  # every channel, those the fit left at 0 included
    assert {"configured_accuracy", "fitted_accuracy"} <= set(fusion.retrieval_dev)
    assert outcome["training"]["retrieval_weights"] == fitted
    # a retrieval-only linker over the model (a Ray Data retrieval actor) reads them from the
    # manifest; `retrieval.weights_from=config` goes back to the configured ones
    model_config = with_model(config, outcome["model"])
    alone = load_linker(model_config, kb_uri, store, encoder=False, disambiguation=False)
    assert alone.linker.retriever.weights.model_dump() == fitted
    # so do the attribute keys the model was trained without (none here: the catalogue's reads are clean)
    assert fusion.attribute_keys_dev and all(agree >= 0 and contra >= 0 for agree, contra in fusion.attribute_keys_dev.values())
    assert fusion.ignored_attribute_keys == outcome["training"]["ignored_attribute_keys"] == []
    assert alone.linker.ignored_keys == frozenset()
    assert alone.variant().retriever.weights.model_dump() == fitted
    ours = model_config.model_copy(update={"retrieval": model_config.retrieval.model_copy(update={"weights_from": "config"})})
    assert load_linker(ours, kb_uri, store, encoder=False).linker.retriever.weights == config.retrieval.weights


def test_the_char_ngram_idf_fitted_on_train_and_dev_travels_with_the_model(trained, caplog):
    import numpy as np

    from ameli_ray.disambiguation.manifest import model_chargram_idf, read_model_manifest
    from ameli_ray.kb.assets import load_kb
    from ameli_ray.linker import load_linker
    from ameli_ray.retrieval.chargram import mention_query_text
    from ameli_ray.training_run import _cap
    from ameli_ray.workflows import with_model

    config, store, kb_uri, outcome, split = trained
    _, manifest = read_model_manifest(outcome["model"], store)
    record = manifest.fusion.chargram_idf
    assert record["file"] in manifest.files  # checksummed like the weights
    kb = load_kb(kb_uri, store, config.index)
    assert record["kb_ngrams_sha256"] == kb.chargram_fingerprint
    # fitted on the KB and the train and dev texts (all of them: the cap on retrieved training
    # mentions is about OCR and encoding time), never on test
    seen = split["train"] + split["dev"]
    assert record["n_texts"] == len(seen) > len(_cap(split["train"], config.train.max_train_mentions)) + len(split["dev"])
    expected = kb.chargram.fitted_idf(mention_query_text(m) for m in seen)
    assert not np.allclose(expected, kb.chargram.idf)
    # every linker over the model weighs with it (a retrieval-only one too, as Ray Data and Serve
    # load them), and `retrieval.weights_from=config` goes back to the KB's own
    model_config = with_model(config, outcome["model"])
    for linker in (load_linker(model_config, kb_uri, store, encoder=False, disambiguation=False),
                   load_linker(model_config, kb, store, encoder=False)):
        np.testing.assert_allclose(linker.kb.chargram.idf, expected, rtol=1e-6)
    np.testing.assert_array_equal(kb.chargram.idf, load_kb(kb_uri, store, config.index).chargram.idf)  # caller's KB untouched
    ours = model_config.model_copy(update={"retrieval": model_config.retrieval.model_copy(update={"weights_from": "config"})})
    np.testing.assert_array_equal(load_linker(ours, kb_uri, store, encoder=False).kb.chargram.idf, kb.chargram.idf)
    # an idf fitted for another KB's n-grams would weigh the wrong n-grams: the KB's own serves
    with caplog.at_level("WARNING"):
        assert model_chargram_idf(*read_model_manifest(outcome["model"], store), store, "another KB's n-grams") is None
    assert "for another KB's n-grams" in caplog.text


def test_linking_with_another_top_n_than_the_model_was_tuned_on_is_refused(trained):
    from ameli_ray.errors import ConfigError
    from ameli_ray.linker import load_linker
    from ameli_ray.workflows import with_model

    config, store, kb_uri, outcome, _ = trained
    other = with_model(AmeliConfig.load(None, QUICK + ["disambiguation.fusion.top_n=7"]), outcome["model"])
    with pytest.raises(ConfigError, match="tuned on the top 5 candidates, but disambiguation.fusion.top_n is 7"):
        load_linker(other.model_copy(update={"s3": config.s3}), kb_uri, store, encoder=False)


def test_the_model_records_which_mentions_it_trained_and_tuned_on(trained):
    from ameli_ray.disambiguation.manifest import SEEN_MENTIONS, read_model_manifest, seen_overlap

    config, store, kb_uri, outcome, split = trained
    _, manifest = read_model_manifest(outcome["model"], store)
    assert SEEN_MENTIONS in manifest.files  # checksummed like the weights
    n_train = outcome["training"]["n_train_mentions"]  # the capped training set, not the whole split
    train_ids = [m.id for m in split["train"]]
    assert seen_overlap(outcome["model"], store, train_ids)["train"] == n_train
    mixed = seen_overlap(outcome["model"], store, [m.id for m in split["test"]] + [m.id for m in split["dev"][:3]])
    assert mixed == {"train": 0, "dev": 3, "n_scored": len(split["test"]) + 3}


def test_a_corrupted_model_file_is_refused(trained, tmp_path, monkeypatch):
    from ameli_ray.disambiguation.model import load_model
    from ameli_ray.errors import ChecksumMismatch

    config, store, _, outcome, _ = trained
    monkeypatch.setenv("AMELI_CACHE_DIR", str(tmp_path / "cache"))
    name = "image_adapter.safetensors"
    uri = f"{outcome['model']}/{name}"
    good = store.read_bytes(uri)
    store.write_bytes(uri, good[:-1] + bytes([good[-1] ^ 1]))
    try:
        with pytest.raises(ChecksumMismatch):
            load_model(outcome["model"], store, config.disambiguation)
    finally:
        store.write_bytes(uri, good)
    assert json.loads(store.read_text(f"{outcome['model']}/manifest.json"))["files"][name]


def _dev_items(consistent: bool):
    """120 labelled dev items (80 in one half, 40 in the other) and 12 no-match ones. Text ranks
    the gold first in every other mention, a decoy otherwise; BM25 marks the gold in the larger
    half and, unless `consistent`, a second decoy in the smaller one."""
    import itertools

    import numpy as np

    from ameli_ray.schema import NIL_ENTITY, Candidate, LinkResult, Mention, MentionEvidence
    from ameli_ray.training_run import Retrieved

    ids = (f"review-{k}" for k in itertools.count())
    big = [i for i in itertools.islice((i for i in ids if _half(i) == 0), 80)]
    small = [i for i in itertools.islice((i for i in ids if _half(i) == 1), 40)]
    items = []
    for m, mention_id in enumerate(big + small + [f"nil-{k}" for k in range(12)]):
        gold_slot, decoy, bm25_pick = m % 4, (m + 1) % 4, m % 4 if consistent or mention_id in big else (m + 2) % 4
        text_pick = gold_slot if m % 2 == 0 else decoy
        cands = [Candidate(entity_id=f"{mention_id}-e{c}", score=0.0, channel_scores={
            "text": 0.8 if c == text_pick else 0.7 if c in (gold_slot, decoy) else 0.5,
            "lexical": 5.0 if c == bm25_pick else 1.0}) for c in range(4)]
        gold = NIL_ENTITY if mention_id.startswith("nil") else cands[gold_slot].entity_id
        mention = Mention(id=mention_id, text="t", gold_entity_id=gold)
        items.append(Retrieved(LinkResult(mention_id=mention_id, entity_id="", score=0.0, candidates=cands),
                               MentionEvidence(mention, [], np.zeros((0, 4), np.float32))))
    return items


def _half(mention_id: str) -> int:
    from ameli_ray.evaluation.crossval import fold_of
    from ameli_ray.training_run import HALF_SALT

    return fold_of(mention_id, 2, HALF_SALT)


TEXT_ONLY = ["retrieval.weights.lexical=0"]  # configured: text alone (half the golds first)


def test_fusion_sees_each_half_of_dev_ranked_by_the_weights_fitted_on_the_other():
    from ameli_ray.config import FusionWeights
    from ameli_ray.retrieval.fitting import fit_retrieval_weights, refuse
    from ameli_ray.training_run import _labelled, fit_retrieval

    config = AmeliConfig.load(None, TEXT_ONLY)
    items = _dev_items(consistent=True)
    fit, reranked = fit_retrieval(config, items)
    assert fit.kept and fit.weights["lexical"] > 0
    assert [r.evidence.mention.id for r in reranked] == [i.evidence.mention.id for i in items]  # no-match ones too
    for side in (0, 1):
        other = [i for i in items if _labelled(i) and _half(i.evidence.mention.id) != side]
        weights = FusionWeights(**fit_retrieval_weights([i.result.candidates for i in other],
                                                        [i.evidence.mention.gold_entity_id for i in other],
                                                        config.retrieval.weights, config.retrieval.fit_min_gain).weights)
        for item, out in zip(items, reranked):
            if _half(item.evidence.mention.id) == side:
                assert [c.entity_id for c in out.result.candidates] == [c.entity_id for c in refuse(item.result.candidates, weights)]
                assert out.result.entity_id == out.result.candidates[0].entity_id
    assert fit.dev["configured_accuracy"] == 0.5 and fit.dev["cross_fitted_accuracy"] == fit.dev["fitted_accuracy"] == 1.0

    whole = config.model_copy(update={"retrieval": config.retrieval.model_copy(update={"cross_fit": False})})
    fit_whole, reranked_whole = fit_retrieval(whole, items)
    assert fit_whole.weights == fit.weights and "cross_fitted_accuracy" not in fit_whole.dev
    weights = FusionWeights(**fit.weights)
    assert all([c.entity_id for c in out.result.candidates] == [c.entity_id for c in refuse(item.result.candidates, weights)]
               for item, out in zip(items, reranked_whole))


def test_a_fit_that_loses_on_the_half_it_did_not_see_is_kept_and_fusion_sees_the_loss():
    """BM25 marks the gold in one half and a decoy in the other: over the whole of dev it gains
    (the larger half wins), but each half's fit costs the other half. The model keeps the whole-dev
    fit (refusing such fits cost test top-1 on the entity-matching sets); fusion is tuned on the
    cross-fitted ranking, which shows the loss, and the record shows the fit's optimism."""
    from ameli_ray.training_run import fit_retrieval

    config = AmeliConfig.load(None, TEXT_ONLY)
    items = _dev_items(consistent=False)
    fit, out = fit_retrieval(config, items)
    assert fit.kept and fit.weights["lexical"] > 0
    assert fit.dev["fitted_accuracy"] >= fit.dev["configured_accuracy"] + 0.1
    assert fit.dev["cross_fitted_accuracy"] < fit.dev["configured_accuracy"]
    top1 = sum(o.result.candidates[0].entity_id == o.evidence.mention.gold_entity_id for o in out
               if not o.evidence.mention.id.startswith("nil"))
    assert top1 / 120 == fit.dev["cross_fitted_accuracy"]


def test_the_training_reviews_join_the_fit_and_both_halves_of_the_cross_fit():
    import dataclasses

    from ameli_ray.config import FusionWeights
    from ameli_ray.retrieval.fitting import fit_retrieval_weights, refuse
    from ameli_ray.training_run import Retrieved, _labelled, fit_retrieval

    dev = _dev_items(consistent=False)  # BM25 misleads on dev's smaller half
    train = [Retrieved(i.result, dataclasses.replace(i.evidence, mention=i.evidence.mention.model_copy(
        update={"id": "train-" + i.evidence.mention.id}))) for i in _dev_items(consistent=True)]  # it never misleads here
    config = AmeliConfig.load(None, TEXT_ONLY)  # fit_on: train_and_dev
    assert config.retrieval.fit_on == "train_and_dev"
    fit, reranked = fit_retrieval(config, dev, train)
    labelled_dev = [i for i in dev if _labelled(i)]
    labelled_train = [i for i in train if _labelled(i)]
    assert fit.n_mentions == len(labelled_dev) + len(labelled_train) == 240
    for side in (0, 1):
        fitted_on = [i for i in labelled_dev if _half(i.evidence.mention.id) != side] + labelled_train
        weights = FusionWeights(**fit_retrieval_weights([i.result.candidates for i in fitted_on],
                                                        [i.evidence.mention.gold_entity_id for i in fitted_on],
                                                        config.retrieval.weights, 0.0).weights)
        for item, out in zip(dev, reranked):
            if _half(item.evidence.mention.id) == side:
                assert [c.entity_id for c in out.result.candidates] == [c.entity_id for c in refuse(item.result.candidates, weights)]
    # the cross-fitted figure is dev's alone; dev alone fits on dev alone
    assert len(reranked) == len(dev) and 0 <= fit.dev["cross_fitted_accuracy"] <= 1
    dev_only = AmeliConfig.load(None, [*TEXT_ONLY, "retrieval.fit_on=dev"])
    assert fit_retrieval(dev_only, dev, train)[0].n_mentions == len(labelled_dev)


def test_a_fit_must_gain_fit_min_gain_to_be_kept():
    from ameli_ray.training_run import fit_retrieval

    items = _dev_items(consistent=True)
    fit, _ = fit_retrieval(AmeliConfig.load(None, TEXT_ONLY), items)
    gain = fit.dev["fitted_accuracy"] - fit.dev["configured_accuracy"]
    assert fit.kept and gain == 0.5
    strict = AmeliConfig.load(None, [*TEXT_ONLY, "retrieval.fit_min_gain=0.6"])
    refused, out = fit_retrieval(strict, items)
    assert not refused.kept and refused.weights == strict.retrieval.weights.model_dump() and out is items


def test_keys_read_unreliably_on_dev_are_found_and_what_the_rule_saw_is_kept():
    from types import SimpleNamespace

    import numpy as np

    from ameli_ray.attributes.vocabulary import AttributeVocabulary
    from ameli_ray.schema import Candidate, Entity, LinkResult, Mention, MentionAttribute, MentionEvidence
    from ameli_ray.training_run import Retrieved, fit_attribute_keys

    entities = [Entity(id=f"p{i}", name=f"tv {i}", attributes={"Brand": "Lumen", "Dimensions": f"{40 + i} x 20 x 3 inches"})
                for i in range(12)]
    kb = SimpleNamespace(row_of={e.id: i for i, e in enumerate(entities)}, vocabulary=AttributeVocabulary.build(entities))

    def item(i: int, dims: str) -> Retrieved:
        read = [MentionAttribute(key="brand", value="lumen", source="text", confidence=0.9),
                MentionAttribute(key="dimensions", value=dims, source="ocr", confidence=0.8)]
        mention = Mention(id=f"r{i}", text="t", gold_entity_id=f"p{i}")
        result = LinkResult(mention_id=mention.id, entity_id="", score=0.0, attributes=read,
                            candidates=[Candidate(entity_id=f"p{i}", score=0.0)])
        return Retrieved(result, MentionEvidence(mention, ["brand", "dimensions"], np.zeros((0, 4), np.float32)))

    # the dimensions of a box, not the set, in 7 of 12 reviews; the brand always right
    items = [item(i, f"{40 + i} x 20 x 3 inches" if i < 5 else "12 x 8 x 2 inches") for i in range(12)]
    ignored, seen = fit_attribute_keys(AmeliConfig(), kb, items)
    assert ignored == ["dimensions"] and seen == {"brand": [12, 0], "dimensions": [5, 7]}
    lenient = AmeliConfig.load(None, ["attributes.min_key_precision=0.4"])
    assert fit_attribute_keys(lenient, kb, items)[0] == []
    too_few = AmeliConfig.load(None, ["attributes.min_key_reads=13"])
    assert fit_attribute_keys(too_few, kb, items)[0] == []
