"""The AMELI release format: one JSON array of entities, one JSON array of mentions per split.

See ../shared/AMELI_NOTES.md ("Data format of the released dataset"). Files are read through an
`ObjectStore`, so a local path and an s3:// URI work alike. Every problem with the input becomes an
`InputFormatError` that names the file, the record (index and id) and the field.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from ameli_ray.errors import InputFormatError
from ameli_ray.schema import NIL_ENTITY, Entity, Mention
from ameli_ray.storage.objects import ObjectStore, is_s3, join_uri

ENTITY_IMAGES_DIR = "product_images"
MENTION_IMAGES_DIR = "cleaned_review_images"

# Values the paper's code drops: they say nothing about which product a review is about.
_UNINFORMATIVE_VALUES = frozenset({"yes", "no", "none", "other"})
_DIGITS = re.compile(r"[0-9]+")
_Record = TypeVar("_Record", Entity, Mention)
# Keys the product-name split fills (only when the Spec has no such key, compared case-insensitively).
_NAME_PARTS = ("Brand", "Product Name", "Color")


# -- shared by the readers of this package ------------------------------------------------------
def parent_uri(uri: str) -> str:
    """The folder holding a file, as a URI of the same kind; local folders are made absolute so
    that image paths derived from them still resolve on a Ray worker with another working dir."""
    if is_s3(uri):
        return uri.rstrip("/").rsplit("/", 1)[0]
    return str(Path(uri).expanduser().absolute().parent)


def read_input_text(uri: str, store: ObjectStore) -> str:
    """A data file's text; bad UTF-8 is an input error, and a byte-order mark is tolerated."""
    data = store.read_bytes(uri)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputFormatError(f"{uri}: not valid UTF-8 text (bad byte at offset {exc.start})") from None


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


class Fields:
    """One JSON object of an input file, read field by field with errors that say where it was.

    `where` is "record 3" or "line 4"; once the id is read it is added, so later errors name it.
    Null counts as absent: optional fields fall back to empty, required ones are reported missing.
    """

    def __init__(self, uri: str, where: str, obj: Any, path: str = ""):
        if not isinstance(obj, dict):
            what = f"{where}: field {path.rstrip('.')!r}" if path else where
            raise InputFormatError(f"{uri}: {what}: expected a JSON object, got {json_type(obj)}")
        self.uri = uri
        self.where = where
        self.obj: dict[str, Any] = obj
        self.path = path

    def error(self, problem: str) -> InputFormatError:
        return InputFormatError(f"{self.uri}: {self.where}: {problem}")

    def _name(self, field: str) -> str:
        return repr(self.path + field)

    def _wrong_type(self, field: str, expected: str, value: Any) -> InputFormatError:
        return self.error(f"field {self._name(field)} must be {expected}, got {json_type(value)}")

    def id(self, field: str) -> str:
        value = self.obj.get(field)
        if value is None:
            raise self.error(f"required field {self._name(field)} is missing")
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise self._wrong_type(field, "a string or an integer", value)
        text = str(value).strip()
        if not text:
            raise self.error(f"field {self._name(field)} is empty")
        if not self.path:
            self.where = f"{self.where} (id {text})"
        return text

    def optional_id(self, field: str) -> str | None:
        return None if self.obj.get(field) in (None, "") else self.id(field)

    def gold_id(self, field: str, required: bool) -> str | None:
        """A gold entity id; NIL_ENTITY when this object says `"nil": true` (the mention is about
        a product the KB does not hold)."""
        if self.obj.get("nil") is True:
            return NIL_ENTITY
        return self.id(field) if required else self.optional_id(field)

    def text(self, field: str, required: bool = False) -> str:
        value = self.obj.get(field)
        if value is None:
            if required:
                raise self.error(f"required field {self._name(field)} is missing")
            return ""
        if not isinstance(value, str):
            raise self._wrong_type(field, "a string", value)
        return value.strip()

    def scalar(self, field: str) -> str:
        """A value that may be written as a string or a number (attribute values)."""
        value = self.obj.get(field)
        if value is None:
            return ""
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise self._wrong_type(field, "a string or a number", value)
        return str(value).strip()

    def texts(self, field: str) -> list[str]:
        value = self.obj.get(field)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self._wrong_type(field, "an array of strings", value)
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise self.error(f"field {self._name(f'{field}[{i}]')} must be a string, got {json_type(item)}")
        return [item.strip() for item in value if item.strip()]

    def objects(self, field: str) -> list[Fields]:
        value = self.obj.get(field)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self._wrong_type(field, "an array of objects", value)
        return [Fields(self.uri, self.where, item, f"{self.path}{field}[{i}].") for i, item in enumerate(value)]

    def object(self, field: str) -> Fields | None:
        value = self.obj.get(field)
        return None if value is None else Fields(self.uri, self.where, value, f"{self.path}{field}.")

    def mapping(self, field: str) -> dict[str, str]:
        """An object of attribute key -> value (string or number); empty values are dropped."""
        sub = self.object(field)
        if sub is None:
            return {}
        out: dict[str, str] = {}
        for key in sub.obj:
            value = sub.scalar(key)
            if value:
                out[key] = value
        return out


