"""Input formats -> schema records: the AMELI release (JSON arrays), JSONL corpora, and the
entity-matching benchmarks recast as linking tasks (written in the AMELI format).

`read_entities` / `read_mentions` pick the reader from the file extension.
"""

from __future__ import annotations

from ameli_ray.errors import InputFormatError
from ameli_ray.formats.ameli import (
    read_ameli_entities,
    read_ameli_mentions,
    write_ameli_entities,
    write_ameli_mentions,
)
from ameli_ray.formats.em import EM_DATASETS, convert_em
from ameli_ray.formats.jsonl import read_jsonl_entities, read_jsonl_mentions, write_jsonl
from ameli_ray.schema import Entity, Mention
from ameli_ray.storage.objects import ObjectStore

_JSONL_EXTENSIONS = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")
_KNOWN = ".json (AMELI release format), .jsonl / .ndjson (JSON Lines, optionally .gz)"


def _is_jsonl(uri: str) -> bool:
    name = str(uri).rstrip("/").rsplit("/", 1)[-1].lower()
    if name.endswith(_JSONL_EXTENSIONS):
        return True
    if name.endswith(".json"):
        return False
    raise InputFormatError(f"{uri}: unknown file extension; known extensions: {_KNOWN}")


def read_entities(uri: str, store: ObjectStore, images_uri: str | None = None) -> list[Entity]:
    if _is_jsonl(uri):
        return read_jsonl_entities(uri, store, images_uri)
    return read_ameli_entities(uri, store, images_uri)


def read_mentions(
    uri: str, store: ObjectStore, images_uri: str | None = None, rejected: list[str] | None = None
) -> list[Mention]:
    """With a `rejected` list, invalid records are reported there and skipped, not fatal."""
    if _is_jsonl(uri):
        return read_jsonl_mentions(uri, store, images_uri, rejected)
    return read_ameli_mentions(uri, store, images_uri, rejected)


__all__ = [
    "EM_DATASETS",
    "convert_em",
    "read_ameli_entities",
    "read_ameli_mentions",
    "read_entities",
    "read_jsonl_entities",
    "read_jsonl_mentions",
    "read_mentions",
    "write_ameli_entities",
    "write_ameli_mentions",
    "write_jsonl",
]
