"""Text printed on product images is evidence too: with `attributes.ocr_entities` it joins the
entity's lexical document, so a model number that only the photo shows becomes searchable."""

import pytest
from PIL import Image, ImageDraw, ImageFont

from ameli_ray.config import AmeliConfig
from ameli_ray.kb.build import build_kb_in_process
from ameli_ray.schema import Entity
from ameli_ray.storage import ObjectStore

pytestmark = pytest.mark.slow  # loads RapidOCR


def test_product_image_text_becomes_searchable(tmp_path, encoders):
    label = Image.new("RGB", (480, 160), "white")
    ImageDraw.Draw(label).text((20, 40), "QX-7710", fill="black", font=ImageFont.load_default(size=64))
    label.save(tmp_path / "label.png")
    Image.new("RGB", (96, 96), (40, 40, 40)).save(tmp_path / "plain.png")
    entities = [
        Entity(id="a", name="Lumen desk lamp", image_uris=[str(tmp_path / "label.png")]),
        Entity(id="b", name="Lumen floor lamp", image_uris=[str(tmp_path / "plain.png")]),
    ]
    store = ObjectStore()
    without, _ = build_kb_in_process(entities, AmeliConfig(), store, "t", *encoders)
    assert not without.lexical.scores("qx7710").any()

    config = AmeliConfig.load(None, ["attributes.ocr_entities=true"])
    with_ocr, errors = build_kb_in_process(entities, config, store, "t", *encoders)
    assert errors == [[], []]
    scores = with_ocr.lexical.scores("QX-7710")
    assert scores[0] > 0 and scores[1] == 0
