import time

import pytest

from ameli_ray.config import S3Settings
from ameli_ray.errors import ObjectNotFound, StorageUnreachable
from ameli_ray.storage import ObjectStore, join_uri
from ameli_ray.storage.local_s3 import free_port


def test_local_and_s3_roundtrip(tmp_path, s3_store, s3_bucket):
    for base in (str(tmp_path / "root"), f"{s3_bucket}/root"):
        s3_store.write_bytes(join_uri(base, "a/b.bin"), b"\x00\x01")
        s3_store.write_text(join_uri(base, "c.txt"), "héllo")
        assert s3_store.read_bytes(join_uri(base, "a/b.bin")) == b"\x00\x01"
        assert s3_store.read_text(join_uri(base, "c.txt")) == "héllo"
        assert s3_store.exists(join_uri(base, "c.txt"))
        assert not s3_store.exists(join_uri(base, "nope"))
        listed = s3_store.list_files(base)
        assert [u.rsplit("/", 1)[-1] for u in listed] == ["b.bin", "c.txt"]


def test_upload_download_dir(tmp_path, s3_store, s3_bucket):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "x.txt").write_text("x")
    (src / "sub" / "y.txt").write_text("y")
    assert s3_store.upload_dir(src, f"{s3_bucket}/copy") == 2
    assert s3_store.download_dir(f"{s3_bucket}/copy", tmp_path / "dst") == 2
    assert (tmp_path / "dst" / "sub" / "y.txt").read_text() == "y"


def test_missing_object_names_uri(s3_store, s3_bucket):
    with pytest.raises(ObjectNotFound, match="nope.json"):
        s3_store.read_bytes(f"{s3_bucket}/nope.json")
    with pytest.raises(ObjectNotFound, match="no-such-bucket"):
        s3_store.read_bytes("s3://no-such-bucket/x")


def test_unreachable_endpoint_fails_fast():
    store = ObjectStore(S3Settings(endpoint_url=f"http://127.0.0.1:{free_port()}"))
    start = time.monotonic()
    with pytest.raises(StorageUnreachable, match="unreachable"):
        store.read_bytes("s3://bucket/key")
    assert time.monotonic() - start < 5


def test_size_limit(tmp_path, s3_store):
    path = tmp_path / "big.bin"
    path.write_bytes(b"0" * 1000)
    with pytest.raises(Exception, match="over the limit"):
        s3_store.read_bytes(str(path), max_bytes=10)


@pytest.mark.slow
def test_local_server_survives_thousands_of_requests(s3_store, s3_bucket):
    """moto logs every request; the server must not block once a log buffer would be full."""
    for i in range(1500):
        assert not s3_store.exists(f"{s3_bucket}/missing-{i}")
    s3_store.write_bytes(f"{s3_bucket}/after", b"ok")
    assert s3_store.read_bytes(f"{s3_bucket}/after") == b"ok"


def test_buckets_outside_us_east_1_are_created_in_their_region(s3_settings):
    """S3 refuses a bucket created through a regional endpoint without a location constraint."""
    store = ObjectStore(s3_settings.model_copy(update={"region": "eu-west-1"}))
    store.ensure_bucket("s3://ameli-in-eu-west-1/kb")
    location = store.boto3_client().get_bucket_location(Bucket="ameli-in-eu-west-1")["LocationConstraint"]
    assert location == "eu-west-1"
    store.write_bytes("s3://ameli-in-eu-west-1/kb/x", b"1")
    assert store.read_bytes("s3://ameli-in-eu-west-1/kb/x") == b"1"


def test_local_paths_need_no_boto3(tmp_path):
    """A machine that only runs models (a GPU box for bench/gpu_precision.py) reads and writes
    local files through the same ObjectStore without botocore installed."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(f"""
        import sys
        sys.modules["botocore"] = sys.modules["boto3"] = None  # as if not installed
        from ameli_ray.errors import ObjectNotFound
        from ameli_ray.storage import ObjectStore
        store = ObjectStore()
        store.write_bytes("{tmp_path}/a/b.json", b"[1]")
        assert store.read_bytes("{tmp_path}/a/b.json") == b"[1]"
        try:
            store.read_bytes("{tmp_path}/missing")
        except ObjectNotFound as exc:
            print("refused:", exc)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "refused: read: not found" in out.stdout
