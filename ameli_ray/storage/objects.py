"""Files behind URIs: local paths and `s3://bucket/key`, one API for both.

S3 objects are read and written with boto3 (one client, one set of retries and timeouts, one
kind of error to translate); local files with pyarrow's local filesystem. Before the
first S3 call the endpoint is probed with a short TCP connect, so an unreachable endpoint is a
clear error in seconds, not a retry storm.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlparse

import pyarrow.fs as pafs

from ameli_ray.config import S3Settings
from ameli_ray.errors import ObjectNotFound, StorageError, StorageUnreachable


def is_s3(uri: str) -> bool:
    return str(uri).startswith("s3://")


def join_uri(base: str, *parts: str) -> str:
    """Join path segments onto a local path or an s3:// URI."""
    base = str(base)
    if is_s3(base) or base.startswith("file://"):
        out = base.rstrip("/")
        for part in parts:
            out = f"{out}/{str(part).strip('/')}"
        return out
    return str(Path(base, *parts))


def split_s3(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise StorageError(f"not an s3:// URI: {uri!r}")
    return parsed.netloc, parsed.path.lstrip("/")


def parquet_bytes(table) -> bytes:
    """A table as the bytes of a zstd parquet file: what every part and entity table is written as."""
    import io

    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


class _NeverRaised(Exception):
    """Stands in for botocore's exceptions where botocore is not installed."""


class ObjectStore:
    """Reads and writes bytes under local paths and s3:// URIs with one set of S3 settings."""

    def __init__(self, s3: S3Settings | None = None):
        self.s3 = s3 or S3Settings()
        self._client = None
        self._lock = threading.Lock()
        self._probed = False

    # -- filesystems -------------------------------------------------------------------------
    def endpoint(self) -> tuple[str, str | None]:
        """(scheme, host:port) of the configured endpoint; (https, None) for AWS itself."""
        if not self.s3.endpoint_url:
            return "https", None
        parsed = urlparse(self.s3.endpoint_url if "://" in self.s3.endpoint_url else f"http://{self.s3.endpoint_url}")
        return parsed.scheme or "http", parsed.netloc

    def probe(self) -> None:
        """Fail fast, naming the endpoint, when nothing listens there."""
        if self._probed:
            return
        scheme, netloc = self.endpoint()
        if netloc is not None:
            host, _, port = netloc.rpartition(":") if ":" in netloc else (netloc, "", "")
            port_num = int(port) if port else (443 if scheme == "https" else 80)
            try:
                with socket.create_connection((host, port_num), timeout=self.s3.connect_timeout_s):
                    pass
            except OSError as exc:
                raise StorageUnreachable(
                    f"S3 endpoint {self.s3.endpoint_url} is unreachable ({exc.strerror or exc}); "
                    "check s3.endpoint_url / AMELI_S3__ENDPOINT_URL"
                ) from None
        self._probed = True

    def resolve(self, uri: str) -> tuple[pafs.FileSystem, str]:
        """The pyarrow filesystem and path of a local URI (S3 objects go through boto3)."""
        uri = str(uri)
        if is_s3(uri):
            raise StorageError(f"resolve() is for local paths; {uri} is read through boto3")
        if "://" in uri and not uri.startswith("file://"):
            raise StorageError(f"unsupported URI scheme in {uri!r}: use a local path or s3://")
        path = uri.removeprefix("file://")
        return pafs.LocalFileSystem(), str(Path(path).expanduser().absolute())

    def boto3_client(self):
        with self._lock:
            if self._client is None:
                import boto3
                from botocore.config import Config

                self.probe()
                self._client = boto3.client(
                    "s3",
                    endpoint_url=self.s3.endpoint_url,
                    region_name=self.s3.region,
                    aws_access_key_id=self.s3.access_key_id.get_secret_value() if self.s3.access_key_id else None,
                    aws_secret_access_key=self.s3.secret_access_key.get_secret_value() if self.s3.secret_access_key else None,
                    config=Config(
                        connect_timeout=self.s3.connect_timeout_s,
                        read_timeout=self.s3.request_timeout_s,
                        retries={"max_attempts": self.s3.max_attempts, "mode": "standard"},
                    ),
                )
            return self._client

    # -- operations --------------------------------------------------------------------------
    def _call(self, what: str, uri: str, fn):
        try:
            from botocore.exceptions import BotoCoreError, ClientError
            from botocore.exceptions import ConnectionError as BotoConnectionError
        except ImportError:  # local paths need no boto3 (a GPU box that only benchmarks models)
            BotoCoreError = ClientError = BotoConnectionError = _NeverRaised

        try:
            return fn()
        except FileNotFoundError:
            raise ObjectNotFound(f"{what}: not found: {uri}") from None
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("404", "NoSuchKey", "NoSuchBucket", "NotFound"):
                raise ObjectNotFound(f"{what}: not found: {uri}") from None
            raise StorageError(f"{what} {uri}: {code or exc}") from None
        except BotoConnectionError:
            raise StorageUnreachable(f"{what}: S3 endpoint {self.s3.endpoint_url or 'AWS'} unreachable for {uri}") from None
        except BotoCoreError as exc:
            raise StorageError(f"{what} {uri}: {exc}") from None
        except OSError as exc:
            raise StorageError(f"{what} {uri}: {exc}") from None

    def read_bytes(self, uri: str, max_bytes: int | None = None) -> bytes:
        def too_big(size: int | None) -> None:
            if max_bytes is not None and size is not None and size > max_bytes:
                raise StorageError(f"read: {uri} is {size} bytes, over the limit of {max_bytes}")

        if is_s3(uri):
            bucket, key = split_s3(uri)

            def get() -> bytes:
                obj = self.boto3_client().get_object(Bucket=bucket, Key=key)
                too_big(obj.get("ContentLength"))
                return obj["Body"].read()

            return self._call("read", uri, get)
        fs, path = self.resolve(uri)

        def go() -> bytes:
            info = fs.get_file_info(path)
            if info.type == pafs.FileType.NotFound:
                raise FileNotFoundError(path)
            if info.type != pafs.FileType.File:
                raise StorageError(f"read: {uri} is not a file")
            too_big(info.size)
            with fs.open_input_stream(path) as f:
                return f.read()

        return self._call("read", uri, go)

    @contextlib.contextmanager
    def open_read(self, uri: str) -> Iterator[BinaryIO]:
        """A binary stream of a file, for inputs too large to hold (corpus shards). A failure in
        the middle of an S3 body raises; the caller (a Ray Data task) is retried whole."""
        if is_s3(uri):
            bucket, key = split_s3(uri)
            body = self._call("read", uri, lambda: self.boto3_client().get_object(Bucket=bucket, Key=key)["Body"])
            try:
                yield body
            finally:
                body.close()
            return
        fs, path = self.resolve(uri)
        stream = self._call("read", uri, lambda: fs.open_input_stream(path, compression=None))
        try:
            yield stream
        finally:
            stream.close()

    def list_sized(self, uri: str) -> list[tuple[str, int, str]]:
        """(URI, size, version tag) of every file below a prefix, sorted; the tag is the ETag on
        S3 and the modification time locally: what tells a changed input from the same one."""
        if is_s3(uri):
            bucket, key = split_s3(uri)
            prefix = key.rstrip("/") + "/" if key else ""

            def go() -> list[tuple[str, int, str]]:
                pages = self.boto3_client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
                return [(f"s3://{bucket}/{o['Key']}", int(o["Size"]), o["ETag"].strip('"'))
                        for page in pages for o in page.get("Contents", [])]

            try:
                return sorted(self._call("list", uri, go))
            except ObjectNotFound:
                return []
        fs, path = self.resolve(uri)
        selector = pafs.FileSelector(path, recursive=True, allow_not_found=True)
        infos = self._call("list", uri, lambda: fs.get_file_info(selector))
        return sorted((i.path, int(i.size), str(i.mtime_ns)) for i in infos if i.type == pafs.FileType.File)

    def stat(self, uri: str) -> tuple[int, str] | None:
        """(size, version tag) of one file (see `list_sized`), None when there is none."""
        if is_s3(uri):
            bucket, key = split_s3(uri)
            try:
                head = self._call("stat", uri, lambda: self.boto3_client().head_object(Bucket=bucket, Key=key))
            except ObjectNotFound:
                return None
            return int(head["ContentLength"]), head["ETag"].strip('"')
        fs, path = self.resolve(uri)
        info = self._call("stat", uri, lambda: fs.get_file_info(path))
        return (int(info.size), str(info.mtime_ns)) if info.type == pafs.FileType.File else None

    def read_text(self, uri: str, encoding: str = "utf-8") -> str:
        data = self.read_bytes(uri)
        try:
            return data.decode(encoding)
        except UnicodeDecodeError as exc:
            raise StorageError(f"{uri} is not valid {encoding} text (byte {exc.start})") from None

    def write_bytes(self, uri: str, data: bytes) -> None:
        if is_s3(uri):
            bucket, key = split_s3(uri)
            self._call("write", uri, lambda: self.boto3_client().put_object(Bucket=bucket, Key=key, Body=data))
            return
        self._write_local(uri, lambda f: f.write(data))

    def _write_local(self, uri: str, fill) -> None:
        """A local file written through `fill(stream)` into a sibling, then renamed over `uri`,
        as an S3 PUT: a concurrent reader sees the old file or the new one, never a truncated one
        (LATEST and manifests are rewritten in place)."""
        fs, path = self.resolve(uri)

        def go() -> None:
            fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
            tmp = f"{path}.{secrets.token_hex(4)}.tmp"
            try:
                with fs.open_output_stream(tmp) as f:
                    fill(f)
                fs.move(tmp, path)
            except BaseException:
                if fs.get_file_info(tmp).type != pafs.FileType.NotFound:
                    fs.delete_file(tmp)
                raise

        self._call("write", uri, go)

    def write_file(self, uri: str, local: str | Path, chunk_bytes: int = 8 << 20) -> None:
        """Copies a local file to `uri` streamed, never holding it whole (a KB's embeddings and
        indexes run to gigabytes): a multipart upload on S3, a sibling then a rename locally."""
        local = Path(local)
        if is_s3(uri):
            from boto3.exceptions import S3UploadFailedError
            from boto3.s3.transfer import TransferConfig
            from botocore.exceptions import ClientError

            bucket, key = split_s3(uri)
            config = TransferConfig(multipart_threshold=chunk_bytes, multipart_chunksize=chunk_bytes, max_concurrency=4)

            def upload() -> None:
                try:
                    self.boto3_client().upload_file(str(local), bucket, key, Config=config)
                except S3UploadFailedError as exc:  # the transfer manager's wrapper of a failed request
                    cause = exc.__cause__ or exc.__context__
                    if isinstance(cause, ClientError):
                        raise cause from None  # reported as every other write's error (`_call`)
                    raise StorageError(f"write {uri}: {exc}") from None

            self._call("write", uri, upload)
            return

        def copy(f) -> None:
            with local.open("rb") as src:
                while chunk := src.read(chunk_bytes):
                    f.write(chunk)

        self._write_local(uri, copy)

    def write_text(self, uri: str, text: str) -> None:
        self.write_bytes(uri, text.encode("utf-8"))

    def exists(self, uri: str) -> bool:
        if is_s3(uri):
            bucket, key = split_s3(uri)
            try:
                self._call("stat", uri, lambda: self.boto3_client().head_object(Bucket=bucket, Key=key))
                return True
            except ObjectNotFound:
                return False
        fs, path = self.resolve(uri)
        info = self._call("stat", uri, lambda: fs.get_file_info(path))
        return info.type != pafs.FileType.NotFound

    def list_files(self, uri: str) -> list[str]:
        """All files below a prefix, as URIs of the same kind, sorted."""
        return [u for u, _, _ in self.list_sized(uri)]

    def etags(self, uri: str) -> dict[str, str]:
        """{name relative to `uri`: ETag} of the object at `uri` (name: its basename) or of every
        object below it as a prefix; empty when there is none. S3 only."""
        bucket, key = split_s3(uri)
        client = self.boto3_client()

        def head() -> dict[str, str]:
            return {key.rsplit("/", 1)[-1]: client.head_object(Bucket=bucket, Key=key)["ETag"]}

        def listing() -> dict[str, str]:
            prefix = key.rstrip("/") + "/" if key else ""
            pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            return {o["Key"][len(prefix):]: o["ETag"] for page in pages for o in page.get("Contents", [])}

        try:
            if key and not key.endswith("/"):
                return self._call("head", uri, head)
            raise ObjectNotFound(uri)
        except ObjectNotFound:
            try:
                return self._call("list", uri, listing)
            except ObjectNotFound:
                return {}

    def delete(self, uri: str) -> None:
        """Deletes one file; none there is fine."""
        if is_s3(uri):
            bucket, key = split_s3(uri)
            self._call("delete", uri, lambda: self.boto3_client().delete_object(Bucket=bucket, Key=key))
            return
        fs, path = self.resolve(uri)
        if fs.get_file_info(path).type == pafs.FileType.File:
            self._call("delete", uri, lambda: fs.delete_file(path))

    def delete_prefix(self, uri: str) -> int:
        """Deletes every file below a prefix (a folder); returns how many. Nothing there is fine."""
        files = self.list_files(uri)
        if is_s3(uri):
            client = self.boto3_client()
            for start in range(0, len(files), 1000):  # the DeleteObjects limit
                chunk = files[start : start + 1000]
                bucket = split_s3(chunk[0])[0]
                objects = [{"Key": split_s3(f)[1]} for f in chunk]
                self._call("delete", uri, lambda: client.delete_objects(Bucket=bucket, Delete={"Objects": objects}))
            return len(files)
        fs, path = self.resolve(uri)
        if fs.get_file_info(path).type != pafs.FileType.NotFound:
            self._call("delete", uri, lambda: fs.delete_dir(path))
        return len(files)

    def ensure_bucket(self, uri: str) -> None:
        if not is_s3(uri):
            return
        bucket, _ = split_s3(uri)
        client = self.boto3_client()
        try:
            client.head_bucket(Bucket=bucket)
        except client.exceptions.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code not in ("404", "NoSuchBucket", "NotFound"):
                raise StorageError(f"bucket {bucket}: {exc}") from None
            # outside us-east-1, S3 wants the region named ("IllegalLocationConstraintException"
            # otherwise); us-east-1 refuses it being named
            region = self.s3.region
            where = {} if region in ("", "us-east-1") else {"CreateBucketConfiguration": {"LocationConstraint": region}}
            try:
                client.create_bucket(Bucket=bucket, **where)
            except client.exceptions.ClientError as create_exc:
                raise StorageError(f"cannot create bucket {bucket}: {create_exc}") from None

    def upload_dir(self, local_dir: str | Path, uri: str) -> int:
        """Copy a local folder under a URI; returns the number of files."""
        local_dir = Path(local_dir)
        self.ensure_bucket(uri)
        n = 0
        for file in sorted(p for p in local_dir.rglob("*") if p.is_file()):
            self.write_bytes(join_uri(uri, file.relative_to(local_dir).as_posix()), file.read_bytes())
            n += 1
        return n

    def download_dir(self, uri: str, local_dir: str | Path) -> int:
        local_dir = Path(local_dir)
        files = self.list_files(uri)
        if not files:
            raise ObjectNotFound(f"nothing found under {uri}")
        prefix = uri.rstrip("/") if is_s3(uri) else self.resolve(uri)[1]
        for f in files:
            target = local_dir / f[len(prefix):].lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(self.read_bytes(f))
        return len(files)
