"""The image encoder's preprocessing: on threads a batch ahead of the model, the same vectors."""

import numpy as np
from PIL import Image

from ameli_ray.config import ImageEncoderSettings


def test_images_preprocessed_on_threads_give_the_vectors_of_inline_preprocessing():
    from ameli_ray.encoders.image import ImageEncoder

    images = [Image.new("RGB", (120 + 7 * i, 90), (30 * i % 255, 200 - 9 * i, 90)) for i in range(11)]
    inline = ImageEncoder(ImageEncoderSettings(preprocess_threads=0), device="cpu")
    threaded = ImageEncoder(ImageEncoderSettings(preprocess_threads=3), device="cpu")
    assert inline.preprocess_threads == 0 and ImageEncoder(ImageEncoderSettings(), device="cpu").preprocess_threads == 0
    want = inline.encode(images, batch_size=4)  # 3 batches, the last one short
    np.testing.assert_array_equal(threaded.encode(images, batch_size=4), want)
    np.testing.assert_array_equal(threaded.encode(images, batch_size=32), inline.encode(images, batch_size=32))
    assert threaded._pool is not None and threaded.encode([]).shape == (0, inline.dim)
