import datetime as dt
import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import ClassVar

import pytest

from ameli_ray.errors import ChecksumMismatch, InputFormatError, ObjectNotFound, StorageError
from ameli_ray.storage import ObjectStore, join_uri, versioned
from ameli_ray.storage.versioned import (
    LATEST,
    MANIFEST,
    VersionedManifest,
    new_version,
    point_latest,
    read_verified,
    read_versioned_manifest,
    verify_version,
    write_version,
)

FILES = {"a.bin": b"\x00\x01\x02", "sub/b.json": b'{"x": 1}', "empty": b""}


class ToyManifest(VersionedManifest):
    remedy: ClassVar[str] = "make it again"

    format_version: int = 3
    note: str = ""


def toy(note: str = "") -> ToyManifest:
    return ToyManifest(name="toy", created_at="2026-01-01T00:00:00+00:00", note=note)


def read_all(uri: str, store: ObjectStore) -> tuple[ToyManifest, dict[str, bytes]]:
    version_uri, manifest = read_versioned_manifest(uri, store, ToyManifest, "toy", 3)
    return manifest, {name: read_verified(version_uri, manifest, name, store, "toy") for name in manifest.files}


@pytest.mark.parametrize("where", ["local", "s3"])
def test_roundtrip(where, tmp_path, s3_store, s3_bucket):
    root = str(tmp_path / "root") if where == "local" else f"{s3_bucket}/root"
    version_uri, written = write_version(root, s3_store, FILES, toy("hello"))
    assert version_uri == join_uri(root, written.version)
    assert s3_store.read_text(join_uri(root, LATEST)).strip() == written.version
    assert written.files["a.bin"].bytes == 3 and written.files["empty"].bytes == 0
    manifest, files = read_all(root, s3_store)  # through LATEST
    assert manifest == written and manifest.note == "hello"
    assert files == FILES
    assert read_all(version_uri, s3_store)[0] == written  # the version folder itself
    on_disk = {u.removeprefix(version_uri).lstrip("/") for u in s3_store.list_files(version_uri)}
    assert on_disk == set(FILES) | {MANIFEST}


@pytest.mark.parametrize("where", ["local", "s3"])
def test_local_files_are_hashed_and_uploaded_streamed(where, tmp_path, s3_store, s3_bucket):
    """A file given as a local Path (a streamed KB build's gigabytes of embeddings) is hashed
    and copied in chunks: on S3 a multipart upload (parts of 5 MiB, S3's smallest)."""
    import os

    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(12 * 1024 * 1024 + 17))  # two full chunks and a short one
    root = str(tmp_path / "root") if where == "local" else f"{s3_bucket}/root"
    s3_store.write_file(join_uri(root, "direct.bin"), big, chunk_bytes=5 * 1024 * 1024)
    assert s3_store.read_bytes(join_uri(root, "direct.bin")) == big.read_bytes()
    version_uri, written = write_version(join_uri(root, "asset"), s3_store, {"big.bin": big, **FILES}, toy("files"))
    manifest, files = read_all(version_uri, s3_store)
    assert files["big.bin"] == big.read_bytes() and written.files["big.bin"].bytes == big.stat().st_size
    verify_version(version_uri, manifest, s3_store, "toy")


def test_a_corrupted_file_is_refused_by_name(tmp_path, s3_store, s3_bucket):
    for root in (str(tmp_path), f"{s3_bucket}/root"):
        version_uri, manifest = write_version(root, s3_store, FILES, toy())
        s3_store.write_bytes(join_uri(version_uri, "sub/b.json"), b'{"x": 2}')
        with pytest.raises(ChecksumMismatch, match=r"sub/b\.json: sha256 \w{12}… does not match the manifest's \w{12}…; "
                           r"the toy is corrupt or was modified — make it again"):
            read_all(root, s3_store)
        assert read_verified(version_uri, manifest, "a.bin", s3_store, "toy") == FILES["a.bin"]  # the others are fine
        with pytest.raises(InputFormatError, match="lists no nope"):
            read_verified(version_uri, manifest, "nope", s3_store, "toy")


