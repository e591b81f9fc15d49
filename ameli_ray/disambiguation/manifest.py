"""A disambiguation model's manifest, read without its weights: what Serve's fusion stage, `evaluate`
and the linker's factory need of a model (its fusion, its retrieval weights, the mentions it saw)
without importing torch. The weights and the `Disambiguator` are in `disambiguation.model`."""

from __future__ import annotations

import hashlib
import json
from typing import Any, ClassVar

from ameli_ray.fusion import FusionModel
from ameli_ray.storage import ObjectStore
from ameli_ray.storage.versioned import VersionedManifest, read_verified, read_versioned_manifest

# 2: files carry {sha256, bytes} like the KB's (1 held the sha256 alone)
MODEL_FORMAT_VERSION = 3  # 3: fusion carries a confidence calibrator
WHAT = "disambiguation model"


class ModelManifest(VersionedManifest):
    remedy: ClassVar[str] = "retrain or re-upload it"

    format_version: int = MODEL_FORMAT_VERSION
    kb: str  # the KB version the streams were trained against (for the record)
    image_model: str  # the adapter's input space
    image_fingerprint: str
    text_model: str | None  # the cross-encoder it was fine-tuned from; None without a text stream
    text_settings: dict[str, Any]
    image_settings: dict[str, Any]
    has_image: bool
    fusion: FusionModel
    training: dict[str, Any] = {}


def read_model_manifest(uri: str, store: ObjectStore) -> tuple[str, ModelManifest]:
    return read_versioned_manifest(uri, store, ModelManifest, WHAT, MODEL_FORMAT_VERSION)


SEEN_MENTIONS = "seen_mentions.json"
CHARGRAM_IDF = "retrieval/chargram_idf.npy"


def model_chargram_idf(version_uri: str, manifest: ModelManifest, store: ObjectStore, kb_ngrams_sha256: str | None):
    """The char n-gram idf the model version fitted (numpy float32, checksum verified), or None: a
    model that fitted none, or one fitted for another KB's n-gram list (`kb_ngrams_sha256`: the
    loaded KB's), where its weights would land on the wrong n-grams; that case is logged, and the
    KB's own idf serves."""
    import logging

    from ameli_ray.retrieval.chargram import idf_from_bytes

    record = manifest.fusion.chargram_idf
    if not record:
        return None
    if record.get("kb_ngrams_sha256") != kb_ngrams_sha256:
        logging.getLogger(__name__).warning(
            "model %s fitted its char n-gram idf for another KB's n-grams: retrieving with the KB's own", version_uri)
        return None
    return idf_from_bytes(read_verified(version_uri, manifest, record["file"], store, WHAT))


def mention_key(mention_id: str) -> str:
    """How a model records a mention it trained or tuned on: a hash, not the id itself."""
    return hashlib.sha256(mention_id.encode()).hexdigest()[:16]


def seen_mentions_file(train_ids: list[str], dev_ids: list[str]) -> bytes:
    """The mentions a model was trained and tuned on, hashed (`mention_key`): `evaluate` with a
    given model flags scored mentions among them."""
    return json.dumps({"hash": "sha256[:16]", "train": sorted(map(mention_key, train_ids)),
                       "dev": sorted(map(mention_key, dev_ids))}).encode()


def seen_overlap(uri: str, store: ObjectStore, mention_ids: list[str]) -> dict | None:
    """{"train": n, "dev": n, "n_scored": n} of `mention_ids` the model at `uri` trained or tuned
    on; None for a model that records none (trained before it was recorded)."""
    version_uri, manifest = read_model_manifest(uri, store)
    if SEEN_MENTIONS not in manifest.files:
        return None
    seen = json.loads(read_verified(version_uri, manifest, SEEN_MENTIONS, store, WHAT))
    keys = [mention_key(i) for i in mention_ids]
    train, dev = set(seen["train"]), set(seen["dev"])
    return {"train": sum(k in train for k in keys), "dev": sum(k in dev for k in keys), "n_scored": len(keys)}
