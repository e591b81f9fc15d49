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
