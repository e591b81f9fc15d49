"""JSON Lines corpora: one mention or entity object per line, with the schema's field names.

Mentions: `id`, `text` (or AMELI's `header`/`body`), `surface`, `image_uris`, `gold_entity_id`,
`gold_attributes`, `nil` (true: about no product of the KB). Entities: `id`, `name`, `category`, `description`, `features`, `attributes`,
`image_uris`. Unknown fields are ignored. A name ending in .gz is read through gzip. Relative image paths are joined onto `images_uri`, by
default the folder holding the file, so a corpus and its images can move together.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ameli_ray.errors import InputFormatError
from ameli_ray.formats.ameli import Fields, FirstIds, build, parent_uri, resolve_image, review_text
from ameli_ray.schema import Entity, Mention
from ameli_ray.storage.objects import ObjectStore


def _lines(uri: str, store: ObjectStore, rejected: list[str] | None = None) -> Iterator[Fields]:
    """The objects of a JSONL file (gzip when named .gz), each with its 1-based line number."""
    return parse_lines(uri, raw_lines(uri, store), None if rejected is None else lambda _, message: rejected.append(message))


def raw_lines(uri: str, store: ObjectStore, chunk_bytes: int = 1 << 20) -> Iterator[bytes]:
    """The lines of a file as bytes, streamed: a shard of any size costs one chunk of memory.

    Split on b"\n" only: str.splitlines() would also split inside strings holding U+2028 and the like.
    """
    with store.open_read(uri) as raw:
        stream = gzip.GzipFile(fileobj=raw) if str(uri).lower().endswith(".gz") else raw
        rest = b""
        first = True
        while chunk := stream.read(chunk_bytes):
            if first:
                chunk, first = chunk.removeprefix(b"\xef\xbb\xbf"), False
            *lines, rest = (rest + chunk).split(b"\n")
            yield from lines
        if rest:
            yield rest


def parse_lines(uri: str, lines: Iterable[bytes], reject: Callable[[int, str], None] | None = None) -> Iterator[Fields]:
    """Lines are decoded one by one, so with `reject` a line of bad UTF-8 or bad JSON is reported
    to it (line number, message) and skipped while the rest of the corpus is still read; without,
    it raises. Blank lines are skipped."""
    for number, raw in enumerate(lines, start=1):
        try:
            line = raw.decode("utf-8")
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputFormatError(f"{uri}: line {number}: not valid JSON ({exc.msg} at column {exc.colno})") from None
            fields = Fields(uri, f"line {number}", obj)  # a JSON value that is no object is a bad line too
        except UnicodeDecodeError as exc:
            error = InputFormatError(f"{uri}: line {number}: not valid UTF-8 text (bad byte at column {exc.start + 1})")
            if reject is None:
                raise error from None
            reject(number, str(error))
            continue
        except InputFormatError as exc:
            if reject is None:
                raise
            reject(number, str(exc))
            continue
        yield fields


def read_jsonl_mentions(
    uri: str, store: ObjectStore, images_uri: str | None = None, rejected: list[str] | None = None
) -> list[Mention]:
    """With a `rejected` list, bad lines are reported there and skipped (see `_lines`)."""
    images = images_uri if images_uri is not None else parent_uri(uri)
    mentions: list[Mention] = []
    first = FirstIds(uri)
    for fields in _lines(uri, store, rejected):
        try:
            where = fields.where
            mention = mention_from_fields(fields, images)
            first.check(mention.id, where)
            mentions.append(mention)
        except InputFormatError as exc:
            if rejected is None:
                raise
            rejected.append(str(exc))
    return mentions


def mention_from_fields(fields: Fields, images: str) -> Mention:
    mention_id = fields.id("id")
    text = fields.text("text")
    if not text:
        if not (fields.text("header") or fields.text("body")):
            raise fields.error("needs text: fields 'text', 'header' and 'body' are all missing or empty")
        text = review_text(fields)
    return build(
        fields,
        Mention,
        id=mention_id,
        text=text,
        surface=fields.text("surface"),
        image_uris=[resolve_image(images, u) for u in fields.texts("image_uris")],
        gold_entity_id=fields.gold_id("gold_entity_id", required=False),
        gold_attributes=fields.mapping("gold_attributes"),
    )


def read_jsonl_entities(uri: str, store: ObjectStore, images_uri: str | None = None) -> list[Entity]:
    images = images_uri if images_uri is not None else parent_uri(uri)
    entities: list[Entity] = []
    first_line: dict[str, str] = {}
    for fields in _lines(uri, store):
        entity = entity_from_fields(fields, images)
        if entity.id in first_line:
            raise fields.error(f"duplicate entity id {entity.id} (first on {first_line[entity.id]})")
        first_line[entity.id] = fields.where
        entities.append(entity)
    return entities


def entity_from_fields(fields: Fields, images: str) -> Entity:
    """One JSONL (or Parquet) entity object -> `Entity`; relative image paths join onto `images`."""
    return build(
        fields,
        Entity,
        id=fields.id("id"),
        name=fields.text("name", required=True),
        category=fields.text("category"),
        description=fields.text("description"),
        features=fields.texts("features"),
        attributes=fields.mapping("attributes"),
        image_uris=[resolve_image(images, u) for u in fields.texts("image_uris")],
    )


def write_jsonl(records: list[dict[str, Any]], uri: str, store: ObjectStore) -> None:
    store.write_text(uri, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
