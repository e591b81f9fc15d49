import json
from pathlib import Path

import pytest

from ameli_ray.errors import InputFormatError
from ameli_ray.formats import (
    read_entities,
    read_jsonl_entities,
    read_jsonl_mentions,
    read_mentions,
    write_ameli_entities,
    write_jsonl,
)
from ameli_ray.storage import ObjectStore

MENTIONS = [
    {
        "id": "m1",
        "text": "Love this blender",
        "surface": "blender",
        "image_uris": ["photos/a.jpg", "/abs/b.jpg", "s3://bucket/c.jpg"],
        "gold_entity_id": 12,
        "gold_attributes": {"Color": "Red"},
        "extra": "ignored",
    },
    {"id": 2, "header": "Too loud", "body": "Returned it."},
    {"id": 3, "header": "Only header", "gold_entity_id": None},
]

ENTITIES = [
    {
        "id": 12,
        "name": "Blender 3000",
        "category": "Kitchen",
        "description": "Blends.",
        "features": ["Fast", " "],
        "attributes": {"Color": "Red", "Wattage": 1200},
        "image_uris": ["img/12.jpg"],
    },
    {"id": "13", "name": "Toaster"},
]


def _jsonl(path: Path, lines: list) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    return str(path)


def _error(reader, tmp_path: Path, lines: list) -> str:
    uri = _jsonl(tmp_path / "bad.jsonl", lines)
    with pytest.raises(InputFormatError) as info:
        reader(uri, ObjectStore())
    assert "bad.jsonl" in str(info.value)
    return str(info.value)


def test_read_mentions(tmp_path):
    uri = _jsonl(tmp_path / "corpus" / "m.jsonl", [MENTIONS[0], "", "   ", MENTIONS[1], MENTIONS[2]])
    first, second, third = read_jsonl_mentions(uri, ObjectStore())
    assert (first.id, first.text, first.surface, first.gold_entity_id) == ("m1", "Love this blender", "blender", "12")
    # relative paths are joined onto the file's folder by default; absolute paths and URIs are kept
    assert first.image_uris == [str(tmp_path / "corpus" / "photos" / "a.jpg"), "/abs/b.jpg", "s3://bucket/c.jpg"]
    assert first.gold_attributes == {"Color": "Red"}
    assert (second.id, second.text, second.gold_entity_id) == ("2", "Too loud. Returned it.", None)
    assert (third.text, third.gold_entity_id) == ("Only header", None)
    [again, *_] = read_jsonl_mentions(uri, ObjectStore(), images_uri="s3://imgs")
    assert again.image_uris[0] == "s3://imgs/photos/a.jpg"


def test_read_entities(tmp_path):
    uri = _jsonl(tmp_path / "kb.jsonl", ENTITIES)
    blender, toaster = read_jsonl_entities(uri, ObjectStore(), images_uri="/data/images")
    assert blender.id == "12" and blender.name == "Blender 3000" and blender.category == "Kitchen"
    assert blender.features == ["Fast"]
    assert blender.attributes == {"Color": "Red", "Wattage": "1200"}
    assert blender.image_uris == ["/data/images/img/12.jpg"]
    assert (toaster.id, toaster.attributes, toaster.image_uris) == ("13", {}, [])


def test_write_jsonl_roundtrip_s3(s3_store, s3_bucket):
    uri = f"{s3_bucket}/corpus/mentions.jsonl"
    write_jsonl([MENTIONS[0] | {"text": "Très bien\u2028ligne"}, MENTIONS[1]], uri, s3_store)
    text = s3_store.read_text(uri)
    assert text.count("\n") == 2 and "Très" in text
    first, second = read_mentions(uri, s3_store)
    assert first.text == "Très bien\u2028ligne"
    assert first.image_uris[0] == f"{s3_bucket}/corpus/photos/a.jpg"
    assert second.id == "2"


