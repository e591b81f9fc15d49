"""The trained disambiguation model as a versioned asset, and the `Disambiguator` that applies it.

    <root>/LATEST
    <root>/<version>/manifest.json             streams, base models, fusion, training record, sha256 and size of every file
    <root>/<version>/text/backbone/…           the fine-tuned cross-encoder (HF layout, safetensors) + tokenizer
    <root>/<version>/text/text_head.safetensors, text/text_stream.json
    <root>/<version>/image_adapter.safetensors

The image adapter was trained on one image tower's features: a KB built with another tower is
refused, as the linker refuses a KB built with other encoders.

Written and verified as a versioned asset (ameli_ray.storage.versioned), as the KB is.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import tempfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ameli_ray.config import DisambiguationSettings, ImageStreamSettings, TextStreamSettings
from ameli_ray.disambiguation.examples import mention_inputs, stack_match
from ameli_ray.disambiguation.image_stream import ImageStream
from ameli_ray.disambiguation.manifest import WHAT, ModelManifest, read_model_manifest
from ameli_ray.disambiguation.statements import build_pair_batch
from ameli_ray.encoders.loading import cache_dir, prune_cache, touch_cache_entry
from ameli_ray.errors import ConfigError
from ameli_ray.fusion import FusionModel, StreamScores, final_answer, stream_scores_of
from ameli_ray.kb.assets import KnowledgeBase, center_images
from ameli_ray.schema import LinkResult, MentionEvidence
from ameli_ray.storage import ObjectStore
from ameli_ray.storage.versioned import (
    point_latest,
    read_verified,
    write_manifest,
    write_version,
)


@dataclass
class DisambiguationModel:
    manifest: ModelManifest
    text: Any | None  # TextStream (imported lazily: transformers is heavy)
    image: ImageStream | None


def write_model(
    root_uri: str, store: ObjectStore, manifest: ModelManifest, text: Any | None, image: ImageStream | None,
    version: str | None = None, point_latest: bool = True, extra_files: dict[str, bytes] | None = None,
) -> str:
    """Writes a version folder (files, then manifest, then LATEST). Returns the version URI.
    `extra_files`: further files of the version (name -> bytes), checksummed like the rest."""
    files: dict[str, bytes] = dict(extra_files or {})
    with tempfile.TemporaryDirectory() as tmp:
        if text is not None:
            text.save(Path(tmp) / "text")
        if image is not None:
            image.save(tmp)  # image_adapter.safetensors at the version's root
        for path in sorted(p for p in Path(tmp).rglob("*") if p.is_file()):
            files[path.relative_to(tmp).as_posix()] = path.read_bytes()
    return write_version(root_uri, store, files, manifest, version=version, latest=point_latest)[0]


def update_fusion(version_uri: str, store: ObjectStore, fusion: FusionModel, training: dict[str, Any],
                  root_uri: str | None = None) -> ModelManifest:
    """Replaces the fusion (tuned on dev after the streams were written) and points LATEST here."""
    version_uri, manifest = read_model_manifest(version_uri, store)
    manifest = manifest.model_copy(update={"fusion": fusion, "training": {**manifest.training, **training}})
    write_manifest(version_uri, manifest, store)  # the files are unchanged: their checksums stand
    if root_uri is not None:
        point_latest(root_uri, manifest.version, store)
    return manifest


def trained_text_settings(trained: dict, caller: TextStreamSettings) -> TextStreamSettings:
    """The text stream's settings for inference: the shape of its inputs is the trained model's
    (a model trained before the name slot existed has none), the batching and precision the caller's."""
    from ameli_ray.disambiguation.text_stream import settings_as_saved

    return settings_as_saved({**trained, "batch_pairs": caller.batch_pairs, "mixed_precision": caller.mixed_precision})


def load_model(uri: str, store: ObjectStore, settings: DisambiguationSettings, device: str = "cpu") -> DisambiguationModel:
    """Reads and verifies a model. The files are cached locally by content (the cross-encoder
    loads from a folder); a cached copy is re-checked against the manifest before use."""
    version_uri, manifest = read_model_manifest(uri, store)
    key = hashlib.sha256(manifest.model_dump_json().encode()).hexdigest()[:16]
    local = cache_dir() / "disambiguation" / f"{manifest.name}-{manifest.version}-{key}"
    touch_cache_entry(local)  # before reading: another process pruning the cache now sees it in use
    for name in manifest.files:
        read_verified(version_uri, manifest, name, store, WHAT, cache=local)
    touch_cache_entry(local)
    prune_cache(local.parent)
    text = None
    if manifest.text_model is not None:
        from ameli_ray.disambiguation.text_stream import TextStream

        text = TextStream.load(local / "text", trained_text_settings(manifest.text_settings, settings.text)).to(device).eval()
    image = None
    if manifest.has_image:
        image = ImageStream.load(local, ImageStreamSettings(**manifest.image_settings))
        image.eval()
    return DisambiguationModel(manifest, text, image)


def new_manifest(
    name: str, kb: KnowledgeBase, settings: DisambiguationSettings, fusion: FusionModel, *, text: bool, image: bool,
) -> ModelManifest:
    return ModelManifest(
        name=name,
        created_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        kb=f"{kb.manifest.name}/{kb.manifest.version}",
        image_model=kb.manifest.image_model,
        image_fingerprint=kb.manifest.image_fingerprint,
        text_model=settings.text.model if text else None,
        text_settings=settings.text.model_dump(),
        image_settings=settings.image.model_dump(),
        has_image=image,
        fusion=fusion,
    )


