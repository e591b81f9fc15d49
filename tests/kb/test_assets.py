import dataclasses
import json

import numpy as np
import pytest

from ameli_ray.errors import ChecksumMismatch, InputFormatError, ObjectNotFound
from ameli_ray.kb.assets import load_kb, read_manifest, write_kb
from ameli_ray.retrieval import index as vindex
from ameli_ray.storage import ObjectStore, join_uri
from ameli_ray.storage.versioned import LATEST, MANIFEST

pytestmark = pytest.mark.slow  # builds a KB with the real encoders


def _roundtrip(kb, root, store):
    version_uri = write_kb(kb, root, store, version="v1")
    loaded = load_kb(root, store)
    assert version_uri.endswith("v1")
    assert [e.id for e in loaded.entities] == [e.id for e in kb.entities]
    assert loaded.entities[0].attributes == kb.entities[0].attributes
    np.testing.assert_array_equal(loaded.text_emb, kb.text_emb)
    np.testing.assert_array_equal(loaded.image_emb, kb.image_emb)
    q = kb.text_emb[:2]
    assert (vindex.search(loaded.text_index, q, 3)[1] == vindex.search(kb.text_index, q, 3)[1]).all()
    assert loaded.lexical.scores("128GB red").argmax() == kb.lexical.scores("128GB red").argmax()
    np.testing.assert_array_equal(loaded.chargram.scores("128GB red"), kb.chargram.scores("128GB red"))
    assert loaded.manifest.chargram
    return version_uri


def test_roundtrip_local(toy_kb, tmp_path):
    store = ObjectStore()
    version_uri = _roundtrip(toy_kb, str(tmp_path / "kb"), store)
    manifest = json.loads((tmp_path / "kb" / "v1" / MANIFEST).read_text())
    on_disk = {p.relative_to(tmp_path / "kb" / "v1").as_posix() for p in (tmp_path / "kb" / "v1").rglob("*") if p.is_file()}
    assert set(manifest["files"]) == on_disk - {MANIFEST}  # every file has a checksum
    assert manifest["text_dim"] == 384 and manifest["n_entities"] == 6 and manifest["n_images"] == 6
    assert (tmp_path / "kb" / LATEST).read_text().strip() == "v1"
    assert read_manifest(version_uri, store)[1].version == "v1"


def test_roundtrip_s3(toy_kb, s3_store, s3_bucket):
    _roundtrip(toy_kb, f"{s3_bucket}/kb/toy", s3_store)


def test_latest_points_at_newest_version(toy_kb, tmp_path):
    store = ObjectStore()
    write_kb(toy_kb, str(tmp_path), store, version="v1")
    write_kb(toy_kb, str(tmp_path), store, version="v2")
    assert read_manifest(str(tmp_path), store)[1].version == "v2"
    assert read_manifest(str(tmp_path / "v1"), store)[1].version == "v1"


def test_checksum_mismatch_names_the_file(toy_kb, tmp_path, s3_store, s3_bucket):
    store = ObjectStore()
    write_kb(toy_kb, str(tmp_path), store, version="v1")
    emb = tmp_path / "v1" / "text_embeddings.npy"
    data = bytearray(emb.read_bytes())
    data[-1] ^= 0xFF
    emb.write_bytes(bytes(data))
    with pytest.raises(ChecksumMismatch, match="text_embeddings.npy"):
        load_kb(str(tmp_path), store)
    # and on S3
    root = f"{s3_bucket}/kb"
    write_kb(toy_kb, root, s3_store, version="v1")
    s3_store.write_bytes(join_uri(root, "v1", "text.faiss"), b"tampered")
    with pytest.raises(ChecksumMismatch, match="text.faiss"):
        load_kb(root, s3_store)


def test_missing_kb_and_bad_manifest(tmp_path):
    store = ObjectStore()
    with pytest.raises(ObjectNotFound, match="no KB at"):
        load_kb(str(tmp_path / "nothing"), store)
    (tmp_path / "v1").mkdir()
    (tmp_path / "v1" / MANIFEST).write_text("{not json")
    with pytest.raises(InputFormatError, match="not a valid KB manifest"):
        load_kb(str(tmp_path / "v1"), store)