def test_dispatch_on_extension(tmp_path):
    store = ObjectStore()
    jsonl = _jsonl(tmp_path / "kb.ndjson", ENTITIES)
    assert [e.id for e in read_entities(jsonl, store)] == ["12", "13"]
    ameli = str(tmp_path / "kb.json")
    write_ameli_entities([{"id": 1, "product_name": "AMELI product"}], ameli, store)
    assert [e.name for e in read_entities(ameli, store)] == ["AMELI product"]
    mentions = _jsonl(tmp_path / "m.JSONL", MENTIONS[1:])
    assert len(read_mentions(mentions, store)) == 2


def test_unknown_extension(tmp_path):
    with pytest.raises(InputFormatError, match=r"kb\.csv: unknown file extension.*\.json.*\.jsonl.*\.ndjson"):
        read_entities(str(tmp_path / "kb.csv"), ObjectStore())
    with pytest.raises(InputFormatError, match="unknown file extension"):
        read_mentions("s3://bucket/reviews", ObjectStore())


def test_empty_file(tmp_path):
    assert read_jsonl_mentions(_jsonl(tmp_path / "e.jsonl", []), ObjectStore()) == []


# -- bad input ----------------------------------------------------------------------------------
def test_invalid_json_line(tmp_path):
    message = _error(read_jsonl_mentions, tmp_path, [MENTIONS[0], "", '{"id": 5, "text": "trunc'])
    assert "line 3: not valid JSON" in message


def test_line_not_object(tmp_path):
    message = _error(read_jsonl_mentions, tmp_path, [MENTIONS[0], "[1, 2]"])
    assert "line 2: expected a JSON object, got array" in message


def test_missing_id(tmp_path):
    message = _error(read_jsonl_mentions, tmp_path, [{"text": "no id"}])
    assert "line 1" in message and "'id' is missing" in message


def test_missing_text(tmp_path):
    message = _error(read_jsonl_mentions, tmp_path, [MENTIONS[0], {"id": "m9", "surface": "x"}])
    assert "line 2 (id m9)" in message and "'text'" in message


def test_entity_missing_name(tmp_path):
    message = _error(read_jsonl_entities, tmp_path, [{"id": 4, "category": "x"}])
    assert "line 1 (id 4)" in message and "'name' is missing" in message


def test_wrong_types(tmp_path):
    message = _error(read_jsonl_entities, tmp_path, [{"id": 4, "name": "x", "attributes": ["Red"]}])
    assert "(id 4)" in message and "'attributes'" in message and "got array" in message
    message = _error(read_jsonl_mentions, tmp_path, [{"id": 4, "text": "x", "image_uris": "a.jpg"}])
    assert "'image_uris' must be an array of strings, got string" in message
    message = _error(read_jsonl_mentions, tmp_path, [{"id": 4, "text": "x", "gold_entity_id": 1.5}])
    assert "'gold_entity_id' must be a string or an integer, got number" in message


def test_duplicate_entity_id(tmp_path):
    message = _error(read_jsonl_entities, tmp_path, [ENTITIES[0], ENTITIES[1], {"id": "12", "name": "again"}])
    assert "line 3" in message and "duplicate entity id 12" in message and "line 1" in message


def test_a_duplicate_mention_id_is_refused_or_set_aside_and_the_first_kept(tmp_path):
    lines = [{"id": "a", "text": "first"}, {"id": "b", "text": "other"}, {"id": "a", "text": "second"}]
    path = tmp_path / "m.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    with pytest.raises(InputFormatError, match=r"line 3.*duplicate mention id 'a' \(first at line 1, which is kept\)"):
        read_jsonl_mentions(str(path), ObjectStore())
    rejected: list[str] = []
    mentions = read_mentions(str(path), ObjectStore(), rejected=rejected)
    assert [(m.id, m.text) for m in mentions] == [("a", "first"), ("b", "other")]
    assert len(rejected) == 1 and "m.jsonl: line 3" in rejected[0]
