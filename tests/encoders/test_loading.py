"""Models from storage: no unpickling unless allowed, a cache keyed by content and verified."""

import pytest

from ameli_ray.config import TextEncoderSettings
from ameli_ray.encoders.loading import resolve_model_ref
from ameli_ray.errors import ModelLoadError


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AMELI_CACHE_DIR", str(tmp_path / "cache"))


def test_a_pickled_checkpoint_from_storage_is_refused_unless_allowed(s3_store, s3_bucket):
    s3_store.write_bytes(f"{s3_bucket}/ckpt/model.pt", b"\x80\x04pickled")
    with pytest.raises(ModelLoadError, match=r"model.pt: a pickled checkpoint \(.pt\).*image_encoder.allow_pickle=true"):
        resolve_model_ref(f"{s3_bucket}/ckpt/model.pt", s3_store, setting="image_encoder.allow_pickle")
    path = resolve_model_ref(f"{s3_bucket}/ckpt/model.pt", s3_store, allow_pickle=True)
    assert open(path, "rb").read() == b"\x80\x04pickled"


def test_a_model_folder_with_only_pickled_weights_is_refused(s3_store, s3_bucket):
    s3_store.write_bytes(f"{s3_bucket}/hf/old/config.json", b"{}")
    s3_store.write_bytes(f"{s3_bucket}/hf/old/pytorch_model.bin", b"pickled")
    with pytest.raises(ModelLoadError, match="holds only pickled weights \\(pytorch_model.bin\\)"):
        resolve_model_ref(f"{s3_bucket}/hf/old", s3_store)
    s3_store.write_bytes(f"{s3_bucket}/hf/new/config.json", b"{}")
    s3_store.write_bytes(f"{s3_bucket}/hf/new/model.safetensors", b"weights")
    s3_store.write_bytes(f"{s3_bucket}/hf/new/pytorch_model.bin", b"pickled")  # beside safetensors: never read
    local = resolve_model_ref(f"{s3_bucket}/hf/new", s3_store)
    assert open(f"{local}/model.safetensors", "rb").read() == b"weights"
    with pytest.raises(ModelLoadError, match="no model found"):
        resolve_model_ref(f"{s3_bucket}/hf/missing", s3_store)


def test_the_cache_follows_the_objects_and_is_verified_before_use(s3_store, s3_bucket, tmp_path):
    uri = f"{s3_bucket}/weights/tower.safetensors"
    s3_store.write_bytes(uri, b"version one")
    first = resolve_model_ref(uri, s3_store)
    assert open(first, "rb").read() == b"version one" and resolve_model_ref(uri, s3_store) == first
    # a damaged cached copy is downloaded again, not used
    with open(first, "wb") as f:
        f.write(b"tampered")
    assert open(resolve_model_ref(uri, s3_store), "rb").read() == b"version one"
    # other weights under the same URI are not served from the old copy
    s3_store.write_bytes(uri, b"version two")
    second = resolve_model_ref(uri, s3_store)
    assert second != first and open(second, "rb").read() == b"version two"


@pytest.mark.slow
def test_a_text_encoder_loads_from_storage_with_safetensors_only(s3_store, s3_bucket):
    from ameli_ray.encoders import TextEncoder

    packaged = resolve_model_ref("packaged:all-MiniLM-L6-v2")
    s3_store.upload_dir(packaged, f"{s3_bucket}/models/minilm")
    from_s3 = TextEncoder(TextEncoderSettings(model=f"{s3_bucket}/models/minilm"), s3_store, device="cpu")
    local = TextEncoder(TextEncoderSettings(), device="cpu")
    assert from_s3.fingerprint == local.fingerprint and from_s3.dim == 384


def test_the_cache_keeps_the_most_recently_used_entries_and_spares_those_in_use(tmp_path, monkeypatch):
    import os
    import time

    from ameli_ray.encoders.loading import prune_cache, touch_cache_entry

    kind = tmp_path / "kind"
    now = time.time()
    for i in range(5):  # entry-0 used two days ago ... entry-4 used 2 days minus 4 hours ago
        (kind / f"entry-{i}").mkdir(parents=True)
        (kind / f"entry-{i}" / "weights").write_bytes(b"x" * 10)
        os.utime(kind / f"entry-{i}", (now - 2 * 86400 + i * 3600,) * 2)
    touch_cache_entry(kind / "entry-0")  # the oldest is used again: it is now the newest
    removed = prune_cache(kind, keep=3)
    assert sorted(p.name for p in removed) == ["entry-1", "entry-2"]
    assert sorted(p.name for p in kind.iterdir()) == ["entry-0", "entry-3", "entry-4"]
    # beyond the count but used within the hour: another process may be loading it
    os.utime(kind / "entry-3", (now - 60,) * 2)
    assert prune_cache(kind, keep=1) == [kind / "entry-4"]
    monkeypatch.setenv("AMELI_CACHE_KEEP", "1")
    assert prune_cache(kind) == []  # entry-0 (just used) and entry-3 (in use) stay
    assert prune_cache(tmp_path / "missing") == []


def test_downloading_more_models_than_the_cache_keeps_evicts_the_oldest(s3_store, s3_bucket, tmp_path, monkeypatch):
    import os

    monkeypatch.setenv("AMELI_CACHE_KEEP", "2")
    paths = []
    for i in range(4):
        uri = f"{s3_bucket}/weights/v{i}.safetensors"
        s3_store.write_bytes(uri, f"version {i}".encode())
        paths.append(resolve_model_ref(uri, s3_store))
        for older in paths[:-1]:  # as if they had been used long ago
            if os.path.exists(older):
                os.utime(os.path.dirname(older), (1.0, 1.0))
    assert [p for p in paths if os.path.exists(p)] == paths[-2:]
    assert open(paths[-1], "rb").read() == b"version 3"
