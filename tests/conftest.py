"""Shared fixtures: a real local S3 server (moto) on 127.0.0.1, and Ray kept on loopback."""

from __future__ import annotations

import os
import shutil
import tempfile

# Ray must bind 127.0.0.1 only (see ../shared/ENVIRONMENT.md); set before anything imports ray.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # torch threads must not spin against Ray actors on 2 cores
# The suite's model caches live and die with the session, never in the user's ~/.cache: a CI
# machine that runs it day after day would otherwise fill its disk with test models.
_CACHE = tempfile.mkdtemp(prefix="ameli-test-cache-")
os.environ["AMELI_CACHE_DIR"] = _CACHE

import pytest

from ameli_ray.config import S3Settings
from ameli_ray.storage import LocalS3Server, ObjectStore


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_CACHE, ignore_errors=True)


@pytest.fixture(scope="session")
def s3_server():
    with LocalS3Server() as server:
        yield server


@pytest.fixture(scope="session")
def s3_settings(s3_server) -> S3Settings:
    return s3_server.settings()


@pytest.fixture
def s3_store(s3_settings) -> ObjectStore:
    return ObjectStore(s3_settings)


@pytest.fixture
def s3_bucket(s3_store, request) -> str:
    """A fresh bucket per test, as an s3:// URI."""
    name = "t-" + request.node.name.lower().replace("_", "-").replace("[", "-").replace("]", "")[:50]
    uri = f"s3://{name}"
    s3_store.ensure_bucket(uri)
    return uri


# -- a toy product family: 3 colours x 2 capacities, one solid-colour image each ------------------
TOY_COLOURS = {"red": (200, 30, 30), "blue": (30, 30, 200), "green": (30, 170, 40)}
TOY_CAPACITIES = ("128GB", "256GB")


@pytest.fixture(scope="session")
def toy_dir(tmp_path_factory):
    """A tiny AMELI-format catalogue on disk: entities.json, product_images/, mentions.json."""
    import json

    from PIL import Image

    root = tmp_path_factory.mktemp("toy")
    (root / "product_images").mkdir()
    (root / "cleaned_review_images").mkdir()
    entities, mentions = [], []
    for colour, rgb in TOY_COLOURS.items():
        for cap in TOY_CAPACITIES:
            eid = len(entities) + 1
            Image.new("RGB", (96, 96), rgb).save(root / "product_images" / f"{eid}.png")
            entities.append({
                "id": eid, "product_name": f"Nordvik - Aero X2 {cap} - {colour.title()}",
                "product_category": "phones", "url": "",
                "overview_section": {"description": "A phone with a great camera.", "features": []},
                "Spec": [{"subsection": "Key Specs", "text": [
                    {"specification": "Storage Capacity", "value": cap},
                    {"specification": "Model Number", "value": f"AX2-{cap[:3]}-{colour[:2].upper()}"}]}],
                "image_path": [f"{eid}.png"],
            })
            photo = f"r{eid}.png"
            Image.new("RGB", (80, 80), tuple(max(0, c - 15) for c in rgb)).save(root / "cleaned_review_images" / photo)
            mentions.append({
                "review_id": 100 + eid, "header": "Great phone", "body": f"The Aero X2 with {cap} is plenty.",
                "mention": "Aero X2", "review_image_path": [photo],
                "gold_entity_info": {"id": eid, "product_name": entities[-1]["product_name"], "product_category": "phones"},
            })
    (root / "entities.json").write_text(json.dumps(entities))
    (root / "mentions.json").write_text(json.dumps(mentions))
    return root


@pytest.fixture(scope="session")
def default_config():
    from ameli_ray.config import AmeliConfig

    return AmeliConfig()


@pytest.fixture(scope="session")
def encoders(default_config):
    """The offline default encoders (packaged MiniLM; tiny open_clip ViT with seeded random weights)."""
    from ameli_ray.encoders import ImageEncoder, TextEncoder

    return TextEncoder(default_config.text_encoder), ImageEncoder(default_config.image_encoder)


@pytest.fixture(scope="session")
def toy_kb(toy_dir, default_config, encoders):
    from ameli_ray.formats import read_entities
    from ameli_ray.kb.build import build_kb_in_process
    from ameli_ray.storage import ObjectStore

    store = ObjectStore()
    entities = read_entities(str(toy_dir / "entities.json"), store)
    kb, errors = build_kb_in_process(entities, default_config, store, "toy", *encoders)
    assert not any(errors)
    return kb