def test_a_version_is_verified_streamed_with_the_loaders_message(tmp_path, s3_store, s3_bucket):
    for root in (str(tmp_path), f"{s3_bucket}/root"):
        version_uri, manifest = write_version(root, s3_store, FILES, toy())
        verify_version(version_uri, manifest, s3_store, "toy", chunk_bytes=2)  # several chunks per file
        s3_store.write_bytes(join_uri(version_uri, "sub/b.json"), b'{"x": 2}')
        with pytest.raises(ChecksumMismatch) as streamed:
            verify_version(version_uri, manifest, s3_store, "toy", chunk_bytes=2)
        with pytest.raises(ChecksumMismatch) as loaded:
            read_verified(version_uri, manifest, "sub/b.json", s3_store, "toy")
        assert str(streamed.value) == str(loaded.value)
        s3_store.delete(join_uri(version_uri, "a.bin"))
        with pytest.raises(ObjectNotFound, match="a.bin"):
            verify_version(version_uri, manifest, s3_store, "toy")


class ReadsDuringWrites(ObjectStore):
    """Records every write and, after each one, reads the asset through LATEST as a reader would."""

    def __init__(self, root: str):
        super().__init__()
        self.root = root
        self.writes: list[str] = []
        self.seen: list[tuple[str, dict[str, bytes]]] = []

    def write_bytes(self, uri: str, data: bytes) -> None:
        super().write_bytes(uri, data)
        self.writes.append(uri)
        manifest, files = read_all(self.root, self)
        self.seen.append((manifest.version, files))


def test_latest_is_written_after_the_manifest_after_the_files(tmp_path):
    root = str(tmp_path)
    first_uri, first = write_version(root, ObjectStore(), FILES, toy())
    store = ReadsDuringWrites(root)
    second_files = {name: data + b"!" for name, data in FILES.items()}
    second_uri, second = write_version(root, store, second_files, toy())
    names = [Path(u).relative_to(root).as_posix() for u in store.writes]
    assert names == [f"{second.version}/{n}" for n in FILES] + [f"{second.version}/{MANIFEST}", LATEST]
    # every read while the second version was being written saw the first one, complete
    assert [v for v, _ in store.seen] == [first.version] * (len(FILES) + 1) + [second.version]
    assert all(files == FILES for _, files in store.seen[:-1]) and store.seen[-1][1] == second_files


def test_writers_in_the_same_instant_get_distinct_complete_versions(tmp_path, s3_store, s3_bucket, monkeypatch):
    frozen = dt.datetime(2026, 11, 26, 10, 15, 2, 123456, tzinfo=dt.timezone.utc)
    monkeypatch.setattr(versioned, "_utcnow", lambda: frozen)
    assert new_version().startswith("v20261126-101502-123-")
    for root in (str(tmp_path), f"{s3_bucket}/root"):
        written: dict[str, bytes] = {}
        errors: list[BaseException] = []

        def write(i: int) -> None:
            try:
                payload = f"writer {i}".encode()
                _, manifest = write_version(root, s3_store, {"data.txt": payload}, toy(str(i)))
                written[manifest.version] = payload
            except BaseException as exc:  # surfaced below: a thread's exception is otherwise lost
                errors.append(exc)

        threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert len(written) == 4  # four versions, none overwritten
        for version, payload in written.items():
            manifest, files = read_all(join_uri(root, version), s3_store)
            assert files == {"data.txt": payload} and manifest.note == payload.decode().split()[-1]
        assert read_all(root, s3_store)[0].version in written  # LATEST names one of them, complete


def test_versions_sort_by_creation_time(monkeypatch):
    start = dt.datetime(2026, 11, 26, 10, 15, 2, 998000, tzinfo=dt.timezone.utc)
    versions = []
    for ms in range(4):  # across a second's end
        monkeypatch.setattr(versioned, "_utcnow", lambda ms=ms: start + dt.timedelta(milliseconds=ms))
        versions.append(new_version())
    assert versions == sorted(versions) and len(set(versions)) == 4