def load_json_array(uri: str, store: ObjectStore) -> list[Any]:
    text = read_input_text(uri, store)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputFormatError(
            f"{uri}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
        ) from None
    if not isinstance(data, list):
        raise InputFormatError(f"{uri}: expected a JSON array of records at the top level, got {json_type(data)}")
    return data


def build(fields: Fields, model: type[_Record], **values: Any) -> _Record:
    """Construct a schema record; anything the schema still rejects is reported at the record."""
    try:
        return model(**values)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise fields.error(problems) from None


def resolve_image(images_uri: str, name: str) -> str:
    """Absolute paths and URIs are kept; names are joined onto the images folder."""
    if "://" in name or Path(name).is_absolute():
        return name
    return join_uri(images_uri, name)


# -- attributes ---------------------------------------------------------------------------------
def keep_attribute_value(value: str) -> bool:
    """The paper's value filter, with one deliberate deviation (see below)."""
    value = value.strip()
    if len(value) <= 1 or value.lower() in _UNINFORMATIVE_VALUES:
        return False
    # The paper drops every pure-digit value. We drop only short ones (quantities like "2", "16"):
    # model numbers such as "121066" are pure digits and are what decides between near-duplicates.
    if _DIGITS.fullmatch(value) and len(value) < 4:
        return False
    return True


def _spec_attributes(fields: Fields) -> dict[str, str]:
    attributes: dict[str, str] = {}
    for section in fields.objects("Spec"):
        for entry in section.objects("text"):
            key = entry.text("specification")
            value = entry.scalar("value")
            # The first kept value of a repeated key wins (later subsections repeat "Brand" etc.).
            if key and key not in attributes and keep_attribute_value(value):
                attributes[key] = value
    return attributes


def _name_attributes(product_name: str, attributes: dict[str, str]) -> dict[str, str]:
    """Brand / Product Name / Color split out of "Brand - Name - Color", never overriding the Spec.

    Only a name of exactly three parts is split: a two-part name is as often "Name - Model" as
    "Brand - Name" (e.g. "Sony Turntable - PSLX350H"), and with four or more parts the fields
    cannot be told apart.
    """
    present = {key.lower() for key in attributes}
    # A Spec that states the product name itself (as converted entity-matching data does) has
    # no "Brand - Name - Color" pattern to split: splitting its titles gives junk colours.
    if "product name" in present:
        return attributes
    parts = [p.strip() for p in product_name.split(" - ")]
    if len(parts) != 3:
        return attributes
    out = dict(attributes)
    for key, value in zip(_NAME_PARTS, parts):
        if key.lower() not in present and keep_attribute_value(value):
            out[key] = value
    return out


# -- entities -----------------------------------------------------------------------------------
def entity_from_record(obj: Any, *, uri: str, index: int, images_uri: str) -> Entity:
    """One AMELI entity object -> `Entity`; errors name `uri` and the record index."""
    fields = Fields(uri, f"record {index}", obj)
    entity_id = fields.id("id")
    name = fields.text("product_name", required=True)
    overview = fields.object("overview_section")
    description, features = "", []
    if overview is not None:
        description = overview.text("description")
        for feature in overview.objects("features"):
            header, text = feature.text("header"), feature.text("description")
            line = f"{header}: {text}" if header and text else header or text
            if line:
                features.append(line)
    attributes = _name_attributes(name, _spec_attributes(fields))
    return build(
        fields,
        Entity,
        id=entity_id,
        name=name,
        category=fields.text("product_category"),
        description=description,
        features=features,
        attributes=attributes,
        image_uris=[resolve_image(images_uri, n) for n in fields.texts("image_path")],
    )


