"""Decoding untrusted images: size limits before decoding, every mode to RGB, clear errors."""

from __future__ import annotations

import io
import warnings

from PIL import Image, ImageOps, UnidentifiedImageError

from ameli_ray.config import ImageLimits
from ameli_ray.errors import ImageDecodeError


def decode_image(data: bytes, limits: ImageLimits | None = None, source: str = "image") -> Image.Image:
    """Bytes -> an RGB PIL image, or ImageDecodeError naming `source` and the reason.

    The pixel count is checked from the header, before any pixel is decoded, so a
    decompression bomb costs nothing. Alpha is composited on white (product photos with
    transparent backgrounds), CMYK/grayscale/palette are converted, EXIF rotation applied.
    """
    limits = limits or ImageLimits()
    if not data:
        raise ImageDecodeError(f"{source}: empty file")
    if len(data) > limits.max_bytes:
        raise ImageDecodeError(f"{source}: {len(data)} bytes is over the limit of {limits.max_bytes}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            width, height = img.size
            if width * height > limits.max_pixels:
                raise ImageDecodeError(
                    f"{source}: {width}x{height} pixels is over the limit of {limits.max_pixels} "
                    "(possible decompression bomb)"
                )
            img.load()
            img = ImageOps.exif_transpose(img)
    except ImageDecodeError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageDecodeError(f"{source}: {exc}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageDecodeError(f"{source}: corrupt or truncated image ({exc})") from None
    return to_rgb(img)


def to_rgb(img: Image.Image) -> Image.Image:
    if img.mode == "RGB":
        return img
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def load_images(
    uris: list[str], store, limits: ImageLimits | None = None, max_images: int | None = None
) -> tuple[list[tuple[str, Image.Image]], list[str]]:
    """Reads and decodes images: the (uri, image) pairs that could be used, and an error message
    for each that could not (the rest are still returned)."""
    from ameli_ray.errors import AmeliError, ObjectNotFound

    limits = limits or ImageLimits()
    loaded: list[tuple[str, Image.Image]] = []
    errors: list[str] = []
    for uri in uris[:max_images] if max_images else uris:
        try:
            loaded.append((uri, decode_image(store.read_bytes(uri, max_bytes=limits.max_bytes), limits, source=uri)))
        except ObjectNotFound:
            errors.append(f"image not found: {uri}")
        except AmeliError as exc:
            errors.append(str(exc) if uri in str(exc) else f"image {uri}: {exc}")
    return loaded, errors
