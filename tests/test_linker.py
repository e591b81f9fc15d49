import pytest

from ameli_ray.config import AmeliConfig
from ameli_ray.errors import ConfigError
from ameli_ray.formats import read_mentions
from ameli_ray.linker import check_compatible, link_result_row, load_linker
from ameli_ray.schema import LINK_RESULT_ARROW_SCHEMA, Mention
from ameli_ray.storage import ObjectStore

pytestmark = pytest.mark.slow  # real encoders


def test_links_toy_reviews_with_text_and_photos(toy_kb, toy_dir, default_config, encoders):
    store = ObjectStore()
    loaded = load_linker(default_config, toy_kb, store, text_encoder=encoders[0], image_encoder=encoders[1])
    mentions = read_mentions(str(toy_dir / "mentions.json"), store)
    results = loaded.link(mentions)
    assert [r.mention_id for r in results] == [m.id for m in mentions]
    # the photo's colour and the stated capacity single out the product: all six right
    assert sum(r.entity_id == r.gold_entity_id for r in results) == len(results)
    for r in results:
        # the toy reviews name their product ("surface"): the name channel scores too, and so does
        # the numbers one ("Aero X2": every product's name has the 2); the codes one reads the
        # capacity ("128GB", in the right product's name); they state no price
        assert set(r.candidates[0].channel_scores) == {"text", "image", "lexical", "chargram", "name", "attributes", "numbers",
                                                       "codes"}
        assert r.candidates[0].channel_scores["numbers"] == 1.0 and r.candidates[0].channel_scores["codes"] == 1.0
        assert {(a.key.lower(), a.value) for a in r.attributes} & {("storage capacity", "128gb"), ("storage capacity", "256gb")}
        row = link_result_row(r)
        assert set(row) == set(LINK_RESULT_ARROW_SCHEMA.names)


def test_missing_photo_is_a_per_record_error_not_a_failure(toy_kb, toy_dir, default_config, encoders):
    loaded = load_linker(default_config, toy_kb, ObjectStore(), text_encoder=encoders[0], image_encoder=encoders[1])
    mention = Mention(id="m", text="Aero X2 256GB", image_uris=[str(toy_dir / "gone.png"), str(toy_dir / "product_images" / "1.png")])
    (encoded,) = loaded.encode([mention])
    assert encoded.errors == [f"image not found: {toy_dir / 'gone.png'}"]
    assert len(encoded.query.image_emb) == 1  # the readable photo is still used
    (result,) = loaded.linker.link([encoded])
    assert result.errors == encoded.errors and result.entity_id


def test_encoder_mismatch_is_explained(toy_kb):
    other = AmeliConfig.load(None, ["image_encoder.seed=7"])
    with pytest.raises(ConfigError, match="random-seed7"):
        check_compatible(toy_kb.manifest, other)
    other = AmeliConfig.load(None, ["text_encoder.model=sentence-transformers/all-mpnet-base-v2"])
    with pytest.raises(ConfigError, match="all-mpnet-base-v2"):
        check_compatible(toy_kb.manifest, other)


def test_load_linker_checks_the_image_weights_not_just_the_name(toy_kb, default_config, encoders):
    """A `pretrained` checkpoint replaced under the same name embeds into another space: the
    factory refuses it wherever an encoder meets the KB (in-process, Ray actors, Serve replicas)."""
    import copy

    text, image = encoders
    changed = copy.copy(image)
    changed.fingerprint = "0123456789ab"
    with pytest.raises(ConfigError, match="0123456789ab"):
        load_linker(default_config, toy_kb, ObjectStore(), text_encoder=text, image_encoder=changed)
    # without encoders (a retrieval actor: mentions arrive embedded) the names are still compared
    loaded = load_linker(default_config, toy_kb, ObjectStore(), encoder=False)
    assert loaded.encoder is None and loaded.disambiguator is None
    with pytest.raises(ConfigError, match="without mention encoders"):
        loaded.encode([Mention(id="m", text="x")])


