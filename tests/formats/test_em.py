import json
from pathlib import Path

import pytest

from ameli_ray.errors import ConfigError, InputFormatError
from ameli_ray.formats import convert_em, read_ameli_entities, read_ameli_mentions, read_entities
from ameli_ray.storage import ObjectStore, join_uri

REAL_EM = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "em"

# Walmart-Amazon layout: CRLF line ends, a doubled-quote field, empty fields, a zero price,
# a blank line, and a mention (w2) with two gold matches.
WALMART = (
    "id|title|modelno|price|shipweight|brand|dimensions\r\n"
    "0|Draper Infrared Remote Transmitter|121066|58.45|2|Draper|\r\n"
    "1|Epson Projector Lamp ELPLP12|ELPLP12|0|0.95|Epson|6.75 x 5.75 x 5.5 inches\r\n"
    "\r\n"
    "2|3M Screen Protector for iPad|iPad 9.7|19.99||3M|\r\n"
    "3|Unmatched Walmart Item|X1|1.00|1|Acme|\r\n"
)
AMAZON = (
    "id|title|modelno|price|shipweight|brand|dimensions\r\n"
    "10|Draper 121066 Remote|121066|58.45|1|Draper|\r\n"
    '11|Epson ELPLP12 Replacement Lamp|"ELPLP12"|438.84|1|Epson|6.75 x 5.75 x 5.5 inches\r\n'
    '12|3M Natural View Screen Protector - iPad - Clear|"iPad 9.7"""|19.99|5.6|3M|9.3 x 7.2 inches\r\n'
    "13|Unrelated Cable|C-1||1|Belkin|\r\n"
)
GT = "D1|D2\n0|10\n1|11\n2|12\n2|13"


def _dataset(root: Path, files: dict[str, str]) -> str:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).write_text(text, encoding="utf-8", newline="")
    return str(root)


def _walmart(tmp_path: Path, **overrides: str) -> str:
    files = {"walmart.csv": WALMART, "amazon.csv": AMAZON, "gt.csv": GT} | overrides
    return _dataset(tmp_path / "src", files)


