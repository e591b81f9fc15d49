"""The text bi-encoder: sentence-transformers, loaded by name, local path, s3:// or packaged."""

from __future__ import annotations

import numpy as np

from ameli_ray.config import TextEncoderSettings
from ameli_ray.encoders.loading import resolve_model_ref, safetensors_only, weights_fingerprint
from ameli_ray.errors import ModelLoadError
from ameli_ray.precision import autocast
from ameli_ray.storage import ObjectStore


def pick_device(device: str | None = None) -> str:
    if device and device != "auto":
        return device
    import torch  # here, not at the top: a driver that only plans a job never needs torch's ~400 MB

    return "cuda" if torch.cuda.is_available() else "cpu"


class TextEncoder:
    """Strings -> L2-normalised float32 vectors."""

    def __init__(self, settings: TextEncoderSettings, store: ObjectStore | None = None, device: str | None = None):
        from sentence_transformers import SentenceTransformer

        self.settings = settings
        self.device = pick_device(device)
        path = resolve_model_ref(settings.model, store, allow_pickle=settings.allow_pickle,
                                 setting="text_encoder.allow_pickle")
        try:
            self.model = SentenceTransformer(path, device=self.device, model_kwargs=safetensors_only(settings.allow_pickle))
        except Exception as exc:  # the library raises many types; the user needs the reference
            raise ModelLoadError(f"cannot load text encoder {settings.model!r} ({path}): {exc}") from exc
        self.model.max_seq_length = settings.max_seq_length
        self.dim = int(self.model.get_embedding_dimension())
        # by content: other weights under the same name or URI (a fine-tuned copy uploaded over
        # the old one) embed into another space, and a KB built with them is refused
        self.fingerprint = weights_fingerprint(self.model)

    @property
    def model_id(self) -> str:
        return self.settings.model

    def encode(self, texts: list[str], batch_size: int | None = None) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        import torch

        with torch.inference_mode(), autocast(self.device, self.settings.mixed_precision):
            out = self.model.encode(
                list(texts),
                batch_size=batch_size or self.settings.batch_size,
                normalize_embeddings=True,
                convert_to_tensor=True,
                show_progress_bar=False,
            )
        return np.ascontiguousarray(out.float().cpu().numpy(), dtype=np.float32)
