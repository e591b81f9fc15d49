"""JSON Lines corpora: one mention or entity object per line, with the schema's field names.

Mentions: `id`, `text` (or AMELI's `header`/`body`), `surface`, `image_uris`, `gold_entity_id`,
`gold_attributes`, `nil` (true: about no product of the KB). Entities: `id`, `name`, `category`, `description`, `features`, `attributes`,
`image_uris`. Unknown fields are ignored. Relative image paths are joined onto `images_uri`, by
default the folder holding the file, so a corpus and its images can move together.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from ameli_ray.errors import InputFormatError
from ameli_ray.formats.ameli import Fields, FirstIds, build, parent_uri, resolve_image, review_text
from ameli_ray.schema import Entity, Mention
from ameli_ray.storage.objects import ObjectStore


def _lines(uri: str, store: ObjectStore, rejected: list[str] | None = None) -> Iterator[Fields]:
    """The objects of a JSONL file, each with its 1-based line number; blank lines are skipped.

    Lines are decoded one by one, so with a `rejected` list a line of bad UTF-8 or bad JSON is
    reported there and skipped while the rest of the corpus is still read.
    """
    data = store.read_bytes(uri)
    # Split on b"\n" only: str.splitlines() would also split inside strings holding U+2028 and the like.
    for number, raw in enumerate(data.removeprefix(b"\xef\xbb\xbf").split(b"\n"), start=1):
        try:
            line = raw.decode("utf-8")
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputFormatError(f"{uri}: line {number}: not valid JSON ({exc.msg} at column {exc.colno})") from None
        except UnicodeDecodeError as exc:
            error = InputFormatError(f"{uri}: line {number}: not valid UTF-8 text (bad byte at column {exc.start + 1})")
            if rejected is None:
                raise error from None
            rejected.append(str(error))
            continue
        except InputFormatError as exc:
            if rejected is None:
                raise
            rejected.append(str(exc))
            continue
        yield Fields(uri, f"line {number}", obj)


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
            mention = _mention(fields, images)
            first.check(mention.id, where)
            mentions.append(mention)
        except InputFormatError as exc:
            if rejected is None:
                raise
            rejected.append(str(exc))
    return mentions


def _mention(fields: Fields, images: str) -> Mention:
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
        where = fields.where
        entity_id = fields.id("id")
        if entity_id in first_line:
            raise fields.error(f"duplicate entity id {entity_id} (first on {first_line[entity_id]})")
        first_line[entity_id] = where
        entities.append(
            build(
                fields,
                Entity,
                id=entity_id,
                name=fields.text("name", required=True),
                category=fields.text("category"),
                description=fields.text("description"),
                features=fields.texts("features"),
                attributes=fields.mapping("attributes"),
                image_uris=[resolve_image(images, u) for u in fields.texts("image_uris")],
            )
        )
    return entities


def write_jsonl(records: list[dict[str, Any]], uri: str, store: ObjectStore) -> None:
    store.write_text(uri, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
