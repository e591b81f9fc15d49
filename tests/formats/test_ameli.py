import json
from pathlib import Path

import pytest

from ameli_ray.errors import InputFormatError, ObjectNotFound
from ameli_ray.formats import (
    read_ameli_entities,
    read_ameli_mentions,
    write_ameli_entities,
    write_ameli_mentions,
)
from ameli_ray.formats.ameli import keep_attribute_value
from ameli_ray.storage import ObjectStore, join_uri

ENTITY = {
    "id": 101,
    "product_name": "Samsung - Galaxy S21 5G 128GB - Phantom Gray",
    "product_category": "Cell Phones",
    "url": "https://example.com/p/101",
    "overview_section": {
        "description": "  A phone.  ",
        "features": [
            {"header": "Camera", "description": "Pro-grade"},
            {"header": "", "description": "Only a description"},
        ],
    },
    "Spec": [
        {
            "subsection": "Key Specs",
            "text": [
                {"specification": "Storage Capacity", "value": " 128 gigabytes "},
                {"specification": "Model Number", "value": "121066"},
                {"specification": "Screen Size", "value": "6"},
                {"specification": "Year", "value": "2021"},
                {"specification": "Number Of Cameras", "value": "3"},
                {"specification": "Cores", "value": "16"},
                {"specification": "5G Capable", "value": "Yes"},
                {"specification": "Headphone Jack", "value": "NO"},
                {"specification": "Other Features", "value": "other"},
                {"specification": "Warranty", "value": "None"},
            ],
        },
        {
            "subsection": "General",
            "text": [
                {"specification": "brand", "value": "Samsung Electronics"},
                {"specification": "Storage Capacity", "value": "256 gigabytes"},
                {"specification": "Weight", "value": 6.1},
            ],
        },
    ],
    "image_path": ["101_0.jpg", "101_1.jpg"],
    "something_new": {"ignored": True},
}

MENTION = {
    "review_id": 7,
    "header": "Great phone",
    "body": "The 128GB gray one is fast.",
    "mention": "Galaxy S21",
    "review_image_path": ["r7.jpg"],
    "gold_entity_info": {"id": 101, "product_name": ENTITY["product_name"], "product_category": "Cell Phones"},
    "gold_attributes": {"Storage Capacity": "128 gigabytes"},
    "user": "someone",
    "rating": 5,
}


def _write(path: Path, data) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return str(path)


def _entities_error(tmp_path: Path, data) -> str:
    uri = _write(tmp_path / "entities.json", data)
    with pytest.raises(InputFormatError) as info:
        read_ameli_entities(uri, ObjectStore())
    assert "entities.json" in str(info.value)
    return str(info.value)


def _mentions_error(tmp_path: Path, data) -> str:
    uri = _write(tmp_path / "mentions.json", data)
    with pytest.raises(InputFormatError) as info:
        read_ameli_mentions(uri, ObjectStore())
    assert "mentions.json" in str(info.value)
    return str(info.value)


def test_entity_fields(tmp_path):
    uri = _write(tmp_path / "kb" / "entities.json", [ENTITY])
    [entity] = read_ameli_entities(uri, ObjectStore())
    assert entity.id == "101"
    assert entity.name == ENTITY["product_name"]
    assert entity.category == "Cell Phones"
    assert entity.description == "A phone."
    assert entity.features == ["Camera: Pro-grade", "Only a description"]
    assert entity.image_uris == [
        str(tmp_path / "kb" / "product_images" / "101_0.jpg"),
        str(tmp_path / "kb" / "product_images" / "101_1.jpg"),
    ]


def test_entity_attributes_filtered_and_name_split(tmp_path):
    uri = _write(tmp_path / "entities.json", [ENTITY])
    [entity] = read_ameli_entities(uri, ObjectStore())
    assert entity.attributes == {
        "Storage Capacity": "128 gigabytes",  # stripped; the first of a repeated key wins
        "Model Number": "121066",  # pure digits, long: a model number, kept
        "Year": "2021",
        "brand": "Samsung Electronics",
        "Weight": "6.1",
        # from "Brand - Name - Color"; "Brand" is not added because the Spec has "brand"
        "Product Name": "Galaxy S21 5G 128GB",
        "Color": "Phantom Gray",
    }


