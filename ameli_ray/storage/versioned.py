"""Versioned assets: folders of files under a local path or s3:// URI, each with a manifest.

    <root>/LATEST                   the newest complete version's name (written last)
    <root>/<version>/manifest.json  what the version is, and the sha256 and size of every file
    <root>/<version>/…              the files

The KB and the trained disambiguation model are both such assets. A version is written once:
files first, then its manifest, then LATEST, so a reader that follows LATEST (or opens a version
through its manifest) never sees a half-written version, and every file is checked against the
manifest when read. Version names sort by creation time and carry a random suffix, so two writers
in the same instant get two versions instead of one overwriting the other.

Kept free of Ray, torch and FAISS: the CLI and the Ray drivers read manifests without loading them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import secrets
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import BinaryIO, ClassVar, TypeVar

from pydantic import BaseModel, ValidationError

from ameli_ray.errors import ChecksumMismatch, InputFormatError, ObjectNotFound, StorageError
from ameli_ray.storage.objects import ObjectStore, join_uri

MANIFEST = "manifest.json"
LATEST = "LATEST"


class FileEntry(BaseModel):
    sha256: str
    bytes: int

    @classmethod
    def of(cls, data: bytes) -> FileEntry:
        return cls(sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))


class VersionedManifest(BaseModel):
    """What every versioned asset's manifest holds; each kind adds its own fields and a default
    `format_version`."""

    # how a checksum error ends: what the user can do about a corrupt file
    remedy: ClassVar[str] = "write it again"

    format_version: int
    name: str
    version: str = ""  # set by write_version
    created_at: str
    files: dict[str, FileEntry] = {}  # set by write_version


M = TypeVar("M", bound=VersionedManifest)


def _utcnow() -> dt.datetime:
    """new_version's clock (a seam for tests that freeze it)."""
    return dt.datetime.now(dt.timezone.utc)


def new_version() -> str:
    """`vYYYYMMDD-HHMMSS-mmm-xxxxxx`: sorts by UTC creation time to the millisecond; the random
    suffix keeps writers of the same millisecond apart."""
    now = _utcnow()
    return f"v{now:%Y%m%d-%H%M%S}-{now.microsecond // 1000:03d}-{secrets.token_hex(3)}"


def check_new_version(root_uri: str, version: str, store: ObjectStore) -> str:
    """The URI of `version` under `root_uri`, refused if anything is already there: a version
    once written is never overwritten (readers may hold it, and its checksums would lie)."""
    version_uri = join_uri(root_uri, version)
    if store.list_files(version_uri):
        raise StorageError(
            f"{version_uri} already exists and versions are never overwritten: choose another version name "
            "or leave it out for a new one"
        )
    return version_uri


def write_version(
    root_uri: str, store: ObjectStore, files: Mapping[str, bytes | Callable[[], bytes] | Path], manifest: M, *,
    version: str | None = None, latest: bool = True,
) -> tuple[str, M]:
    """Writes `files` as a new version under `root_uri`, then its manifest (a copy of `manifest`
    with the version and the sha256 and size of each file), then LATEST unless `latest` is false.
    A file given as a function is serialised when its turn comes and dropped once written, and
    one given as a local `Path` is hashed and uploaded streamed, so a large asset (a KB of a
    million products) never holds every file's bytes at once, or one large file's.
    Returns (version URI, the manifest written)."""
    version = version or new_version()
    version_uri = check_new_version(root_uri, version, store)
    store.ensure_bucket(version_uri)
    entries = {}
    for name, data in files.items():
        if isinstance(data, Path):
            with data.open("rb") as f:
                entries[name] = FileEntry(sha256=_stream_sha256(f, 8 << 20), bytes=data.stat().st_size)
            store.write_file(join_uri(version_uri, name), data)
            continue
        data = data() if callable(data) else data
        entries[name] = FileEntry.of(data)
        store.write_bytes(join_uri(version_uri, name), data)
        del data
    manifest = manifest.model_copy(update={"version": version, "files": dict(sorted(entries.items()))})
    write_manifest(version_uri, manifest, store)
    if latest:
        point_latest(root_uri, version, store)
    return version_uri, manifest


def write_manifest(version_uri: str, manifest: VersionedManifest, store: ObjectStore) -> None:
    """(Re)writes a version's manifest; its files must already be there, as `manifest.files` says
    (rewriting is for fields decided after the files, such as a model's tuned fusion)."""
    store.write_text(join_uri(version_uri, MANIFEST), manifest.model_dump_json(indent=2))


def point_latest(root_uri: str, version: str, store: ObjectStore) -> None:
    """Points `root_uri`'s LATEST at `version`, which must be complete (have its manifest)."""
    if not store.exists(join_uri(root_uri, version, MANIFEST)):
        raise ObjectNotFound(f"cannot point {join_uri(root_uri, LATEST)} at {version}: it has no {MANIFEST}")
    store.write_text(join_uri(root_uri, LATEST), version + "\n")


