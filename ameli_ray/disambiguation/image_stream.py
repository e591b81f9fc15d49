"""The image stream of disambiguation: frozen image-tower features through a residual adapter.

The image tower (CLIP) stays frozen; only a small bottleneck MLP is trained, mixed back into the
tower's features with a fixed residual ratio (the AMELI paper's adapter, after CLIP-Adapter), so a
few thousand review photos cannot wreck the pretrained geometry. A candidate's image score is the
best cosine over all (review photo, product image) pairs.

On disk (`save` / `load`), no pickle: one file, `image_adapter.safetensors`, the weights with the
settings they were trained with in its metadata (the residual ratio is not a weight).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor, nn

from ameli_ray.config import ImageStreamSettings
from ameli_ray.errors import ConfigError, InputFormatError

# CLIP caps the logit scale at 100 (temperature 0.01): beyond it training becomes unstable.
MAX_LOGIT_SCALE = math.log(100.0)
ADAPTER_FILE = "image_adapter.safetensors"
# Settings that change what the saved weights compute: a saved stream refuses other values.
_SHAPE_FIELDS = ("reduction", "residual_ratio")


class ImageAdapter(nn.Module):
    """x -> normalize(ratio * mlp(x) + (1 - ratio) * x); x are L2-normalised features [N, d]."""

    def __init__(self, dim: int, settings: ImageStreamSettings) -> None:
        super().__init__()
        hidden = max(1, dim // settings.reduction)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden, bias=False), nn.ReLU(inplace=True),
            nn.Linear(hidden, dim, bias=False), nn.ReLU(inplace=True),
        )
        self.ratio = float(settings.residual_ratio)

    def forward(self, x: Tensor) -> Tensor:
        return F.normalize(self.ratio * self.mlp(x) + (1.0 - self.ratio) * x, dim=-1)


class ImageStream(nn.Module):
    """The adapter plus the learnable logit scale of its contrastive loss."""

    def __init__(self, dim: int, settings: ImageStreamSettings | None = None) -> None:
        super().__init__()
        settings = settings or ImageStreamSettings()
        self.settings = settings
        self.dim = dim
        self.adapter = ImageAdapter(dim, settings)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / settings.init_temperature)))

    @classmethod
    def from_state_dict(cls, state: dict[str, Tensor], settings: ImageStreamSettings | None = None) -> "ImageStream":
        """Rebuild from saved weights (e.g. safetensors); a DDP-wrapped model's `module.` prefix is dropped.

        `settings` must be those of training: the residual ratio is not a weight, and a different
        `reduction` fails on the bottleneck's shape.
        """
        state = {k.removeprefix("module."): v for k, v in state.items()}
        model = cls(int(state["adapter.mlp.0.weight"].shape[1]), settings)
        model.load_state_dict(state)
        return model

    def save(self, directory: str | Path) -> Path:
        """Writes `directory/image_adapter.safetensors`; returns its path."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / ADAPTER_FILE
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(path), metadata={"settings": self.settings.model_dump_json()})
        return path

    @classmethod
    def load(cls, directory: str | Path, settings: ImageStreamSettings | None = None) -> "ImageStream":
        """A saved stream. `settings` default to those saved with it (files written before the
        settings were saved need them given: those of training); settings that change what the
        weights compute (reduction, residual ratio) must equal the saved ones."""
        path = Path(directory) / ADAPTER_FILE
        if not path.is_file():
            raise InputFormatError(f"{path}: no saved image stream here")
        try:
            with safe_open(str(path), framework="pt") as f:
                saved_json = (f.metadata() or {}).get("settings")
                state = {k: f.get_tensor(k) for k in f.keys()}
        except (SafetensorError, OSError, ValueError) as exc:
            raise InputFormatError(f"{path}: not a readable safetensors file ({exc})") from None
        try:
            saved = ImageStreamSettings(**json.loads(saved_json)) if saved_json else None
        except (ValueError, TypeError) as exc:  # pydantic's ValidationError is a ValueError
            raise InputFormatError(f"{path}: unreadable settings in its metadata ({exc})") from None
        if settings is None and saved is None:
            raise ConfigError(f"{path} does not record its settings: give those of training")
        settings = settings or saved
        wrong = [f for f in _SHAPE_FIELDS if saved is not None and getattr(settings, f) != getattr(saved, f)]
        if wrong:
            raise ConfigError(
                f"{path}: the image stream was trained with "
                + ", ".join(f"{f}={getattr(saved, f)!r}" for f in wrong) + "; the settings given differ"
            )
        try:
            return cls.from_state_dict(state, settings)
        except (KeyError, IndexError, RuntimeError) as exc:
            raise InputFormatError(f"{path}: not the weights of an image stream ({exc})") from None

    def encode(self, x: Tensor) -> Tensor:
        return self.adapter(x.to(self.logit_scale.dtype))

    def forward(self, x: Tensor) -> Tensor:
        # DDP arms its gradient all-reduce in its own forward: train through `model(x)` (one call
        # on the concatenation, or one per side: both give the same gradients), never through
        # `model.module.encode`, whose gradients would silently stay unsynchronised.
        return self.encode(x)

    def scale(self) -> Tensor:
        """exp(logit_scale), clamped at use to <= 100 as CLIP does; what `contrastive_loss` takes."""
        return self.logit_scale.clamp(max=MAX_LOGIT_SCALE).exp()

    def candidate_scores(self, photos: Tensor, entity_images: Tensor, owner: Tensor, n_candidates: int) -> Tensor:
        """[n_candidates]: max cosine over (mention photo, image of that candidate) after the adapter.

        photos [P, d] of one mention; entity_images [Q, d] of all its candidates, owner [Q] the
        candidate index (0..n_candidates-1) of each image. NaN where a candidate has no image, and
        everywhere when the mention has no photo: the fusion then leaves the image stream out.
        """
        out = torch.full((n_candidates,), float("nan"), dtype=self.logit_scale.dtype, device=self.logit_scale.device)
        if photos.shape[0] == 0 or entity_images.shape[0] == 0:
            return out
        sims = self.encode(photos) @ self.encode(entity_images).T  # [P, Q]
        per_image = sims.amax(dim=0)  # best photo for each product image
        best = torch.full_like(out, -math.inf).scatter_reduce(
            0, owner.to(out.device, torch.long), per_image, reduce="amax", include_self=True
        )
        # cosines are finite, so -inf marks exactly the candidates that own no image
        return torch.where(torch.isinf(best), out, best)

    def score_candidates(
        self, photos: np.ndarray, entity_images: np.ndarray, owner: np.ndarray, n_candidates: int
    ) -> np.ndarray:
        """`candidate_scores` for inference on numpy arrays: float32, eval mode, no grad."""
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                scores = self.candidate_scores(
                    torch.as_tensor(np.asarray(photos, dtype=np.float32).reshape(-1, self.dim)),
                    torch.as_tensor(np.asarray(entity_images, dtype=np.float32).reshape(-1, self.dim)),
                    torch.as_tensor(np.asarray(owner, dtype=np.int64)),
                    n_candidates,
                )
        finally:
            self.train(was_training)
        return scores.cpu().numpy().astype(np.float32)
