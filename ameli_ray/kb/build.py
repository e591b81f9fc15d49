"""Embedding entities for the KB: the batch function every runner (in-process, Ray Data) calls,
and the in-process builds (in memory for given entities, streamed for a catalogue's shards)."""

from __future__ import annotations

import time

import numpy as np

from ameli_ray.attributes.evidence import read_text, wants_entity_ocr
from ameli_ray.attributes.ocr import make_ocr_engine
from ameli_ray.config import AmeliConfig
from ameli_ray.encoders import ImageEncoder, TextEncoder
from ameli_ray.encoders.image import embed_loaded, load_image_lists, split_by_owner
from ameli_ray.formats.shards import Shard, read_shard
from ameli_ray.kb.assets import KnowledgeBase, assemble_kb
from ameli_ray.kb.streamed import StreamedKBBuilder
from ameli_ray.schema import Entity
from ameli_ray.storage import ObjectStore


def embed_entity_texts(entities: list[Entity], encoder: TextEncoder) -> np.ndarray:
    return encoder.encode([e.text() for e in entities])


def embed_entities(entities: list[Entity], config: AmeliConfig, store: ObjectStore, text_encoder: TextEncoder,
                   image_encoder: ImageEncoder) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str] | None, list[list[str]]]:
    """Text embeddings, raw image embeddings [n_images, dim] with their entity rows, the text
    read on each entity's images (None when entity OCR is off) and each entity's image errors."""
    text_emb = embed_entity_texts(entities, text_encoder)
    # each product image is fetched and decoded once, then embedded (and read, with ocr_entities)
    loaded, errors = load_image_lists(
        [e.image_uris for e in entities], store, config.images, config.image_encoder.max_images_per_entity
    )
    image_emb, owner = embed_loaded(loaded, image_encoder)
    entity_ocr = None
    if wants_entity_ocr(config):
        lines, ocr_errors = read_text(loaded, make_ocr_engine(config.ocr), config)
        entity_ocr = [" ".join(t for t, _ in item) for item in lines]
        errors = [a + b for a, b in zip(errors, ocr_errors)]
    return text_emb, image_emb.reshape(len(owner), image_encoder.dim), owner, entity_ocr, errors


def build_kb_in_process(
    entities: list[Entity], config: AmeliConfig, store: ObjectStore, name: str,
    text_encoder: TextEncoder | None = None, image_encoder: ImageEncoder | None = None,
) -> tuple[KnowledgeBase, list[list[str]]]:
    """The whole KB build without Ray, in memory (tests, small KBs, benchmarks of the core)."""
    start = time.perf_counter()
    text_encoder = text_encoder or TextEncoder(config.text_encoder, store)
    image_encoder = image_encoder or ImageEncoder(config.image_encoder, store)
    text_emb, image_emb, owner, entity_ocr, errors = embed_entities(entities, config, store, text_encoder, image_encoder)
    kb = assemble_kb(
        entities, text_emb, image_emb, owner,
        name=name, text_model=text_encoder.model_id, image_model=image_encoder.model_id,
        image_fingerprint=image_encoder.fingerprint, text_fingerprint=text_encoder.fingerprint, index_settings=config.index,
        lexical=config.retrieval.lexical, chargram=config.retrieval.chargram, entity_ocr=entity_ocr,
        build_info={"seconds": round(time.perf_counter() - start, 3), "runner": "in-process"},
    )
    return kb, errors


def stream_kb_in_process(config: AmeliConfig, shards: list[Shard], images_uri: str | None, builder: StreamedKBBuilder,
                         store: ObjectStore, text_encoder: TextEncoder, image_encoder: ImageEncoder,
                         batch_rows: int) -> None:
    """Reads, embeds and adds the entities of `shards` to `builder`, one batch at a time."""
    for shard in shards:
        for batch in read_shard(shard.uri, store, images_uri, batch_rows, kind="entity"):
            builder.reject(batch.rejected)
            if not batch.records:
                continue
            text_emb, image_emb, owner, entity_ocr, errors = embed_entities(
                batch.records, config, store, text_encoder, image_encoder)
            builder.add(batch.records, text_emb, split_by_owner(image_emb, owner, len(batch.records)), entity_ocr,
                        [(shard.uri, p) for p in batch.positions], errors)