def read_ameli_entities(uri: str, store: ObjectStore, images_uri: str | None = None) -> list[Entity]:
    """Read an AMELI entity file; image names resolve under `images_uri` (default: product_images/ beside it)."""
    images = images_uri if images_uri is not None else join_uri(parent_uri(uri), ENTITY_IMAGES_DIR)
    entities: list[Entity] = []
    first_index: dict[str, int] = {}
    for index, obj in enumerate(load_json_array(uri, store)):
        entity = entity_from_record(obj, uri=uri, index=index, images_uri=images)
        if entity.id in first_index:
            raise InputFormatError(
                f"{uri}: record {index}: duplicate entity id {entity.id} (first in record {first_index[entity.id]})"
            )
        first_index[entity.id] = index
        entities.append(entity)
    return entities


# -- mentions -----------------------------------------------------------------------------------
def review_text(fields: Fields) -> str:
    """`header + ". " + body` as the paper builds it; either alone when the other is empty."""
    header, body = fields.text("header"), fields.text("body")
    if not header and not body:
        raise fields.error("needs review text: fields 'header' and 'body' are both missing or empty")
    return f"{header}. {body}" if header and body else header or body


def mention_from_record(obj: Any, *, uri: str, index: int, images_uri: str) -> Mention:
    fields = Fields(uri, f"record {index}", obj)
    mention_id = fields.id("review_id")
    gold = fields.object("gold_entity_info")
    return build(
        fields,
        Mention,
        id=mention_id,
        text=review_text(fields),
        surface=fields.text("mention"),
        image_uris=[resolve_image(images_uri, n) for n in fields.texts("review_image_path")],
        gold_entity_id=gold.gold_id("id", required=True) if gold is not None else None,  # None: unlabelled
        gold_attributes=fields.mapping("gold_attributes"),
    )


def read_ameli_mentions(
    uri: str, store: ObjectStore, images_uri: str | None = None, rejected: list[str] | None = None
) -> list[Mention]:
    """Read an AMELI mention (review) file; images resolve under `images_uri` (default: cleaned_review_images/ beside it).

    With a `rejected` list, a record that is not a valid mention is reported there and skipped
    instead of failing the whole file (a file that is not JSON still fails: nothing can be read).
    """
    images = images_uri if images_uri is not None else join_uri(parent_uri(uri), MENTION_IMAGES_DIR)
    mentions = []
    first = FirstIds(uri)
    for index, obj in enumerate(load_json_array(uri, store)):
        try:
            mention = mention_from_record(obj, uri=uri, index=index, images_uri=images)
            first.check(mention.id, f"record {index}")
            mentions.append(mention)
        except InputFormatError as exc:
            if rejected is None:
                raise
            rejected.append(str(exc))
    return mentions


class FirstIds:
    """Where each mention id was first seen in a file. A repeated id is refused (and, with a
    rejected list, set aside while the first record is kept): everything downstream keys mentions
    by id (evaluation rows, ablations, training examples), so a second record would silently
    replace or merge with the first."""

    def __init__(self, uri: str):
        self.uri = uri
        self.first: dict[str, str] = {}

    def check(self, mention_id: str, where: str) -> None:
        if mention_id in self.first:
            raise InputFormatError(
                f"{self.uri}: {where}: duplicate mention id {mention_id!r} (first at {self.first[mention_id]}, which is kept)"
            )
        self.first[mention_id] = where


# -- writers ------------------------------------------------------------------------------------
def _write_array(records: list[dict[str, Any]], uri: str, store: ObjectStore) -> None:
    store.write_text(uri, json.dumps(records, ensure_ascii=False))


def write_ameli_entities(records: list[dict[str, Any]], uri: str, store: ObjectStore) -> None:
    """Write entity objects (AMELI field names) as one JSON array."""
    _write_array(records, uri, store)


def write_ameli_mentions(records: list[dict[str, Any]], uri: str, store: ObjectStore) -> None:
    """Write mention objects (AMELI field names) as one JSON array."""
    _write_array(records, uri, store)
