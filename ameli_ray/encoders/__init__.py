"""Text (sentence-transformers) and image (open_clip) encoders, loaded by name, path or s3://."""

from ameli_ray.encoders.image import ImageEncoder
from ameli_ray.encoders.loading import resolve_model_ref
from ameli_ray.encoders.text import TextEncoder

__all__ = ["ImageEncoder", "TextEncoder", "resolve_model_ref"]
