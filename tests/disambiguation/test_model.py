"""The trained model as a versioned asset: written, read back and verified through the local S3
server (the image adapter alone: the cross-encoder's files go the same way and are slow to make)."""

import json

import pytest
import torch

from ameli_ray.config import DisambiguationSettings, ImageStreamSettings
from ameli_ray.disambiguation.image_stream import ADAPTER_FILE, ImageStream
from ameli_ray.disambiguation.manifest import MODEL_FORMAT_VERSION, ModelManifest, read_model_manifest
from ameli_ray.disambiguation.model import load_model, update_fusion, write_model
from ameli_ray.errors import ChecksumMismatch, InputFormatError, StorageError
from ameli_ray.fusion import FusionModel
from ameli_ray.storage import join_uri
from ameli_ray.storage.versioned import LATEST, MANIFEST

PROVISIONAL = FusionModel(weights={"retrieval": 1.0, "text": 0.0, "image": 0.0},
                          standardisation={s: (0.0, 1.0) for s in ("retrieval", "text", "image")})


@pytest.fixture
def adapter_model(s3_store, s3_bucket, tmp_path, monkeypatch):
    """(root URI, version URI, the written ImageStream) with LATEST not yet pointing at it."""
    monkeypatch.setenv("AMELI_CACHE_DIR", str(tmp_path / "cache"))
    torch.manual_seed(0)
    image = ImageStream(16, ImageStreamSettings())
    manifest = ModelManifest(
        name="disambiguation", created_at="2026-01-01T00:00:00+00:00", kb="toy/v1", image_model="tower",
        image_fingerprint="abc", text_model=None, text_settings={}, image_settings=ImageStreamSettings().model_dump(),
        has_image=True, fusion=PROVISIONAL,
    )
    root = f"{s3_bucket}/model"
    version_uri = write_model(root, s3_store, manifest, None, image, point_latest=False)
    return root, version_uri, image


def test_roundtrip_and_update_fusion(adapter_model, s3_store):
    root, version_uri, image = adapter_model
    assert not s3_store.exists(join_uri(root, LATEST))  # the streams are written before the fusion is tuned
    tuned = FusionModel(weights={"retrieval": 0.5, "text": 0.0, "image": 0.5},
                        standardisation={s: (0.0, 1.0) for s in ("retrieval", "text", "image")})
    update_fusion(version_uri, s3_store, tuned, {"seconds": 1.0}, root_uri=root)
    model = load_model(root, s3_store, DisambiguationSettings())  # through LATEST
    assert model.manifest.fusion == tuned and model.manifest.training == {"seconds": 1.0}
    assert model.manifest.format_version == MODEL_FORMAT_VERSION == 3
    assert set(model.manifest.files) == {ADAPTER_FILE} and model.manifest.files[ADAPTER_FILE].bytes > 0
    assert model.text is None
    for name, tensor in image.state_dict().items():
        assert torch.equal(model.image.state_dict()[name], tensor)


def test_a_corrupted_file_is_refused_and_a_corrupted_cache_refetched(adapter_model, s3_store, tmp_path):
    _, version_uri, _ = adapter_model
    settings = DisambiguationSettings()
    load_model(version_uri, s3_store, settings)
    cached = next((tmp_path / "cache" / "disambiguation").glob(f"*/{ADAPTER_FILE}"))
    good = cached.read_bytes()
    cached.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    load_model(version_uri, s3_store, settings)  # the cached copy no longer matches: fetched again
    assert cached.read_bytes() == good
    uri = join_uri(version_uri, ADAPTER_FILE)
    s3_store.write_bytes(uri, good[:-1] + bytes([good[-1] ^ 1]))
    cached.unlink()
    with pytest.raises(ChecksumMismatch, match=f"{ADAPTER_FILE}: sha256 .* — retrain or re-upload it"):
        load_model(version_uri, s3_store, settings)


@pytest.mark.parametrize("old", [1, 2])
def test_an_older_format_model_is_refused(adapter_model, s3_store, old):
    """1: the old file layout; 2: a fusion without a confidence calibrator (its no-match answer
    was a raw score threshold, which this version no longer reads)."""
    _, version_uri, _ = adapter_model
    raw = json.loads(s3_store.read_text(join_uri(version_uri, MANIFEST)))
    raw.update(format_version=old)
    if old == 1:
        raw.update(files={n: e["sha256"] for n, e in raw["files"].items()})
    s3_store.write_text(join_uri(version_uri, MANIFEST), json.dumps(raw))
    with pytest.raises(InputFormatError, match=f"has format {old}; this ameli-ray reads 3"):
        read_model_manifest(version_uri, s3_store)


def test_an_existing_version_is_refused(adapter_model, s3_store):
    root, version_uri, image = adapter_model
    _, manifest = read_model_manifest(version_uri, s3_store)
    version = version_uri.rsplit("/", 1)[1]
    with pytest.raises(StorageError, match="already exists"):
        write_model(root, s3_store, manifest, None, image, version=version)


def test_the_text_streams_input_shape_is_the_trained_models_and_its_batching_the_callers():
    from ameli_ray.config import TextStreamSettings
    from ameli_ray.disambiguation.model import trained_text_settings

    caller = TextStreamSettings(batch_pairs=7, mixed_precision="no", statements=1, name_pair=True)
    trained = TextStreamSettings(statements=3).model_dump()
    got = trained_text_settings(trained, caller)
    assert (got.statements, got.name_pair, got.batch_pairs, got.mixed_precision) == (3, True, 7, "no")
    # a manifest written before the name slot existed: that model reads none
    del trained["name_pair"]
    assert trained_text_settings(trained, caller).name_pair is False