def resolve_version(uri: str, store: ObjectStore, what: str) -> str:
    """A version folder as given, or the root's LATEST version."""
    if store.exists(join_uri(uri, MANIFEST)):
        return uri
    latest = join_uri(uri, LATEST)
    if store.exists(latest):
        version = store.read_text(latest).strip()
        version_uri = join_uri(uri, version)
        if not version or not store.exists(join_uri(version_uri, MANIFEST)):
            raise ObjectNotFound(f"no {what} at {version_uri}: {latest} names version {version!r}, which has no {MANIFEST} "
                                 "(deleted or never finished); point LATEST at a complete version or rebuild")
        return version_uri
    raise ObjectNotFound(f"no {what} at {uri}: neither {MANIFEST} nor {LATEST} found there")


def read_versioned_manifest(
    uri: str, store: ObjectStore, manifest_type: type[M], what: str, format_version: int,
) -> tuple[str, M]:
    """(version URI, validated manifest) of a version folder, or of a root's LATEST version."""
    version_uri = resolve_version(uri, store, what)
    manifest_uri = join_uri(version_uri, MANIFEST)
    try:
        raw = json.loads(store.read_text(manifest_uri))
    except ValueError as exc:
        raise InputFormatError(f"{manifest_uri} is not a valid {what} manifest: {exc}") from None
    # the format before the fields: another format's manifest would fail validation less clearly
    found = raw.get("format_version", format_version) if isinstance(raw, dict) else format_version
    if found != format_version:
        raise InputFormatError(f"{what} at {version_uri} has format {found}; this ameli-ray reads {format_version}")
    try:
        return version_uri, manifest_type.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise InputFormatError(f"{manifest_uri} is not a valid {what} manifest: {problems}") from None


def read_verified(
    version_uri: str, manifest: VersionedManifest, name: str, store: ObjectStore, what: str, *,
    cache: Path | None = None,
) -> bytes:
    """The bytes of one file of a version, checked against the manifest. With `cache` (a local
    folder), a copy there that still matches the manifest is used instead of the store, and a
    copy read from the store is kept there."""
    entry = manifest.files.get(name)
    if entry is None:
        raise InputFormatError(f"{what} manifest at {version_uri} lists no {name}")
    cached = cache / name if cache is not None else None
    if cached is not None and cached.is_file() and cached.stat().st_size == entry.bytes:
        data = cached.read_bytes()
        if hashlib.sha256(data).hexdigest() == entry.sha256:
            return data
    uri = join_uri(version_uri, name)
    data = store.read_bytes(uri)
    _check(uri, hashlib.sha256(data).hexdigest(), entry, manifest, what)
    if cached is not None:
        store.write_bytes(str(cached), data)  # local writes replace the file whole: no torn copy
    return data


def _stream_sha256(stream: BinaryIO, chunk_bytes: int, copy_to: BinaryIO | None = None) -> str:
    """The sha256 of a stream read in chunks (never held whole), each chunk also written to `copy_to`."""
    digest = hashlib.sha256()
    while chunk := stream.read(chunk_bytes):
        digest.update(chunk)
        if copy_to is not None:
            copy_to.write(chunk)
    return digest.hexdigest()


def _check(uri: str, digest: str, entry: FileEntry, manifest: VersionedManifest, what: str) -> None:
    if digest != entry.sha256:
        raise ChecksumMismatch(
            f"{uri}: sha256 {digest[:12]}… does not match the manifest's {entry.sha256[:12]}…; "
            f"the {what} is corrupt or was modified — {manifest.remedy}"
        )


def fetch_verified(version_uri: str, manifest: VersionedManifest, name: str, store: ObjectStore, what: str,
                   folder: Path, chunk_bytes: int = 8 << 20) -> Path:
    """A local copy of one file of a version, checked against the manifest, streamed (neither
    the copy nor the download is held in memory): what is memory-mapped from disk. A copy already
    in `folder` is used when its sha256 still matches; a new one is written beside it and renamed
    into place, so a process that reads it meanwhile never sees half a file."""
    entry = manifest.files.get(name)
    if entry is None:
        raise InputFormatError(f"{what} manifest at {version_uri} lists no {name}")
    local = folder / name
    if local.is_file() and local.stat().st_size == entry.bytes:
        with local.open("rb") as f:
            if _stream_sha256(f, chunk_bytes) == entry.sha256:
                return local
    local.parent.mkdir(parents=True, exist_ok=True)
    uri = join_uri(version_uri, name)
    with tempfile.NamedTemporaryFile(dir=local.parent, prefix=f".{local.name}.", delete=False) as tmp:
        try:
            with store.open_read(uri) as stream:
                digest = _stream_sha256(stream, chunk_bytes, copy_to=tmp)
            tmp.flush()
            _check(uri, digest, entry, manifest, what)
        except BaseException:
            Path(tmp.name).unlink(missing_ok=True)
            raise
    os.replace(tmp.name, local)
    return local


def verify_version(version_uri: str, manifest: VersionedManifest, store: ObjectStore, what: str,
                   chunk_bytes: int = 8 << 20) -> None:
    """Checks every file of a version against its manifest, streamed (a KB of millions of
    products is never held): what a driver does before it starts workers that load the
    version, so a corrupt or half-copied one is refused with the loader's own message, once,
    instead of from inside each worker."""
    for name, entry in sorted(manifest.files.items()):
        uri = join_uri(version_uri, name)
        with store.open_read(uri) as stream:
            _check(uri, _stream_sha256(stream, chunk_bytes), entry, manifest, what)
