"""What the ingress checks before any model runs: the API key, photo counts and sizes, and that a
request's photo URIs lie under a prefix the operator allowed. Ray-free.

A request never makes the server read or fetch something the operator did not allow: no local
paths, no `file://`, no `http(s)://`, only `s3://` objects under `serve.allowed_image_prefixes`
(none by default: inline base64 photos only). Every photo goes through the same safe decoder as
the batch path (size and pixel caps before decoding).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import posixpath

from PIL import Image

from ameli_ray.config import ImageLimits, ServeSettings
from ameli_ray.errors import AmeliError, ImageDecodeError, ObjectNotFound
from ameli_ray.serve.api import LinkRequest
from ameli_ray.storage import ObjectStore
from ameli_ray.storage.images import decode_image

# per replica process: set by the ingress from serve.*, read by its body-size middleware
LIMITS = {"max_body_bytes": 16 * 1024 * 1024}


class RequestError(Exception):
    """A request the server refuses: HTTP status, a stable code and a message for the client."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_api_key(settings: ServeSettings, given: str | None) -> None:
    expected = settings.api_key.get_secret_value() if settings.api_key else None
    if expected is None:
        return
    if given is None or not hmac.compare_digest(given.encode(), expected.encode()):
        raise RequestError(401, "unauthorized", "missing or wrong API key (header X-API-Key)")


def check_request(request: LinkRequest, settings: ServeSettings) -> None:
    """Limits that depend on the operator's configuration (the schema checks the rest)."""
    if len(request.text) > settings.max_text_chars:
        raise RequestError(413, "text_too_long", f"text has {len(request.text)} characters, at most {settings.max_text_chars}")
    n = len(request.image_uris) + len(request.images)
    if n > settings.max_photos:
        raise RequestError(413, "too_many_photos", f"{n} photos, at most {settings.max_photos} per review")
    for uri in request.image_uris:
        allowed_uri(uri, settings)


def allowed_uri(uri: str, settings: ServeSettings) -> str:
    """`uri` itself when it is an s3:// object under an allowed prefix; RequestError (403) if not."""
    if not uri.startswith("s3://"):
        raise RequestError(403, "image_uri_not_allowed",
                           f"image_uris must be s3:// URIs under an allowed prefix; {uri[:200]!r} is not")
    key = uri[len("s3://"):]
    normal = posixpath.normpath(key)
    if normal != key or ".." in key.split("/") or "//" in key:
        raise RequestError(403, "image_uri_not_allowed", f"{uri[:200]!r} is not a plain object path")
    if not any(uri.startswith(prefix) for prefix in settings.allowed_image_prefixes):
        where = ", ".join(settings.allowed_image_prefixes) or "none are configured: send photos inline as base64"
        raise RequestError(403, "image_uri_not_allowed", f"{uri[:200]!r} is not under an allowed prefix ({where})")
    return uri


def load_photos(request: LinkRequest, settings: ServeSettings, limits: ImageLimits, store: ObjectStore,
                ) -> list[tuple[str, Image.Image]]:
    """The review's photos decoded, as (source, image); RequestError (4xx) for the first that
    cannot be used: a client sent it, so the client hears which and why."""
    check_request(request, settings)
    photos: list[tuple[str, Image.Image]] = []
    for uri in request.image_uris:
        try:
            data = store.read_bytes(uri, max_bytes=limits.max_bytes)
        except ObjectNotFound:
            raise RequestError(422, "image_not_found", f"no photo at {uri}") from None
        except AmeliError as exc:
            if "over the limit" in str(exc):
                raise RequestError(413, "photo_too_large", str(exc)) from None
            raise RequestError(502, "storage_error", f"{uri}: the photo could not be read") from None
        photos.append((uri, _decode(data, limits, uri)))
    max_encoded = (limits.max_bytes + 2) // 3 * 4 + 4
    for i, text in enumerate(request.images):
        source = f"images[{i}]"
        if len(text) > max_encoded:
            raise RequestError(413, "photo_too_large", f"{source}: over the limit of {limits.max_bytes} bytes")
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise RequestError(422, "bad_photo", f"{source}: not valid base64") from None
        photos.append((source, _decode(data, limits, source)))
    return photos


def _decode(data: bytes, limits: ImageLimits, source: str) -> Image.Image:
    try:
        return decode_image(data, limits, source)
    except ImageDecodeError as exc:
        status = 413 if "over the limit" in str(exc) else 422
        raise RequestError(status, "photo_too_large" if status == 413 else "bad_photo", str(exc)) from None
