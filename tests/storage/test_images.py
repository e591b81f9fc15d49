import io

import numpy as np
import pytest
from PIL import Image

from ameli_ray.config import ImageLimits
from ameli_ray.errors import ImageDecodeError
from ameli_ray.storage import decode_image


def _encode(img: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "LA", "P", "CMYK", "I;16"])
def test_every_mode_becomes_rgb(mode):
    img = Image.new(mode, (8, 6))
    fmt = "JPEG" if mode == "CMYK" else ("TIFF" if mode == "I;16" else "PNG")
    out = decode_image(_encode(img, fmt))
    assert out.mode == "RGB" and out.size == (8, 6)


def test_alpha_composited_on_white():
    img = Image.new("RGBA", (2, 2), (255, 0, 0, 0))
    assert decode_image(_encode(img)).getpixel((0, 0)) == (255, 255, 255)


def test_one_pixel_image_is_fine():
    assert decode_image(_encode(Image.new("RGB", (1, 1)))).size == (1, 1)


def test_corrupt_bytes():
    with pytest.raises(ImageDecodeError, match="photo.jpg"):
        decode_image(b"not an image at all", source="photo.jpg")


def test_truncated_jpeg():
    data = _encode(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)), "JPEG")
    with pytest.raises(ImageDecodeError, match="corrupt or truncated"):
        decode_image(data[: len(data) // 2])


def test_decompression_bomb_refused_before_decoding():
    # A 20000x20000 PNG of one colour compresses to a few hundred KB but would need 1.2 GB decoded.
    bomb = _encode(Image.new("L", (20000, 20000)))
    with pytest.raises(ImageDecodeError, match="decompression bomb"):
        decode_image(bomb, ImageLimits(max_pixels=10_000_000))


def test_byte_limit_and_empty():
    with pytest.raises(ImageDecodeError, match="over the limit"):
        decode_image(b"x" * 100, ImageLimits(max_bytes=10))
    with pytest.raises(ImageDecodeError, match="empty"):
        decode_image(b"")
