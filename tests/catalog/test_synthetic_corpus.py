"""Synthetic corpora at scale: shards, determinism, what the reader makes of every line, S3."""

from __future__ import annotations

import gzip
import hashlib
import json
from collections import Counter
from pathlib import Path

import pytest

from ameli_ray.catalog import corpus
from ameli_ray.catalog.corpus import BAD_KINDS, CorpusSummary, generate_corpus
from ameli_ray.errors import ConfigError
from ameli_ray.formats import read_entities
from ameli_ray.formats.jsonl import read_jsonl_mentions
from ameli_ray.schema import NIL_ENTITY, Entity, Mention
from ameli_ray.storage import ObjectStore

# What the reader says about each kind of bad line (ameli_ray/formats/jsonl.py, ameli.py).
REASONS = {
    "not_json": "not valid JSON",
    "missing_text": "needs text",
    "duplicate_id": "duplicate mention id",
    "bad_id": "must be a string or an integer",
    "bad_utf8": "not valid UTF-8",
    "not_object": "expected a JSON object",
}


@pytest.fixture(scope="module")
def photo_catalogue(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A JSONL catalogue of two near-identical families with three images per product (the
    generator never opens them, so names are enough)."""
    root = tmp_path_factory.mktemp("photo_cat")
    rows = []
    for family, brand in enumerate(("Orivex", "Kestrel")):
        for colour in ("Black", "Royal Blue", "Silver"):
            for size in ("55 inches", "65 inches"):
                eid = f"p{len(rows)}"
                rows.append({
                    "id": eid, "name": f"{brand} - Q{family}7 {size[:2]}\" Smart TV - {colour}", "category": "TVs",
                    "attributes": {"Brand": brand, "Series": f"Q{family}7", "Color": colour, "Screen Size": size,
                                   "Model Number": f"{brand[:2].upper()}-Q{family}{size[:2]}-{colour[:2].upper()}",
                                   "Refresh Rate": "120 hertz"},
                    "image_uris": [f"{eid}_{v}.jpg" for v in range(3)],
                })
    path = root / "entities.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def read_all(out: Path, summary: CorpusSummary, rejected: list[str] | None = None) -> list[Mention]:
    """Every mention of a plain-JSONL corpus, shard by shard, with the reader the link job uses."""
    mentions: list[Mention] = []
    for shard in summary.shards:
        mentions += read_jsonl_mentions(str(out / shard.name), ObjectStore(), rejected=rejected)
    return mentions


def plain_bytes(out: Path, summary: CorpusSummary) -> bytes:
    raw = b"".join((out / s.name).read_bytes() for s in summary.shards)
    return gzip.decompress(raw) if summary.gzip else raw  # concatenated gzip members decompress as one


def test_shards_have_the_promised_names_sizes_and_checksums(toy_dir: Path, tmp_path: Path):
    summary = generate_corpus(str(toy_dir / "entities.json"), str(tmp_path), 2500, shard_size=1000, gzip=False)
    assert [s.name for s in summary.shards] == [f"reviews-0000{k}-of-00003.jsonl" for k in range(3)]
    assert [s.lines for s in summary.shards] == [1000, 1000, 500]
    assert summary.n_reviews == summary.n_mentions == 2500 and summary.n_bad == 0
    for shard in summary.shards:
        data = (tmp_path / shard.name).read_bytes()
        assert data.count(b"\n") == shard.lines and data.endswith(b"\n")
        assert shard.bytes == len(data) and shard.sha256 == hashlib.sha256(data).hexdigest()
    assert sum(s.nil for s in summary.shards) == summary.n_nil
    written = json.loads((tmp_path / "_corpus.json").read_text(encoding="utf-8"))
    assert written == summary.to_json()
    assert written["catalogue"] == {"entities_uri": str(toy_dir / "entities.json"), "n_entities": 6}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["_corpus.json", *(s.name for s in summary.shards)]


def test_same_seed_same_bytes_and_another_seed_other_bytes(toy_dir: Path, tmp_path: Path):
    entities = str(toy_dir / "entities.json")
    runs = {}
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        generate_corpus(entities, str(tmp_path / name), 1200, shard_size=500, seed=seed, bad_share=0.05)
        runs[name] = {p.name: p.read_bytes() for p in (tmp_path / name).iterdir()}
    assert runs["a"] == runs["b"]
    assert set(runs["a"]) == set(runs["c"])
    assert all(runs["a"][n] != runs["c"][n] for n in runs["a"] if n != "_corpus.json")
    assert b'"syn-8-000000000"' in gzip.decompress(runs["c"]["reviews-00000-of-00003.jsonl.gz"])


def test_a_smaller_corpus_is_a_prefix_of_a_larger_one_and_gzip_holds_the_plain_bytes(toy_dir: Path, tmp_path: Path):
    # line i depends on (seed, i) only: a 100k scale run reads the first 100k lines of the 1M one
    entities = str(toy_dir / "entities.json")
    small = generate_corpus(entities, str(tmp_path / "small"), 1500, shard_size=600, gzip=False)
    large = generate_corpus(entities, str(tmp_path / "large"), 5000, shard_size=4096, gzip=True)
    small_bytes, large_bytes = plain_bytes(tmp_path / "small", small), plain_bytes(tmp_path / "large", large)
    assert large_bytes.startswith(small_bytes)
    plain = generate_corpus(entities, str(tmp_path / "plain"), 5000, shard_size=4096, gzip=False)
    assert plain_bytes(tmp_path / "plain", plain) == large_bytes


def test_every_line_is_a_mention_of_its_gold_product_with_its_photos(photo_catalogue: Path, tmp_path: Path):
    entities = {e.id: e for e in read_entities(str(photo_catalogue), ObjectStore())}
    summary = generate_corpus(str(photo_catalogue), str(tmp_path), 4000, shard_size=1500, gzip=False, seed=3)
    mentions = read_all(tmp_path, summary)  # no rejected list: any bad line would raise
    assert len(mentions) == 4000 == len({m.id for m in mentions})  # ids unique across shards
    assert all(m.id.startswith("syn-3-") for m in mentions)

    nil = [m for m in mentions if m.gold_entity_id == NIL_ENTITY]
    assert len(nil) == summary.n_nil
    assert abs(len(nil) / len(mentions) - 0.05) < 0.015
    catalogue_words = {w.lower() for e in entities.values() for w in (e.name.split() + list(e.attributes.values()))}
    for m in nil:
        brand, model = m.surface.split()
        assert brand.lower() not in catalogue_words and model.lower() not in catalogue_words
        assert not m.image_uris and m.surface in m.text

    labelled = [m for m in mentions if m.gold_entity_id != NIL_ENTITY]
    assert {m.gold_entity_id for m in labelled} == set(entities)  # every product gets reviews
    deciding = 0
    for m in labelled:
        entity: Entity = entities[m.gold_entity_id]  # type: ignore[index]
        assert m.surface and m.surface.lower() in m.text.lower()
        assert len(m.image_uris) <= 2 and len(set(m.image_uris)) == len(m.image_uris)
        assert set(m.image_uris) <= set(entity.image_uris)
        assert all(Path(u).is_absolute() for u in m.image_uris)
        assert m.gold_attributes and all(entity.attributes[k] == v for k, v in m.gold_attributes.items())
        for key, value in m.gold_attributes.items():  # stated in the text, literally or as a variant
            assert any(v.lower() in m.text.lower() for v in corpus._variants(corpus._kind(key), value)), (key, m.text)
        deciding += bool({"Color", "Screen Size", "Model Number"} & set(m.gold_attributes))
    assert deciding / len(labelled) > 0.8  # the values that tell the near-duplicates apart
    counts = Counter(len(m.image_uris) for m in labelled)
    assert counts[0] and counts[1] and counts[2]
    assert sum(bool(m.image_uris) for m in mentions) == summary.n_with_photos
    assert len({m.text for m in labelled}) > 0.9 * len(labelled)  # varied phrasing


def test_without_photos_no_mention_has_images(photo_catalogue: Path, tmp_path: Path):
    summary = generate_corpus(str(photo_catalogue), str(tmp_path), 300, gzip=False, photos=False)
    assert summary.n_with_photos == 0
    assert not any(m.image_uris for m in read_all(tmp_path, summary))


def test_bad_lines_are_each_set_aside_with_their_reason(toy_dir: Path, tmp_path: Path):
    summary = generate_corpus(str(toy_dir / "entities.json"), str(tmp_path / "c"), 1800, shard_size=700,
                              gzip=False, bad_share=0.1)
    assert summary.n_bad == 180 == sum(summary.bad_kinds.values())
    # evenly spread and cycled; a duplicate id that would open a shard becomes a missing text
    assert summary.bad_kinds["duplicate_id"] >= 28 and all(summary.bad_kinds[k] >= 29 for k in BAD_KINDS)
    mentions, rejected = 0, []
    for shard in summary.shards:
        found = read_jsonl_mentions(str(tmp_path / "c" / shard.name), ObjectStore(), rejected=rejected)
        assert len(found) == shard.mentions
        mentions += len(found)
    assert mentions == summary.n_mentions == 1800 - 180
    reasons = Counter(next(kind for kind, reason in REASONS.items() if reason in message) for message in rejected)
    assert reasons == summary.bad_kinds


def test_a_line_that_is_no_object_is_set_aside(toy_dir: Path, tmp_path: Path):
    summary = generate_corpus(str(toy_dir / "entities.json"), str(tmp_path), 60, gzip=False, bad_share=1.0)
    assert summary.bad_kinds["not_object"] == 10
    rejected: list[str] = []
    assert read_all(tmp_path, summary, rejected) == []
    assert len(rejected) == 60


def test_writes_to_s3(toy_dir: Path, s3_store: ObjectStore, s3_bucket: str):
    out = f"{s3_bucket}/corpora/toy"
    summary = generate_corpus(str(toy_dir / "entities.json"), out, 450, shard_size=200, store=s3_store, bad_share=0.02)
    names = [f"reviews-0000{k}-of-00003.jsonl.gz" for k in range(3)]
    assert s3_store.list_files(out) == sorted(f"{out}/{n}" for n in ["_corpus.json", *names])
    assert json.loads(s3_store.read_text(f"{out}/_corpus.json")) == summary.to_json()
    data = s3_store.read_bytes(f"{out}/{names[0]}")
    assert hashlib.sha256(data).hexdigest() == summary.shards[0].sha256
    plain = f"{s3_bucket}/corpora/plain"
    again = generate_corpus(str(toy_dir / "entities.json"), plain, 450, shard_size=200, store=s3_store, bad_share=0.02,
                            gzip=False)
    assert s3_store.read_bytes(f"{plain}/{again.shards[0].name}") == gzip.decompress(data)
    rejected: list[str] = []
    found = read_jsonl_mentions(f"{plain}/{again.shards[0].name}", s3_store, rejected=rejected)
    assert len(found) == again.shards[0].mentions and len(rejected) == again.shards[0].bad


def test_refuses_to_mix_with_the_shards_of_another_corpus(toy_dir: Path, tmp_path: Path):
    entities = str(toy_dir / "entities.json")
    generate_corpus(entities, str(tmp_path), 300, shard_size=100)
    generate_corpus(entities, str(tmp_path), 300, shard_size=100, seed=1)  # the same names: rewritten
    with pytest.raises(ConfigError, match="another corpus"):
        generate_corpus(entities, str(tmp_path), 500, shard_size=100)
    with pytest.raises(ConfigError, match="another corpus"):
        generate_corpus(entities, str(tmp_path), 300, shard_size=100, gzip=False)


@pytest.mark.parametrize("arguments", [{"n_reviews": 0}, {"shard_size": 0}, {"seed": -1}, {"nil_share": 1.5}, {"bad_share": -0.1}])
def test_bad_arguments_are_refused(toy_dir: Path, tmp_path: Path, arguments: dict):
    with pytest.raises(ConfigError):
        generate_corpus(str(toy_dir / "entities.json"), str(tmp_path), **{"n_reviews": 10, **arguments})