def _load(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def test_convert_walmart_layout(tmp_path):
    out = tmp_path / "out"
    summary = convert_em("walmart_amazon", _walmart(tmp_path), str(out), ObjectStore(), seed=3)
    assert summary == _load(out / "summary.json")
    assert summary["entities"] == 4 and summary["mentions"] == 3
    assert summary["gold_pairs"] == 4 and summary["extra_gold_matches"] == 1
    assert summary["mention_table_rows"] == 4

    entities = {e["id"]: e for e in _load(out / "entities.json")}
    assert entities["12"]["product_name"] == "3M Natural View Screen Protector - iPad - Clear"
    assert entities["12"]["product_category"] == "walmart_amazon"
    assert entities["12"]["Spec"] == [
        {
            "subsection": "Key Specs",
            "text": [
                {"specification": "Product Name", "value": "3M Natural View Screen Protector - iPad - Clear"},
                {"specification": "modelno", "value": 'iPad 9.7"'},
                {"specification": "price", "value": "19.99"},
                {"specification": "shipweight", "value": "5.6"},
                {"specification": "brand", "value": "3M"},
                {"specification": "dimensions", "value": "9.3 x 7.2 inches"},
            ],
        }
    ]
    # a three-part title of converted data is not split into Brand / Product Name / Color
    converted = {e.id: e for e in read_entities(str(out / "entities.json"), ObjectStore())}
    assert "Color" not in converted["12"].attributes
    assert entities["13"]["image_path"] == [] and entities["13"]["overview_section"]["description"] == ""

    mentions = {m["review_id"]: m for m in _load(out / "mentions.json")}
    assert list(mentions) == ["0", "1", "2"]  # table order; the unmatched row 3 is no mention
    lamp = mentions["1"]
    assert lamp["header"] == lamp["mention"] == "Epson Projector Lamp ELPLP12"
    # the zero price is "unknown" and left out
    assert lamp["body"] == "modelno: ELPLP12. shipweight: 0.95. brand: Epson. dimensions: 6.75 x 5.75 x 5.5 inches"
    assert lamp["gold_entity_info"] == {"id": "11", "product_name": "Epson ELPLP12 Replacement Lamp",
                                        "product_category": "walmart_amazon"}
    assert lamp["gold_attributes"] == {"modelno": "ELPLP12", "brand": "Epson", "dimensions": "6.75 x 5.75 x 5.5 inches"}
    assert mentions["0"]["gold_attributes"] == {"modelno": "121066", "price": "58.45", "brand": "Draper"}
    assert mentions["2"]["gold_entity_info"]["id"] == "12"  # the first of two gold matches
    # "iPad" (the name split's Product Name) occurs in the mention title
    assert mentions["2"]["gold_attributes"] == {"modelno": 'iPad 9.7"', "price": "19.99", "brand": "3M"}

    # the output reads back through the AMELI readers
    read = read_ameli_mentions(str(out / "mentions.json"), ObjectStore())
    assert read[1].text == f"{lamp['header']}. {lamp['body']}"
    assert read[2].gold_entity_id == "12"
    assert {e.id for e in read_ameli_entities(str(out / "entities.json"), ObjectStore())} == {"10", "11", "12", "13"}


def test_split_is_a_seeded_partition(tmp_path):
    rows = "".join(f"{i}|Item {i}|description {i}|{i}.5\n" for i in range(50))
    src = _dataset(tmp_path / "src", {
        "abt.csv": "id|name|description|price\n" + rows,
        "buy.csv": "id|name|description|price\n" + rows,
        "gt.csv": "D1|D2\n" + "\n".join(f"{i}|{i}" for i in range(50)),
    })
    store = ObjectStore()
    summary = convert_em("abt_buy", src, str(tmp_path / "a"), store, seed=1)
    assert (summary["mentions_train"], summary["mentions_dev"], summary["mentions_test"]) == (30, 10, 10)
    splits = {s: [m["review_id"] for m in _load(tmp_path / "a" / f"mentions_{s}.json")] for s in ("train", "dev", "test")}
    assert sorted(sum(splits.values(), []), key=int) == [str(i) for i in range(50)]
    convert_em("abt_buy", src, str(tmp_path / "b"), store, seed=1)
    convert_em("abt_buy", src, str(tmp_path / "c"), store, seed=2)
    for s in ("train", "dev", "test"):
        assert (tmp_path / "a" / f"mentions_{s}.json").read_bytes() == (tmp_path / "b" / f"mentions_{s}.json").read_bytes()
    assert _load(tmp_path / "a" / "mentions_test.json") != _load(tmp_path / "c" / "mentions_test.json")


def test_amazon_google_layout_to_s3(tmp_path, s3_store, s3_bucket):
    src = _dataset(tmp_path / "src", {
        "amazon.csv": "id#title#description#manufacturer#price\r\n"
        "0#clickart 950 000 - premier image pack (dvd-rom)##broderbund#0.0\r\n",
        "gp.csv": "id#title#description#manufacturer#price\r\n"
        "7#clickart 950000 premier image pack#a pack of clip art#broderbund#19.99\r\n",
        "gt.csv": "D1#D2\n0#7",
    })
    out = f"{s3_bucket}/em/amazon_google"
    summary = convert_em("amazon_google", src, out, s3_store)
    assert summary["mentions"] == 1 and summary["entities"] == 1
    [entity] = read_ameli_entities(join_uri(out, "entities.json"), s3_store)
    assert entity.description == "a pack of clip art"
    assert entity.attributes == {
        "Product Name": "clickart 950000 premier image pack", "manufacturer": "broderbund", "price": "19.99"
    }
    [mention] = read_ameli_mentions(join_uri(out, "mentions.json"), s3_store)
    assert mention.text == "clickart 950 000 - premier image pack (dvd-rom). manufacturer: broderbund"
    assert mention.gold_entity_id == "7" and mention.gold_attributes == {"manufacturer": "broderbund"}
    assert json.loads(s3_store.read_text(join_uri(out, "summary.json")))["mentions_test"] == 1


# -- bad input ----------------------------------------------------------------------------------
def _convert_error(tmp_path: Path, **files: str) -> str:
    with pytest.raises(InputFormatError) as info:
        convert_em("walmart_amazon", _walmart(tmp_path, **files), str(tmp_path / "out"), ObjectStore())
    return str(info.value)


def test_wrong_field_count(tmp_path):
    message = _convert_error(tmp_path, **{"walmart.csv": WALMART + "4|Stray|pipe|in|the|title|x|y\r\n"})
    assert "walmart.csv: line 7: expected 7 fields separated by '|', got 8" in message


def test_broken_quoting(tmp_path):
    message = _convert_error(tmp_path, **{"amazon.csv": AMAZON + '14|Bad "quote"|"M1"x|1|1|B|\r\n'})
    assert "amazon.csv: line 6: malformed CSV" in message


def test_missing_column(tmp_path):
    message = _convert_error(tmp_path, **{"gt.csv": "left|right\n0|10"})
    assert "gt.csv: line 1" in message and "lacks column(s) ['D1', 'D2']" in message
    message = _convert_error(tmp_path, **{"amazon.csv": "id|modelno\n10|X\n"})
    assert "amazon.csv: needs a 'title' or 'name' column" in message


def test_duplicate_and_empty_ids(tmp_path):
    message = _convert_error(tmp_path, **{"amazon.csv": AMAZON + "11|Again|X|1|1|B|\r\n"})
    assert "amazon.csv: line 6: duplicate id 11 (first on line 3)" in message
    message = _convert_error(tmp_path, **{"walmart.csv": WALMART + "|No id|X|1|1|B|\r\n"})
    assert "walmart.csv: line 7: empty id" in message


def test_gold_id_not_in_table(tmp_path):
    message = _convert_error(tmp_path, **{"gt.csv": GT + "\n3|99"})
    assert "gt.csv: line 6: D2 '99' is not an id of" in message and "amazon.csv" in message
    message = _convert_error(tmp_path, **{"gt.csv": "D1|D2\n42|10"})
    assert "gt.csv: line 2: D1 '42' is not an id of" in message


def test_missing_source_file_and_unknown_dataset(tmp_path):
    src = _dataset(tmp_path / "src", {"walmart.csv": WALMART, "gt.csv": GT})
    with pytest.raises(Exception, match=r"amazon\.csv"):
        convert_em("walmart_amazon", src, str(tmp_path / "out"), ObjectStore())
    with pytest.raises(ConfigError, match="unknown entity-matching dataset 'dblp'"):
        convert_em("dblp", src, str(tmp_path / "out"), ObjectStore())  # type: ignore[arg-type]


# -- the real benchmarks (opt-in: runs where ../shared/data/em exists) -----------------------------
@pytest.mark.skipif(not REAL_EM.is_dir(), reason=f"{REAL_EM} not present")
@pytest.mark.parametrize(
    ("dataset", "entities", "matches"),
    [("abt_buy", 1076, 1076), ("walmart_amazon", 22074, 853), ("amazon_google", 3039, 1103)],
)
def test_real_benchmarks(tmp_path, dataset, entities, matches):
    store = ObjectStore()
    summary = convert_em(dataset, str(REAL_EM / dataset), str(tmp_path), store)
    # PROVENANCE.md: every gold pair has its own mention (no mention has two matches)
    assert summary["gold_pairs"] == summary["mentions"] == matches
    assert summary["extra_gold_matches"] == 0
    assert summary["entities"] == entities
    assert summary["mentions_train"] + summary["mentions_dev"] + summary["mentions_test"] == matches
    kb = {e.id for e in read_ameli_entities(str(tmp_path / "entities.json"), store)}
    mentions = read_ameli_mentions(str(tmp_path / "mentions.json"), store)
    assert len(kb) == entities and len(mentions) == matches
    assert all(m.gold_entity_id in kb for m in mentions)
