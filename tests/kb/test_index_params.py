"""What a KB records of its dense indexes, and how a loaded KB searches with it."""

import numpy as np
import pytest

from ameli_ray.config import IndexSettings
from ameli_ray.kb.assets import assemble_kb, load_kb, write_kb
from ameli_ray.retrieval import index as vindex
from ameli_ray.schema import Entity
from ameli_ray.storage import ObjectStore


def _kb(n: int, settings: IndexSettings):
    rng = np.random.default_rng(0)
    text = rng.standard_normal((n, 16)).astype(np.float32)
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    entities = [Entity(id=f"p{i}", name=f"Phone {i} {64 * (1 + i % 4)}GB", attributes={"storage": f"{64 * (1 + i % 4)}GB"})
                for i in range(n)]
    return assemble_kb(entities, text, np.zeros((0, 8), np.float32), np.zeros(0, np.int32), name="p", text_model="t",
                       image_model="i", image_fingerprint="", index_settings=settings)


def test_the_manifest_records_the_index_and_its_knobs_set_from_the_size(tmp_path):
    store = ObjectStore()
    kb = _kb(4000, IndexSettings(kind="ivf"))
    params = kb.manifest.text_index_params
    nlist = vindex.ivf_nlist(4000)
    assert params == {"kind": "ivf", "vectors": 4000, "nlist": nlist, "nprobe": vindex.default_nprobe(nlist)}
    assert kb.manifest.image_index_params == {"kind": "flat", "vectors": 0}
    write_kb(kb, str(tmp_path / "kb"), store, version="v1")

    loaded = load_kb(str(tmp_path / "kb"), store)  # ivf_nprobe unset: the recorded knob
    assert vindex.describe(loaded.text_index)["nprobe"] == params["nprobe"]
    assert loaded.manifest.text_index_params == params
    tuned = load_kb(str(tmp_path / "kb"), store, IndexSettings(ivf_nprobe=3))  # a setting wins over the record
    assert vindex.describe(tuned.text_index)["nprobe"] == 3
    q = kb.text_emb[:20]
    assert (vindex.search(loaded.text_index, q, 1)[1][:, 0] == np.arange(20)).all()


@pytest.mark.parametrize("kind", ["hnsw", "ivfpq"])
def test_other_kinds_record_their_structure(kind):
    params = _kb(2000, IndexSettings(kind=kind, pq_bytes=8)).manifest.text_index_params
    assert params["kind"] == kind and params["vectors"] == 2000
    if kind == "hnsw":
        assert params["m"] == 32 and params["ef_search"] == 256
    else:
        assert params["pq_bytes"] == 8 and params["nlist"] == vindex.ivf_nlist(2000)


def test_kbs_from_before_the_record_load_with_the_defaults(tmp_path):
    import json

    store = ObjectStore()
    kb = _kb(3000, IndexSettings(kind="ivf"))
    write_kb(kb, str(tmp_path), store, version="v1")
    manifest = tmp_path / "v1" / "manifest.json"
    data = json.loads(manifest.read_text())
    del data["text_index_params"], data["image_index_params"]
    manifest.write_text(json.dumps(data))  # the manifest itself carries no checksum of its own
    loaded = load_kb(str(tmp_path), store)
    assert vindex.describe(loaded.text_index)["nprobe"] == vindex.default_nprobe(vindex.ivf_nlist(3000))


def test_a_loaded_kb_holds_its_entities_as_columns_and_makes_records_on_access(tmp_path):
    from ameli_ray.kb.assets import EntityTable

    store = ObjectStore()
    kb = _kb(50, IndexSettings())
    write_kb(kb, str(tmp_path), store, version="v1")
    loaded = load_kb(str(tmp_path), store)
    assert isinstance(loaded.entities, EntityTable) and len(loaded.entities) == 50
    assert loaded.entities[7] == kb.entities[7] and loaded.entities[-1] == kb.entities[-1]
    assert loaded.entities[np.int64(3)] == kb.entities[3]  # rows come from numpy arrays
    assert loaded.entities[10:13] == kb.entities[10:13]
    assert list(loaded.entities) == kb.entities
    assert loaded.ids == [e.id for e in kb.entities] and loaded.row_of["p9"] == 9
    with pytest.raises(IndexError):
        loaded.entities[50]
    # written again from its columns, the same records
    write_kb(loaded, str(tmp_path), store, version="v2")
    assert list(load_kb(str(tmp_path / "v2"), store).entities) == kb.entities
