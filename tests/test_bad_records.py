"""Bad records in a corpus: each gets a clear per-record error, the rest is linked, nothing is
silently dropped (issue: corrupt bytes, decompression bombs, 1x1, grayscale/CMYK/alpha, bad UTF-8)."""

import io
import json

import pytest
from PIL import Image

from ameli_ray import workflows
from ameli_ray.config import AmeliConfig
from ameli_ray.storage import ObjectStore


def _png(img: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


@pytest.fixture(scope="module")
def bad_corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    images = {
        "corrupt.jpg": b"\xff\xd8\xff\xe0 this is not really a jpeg",
        "bomb.png": _png(Image.new("L", (20000, 20000))),  # 400 M pixels, a few hundred KB
        "one.png": _png(Image.new("RGB", (1, 1), (0, 0, 200))),
        "gray.png": _png(Image.new("L", (64, 64), 90)),
        "cmyk.jpg": _png(Image.new("CMYK", (64, 64), (0, 200, 200, 0)), "JPEG"),
        "alpha.png": _png(Image.new("RGBA", (64, 64), (200, 30, 30, 128))),
    }
    for name, data in images.items():
        (root / name).write_bytes(data)
    lines = [json.dumps({"id": f"m-{name}", "text": "Aero X2 256GB", "image_uris": [name]}) for name in images]
    lines.append(json.dumps({"id": "m-missing", "text": "Aero X2 128GB red", "image_uris": ["nowhere.png"]}))
    lines.append('{"id": "m-broken", "text": ')  # bad JSON
    lines.append('{"text": "no id here"}')  # missing field
    raw = "\n".join(lines).encode() + b'\n{"id": "m-latin1", "text": "caf\xe9"}\n'  # not UTF-8
    (root / "mentions.jsonl").write_bytes(raw)
    return root


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["local", pytest.param("ray", marks=[pytest.mark.ray, pytest.mark.integration])])
def test_every_bad_record_is_reported_and_the_rest_linked(engine, bad_corpus, toy_dir, tmp_path):
    config = AmeliConfig.load(None, ["images.max_pixels=10000000"])
    kb = str(tmp_path / "kb")
    workflows.build_kb(config, str(toy_dir / "entities.json"), kb, engine="local")
    out = str(tmp_path / "links")
    stats = workflows.link(config, kb, str(bad_corpus / "mentions.jsonl"), out, engine=engine).stats
    assert stats["n_mentions"] == 7 and stats["n_rejected"] == 3

    rows = {r["mention_id"]: r for r in workflows.read_link_results(out, ObjectStore()).to_pylist()}
    assert set(rows) == {"m-corrupt.jpg", "m-bomb.png", "m-one.png", "m-gray.png", "m-cmyk.jpg", "m-alpha.png", "m-missing"}
    assert all(r["entity_id"] for r in rows.values())  # every valid record is still linked
    assert "corrupt or truncated" in rows["m-corrupt.jpg"]["errors"][0] or "cannot identify" in rows["m-corrupt.jpg"]["errors"][0]
    assert "decompression bomb" in rows["m-bomb.png"]["errors"][0]
    assert rows["m-missing"]["errors"] == [f"image not found: {bad_corpus / 'nowhere.png'}"]
    for fine in ("m-one.png", "m-gray.png", "m-cmyk.jpg", "m-alpha.png"):
        assert rows[fine]["errors"] == [], rows[fine]["errors"]

    set_aside = workflows.read_rejected(out, ObjectStore())
    assert {(r["source"], r["position"]) for r in set_aside} == {(str(bad_corpus / "mentions.jsonl"), n) for n in (8, 9, 10)}
    rejected = [r["error"] for r in set_aside]
    assert any("line 8" in r and "not valid JSON" in r for r in rejected)
    assert any("line 9" in r and "id" in r for r in rejected)
    assert any("line 10" in r and "UTF-8" in r for r in rejected)