def test_an_existing_version_is_refused(tmp_path, s3_store, s3_bucket):
    for root in (str(tmp_path), f"{s3_bucket}/root"):
        write_version(root, s3_store, FILES, toy("first"), version="v1")
        with pytest.raises(StorageError, match="v1 already exists and versions are never overwritten"):
            write_version(root, s3_store, {"other": b"x"}, toy("second"), version="v1")
        manifest, files = read_all(root, s3_store)
        assert manifest.note == "first" and files == FILES  # untouched


def test_a_manifest_of_another_format_is_refused(tmp_path):
    store = ObjectStore()
    version_uri, _ = write_version(str(tmp_path), store, FILES, toy())
    manifest_path = Path(version_uri) / MANIFEST
    raw = json.loads(manifest_path.read_text())
    # an older layout (files as bare sha256 strings) is refused for its format, not its fields
    raw.update(format_version=2, files={name: entry["sha256"] for name, entry in raw["files"].items()})
    manifest_path.write_text(json.dumps(raw))
    with pytest.raises(InputFormatError, match=r"^toy at .* has format 2; this ameli-ray reads 3$"):
        read_all(str(tmp_path), store)
    raw["format_version"] = 3  # the right format, the wrong fields
    manifest_path.write_text(json.dumps(raw))
    with pytest.raises(InputFormatError, match=r"is not a valid toy manifest: files\.a\.bin: .*") as info:
        read_all(str(tmp_path), store)
    assert "\n" not in str(info.value)
    manifest_path.write_text("{not json")
    with pytest.raises(InputFormatError, match="is not a valid toy manifest"):
        read_all(str(tmp_path), store)


def test_latest_only_points_at_a_complete_version(tmp_path):
    store = ObjectStore()
    _, manifest = write_version(str(tmp_path), store, FILES, toy(), latest=False)
    with pytest.raises(ObjectNotFound, match="no toy at"):
        read_all(str(tmp_path), store)  # not LATEST yet
    store.write_bytes(str(tmp_path / "v-half" / "a.bin"), b"x")  # files without a manifest
    with pytest.raises(ObjectNotFound, match="v-half: it has no manifest.json"):
        point_latest(str(tmp_path), "v-half", store)
    point_latest(str(tmp_path), manifest.version, store)
    assert read_all(str(tmp_path), store)[0] == manifest


class CountsReads(ObjectStore):
    def __init__(self):
        super().__init__()
        self.reads: list[str] = []

    def read_bytes(self, uri, max_bytes=None):
        self.reads.append(uri)
        return super().read_bytes(uri, max_bytes)


def test_a_cached_copy_is_used_only_while_it_matches(tmp_path):
    store = CountsReads()
    version_uri, manifest = write_version(str(tmp_path / "root"), store, FILES, toy())
    cache = tmp_path / "cache"
    assert read_verified(version_uri, manifest, "sub/b.json", store, "toy", cache=cache) == FILES["sub/b.json"]
    assert (cache / "sub" / "b.json").read_bytes() == FILES["sub/b.json"]
    store.reads.clear()
    assert read_verified(version_uri, manifest, "sub/b.json", store, "toy", cache=cache) == FILES["sub/b.json"]
    assert store.reads == []  # served from the cache
    (cache / "sub" / "b.json").write_bytes(b'{"x": 9}')  # same size, other bytes
    assert read_verified(version_uri, manifest, "sub/b.json", store, "toy", cache=cache) == FILES["sub/b.json"]
    assert store.reads == [join_uri(version_uri, "sub/b.json")]  # re-read, and the cache repaired
    assert (cache / "sub" / "b.json").read_bytes() == FILES["sub/b.json"]
    store.write_bytes(join_uri(version_uri, "a.bin"), b"bad")
    with pytest.raises(ChecksumMismatch, match="a.bin"):
        read_verified(version_uri, manifest, "a.bin", store, "toy", cache=cache)
    assert not (cache / "a.bin").exists()  # a bad file is never cached


def test_imports_nothing_heavy():
    code = "import sys, ameli_ray.storage.versioned; print(sorted(m for m in ('torch', 'faiss', 'ray') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
