"""One bf16 rule for every model that runs (ameli_ray.precision), and the encoders under it."""

import numpy as np
import pytest
import torch
from PIL import Image

from ameli_ray.config import ImageEncoderSettings, TextEncoderSettings
from ameli_ray.precision import autocast, bf16_wanted, device_type


def test_auto_means_bf16_on_a_gpu_only_and_the_explicit_modes_are_kept():
    assert device_type("cuda:1") == "cuda" and device_type(torch.device("cpu")) == "cpu"
    assert bf16_wanted("cuda", "auto") and bf16_wanted(torch.device("cuda", 0), "auto")
    assert not bf16_wanted("cpu", "auto")
    assert bf16_wanted("cpu", "bf16") and not bf16_wanted("cuda", "no")


def test_the_context_casts_matrix_products_only_when_asked():
    a = torch.randn(4, 8)
    with autocast("cpu", "auto"):
        assert (a @ a.T).dtype == torch.float32
    with autocast("cpu", "bf16"):
        assert (a @ a.T).dtype == torch.bfloat16


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return ["Apple iPhone 13 128GB blue, unlocked", "Samsung Galaxy S21 in black, 256 GB", "battery lasts two days"] * 3


@pytest.mark.parametrize("kind", ["text", "image"])
def test_encoders_in_bf16_stay_close_to_fp32_and_return_float32(kind, texts):
    if kind == "text":
        from ameli_ray.encoders.text import TextEncoder as Encoder

        settings, inputs = TextEncoderSettings, texts
    else:
        from ameli_ray.encoders.image import ImageEncoder as Encoder

        settings = ImageEncoderSettings
        inputs = [Image.new("RGB", (96, 64), (40 * i, 200 - 20 * i, 90)) for i in range(6)]
    out = {mode: Encoder(settings(mixed_precision=mode), device="cpu").encode(inputs) for mode in ("no", "auto", "bf16")}
    np.testing.assert_array_equal(out["auto"], out["no"])
    assert out["bf16"].dtype == np.float32 and not np.array_equal(out["bf16"], out["no"])
    assert (out["bf16"] * out["no"]).sum(1).min() > 0.999  # both L2-normalised: the cosine