def test_pickled_array_is_refused(toy_kb, tmp_path):
    """An object array (which np.load would unpickle) is refused even with a matching checksum."""
    import hashlib
    import io

    store = ObjectStore()
    write_kb(toy_kb, str(tmp_path), store, version="v1")
    buf = io.BytesIO()
    np.save(buf, np.array([{"evil": 1}], dtype=object), allow_pickle=True)
    (tmp_path / "v1" / "image_owner.npy").write_bytes(buf.getvalue())
    manifest = json.loads((tmp_path / "v1" / MANIFEST).read_text())
    manifest["files"]["image_owner.npy"] = {"sha256": hashlib.sha256(buf.getvalue()).hexdigest(), "bytes": len(buf.getvalue())}
    (tmp_path / "v1" / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(InputFormatError, match="not a plain .npy"):
        load_kb(str(tmp_path), store)


def test_a_kb_from_before_the_char_ngram_channel_loads_without_it(toy_kb, tmp_path):
    """KBs written before the channel existed (no `chargram` in the manifest) stay readable:
    retrieval goes without the channel."""
    store = ObjectStore()
    kb = dataclasses.replace(toy_kb, chargram=None, manifest=toy_kb.manifest.model_copy(update={"chargram": False}))
    write_kb(kb, str(tmp_path / "kb"), store, version="old")
    path = tmp_path / "kb" / "old" / MANIFEST
    manifest = json.loads(path.read_text())
    del manifest["chargram"]
    path.write_text(json.dumps(manifest))
    loaded = load_kb(str(tmp_path / "kb"), store)
    assert loaded.chargram is None and not any(n.startswith("chargram/") for n in loaded.manifest.files)


def test_a_kb_loads_memory_mapped_from_verified_local_copies(toy_kb, tmp_path, s3_store, s3_bucket):
    """`index.mmap_dir`: the embeddings and dense indexes of a KB on S3 are copied into the
    folder once, checked, and mapped from there; the KB answers as the one read into memory."""
    from ameli_ray.config import IndexSettings

    root = f"{s3_bucket}/kb/mapped"
    write_kb(toy_kb, root, s3_store, version="v1")
    settings = IndexSettings(mmap_dir=str(tmp_path / "maps"))
    kb = load_kb(root, s3_store, settings)
    assert isinstance(kb.text_emb, np.memmap) and isinstance(kb.image_emb, np.memmap)
    copies = {p.name for p in (tmp_path / "maps").rglob("*") if p.is_file()}
    assert copies == {"text_embeddings.npy", "image_embeddings.npy", "text.faiss", "image.faiss"}
    np.testing.assert_array_equal(kb.text_emb, toy_kb.text_emb)
    q = toy_kb.text_emb[:3]
    assert (vindex.search(kb.text_index, q, 4)[1] == vindex.search(toy_kb.text_index, q, 4)[1]).all()
    photos = toy_kb.image_emb[:2]
    assert (vindex.search(kb.image_index, photos, 4)[1] == vindex.search(toy_kb.image_index, photos, 4)[1]).all()

    # a second replica reuses the copies; a damaged copy is fetched again, not trusted
    (copy,) = (tmp_path / "maps").rglob("text_embeddings.npy")
    data = bytearray(copy.read_bytes())
    data[-1] ^= 0xFF
    copy.write_bytes(bytes(data))
    again = load_kb(root, s3_store, settings)
    np.testing.assert_array_equal(again.text_emb, toy_kb.text_emb)

    # and a damaged file on S3 is refused with the loader's message, leaving no partial copy behind
    s3_store.write_bytes(join_uri(root, "v1", "text.faiss"), b"tampered")
    for p in (tmp_path / "maps").rglob("text.faiss"):
        p.unlink()
    with pytest.raises(ChecksumMismatch, match="text.faiss"):
        load_kb(root, s3_store, settings)
    assert not [p for p in (tmp_path / "maps").rglob("*text.faiss*")]