def test_name_split_needs_three_parts(tmp_path):
    two = {"id": 1, "product_name": "Sony Turntable - PSLX350H"}
    four = {"id": 2, "product_name": "A - B - C - D"}
    three = {"id": 3, "product_name": "Insignia - 32\" Class TV - Black"}
    uri = _write(tmp_path / "entities.json", [two, four, three])
    entities = read_ameli_entities(uri, ObjectStore())
    assert entities[0].attributes == {}
    assert entities[1].attributes == {}
    assert entities[2].attributes == {"Brand": "Insignia", "Product Name": '32" Class TV', "Color": "Black"}


@pytest.mark.parametrize(
    ("value", "kept"),
    [("yes", False), ("Other", False), ("x", False), ("12", False), ("123", False), ("1234", True),
     ("12 inches", True), ("Black", True)],
)
def test_value_filter(value, kept):
    assert keep_attribute_value(value) is kept


def test_custom_images_uri_and_empty_array(tmp_path):
    uri = _write(tmp_path / "entities.json", [ENTITY])
    [entity] = read_ameli_entities(uri, ObjectStore(), images_uri="s3://imgs/products")
    assert entity.image_uris == ["s3://imgs/products/101_0.jpg", "s3://imgs/products/101_1.jpg"]
    assert read_ameli_entities(_write(tmp_path / "empty.json", "[]"), ObjectStore()) == []
    assert read_ameli_mentions(_write(tmp_path / "empty2.json", " [ ]\n"), ObjectStore()) == []


def test_mention_fields(tmp_path):
    header_only = {"review_id": "r2", "header": "Just a title", "body": ""}
    body_only = {"review_id": 3, "body": "Only the body."}
    uri = _write(tmp_path / "reviews" / "test.json", [MENTION, header_only, body_only])
    mentions = read_ameli_mentions(uri, ObjectStore())
    first = mentions[0]
    assert first.id == "7"
    assert first.text == "Great phone. The 128GB gray one is fast."
    assert first.surface == "Galaxy S21"
    assert first.image_uris == [str(tmp_path / "reviews" / "cleaned_review_images" / "r7.jpg")]
    assert first.gold_entity_id == "101"
    assert first.gold_attributes == {"Storage Capacity": "128 gigabytes"}
    assert (mentions[1].text, mentions[1].gold_entity_id, mentions[1].gold_attributes) == ("Just a title", None, {})
    assert mentions[2].text == "Only the body."


def test_roundtrip_through_s3(s3_store, s3_bucket):
    entities_uri = f"{s3_bucket}/ameli/entities.json"
    mentions_uri = f"{s3_bucket}/ameli/splits/test.json"
    write_ameli_entities([ENTITY | {"product_name": "Café - Crème - Blanc"}], entities_uri, s3_store)
    write_ameli_mentions([MENTION], mentions_uri, s3_store)
    assert "Café" in s3_store.read_text(entities_uri)  # written as UTF-8, not \u escapes
    [entity] = read_ameli_entities(entities_uri, s3_store)
    assert entity.image_uris[0] == f"{s3_bucket}/ameli/product_images/101_0.jpg"
    assert entity.attributes["Color"] == "Blanc"
    [mention] = read_ameli_mentions(mentions_uri, s3_store)
    assert mention.image_uris == [join_uri(s3_bucket, "ameli/splits/cleaned_review_images/r7.jpg")]
    assert mention.gold_entity_id == "101"


# -- bad input ----------------------------------------------------------------------------------
def test_missing_file_names_uri(tmp_path, s3_store, s3_bucket):
    with pytest.raises(ObjectNotFound, match="nope.json"):
        read_ameli_entities(str(tmp_path / "nope.json"), ObjectStore())
    with pytest.raises(ObjectNotFound, match="nope.json"):
        read_ameli_mentions(f"{s3_bucket}/nope.json", s3_store)


def test_invalid_json(tmp_path):
    message = _entities_error(tmp_path, '[\n  {"id": 1,, "product_name": "x"}\n]')
    assert "not valid JSON" in message and "line 2, column 12" in message


def test_truncated_json(tmp_path):
    message = _entities_error(tmp_path, json.dumps([ENTITY, ENTITY | {"id": 2}])[:-40])
    assert "not valid JSON" in message and "line 1" in message


