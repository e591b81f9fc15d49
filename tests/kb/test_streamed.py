"""The streamed KB build (kb.streamed): the same KB as the in-memory build, from shards of any
format, with bad and repeated records set aside and the index built from memory-mapped chunks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ameli_ray import workflows
from ameli_ray.config import AmeliConfig, IndexSettings
from ameli_ray.formats import read_entities
from ameli_ray.kb.assets import assemble_kb, load_kb, read_manifest
from ameli_ray.kb.streamed import StreamedKBBuilder
from ameli_ray.retrieval import index as vindex
from ameli_ray.retrieval.chargram import entity_doc_text
from ameli_ray.schema import Entity
from ameli_ray.storage import ObjectStore


def _entities(n: int) -> list[Entity]:
    colours = ["black", "blue", "red", "silver"]
    return [Entity(id=f"e{i}", name=f"Aero X{i % 7} {2 ** (4 + i % 4)}GB {colours[i % 4]}", category="phones",
                   description=f"phone number {i}", attributes={"Storage": f"{2 ** (4 + i % 4)}GB", "Colour": colours[i % 4],
                                                               "Model Number": f"AX-{i:04d}"})
            for i in range(n)]


def _vectors(n: int, dim: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_streamed_build_writes_the_kb_the_in_memory_build_writes(tmp_path):
    entities = _entities(300)
    text = _vectors(300, 16, 0)
    counts = np.arange(300) % 3  # 0, 1 or 2 images per entity
    owner = np.repeat(np.arange(300), counts).astype(np.int32)
    images = _vectors(len(owner), 8, 1) + 0.5  # off-centre, as real image embeddings are
    ocr = [f"label {i}" if i % 5 == 0 else "" for i in range(300)]
    settings = IndexSettings(kind="ivf", ivf_nlist=4)
    store = ObjectStore()
    common = dict(name="toy", text_model="t", image_model="i", image_fingerprint="f", index_settings=settings)

    memory = assemble_kb(entities, text, images, owner, entity_ocr=ocr, **common)
    builder = StreamedKBBuilder(tmp_path / "spill", 16, 8)
    for start in range(0, 300, 64):  # batches of 64, as a runner hands them over
        rows = range(start, min(start + 64, 300))
        builder.add([entities[i] for i in rows], text[list(rows)], [images[owner == i] for i in rows],
                    [ocr[i] for i in rows])
    uri, manifest = builder.finish(str(tmp_path / "kb"), store, **common)
    streamed = load_kb(uri, store)

    assert manifest.n_entities == 300 and manifest.n_images == len(owner) and manifest.build["streamed"] == 1
    assert streamed.ids == [e.id for e in entities]
    assert manifest.text_index_params == vindex.describe(memory.text_index)
    np.testing.assert_allclose(streamed.text_emb, memory.text_emb, atol=1e-6)
    np.testing.assert_allclose(streamed.image_center, memory.image_center, atol=1e-5)
    np.testing.assert_allclose(streamed.image_emb, memory.image_emb, atol=1e-5)
    np.testing.assert_array_equal(streamed.image_owner, memory.image_owner)
    for a, b in ((streamed.text_index, memory.text_index), (streamed.image_index, memory.image_index)):
        q = _vectors(20, a.d, 2)
        np.testing.assert_array_equal(vindex.search(a, q, 10)[1], vindex.search(b, q, 10)[1])
    for query in ("Aero X3 64GB blue", "label 10", "AX-0042"):
        np.testing.assert_allclose(streamed.lexical.scores(query), memory.lexical.scores(query), rtol=1e-5)
        np.testing.assert_allclose(streamed.chargram.scores(query), memory.chargram.scores(query), rtol=1e-5)
    assert streamed.vocabulary.to_json() == memory.vocabulary.to_json()


def test_repeated_ids_are_set_aside_and_an_empty_build_is_refused(tmp_path):
    builder = StreamedKBBuilder(tmp_path / "spill", 4, 2)
    e = _entities(3)
    builder.add(e[:2], _vectors(2, 4, 0), [np.zeros((0, 2))] * 2, sources=[("a.jsonl", 1), ("a.jsonl", 2)])
    builder.add([e[1], e[2]], _vectors(2, 4, 1), [np.zeros((0, 2))] * 2, sources=[("b.jsonl", 1), ("b.jsonl", 2)])
    assert builder.n_entities == 3
    assert builder.rejected == [{"source": "b.jsonl", "position": 1,
                                 "error": "duplicate entity id 'e1': an earlier record with it is kept"}]
    uri, manifest = builder.finish(str(tmp_path / "kb"), ObjectStore(), name="t", text_model="t", image_model="i",
                                   image_fingerprint="", index_settings=IndexSettings())
    assert manifest.n_images == 0 and manifest.build["rejected"] == 1
    assert json.loads((tmp_path / "kb" / manifest.version / "rejected.jsonl").read_text())["source"] == "b.jsonl"
    assert load_kb(uri, ObjectStore()).image_emb.shape == (0, 2)

    empty = StreamedKBBuilder(tmp_path / "spill2", 4, 2)
    empty.reject([{"source": "c.jsonl", "position": 3, "error": "c.jsonl: line 3: not valid JSON"}])
    with pytest.raises(Exception, match="no valid entities.*1 set aside.*line 3"):
        empty.finish(str(tmp_path / "kb2"), ObjectStore(), name="t", text_model="t", image_model="i",
                     image_fingerprint="", index_settings=IndexSettings())


def test_build_kb_streams_a_folder_of_shards_setting_bad_records_aside(toy_dir, tmp_path):
    """JSONL and Parquet shards of the toy catalogue, one bad line and one repeated id: the KB
    holds every valid entity once, in shard order, and says what it left out."""
    import pyarrow.parquet as pq

    from ameli_ray.schema import entities_to_table

    entities = read_entities(str(toy_dir / "entities.json"), ObjectStore())
    rows = [{"id": e.id, "name": e.name, "category": e.category, "description": e.description,
             "attributes": e.attributes, "image_uris": e.image_uris} for e in entities]
    shards = tmp_path / "catalog"
    shards.mkdir()
    half = len(rows) // 2
    (shards / "part-0.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:half]) + "{not json\n")
    # the second in a KB's own entities.parquet layout (attributes as a map column)
    pq.write_table(entities_to_table(entities[half:] + entities[:1]), shards / "part-1.parquet")

    config = AmeliConfig()
    uri, kb, stats = workflows.build_kb(config, str(shards), str(tmp_path / "kb"), engine="local")
    assert kb is None
    assert stats["n_entities"] == len(entities) and stats["n_rejected"] == 2
    _, manifest = read_manifest(uri, ObjectStore())
    loaded = load_kb(uri, ObjectStore())
    assert loaded.ids == [e.id for e in entities]
    assert manifest.build["runner"] == "in-process" and manifest.build["shards"] == 2
    rejected = [json.loads(line) for line in (tmp_path / "kb" / manifest.version / "rejected.jsonl").read_text().splitlines()]
    assert {(r["source"].rsplit("/", 1)[-1], r["position"]) for r in rejected} == {("part-0.jsonl", half + 1),
                                                                                  ("part-1.parquet", len(rows) - half + 1)}
    assert not (tmp_path / "kb" / "_staging").exists() or not any((tmp_path / "kb" / "_staging").rglob("*.json"))
    assert [entity_doc_text(e) for e in loaded.entities] == [entity_doc_text(e) for e in entities]


@pytest.mark.slow
@pytest.mark.ray
def test_ray_and_in_process_streamed_builds_agree(toy_dir, tmp_path):
    """Shards read by Ray tasks, embedded by the actor pools and added on the driver in input
    order: the KB the in-process build makes, rejected records included."""
    from ameli_ray.runners import make_runner

    entities = read_entities(str(toy_dir / "entities.json"), ObjectStore())
    shards = tmp_path / "catalog"
    shards.mkdir()
    for k in range(3):  # three shards of two, the last with a bad line, so blocks arrive from several tasks
        lines = [json.dumps({"id": e.id, "name": e.name, "attributes": e.attributes, "image_uris": e.image_uris})
                 for e in entities[2 * k: 2 * k + 2]]
        (shards / f"part-{k}.jsonl").write_text("\n".join(lines + (["[1, 2]"] if k == 2 else [])) + "\n")
    config = AmeliConfig.load(None, ["ray.num_cpus=2", "text_stage.batch_size=1"])
    ray_runner = make_runner("ray")
    with ray_runner.session(config):
        built = {engine: workflows.build_kb(config, f"{shards}/part-*.jsonl", str(tmp_path / f"kb-{engine}"),
                                            engine=ray_runner if engine == "ray" else "local")
                 for engine in ("ray", "local")}
    kbs = {engine: load_kb(uri, ObjectStore()) for engine, (uri, _, _) in built.items()}
    assert kbs["ray"].ids == kbs["local"].ids == [e.id for e in entities]
    assert kbs["ray"].manifest.build["runner"] == "ray-data"
    np.testing.assert_allclose(kbs["ray"].text_emb, kbs["local"].text_emb, atol=1e-5)
    np.testing.assert_allclose(kbs["ray"].image_emb, kbs["local"].image_emb, atol=1e-4)
    assert built["ray"][2]["n_rejected"] == built["local"][2]["n_rejected"] == 1
    for engine, kb in kbs.items():
        rejected = json.loads((tmp_path / f"kb-{engine}" / kb.manifest.version / "rejected.jsonl").read_text())
        assert rejected["source"].endswith("part-2.jsonl") and rejected["position"] == 3
    assert not list((tmp_path / "kb-ray").glob("_staging/*/*"))