def test_load_linker_checks_the_text_weights_not_just_the_name(toy_kb, default_config, encoders):
    """Fine-tuned text weights uploaded under the same URI embed into another space: refused by
    their fingerprint; a KB from before the fingerprint was recorded is checked by name only."""
    import copy
    import dataclasses

    text, image = encoders
    assert toy_kb.manifest.text_fingerprint == text.fingerprint != ""
    changed = copy.copy(text)
    changed.fingerprint = "fedcba987654"
    with pytest.raises(ConfigError, match=f"weights {text.fingerprint}.*weights fedcba987654"):
        load_linker(default_config, toy_kb, ObjectStore(), text_encoder=changed, image_encoder=image)
    old = dataclasses.replace(toy_kb, manifest=toy_kb.manifest.model_copy(update={"text_fingerprint": ""}))
    assert load_linker(default_config, old, ObjectStore(), text_encoder=changed, image_encoder=image).encoder is not None


def test_load_linker_reads_and_verifies_a_kb_uri(toy_kb, default_config, tmp_path):
    from ameli_ray.kb.assets import write_kb

    store = ObjectStore()
    version_uri = write_kb(toy_kb, str(tmp_path / "kb"), store)
    loaded = load_linker(default_config, str(tmp_path / "kb"), store, encoder=False)
    assert loaded.kb.manifest.version == toy_kb.manifest.version and len(loaded.kb.entities) == len(toy_kb.entities)
    other = AmeliConfig.load(None, ["image_encoder.seed=7"])
    with pytest.raises(ConfigError, match="random-seed7"):
        load_linker(other, version_uri, store, encoder=False)


def _ocr_threads(engine) -> set[int]:
    """intra-op threads of each onnxruntime session of a RapidOCR engine"""
    ocr = engine._ocr
    return {m.session.session.get_session_options().intra_op_num_threads
            for m in (ocr.text_det, ocr.text_rec) if m is not None}


@pytest.mark.slow
def test_an_actors_share_of_the_cores_reaches_the_ocr_engine(toy_kb, default_config, encoders):
    # onnxruntime's default pool takes every core of the node and spins on them: in a Serve replica
    # with one torch thread it burned 0.3 of the 2 cores the cross-encoder needed (BENCHMARKS.md)
    text, image = encoders
    loaded = load_linker(default_config, toy_kb, ObjectStore(), disambiguation=False,
                         text_encoder=text, image_encoder=image, ocr_threads=1)
    assert loaded.encoder.ocr is not None and _ocr_threads(loaded.encoder.ocr) == {1}


def test_ignored_attribute_keys_are_not_read_from_the_config_or_the_model(toy_kb, default_config, encoders):
    from ameli_ray.linker import Linker

    loaded = load_linker(default_config, toy_kb, ObjectStore(), text_encoder=encoders[0], image_encoder=encoders[1])
    mention = Mention(id="m", text="Aero X2 256GB, love it", gold_attributes={"Storage Capacity": "256GB"})

    def keys_read(config, **kw) -> set[str]:  # as the vocabulary compares them
        (encoded,) = loaded.encode([mention])
        (result,) = Linker(toy_kb, config, **kw).retrieve([encoded])
        return {" ".join(a.key.casefold().split()) for a in result.attributes}

    assert "storage capacity" in keys_read(default_config)
    ignoring = AmeliConfig.load(None, ["attributes.ignore_keys=[Storage  Capacity]"])
    assert ignoring.attributes.ignore_keys == ["storage capacity"]  # compared as the vocabulary compares keys
    assert "storage capacity" not in keys_read(ignoring)
    # a model's unreliable keys apply as its retrieval weights do ...
    assert "storage capacity" not in keys_read(default_config, fitted_ignored_keys=["Storage Capacity"])
    config_weights = AmeliConfig.load(None, ["retrieval.weights_from=config"])
    assert "storage capacity" in keys_read(config_weights, fitted_ignored_keys=["storage capacity"])
    # ... and never to gold values, which were not read
    gold = AmeliConfig.load(None, ["attributes.source=gold", "attributes.ignore_keys=[storage capacity]"])
    assert "storage capacity" in keys_read(gold)