class Disambiguator:
    """Scores the top candidates of each retrieved mention with both streams, fuses the scores
    with the retrieval score, applies the attribute filter and the "no match" threshold."""

    def __init__(self, model: DisambiguationModel, kb: KnowledgeBase, settings: DisambiguationSettings,
                 fusion: FusionModel | None = None, pair_cache_size: int = 50_000):
        m = model.manifest
        if model.image is not None and (m.image_model != kb.manifest.image_model or m.image_fingerprint != kb.manifest.image_fingerprint):
            raise ConfigError(
                f"disambiguation model {m.name}/{m.version} was trained on image features of {m.image_model!r} "
                f"(weights {m.image_fingerprint}); the KB {kb.manifest.name}/{kb.manifest.version} holds "
                f"{kb.manifest.image_model!r} (weights {kb.manifest.image_fingerprint})"
            )
        self.model = model
        self.kb = kb
        self.settings = settings
        self.fusion = fusion or m.fusion
        if self.fusion.top_n is not None and self.fusion.top_n != settings.fusion.top_n:
            raise ConfigError(
                f"disambiguation model {m.name}/{m.version} was tuned on the top {self.fusion.top_n} candidates, but "
                f"disambiguation.fusion.top_n is {settings.fusion.top_n}: set it to {self.fusion.top_n} or retrain"
            )
        self._adapted: np.ndarray | None = None
        # cross-encoder features of recently seen (premise, hypothesis) pairs: the ablations
        # re-link the same mentions, and the same statements recur across candidate lists
        self._pair_cache: OrderedDict[tuple[str, str], torch.Tensor] = OrderedDict()
        self.pair_cache_size = pair_cache_size

    def stream_scores(self, evidence: list[MentionEvidence], results: list[LinkResult]) -> list[tuple[np.ndarray, np.ndarray]]:
        """(text, image) scores over each mention's first top_n candidates; NaN where a stream is
        absent (no model for it, no photos, a product without images)."""
        n = self.settings.fusion.top_n
        row_of = self.kb.row_of
        rows = [[row_of[c.entity_id] for c in r.candidates[:n]] for r in results]
        cands = [[self.kb.entities[i] for i in r] for r in rows]
        text = [np.full(len(c), np.nan, np.float32) for c in cands]
        if self.model.text is not None:
            settings = self.model.text.settings
            items = [
                mention_inputs(ev.mention, ev.attribute_keys, c, settings) if c else None
                for ev, c in zip(evidence, cands)
            ]
            scored = [i for i, item in enumerate(items) if item is not None]
            if scored:
                batch = build_pair_batch([items[i].pairs for i in scored])
                match = stack_match([items[i].match for i in scored], batch.candidate_mask.shape[1])
                logits = self.model.text.score(batch, self._features(batch), match)
                for row, i in enumerate(scored):
                    text[i] = np.asarray(logits[row, : len(cands[i])], np.float32)
        image = [np.full(len(c), np.nan, np.float32) for c in cands]
        if self.model.image is not None and len(self.kb.image_emb):
            adapted = self._adapted_kb_images()
            for i, ev in enumerate(evidence):
                if len(ev.photos) and rows[i]:
                    photos = self._adapt(center_images(ev.photos, self.kb.image_center))
                    image[i] = self.kb.image_scores(photos, rows[i], adapted)
        return list(zip(text, image))

    def scores(self, evidence: list[MentionEvidence], results: list[LinkResult]) -> list[StreamScores]:
        """Each mention's three streams over its first top_n candidates: what fusion reads."""
        n = self.settings.fusion.top_n
        return [stream_scores_of(r, text, image, n) for r, (text, image) in zip(results, self.stream_scores(evidence, results))]

    def rerank(self, evidence: list[MentionEvidence], results: list[LinkResult]) -> list[LinkResult]:
        """The final answers; candidates keep their retrieval order (so Recall@K stays
        retrieval's) and gain `text_stream`, `image_stream` and `final` channel scores."""
        n = self.settings.fusion.top_n
        return [final_answer(result, scores, self.fusion, n) for result, scores in zip(results, self.scores(evidence, results))]


    def _features(self, batch) -> torch.Tensor:
        pairs = list(zip(batch.premises, batch.hypotheses))
        missing = [p for p in dict.fromkeys(pairs) if p not in self._pair_cache]
        if missing:
            fresh = self.model.text.pair_features([p for p, _ in missing], [h for _, h in missing]).cpu()
            for pair, feature in zip(missing, fresh):
                self._pair_cache[pair] = feature
        rows = []
        for pair in pairs:
            self._pair_cache.move_to_end(pair)
            rows.append(self._pair_cache[pair])
        while len(self._pair_cache) > self.pair_cache_size:
            self._pair_cache.popitem(last=False)
        if not rows:
            return torch.zeros((0, self.model.text.hidden_size))
        return torch.stack(rows)

    def _adapted_kb_images(self) -> np.ndarray:
        if self._adapted is None:  # once per KB: the adapter is fixed at inference
            self._adapted = self._adapt(self.kb.image_emb)
        return self._adapted

    def _adapt(self, x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.model.image.encode(torch.as_tensor(np.ascontiguousarray(x, np.float32))).numpy()
