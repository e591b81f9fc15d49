"""The image encoder: an open_clip image tower, pretrained or seeded-random.

Offline there are no CLIP weights, so the default is a small registered ViT with weights drawn
from a fixed seed. The same seed gives the same weights in every process (the KB build and the
linker must embed into one space); `fingerprint` lets the KB manifest prove it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ameli_ray.config import TINY_CLIP, ImageEncoderSettings
from ameli_ray.encoders.loading import resolve_model_ref, weights_fingerprint
from ameli_ray.encoders.text import pick_device
from ameli_ray.errors import ModelLoadError
from ameli_ray.precision import autocast
from ameli_ray.storage import ObjectStore

# Small enough for a 2-core CPU (~150 images/s at 128 px), deep enough to keep colour and layout.
_SMALL_CONFIGS = {
    TINY_CLIP: {
        "embed_dim": 256,
        "vision_cfg": {"image_size": 128, "layers": 4, "width": 256, "head_width": 64, "patch_size": 16},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 256, "heads": 4, "layers": 2},
    },
}


def register_small_configs() -> None:
    from open_clip.factory import _MODEL_CONFIGS  # open_clip's registry; add_model_config wants files

    for name, cfg in _SMALL_CONFIGS.items():
        _MODEL_CONFIGS.setdefault(name, cfg)


class ImageEncoder:
    """PIL images -> L2-normalised float32 vectors."""

    def __init__(self, settings: ImageEncoderSettings, store: ObjectStore | None = None, device: str | None = None):
        import open_clip
        import torch

        register_small_configs()
        self.settings = settings
        self.device = pick_device(device)
        pretrained = settings.pretrained
        if pretrained and (pretrained.startswith("s3://") or Path(pretrained).suffix):
            pretrained = resolve_model_ref(pretrained, store, allow_pickle=settings.allow_pickle,
                                           setting="image_encoder.allow_pickle")
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(settings.seed)
                model, _, preprocess = open_clip.create_model_and_transforms(
                    settings.model, pretrained=pretrained, device="cpu"
                )
        except Exception as exc:
            raise ModelLoadError(
                f"cannot build image encoder {settings.model!r} (pretrained={settings.pretrained!r}): {exc}"
            ) from exc
        # Only the image tower is used; dropping the text tower halves the memory.
        self.visual = model.visual.eval().to(self.device)
        self.preprocess = preprocess
        self.dim = int(model.visual.output_dim)
        self.fingerprint = weights_fingerprint(self.visual)

    @property
    def model_id(self) -> str:
        return self.model_id_for(self.settings)

    @staticmethod
    def model_id_for(settings: ImageEncoderSettings) -> str:
        return f"open_clip:{settings.model}:{settings.pretrained or f'random-seed{settings.seed}'}"

    def encode(self, images: list[Image.Image], batch_size: int | None = None) -> np.ndarray:
        import torch

        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        bs = batch_size or self.settings.batch_size
        out = []
        for start in range(0, len(images), bs):
            batch = torch.stack([self.preprocess(img) for img in images[start : start + bs]]).to(self.device)
            with torch.inference_mode(), autocast(self.device, self.settings.mixed_precision):
                feats = self.visual(batch)
            out.append(torch.nn.functional.normalize(feats.float(), dim=-1).cpu().numpy())
        return np.ascontiguousarray(np.concatenate(out), dtype=np.float32)




Loaded = list[tuple[str, Image.Image]]  # an item's usable images, with their URIs


def load_image_lists(
    uri_lists: list[list[str]], store: ObjectStore, limits, max_per_item: int
) -> tuple[list[Loaded], list[list[str]]]:
    """Per item (an entity or a mention): its decoded images and the errors of unusable ones."""
    from ameli_ray.storage import load_images

    results = [load_images(uris, store, limits, max_per_item) for uris in uri_lists]
    return [loaded for loaded, _ in results], [errors for _, errors in results]


def embed_loaded(loaded: list[Loaded], encoder: ImageEncoder) -> tuple[np.ndarray, np.ndarray]:
    """The embeddings of every item's images, and the item index of each embedding."""
    owner = np.asarray([item for item, pairs in enumerate(loaded) for _ in pairs], dtype=np.int64)
    return encoder.encode([image for pairs in loaded for _, image in pairs]), owner


def embed_image_lists(
    uri_lists: list[list[str]], encoder: ImageEncoder, store: ObjectStore, limits, max_per_item: int
) -> tuple[np.ndarray, np.ndarray, list[list[str]]]:
    """Loads and embeds each item's images: embeddings, item index of each, per-item errors."""
    loaded, errors = load_image_lists(uri_lists, store, limits, max_per_item)
    emb, owner = embed_loaded(loaded, encoder)
    return emb, owner, errors


def split_by_owner(emb: np.ndarray, owner: np.ndarray, n_items: int) -> list[np.ndarray]:
    """Per item, its rows of `emb` (possibly none)."""
    return [emb[owner == i] for i in range(n_items)]
