"""The attribute evidence of a mention, as the linker uses it.

Three sources, switchable for ablations (`attributes.source`):
- `extracted`: values found in the review text and in the OCR text of its photos (the system);
- `gold`:      the values the review is known to state (`Mention.gold_attributes`), the upper bound;
- `none`:      no attributes at all (the baseline).
"""

from __future__ import annotations

from ameli_ray.attributes.extract import ExtractedAttribute, extract_attributes
from ameli_ray.attributes.normalize import normalize_value
from ameli_ray.attributes.ocr import OcrEngine, ocr_image
from ameli_ray.attributes.vocabulary import AttributeVocabulary
from ameli_ray.config import AmeliConfig
from ameli_ray.encoders.image import Loaded, load_image_lists
from ameli_ray.schema import Mention
from ameli_ray.storage import ObjectStore


def mention_attributes(
    mention: Mention, ocr_texts: list[tuple[str, float]], vocabulary: AttributeVocabulary, source: str
) -> list[ExtractedAttribute]:
    if source == "none":
        return []
    if source == "gold":
        return [
            ExtractedAttribute(key=k, value=normalize_value(v), surface=v, source="gold", start=0, end=0, confidence=1.0)
            for k, v in mention.gold_attributes.items()
        ]
    return extract_attributes(mention.text, ocr_texts, vocabulary)


def wants_mention_ocr(config: AmeliConfig) -> bool:
    return config.ocr.engine != "none" and config.attributes.ocr_mentions and config.attributes.source == "extracted"


def wants_entity_ocr(config: AmeliConfig) -> bool:
    return config.ocr.engine != "none" and config.attributes.ocr_entities


def read_text_in_images(
    uri_lists: list[list[str]], engine: OcrEngine, store: ObjectStore, config: AmeliConfig, max_per_item: int | None = None
) -> tuple[list[list[tuple[str, float]]], list[list[str]]]:
    """Loads each item's images and reads them (see `read_text`). Unreadable images are skipped
    here without an error: the embedding stage, which loads them too, reports them once."""
    loaded, _ = load_image_lists(
        uri_lists, store, config.images, max_per_item or config.image_encoder.max_images_per_mention
    )
    return read_text(loaded, engine, config)


def read_text(loaded: list[Loaded], engine: OcrEngine, config: AmeliConfig) -> tuple[list[list[tuple[str, float]]], list[list[str]]]:
    """Per item, the OCR lines (text, confidence) of its decoded images, and OCR failures as errors."""
    lines_per_item, errors_per_item = [], []
    for pairs in loaded:
        lines, errors = [], []
        for uri, image in pairs:
            try:
                lines.extend((line.text, line.confidence) for line in ocr_image(engine, image, config.ocr))
            except Exception as exc:  # an OCR engine failing on one odd image must not sink the batch
                errors.append(f"ocr {uri}: {type(exc).__name__}: {exc}")
        lines_per_item.append(lines)
        errors_per_item.append(errors)
    return lines_per_item, errors_per_item
