"""Corpora as shards: a file, a prefix or a glob of JSONL (optionally gzip), Parquet or AMELI
JSON files, local or on S3, read one shard at a time in bounded batches.

This is what lets `link` relink a corpus of any size: the driver lists the shards (names, sizes
and version tags, never their records) and the workers parse them. A shard is the unit of the
output's commit protocol (`storage.commit`), so its identity (URI, size, ETag or modification
time) is what tells a resumed job from one over changed inputs.
"""

from __future__ import annotations

import fnmatch
import io
from collections.abc import Iterator
from dataclasses import asdict, dataclass

from ameli_ray.errors import InputFormatError
from ameli_ray.formats.ameli import (
    ENTITY_IMAGES_DIR,
    MENTION_IMAGES_DIR,
    Fields,
    FirstIds,
    entity_from_record,
    load_json_array,
    parent_uri,
    read_ameli_mentions,
)
from ameli_ray.formats.jsonl import entity_from_fields, mention_from_fields, parse_lines, raw_lines
from ameli_ray.schema import Mention
from ameli_ray.storage.objects import ObjectStore, is_s3, join_uri

SHARD_SUFFIXES = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz", ".parquet", ".json")
_GLOB = "*?["


@dataclass(frozen=True)
class Shard:
    uri: str
    size: int
    tag: str  # the ETag on S3, the modification time locally

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class ShardBatch:
    """Consecutive valid records (mentions or entities) of one shard with their positions (1-based line of a JSONL
    file, row of a Parquet file, record of a JSON array), and the records set aside so far."""

    records: list  # Mention or Entity
    positions: list[int]
    rejected: list[dict]  # {"source", "position", "error"}

    @property
    def mentions(self) -> list[Mention]:
        return self.records


def _is_shard_name(uri: str) -> bool:
    name = uri.rstrip("/").rsplit("/", 1)[-1]
    # _SUCCESS, _corpus.json and dot files beside shards are metadata, not records
    return not name.startswith(("_", ".")) and name.lower().endswith(SHARD_SUFFIXES)


def list_shards(uri: str, store: ObjectStore) -> list[Shard]:
    """The shards of `uri`: one file, every corpus file below a prefix, or the files matching a
    glob (`s3://b/reviews/2026-*/part-*.jsonl.gz`). Sorted, so a job numbers them the same way
    every time it runs."""
    uri = str(uri)
    one = store.stat(uri)  # a file that exists is that file, even with "[" or "*" in its name
    if one is None and any(c in uri for c in _GLOB):
        cut = min(uri.index(c) for c in _GLOB if c in uri)
        base = uri[:cut].rsplit("/", 1)[0]
        found = [s for s in _listing(base, store) if fnmatch.fnmatchcase(s.uri, _absolute(uri, store))]
        if not found:
            raise InputFormatError(f"no corpus files match {uri}")
        return found
    if one is not None:
        if not uri.lower().endswith(SHARD_SUFFIXES):
            raise InputFormatError(f"{uri}: unknown file extension; known: {', '.join(SHARD_SUFFIXES)}")
        return [Shard(_absolute(uri, store), *one)]
    found = [s for s in _listing(uri, store) if _is_shard_name(s.uri)]
    if not found:
        raise InputFormatError(f"no corpus files ({', '.join(SHARD_SUFFIXES)}) at or below {uri}")
    return found


def _absolute(uri: str, store: ObjectStore) -> str:
    return uri if is_s3(uri) else store.resolve(uri)[1]


def _listing(uri: str, store: ObjectStore) -> list[Shard]:
    return [Shard(u, size, tag) for u, size, tag in store.list_sized(uri)]


