"""The attribute evidence of a mention, as the linker uses it.

Three sources, switchable for ablations (`attributes.source`):
- `extracted`: values found in the review text and in the OCR text of its photos (the system);
- `gold`:      the values the review is known to state (`Mention.gold_attributes`), the upper bound;
- `none`:      no attributes at all (the baseline).
"""

from __future__ import annotations

from ameli_ray.attributes.extract import ExtractedAttribute, extract_attributes
from ameli_ray.attributes.ocr import OcrEngine, ocr_image
from ameli_ray.config import AmeliConfig
from ameli_ray.attributes.normalize import normalize_value
from ameli_ray.attributes.vocabulary import AttributeVocabulary
from ameli_ray.schema import Mention
from ameli_ray.storage import ObjectStore, load_images


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


def read_text_in_images(
    uri_lists: list[list[str]], engine: OcrEngine, store: ObjectStore, config: AmeliConfig, max_per_item: int | None = None
) -> tuple[list[list[tuple[str, float]]], list[list[str]]]:
    """Per item, the OCR lines (text, confidence) of its images, and OCR failures as errors.

    Unreadable images are skipped here without an error: the embedding stage reports them once.
    """
    limit = max_per_item or config.image_encoder.max_images_per_mention
    lines_per_item, errors_per_item = [], []
    for uris in uri_lists:
        images, _ = load_images(uris, store, config.images, limit)
        lines, errors = [], []
        for uri, image in zip(uris, images):
            try:
                lines.extend((line.text, line.confidence) for line in ocr_image(engine, image, config.ocr))
            except Exception as exc:  # an OCR engine failing on one odd image must not sink the batch
                errors.append(f"ocr {uri}: {type(exc).__name__}: {exc}")
        lines_per_item.append(lines)
        errors_per_item.append(errors)
    return lines_per_item, errors_per_item
