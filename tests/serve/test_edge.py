"""The checks at the edge, without Ray or HTTP: what a request may make the server read, and the
4xx each bad photo gets."""

import base64
import io

import pytest
from PIL import Image

from ameli_ray.config import AmeliConfig, ImageLimits
from ameli_ray.serve.api import LinkRequest, StreamWeights
from ameli_ray.serve.edge import RequestError, allowed_uri, check_api_key, is_loopback, load_photos
from ameli_ray.storage import ObjectStore

PREFIX = "s3://photos/reviews/"


def settings(**kw):
    overrides = [f'serve.allowed_image_prefixes=["{PREFIX}"]'] + [f"serve.{k}={v}" for k, v in kw.items()]
    return AmeliConfig.load(None, overrides).serve


def png(size=(4, 4)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (10, 200, 10)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("uri", [
    "/etc/passwd", "file:///etc/passwd", "http://169.254.169.254/", "https://example.com/a.jpg", "s3://other/x.jpg",
    "s3://photos/reviews/../secrets/key", "s3://photos/reviews//x.jpg", "s3://photos/reviewsX/a.jpg", "S3://photos/reviews/a.jpg",
])
def test_only_s3_objects_under_an_allowed_prefix_may_be_named(uri):
    with pytest.raises(RequestError) as info:
        allowed_uri(uri, settings())
    assert info.value.status == 403 and info.value.code == "image_uri_not_allowed"


def test_an_allowed_uri_passes_and_no_prefix_means_inline_photos_only():
    assert allowed_uri(PREFIX + "a/b.jpg", settings()) == PREFIX + "a/b.jpg"
    with pytest.raises(RequestError, match="none are configured"):
        allowed_uri(PREFIX + "a.jpg", AmeliConfig().serve)


def test_prefixes_must_be_s3_buckets():
    with pytest.raises(ValueError, match="not an s3://bucket"):
        AmeliConfig.load(None, ['serve.allowed_image_prefixes=["/var/photos"]'])
    assert AmeliConfig.load(None, ['serve.allowed_image_prefixes=["s3://b/p"]']).serve.allowed_image_prefixes == ["s3://b/p/"]


def test_inline_photos_are_decoded_with_the_safe_decoder(tmp_path):
    store = ObjectStore()
    good = LinkRequest(text="x", images=[base64.b64encode(png()).decode()])
    [(source, image)] = load_photos(good, settings(), ImageLimits(), store)
    assert source == "images[0]" and image.size == (4, 4)
    cases = [
        (LinkRequest(text="x", images=["@@@"]), 422, "bad_photo"),
        (LinkRequest(text="x", images=[base64.b64encode(b"not an image").decode()]), 422, "bad_photo"),
        (LinkRequest(text="x", images=[base64.b64encode(png((300, 300))).decode()]), 413, "photo_too_large"),  # pixels
        (LinkRequest(text="x", images=["A" * 10_000]), 413, "photo_too_large"),  # bytes, before decoding base64
        (LinkRequest(text="x", images=[base64.b64encode(png()).decode()] * 5), 413, "too_many_photos"),
        (LinkRequest(text="x" * 30_000), 413, "text_too_long"),
    ]
    for request, status, code in cases:
        with pytest.raises(RequestError) as info:
            load_photos(request, settings(), ImageLimits(max_bytes=4096, max_pixels=10_000), store)
        assert (info.value.status, info.value.code) == (status, code), request


def test_photos_by_uri_are_read_from_the_store_with_the_byte_cap(s3_store):
    s3_store.ensure_bucket("s3://photos")
    s3_store.write_bytes(PREFIX + "ok.png", png())
    s3_store.write_bytes(PREFIX + "big.png", png((100, 100)) + b"\0" * 8000)
    [(source, _)] = load_photos(LinkRequest(text="x", image_uris=[PREFIX + "ok.png"]), settings(), ImageLimits(), s3_store)
    assert source == PREFIX + "ok.png"
    with pytest.raises(RequestError) as info:
        load_photos(LinkRequest(text="x", image_uris=[PREFIX + "nope.png"]), settings(), ImageLimits(), s3_store)
    assert (info.value.status, info.value.code) == (422, "image_not_found")
    with pytest.raises(RequestError) as info:
        load_photos(LinkRequest(text="x", image_uris=[PREFIX + "big.png"]), settings(), ImageLimits(max_bytes=4096), s3_store)
    assert (info.value.status, info.value.code) == (413, "photo_too_large")


def test_the_api_key_is_compared_when_set():
    check_api_key(AmeliConfig().serve, None)  # none configured: open (loopback only, see the app)
    keyed = AmeliConfig.load(None, ["serve.api_key=s3cret"]).serve
    check_api_key(keyed, "s3cret")
    for given in (None, "", "s3cre", "s3cret "):
        with pytest.raises(RequestError) as info:
            check_api_key(keyed, given)
        assert info.value.status == 401
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.5")


def test_request_bodies_are_strict():
    with pytest.raises(ValueError):
        LinkRequest(text="x", extra=1)
    with pytest.raises(ValueError):
        LinkRequest(text=" \n ")
    with pytest.raises(ValueError):
        StreamWeights(retrieval=11, text=0, image=0)
    with pytest.raises(ValueError, match="above zero"):
        StreamWeights(retrieval=0, text=0, image=0).normalised()
    assert StreamWeights(retrieval=1, text=3, image=0).normalised() == {"retrieval": 0.25, "text": 0.75, "image": 0.0}