def test_not_utf8(tmp_path):
    path = tmp_path / "entities.json"
    path.write_bytes(b'[{"id": 1, "product_name": "caf\xe9"}]')
    with pytest.raises(InputFormatError, match="entities.json: not valid UTF-8"):
        read_ameli_entities(str(path), ObjectStore())


def test_top_level_not_array(tmp_path):
    message = _entities_error(tmp_path, {"id": 1, "product_name": "x"})
    assert "expected a JSON array" in message and "got object" in message


def test_record_not_object(tmp_path):
    message = _mentions_error(tmp_path, [MENTION, ["not", "an", "object"]])
    assert "record 1" in message and "expected a JSON object, got array" in message


def test_entity_missing_id(tmp_path):
    message = _entities_error(tmp_path, [ENTITY, {"product_name": "No id"}])
    assert "record 1" in message and "'id' is missing" in message


def test_entity_missing_product_name(tmp_path):
    message = _entities_error(tmp_path, [{"id": 55, "product_category": "TVs"}])
    assert "record 0 (id 55)" in message and "'product_name' is missing" in message


def test_entity_wrong_types(tmp_path):
    message = _entities_error(tmp_path, [{"id": 5, "product_name": 42}])
    assert "record 0 (id 5)" in message and "'product_name' must be a string, got number" in message
    message = _entities_error(tmp_path, [{"id": 5, "product_name": "x", "image_path": "a.jpg"}])
    assert "'image_path' must be an array of strings, got string" in message
    message = _entities_error(tmp_path, [{"id": [5], "product_name": "x"}])
    assert "'id' must be a string or an integer, got array" in message
    spec = [{"subsection": "General", "text": [{"specification": "Color", "value": {"rgb": 1}}]}]
    message = _entities_error(tmp_path, [{"id": 6, "product_name": "x", "Spec": spec}])
    assert "(id 6)" in message and "'Spec[0].text[0].value' must be a string or a number, got object" in message


def test_duplicate_entity_id(tmp_path):
    message = _entities_error(tmp_path, [ENTITY, {"id": 9, "product_name": "y"}, {"id": "101", "product_name": "z"}])
    assert "duplicate entity id 101" in message and "record 2" in message and "record 0" in message


def test_mention_missing_review_id(tmp_path):
    message = _mentions_error(tmp_path, [{"header": "h", "body": "b"}])
    assert "record 0" in message and "'review_id' is missing" in message


def test_mention_without_text(tmp_path):
    message = _mentions_error(tmp_path, [MENTION, {"review_id": 8, "header": " ", "mention": "x"}])
    assert "record 1 (id 8)" in message and "'header' and 'body'" in message


def test_mention_wrong_types(tmp_path):
    message = _mentions_error(tmp_path, [MENTION | {"gold_entity_info": 101}])
    assert "(id 7)" in message and "'gold_entity_info'" in message and "expected a JSON object, got number" in message
    message = _mentions_error(tmp_path, [MENTION | {"gold_entity_info": {"product_name": "x"}}])
    assert "'gold_entity_info.id' is missing" in message
    message = _mentions_error(tmp_path, [MENTION | {"body": ["a"]}])
    assert "'body' must be a string, got array" in message


def test_a_duplicate_mention_id_is_refused_or_set_aside_and_the_first_kept(tmp_path):
    """Everything downstream keys mentions by id: a second record with the same id must not
    silently replace (or merge with) the first."""
    second = {**MENTION, "body": "Another review under the same id."}
    message = _mentions_error(tmp_path, [MENTION, {"review_id": 8, "body": "ok"}, second])
    assert "record 2: duplicate mention id '7' (first at record 0, which is kept)" in message
    rejected: list[str] = []
    uri = _write(tmp_path / "m.json", [MENTION, {"review_id": 8, "body": "ok"}, second])
    mentions = read_ameli_mentions(uri, ObjectStore(), rejected=rejected)
    assert [m.id for m in mentions] == ["7", "8"] and mentions[0].text == "Great phone. The 128GB gray one is fast."
    assert len(rejected) == 1 and "duplicate mention id '7'" in rejected[0]
