"""A corpus as shards: listed by file, prefix or glob (local and S3), parsed in bounded batches,
bad records set aside with their source and position."""

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ameli_ray.errors import InputFormatError
from ameli_ray.formats.shards import list_shards, read_shard
from ameli_ray.storage import ObjectStore


def _lines(prefix: str, n: int) -> list[str]:
    return [json.dumps({"id": f"{prefix}{i}", "text": f"review {i} of the Aero X2"}) for i in range(n)]


@pytest.fixture
def corpus(tmp_path):
    (tmp_path / "a.jsonl").write_text("\n".join(_lines("a", 5)) + "\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.jsonl.gz").write_bytes(gzip.compress(("\n".join(_lines("b", 3)) + "\n").encode()))
    pq.write_table(pa.table({"id": ["p0", "p1"], "text": ["one", "two"], "surface": [None, "X2"]}), tmp_path / "c.parquet")
    (tmp_path / "_corpus.json").write_text("{}")  # metadata beside shards is not a shard
    (tmp_path / "notes.txt").write_text("not a corpus file")
    return tmp_path


def test_shards_of_a_file_a_prefix_and_a_glob(corpus):
    store = ObjectStore()
    assert [s.uri for s in list_shards(str(corpus), store)] == [str(corpus / n) for n in ("a.jsonl", "c.parquet", "sub/b.jsonl.gz")]
    assert [s.uri for s in list_shards(str(corpus / "a.jsonl"), store)] == [str(corpus / "a.jsonl")]
    assert [s.uri for s in list_shards(str(corpus / "*" / "*.gz"), store)] == [str(corpus / "sub" / "b.jsonl.gz")]
    one = list_shards(str(corpus / "a.jsonl"), store)[0]
    assert one.size == (corpus / "a.jsonl").stat().st_size and one.tag
    with pytest.raises(InputFormatError, match="no corpus files"):
        list_shards(str(corpus / "nothing-here"), store)
    with pytest.raises(InputFormatError, match="no corpus files match"):
        list_shards(str(corpus / "*.ndjson"), store)
    with pytest.raises(InputFormatError, match="unknown file extension"):
        list_shards(str(corpus / "notes.txt"), store)


def test_shards_on_s3(corpus, s3_store, s3_bucket):
    s3_store.upload_dir(corpus, f"{s3_bucket}/reviews")
    shards = list_shards(f"{s3_bucket}/reviews", s3_store)
    assert [s.uri.rsplit("/", 1)[-1] for s in shards] == ["a.jsonl", "c.parquet", "b.jsonl.gz"]
    assert all(s.tag for s in shards)  # the ETag: a rewritten shard is another input
    assert [s.uri for s in list_shards(f"{s3_bucket}/reviews/sub/*.gz", s3_store)] == [f"{s3_bucket}/reviews/sub/b.jsonl.gz"]
    batches = list(read_shard(f"{s3_bucket}/reviews/sub/b.jsonl.gz", s3_store))
    assert [m.id for m in batches[0].mentions] == ["b0", "b1", "b2"]


def test_a_shard_is_read_in_bounded_batches_with_positions_and_its_bad_lines_set_aside(tmp_path):
    lines = _lines("m", 7)
    lines[2] = '{"id": "broken'
    lines.insert(5, json.dumps({"id": "m1", "text": "the same id again"}))
    lines.insert(6, json.dumps("a string, not an object"))
    path = tmp_path / "r.jsonl.gz"
    path.write_bytes(gzip.compress(("\n\n".join(lines) + "\n").encode() + b'{"id": "x", "text": "caf\xe9"}\n'))
    batches = list(read_shard(str(path), ObjectStore(), batch_rows=2))
    assert all(len(b.mentions) <= 2 for b in batches)
    kept = [(m.id, p) for b in batches for m, p in zip(b.mentions, b.positions)]
    # blank lines count: positions are the file's line numbers
    assert kept == [("m0", 1), ("m1", 3), ("m3", 7), ("m4", 9), ("m5", 15), ("m6", 17)]
    rejected = [r for b in batches for r in b.rejected]
    assert [(r["position"], r["source"]) for r in rejected] == [(5, str(path)), (11, str(path)), (13, str(path)), (18, str(path))]
    assert "not valid JSON" in rejected[0]["error"] and "duplicate mention id 'm1'" in rejected[1]["error"]
    assert "expected a JSON object" in rejected[2]["error"] and "UTF-8" in rejected[3]["error"]


def test_parquet_and_ameli_shards(corpus, toy_dir):
    store = ObjectStore()
    (batch,) = read_shard(str(corpus / "c.parquet"), store)
    assert [(m.id, m.surface) for m in batch.mentions] == [("p0", ""), ("p1", "X2")] and batch.positions == [1, 2]
    (ameli,) = read_shard(str(toy_dir / "mentions.json"), store)
    assert len(ameli.mentions) == 6 and ameli.positions == list(range(1, 7))
    assert ameli.mentions[0].image_uris[0].startswith(str(toy_dir / "cleaned_review_images"))
