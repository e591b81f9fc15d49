import pytest

from ameli_ray.config import AmeliConfig
from ameli_ray.errors import ConfigError
from ameli_ray.formats import read_mentions
from ameli_ray.linker import Linker, MentionEncoder, check_compatible, link_result_row
from ameli_ray.schema import LINK_RESULT_ARROW_SCHEMA, Mention
from ameli_ray.storage import ObjectStore

pytestmark = pytest.mark.slow  # real encoders


def test_links_toy_reviews_with_text_and_photos(toy_kb, toy_dir, default_config, encoders):
    store = ObjectStore()
    encoder = MentionEncoder(default_config, store, *encoders)
    check_compatible(toy_kb.manifest, default_config, encoder)
    mentions = read_mentions(str(toy_dir / "mentions.json"), store)
    results = Linker(toy_kb, default_config).link(encoder.encode(mentions))
    assert [r.mention_id for r in results] == [m.id for m in mentions]
    # the photo's colour and the stated capacity single out the product: all six right
    assert sum(r.entity_id == r.gold_entity_id for r in results) == len(results)
    for r in results:
        assert set(r.candidates[0].channel_scores) == {"text", "image", "lexical", "attributes"}
        assert {(a.key.lower(), a.value) for a in r.attributes} & {("storage capacity", "128gb"), ("storage capacity", "256gb")}
        row = link_result_row(r)
        assert set(row) == set(LINK_RESULT_ARROW_SCHEMA.names)


def test_missing_photo_is_a_per_record_error_not_a_failure(toy_kb, toy_dir, default_config, encoders):
    store = ObjectStore()
    encoder = MentionEncoder(default_config, store, *encoders)
    mention = Mention(id="m", text="Aero X2 256GB", image_uris=[str(toy_dir / "gone.png"), str(toy_dir / "product_images" / "1.png")])
    (encoded,) = encoder.encode([mention])
    assert encoded.errors == [f"image not found: {toy_dir / 'gone.png'}"]
    assert len(encoded.query.image_emb) == 1  # the readable photo is still used
    (result,) = Linker(toy_kb, default_config).link([encoded])
    assert result.errors == encoded.errors and result.entity_id


def test_encoder_mismatch_is_explained(toy_kb):
    other = AmeliConfig.load(None, ["image_encoder.seed=7"])
    with pytest.raises(ConfigError, match="random-seed7"):
        check_compatible(toy_kb.manifest, other)
    other = AmeliConfig.load(None, ["text_encoder.model=sentence-transformers/all-mpnet-base-v2"])
    with pytest.raises(ConfigError, match="all-mpnet-base-v2"):
        check_compatible(toy_kb.manifest, other)
