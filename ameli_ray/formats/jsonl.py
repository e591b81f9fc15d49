"""JSON Lines corpora: one mention or entity object per line, with the schema's field names.

Mentions: `id`, `text` (or AMELI's `header`/`body`), `surface`, `image_uris`, `gold_entity_id`,
`gold_attributes`. Entities: `id`, `name`, `category`, `description`, `features`, `attributes`,
`image_uris`. Unknown fields are ignored. Relative image paths are joined onto `images_uri`, by
default the folder holding the file, so a corpus and its images can move together.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from ameli_ray.errors import InputFormatError
from ameli_ray.formats.ameli import Fields, build, parent_uri, read_input_text, resolve_image, review_text
from ameli_ray.schema import Entity, Mention
from ameli_ray.storage.objects import ObjectStore


def _lines(uri: str, store: ObjectStore) -> Iterator[Fields]:
    """The objects of a JSONL file, each with its 1-based line number; blank lines are skipped."""
    # Split on "\n" only: str.splitlines() would also split inside strings holding U+2028 and the like.
    for number, line in enumerate(read_input_text(uri, store).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputFormatError(f"{uri}: line {number}: not valid JSON ({exc.msg} at column {exc.colno})") from None
        yield Fields(uri, f"line {number}", obj)


def read_jsonl_mentions(uri: str, store: ObjectStore, images_uri: str | None = None) -> list[Mention]:
    images = images_uri if images_uri is not None else parent_uri(uri)
    mentions: list[Mention] = []
    for fields in _lines(uri, store):
        mention_id = fields.id("id")
        text = fields.text("text")
        if not text:
            if not (fields.text("header") or fields.text("body")):
                raise fields.error("needs text: fields 'text', 'header' and 'body' are all missing or empty")
            text = review_text(fields)
        mentions.append(
            build(
                fields,
                Mention,
                id=mention_id,
                text=text,
                surface=fields.text("surface"),
                image_uris=[resolve_image(images, u) for u in fields.texts("image_uris")],
                gold_entity_id=fields.optional_id("gold_entity_id"),
                gold_attributes=fields.mapping("gold_attributes"),
            )
        )
    return mentions


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