def read_shard(uri: str, store: ObjectStore, images_uri: str | None = None, batch_rows: int = 1000,
               kind: str = "mention") -> Iterator[ShardBatch]:
    """The mentions (or, with kind="entity", the entities) of one shard in batches of about
    `batch_rows`; invalid records are set aside with their reason, never fatal, so one bad line
    does not stop a corpus. A mention id seen twice in a shard keeps its first record; entity
    ids are checked across every shard of a KB by its builder (`kb.streamed`)."""
    name = uri.lower()
    if name.endswith(".json"):  # an AMELI array is parsed whole: small catalogues only
        yield _ameli_batch(uri, store, images_uri) if kind == "mention" else _ameli_entity_batch(uri, store, images_uri)
        return
    images = images_uri if images_uri is not None else parent_uri(uri)
    batch = ShardBatch([], [], [])

    def reject(number: int, message: str) -> None:  # lines the parser set aside (bad UTF-8, bad JSON)
        batch.rejected.append({"source": uri, "position": number, "error": message})

    fields_of = _parquet_fields(uri, store) if name.endswith(".parquet") else parse_lines(uri, raw_lines(uri, store), reject)
    first = FirstIds(uri) if kind == "mention" else None
    make = mention_from_fields if kind == "mention" else entity_from_fields
    for fields in fields_of:
        try:
            record = make(fields, images)
            if first is not None:
                first.check(record.id, fields.where)
        except InputFormatError as exc:
            batch.rejected.append(_rejected(uri, fields.where, str(exc)))
            continue
        batch.records.append(record)
        batch.positions.append(_position(fields.where))
        if len(batch.records) >= batch_rows:
            yield batch
            batch = ShardBatch([], [], [])
    if batch.records or batch.rejected:
        yield batch


def _rejected(uri: str, where: str, message: str) -> dict:
    return {"source": uri, "position": _position(where), "error": message}


def _position(where: str) -> int:
    """1-based position from "line 12 (id x)", "row 3" or "record 0" (records count from 0)."""
    kind, _, rest = where.partition(" ")
    number = int(rest.split(" ", 1)[0])
    return number + 1 if kind == "record" else number


def _parquet_fields(uri: str, store: ObjectStore) -> Iterator[Fields]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    # Parquet wants random access; a shard is a bounded part of a corpus, so it is read whole
    try:
        table_file = pq.ParquetFile(io.BytesIO(store.read_bytes(uri)))
    except Exception as exc:  # pyarrow's errors are not one class
        raise InputFormatError(f"{uri}: not a readable Parquet file ({exc})") from None
    # a map column (a KB's own entities.parquet holds attributes so) comes back as (key, value) pairs
    maps = {f.name for f in table_file.schema_arrow if pa.types.is_map(f.type)}
    row = 0
    for batch in table_file.iter_batches(batch_size=1000):
        for record in batch.to_pylist():
            row += 1
            yield Fields(uri, f"row {row}", {k: dict(v) if k in maps else v for k, v in record.items() if v is not None})


def _ameli_batch(uri: str, store: ObjectStore, images_uri: str | None) -> ShardBatch:
    images = images_uri if images_uri is not None else join_uri(parent_uri(uri), MENTION_IMAGES_DIR)
    messages: list[str] = []
    mentions = read_ameli_mentions(uri, store, images, messages)
    # the reader numbers records from 0 in its messages; positions here count from 1
    rejected = []
    for message in messages:
        _, _, rest = message.partition(": record ")
        number = rest.split(" ", 1)[0].rstrip(":")
        rejected.append({"source": uri, "position": int(number) + 1 if number.isdigit() else None, "error": message})
    positions = list(range(1, len(mentions) + 1))  # the AMELI reader does not report indices of kept ones
    return ShardBatch(mentions, positions, rejected)


def _ameli_entity_batch(uri: str, store: ObjectStore, images_uri: str | None) -> ShardBatch:
    images = images_uri if images_uri is not None else join_uri(parent_uri(uri), ENTITY_IMAGES_DIR)
    batch = ShardBatch([], [], [])
    for index, obj in enumerate(load_json_array(uri, store)):
        try:
            batch.records.append(entity_from_record(obj, uri=uri, index=index, images_uri=images))
        except InputFormatError as exc:
            batch.rejected.append({"source": uri, "position": index + 1, "error": str(exc)})
            continue
        batch.positions.append(index + 1)
    return batch
