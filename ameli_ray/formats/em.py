"""Entity-matching benchmarks recast as linking tasks, written in the AMELI format.

One table is the knowledge base, the rows of the other table that have a gold match are the
mentions, and `gt.csv` (columns D1 = mention-table id, D2 = KB id) gives each mention's gold
entity (see ../shared/data/PROVENANCE.md). The output is read back with `read_ameli_entities` /
`read_ameli_mentions` like the real release.

Data decisions (the real files are clean: every row has the header's number of fields):
- Fields are parsed with the csv module (standard double-quote escaping: Walmart-Amazon's
  amazon.csv quotes 19 model numbers that hold a `"`, such as `iPad 9.7"`). A row with the wrong number of
  fields, broken quoting, an empty or duplicate id, or a gt.csv id absent from its table is an
  `InputFormatError` with the line number: dropping such rows would silently change the task.
- A price of 0 means "unknown" in these tables (Amazon-Google amazon.csv, Walmart-Amazon
  walmart.csv) and is left out, so it neither reads as an attribute nor matches other values.
"""

from __future__ import annotations

import csv
import io
import json
import random
from dataclasses import dataclass
from typing import Any, Literal

from ameli_ray.errors import ConfigError, InputFormatError
from ameli_ray.formats.ameli import (
    entity_from_record,
    keep_attribute_value,
    read_input_text,
    write_ameli_entities,
    write_ameli_mentions,
)
from ameli_ray.storage.objects import ObjectStore, join_uri

EmDataset = Literal["abt_buy", "walmart_amazon", "amazon_google"]


@dataclass(frozen=True)
class EmLayout:
    mention_table: str
    kb_table: str
    delimiter: str


EM_DATASETS: dict[str, EmLayout] = {
    "abt_buy": EmLayout("abt.csv", "buy.csv", "|"),
    "walmart_amazon": EmLayout("walmart.csv", "amazon.csv", "|"),
    "amazon_google": EmLayout("amazon.csv", "gp.csv", "#"),
}
GOLD_TABLE = "gt.csv"
SPEC_SUBSECTION = "Key Specs"
_TITLE_COLUMNS = ("title", "name")
_DESCRIPTION = "description"


@dataclass(frozen=True)
class _Row:
    line: int
    values: dict[str, str]


@dataclass(frozen=True)
class _Table:
    uri: str
    columns: list[str]
    rows: list[_Row]

    def error(self, line: int, problem: str) -> InputFormatError:
        return InputFormatError(f"{self.uri}: line {line}: {problem}")

    def title_column(self) -> str:
        for column in _TITLE_COLUMNS:
            if column in self.columns:
                return column
        raise InputFormatError(f"{self.uri}: needs a 'title' or 'name' column, header has {self.columns}")

    def index(self, title: str) -> dict[str, _Row]:
        """Rows by id; ids and titles must be present, ids unique."""
        rows: dict[str, _Row] = {}
        for row in self.rows:
            row_id = row.values["id"]
            if not row_id:
                raise self.error(row.line, "empty id")
            if not row.values[title]:
                raise self.error(row.line, f"id {row_id}: empty {title}")
            if row_id in rows:
                raise self.error(row.line, f"duplicate id {row_id} (first on line {rows[row_id].line})")
            rows[row_id] = row
        return rows


def _is_zero_price(column: str, value: str) -> bool:
    if column != "price":
        return False
    try:
        return float(value) == 0
    except ValueError:
        return False


def _read_csv(uri: str, store: ObjectStore, delimiter: str, required: tuple[str, ...]) -> _Table:
    # newline="" keeps line endings for the csv module: it handles CRLF and quoted newlines itself.
    reader = csv.reader(io.StringIO(read_input_text(uri, store), newline=""), delimiter=delimiter, strict=True)
    start = 1
    try:
        header = next(reader, None)
        if header is None:
            raise InputFormatError(f"{uri}: empty file, expected a header line")
        columns = [c.strip() for c in header]
        missing = [c for c in required if c not in columns]
        if missing:
            raise InputFormatError(f"{uri}: line 1: header {columns} lacks column(s) {missing}")
        if len(set(columns)) != len(columns):
            raise InputFormatError(f"{uri}: line 1: header {columns} repeats a column name")
        rows: list[_Row] = []
        start = reader.line_num + 1
        for fields in reader:
            if fields:  # the csv module yields [] for a blank line
                if len(fields) != len(columns):
                    raise InputFormatError(
                        f"{uri}: line {start}: expected {len(columns)} fields separated by {delimiter!r}, "
                        f"got {len(fields)}"
                    )
                values = {
                    c: "" if _is_zero_price(c, v.strip()) else v.strip() for c, v in zip(columns, fields)
                }
                rows.append(_Row(start, values))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise InputFormatError(f"{uri}: line {start}: malformed CSV ({exc})") from None
    return _Table(uri, columns, rows)


def _entity_record(dataset: str, table: _Table, title: str, row: _Row) -> dict[str, Any]:
    values = row.values
    # "Product Name" tells the AMELI reader not to split these titles as "Brand - Name - Color"
    spec = [{"specification": "Product Name", "value": values[title]}] + [
        {"specification": c, "value": values[c]}
        for c in table.columns
        if c not in ("id", title, _DESCRIPTION) and values[c]
    ]
    return {
        "id": values["id"],
        "product_name": values[title],
        "product_category": dataset,
        "url": "",
        "overview_section": {"description": values.get(_DESCRIPTION, ""), "features": []},
        "Spec": [{"subsection": SPEC_SUBSECTION, "text": spec}] if spec else [],
        "image_path": [],
    }


def _mention_body(table: _Table, title: str, row: _Row) -> str:
    """The record's other fields as text: "brand: X. modelno: Y. price: Z. <description>"."""
    values = row.values
    parts = [f"{c}: {values[c]}" for c in table.columns if c not in ("id", title, _DESCRIPTION) and values[c]]
    if values.get(_DESCRIPTION):
        parts.append(values[_DESCRIPTION])
    return ". ".join(parts)


def _gold_attributes(attributes: dict[str, str], mention_values: list[str]) -> dict[str, str]:
    """Gold-entity attribute values the mention record states: case-insensitive substring either
    way (the paper's rule). Mention values pass the same filter as attribute values, so a stray
    "2" cannot match every value containing that digit."""
    values = [v.lower() for v in mention_values if keep_attribute_value(v)]
    return {
        k: a for k, a in attributes.items()
        if k != "Product Name" and any(a.lower() in v or v in a.lower() for v in values)
    }


def convert_em(
    dataset: EmDataset,
    src_dir: str,
    out_dir: str,
    store: ObjectStore,
    seed: int = 0,
) -> dict[str, Any]:
    """Convert one benchmark under `src_dir` into AMELI files under `out_dir`; returns the counts.

    Writes entities.json, mentions.json (every mention), mentions_{train,dev,test}.json (a seeded
    60/20/20 split) and summary.json (the returned counts).
    """
    if dataset not in EM_DATASETS:
        raise ConfigError(f"unknown entity-matching dataset {dataset!r}; known: {sorted(EM_DATASETS)}")
    layout = EM_DATASETS[dataset]
    mention_table = _read_csv(join_uri(src_dir, layout.mention_table), store, layout.delimiter, ("id",))
    kb_table = _read_csv(join_uri(src_dir, layout.kb_table), store, layout.delimiter, ("id",))
    gold_table = _read_csv(join_uri(src_dir, GOLD_TABLE), store, layout.delimiter, ("D1", "D2"))
    mention_title, kb_title = mention_table.title_column(), kb_table.title_column()
    mention_rows = mention_table.index(mention_title)
    kb_rows = kb_table.index(kb_title)

    # Gold pairs; a mention with several matches keeps the first (a linking task has one answer).
    gold: dict[str, str] = {}
    extra_matches = 0
    for row in gold_table.rows:
        d1, d2 = row.values["D1"], row.values["D2"]
        if d1 not in mention_rows:
            raise gold_table.error(row.line, f"D1 {d1!r} is not an id of {mention_table.uri}")
        if d2 not in kb_rows:
            raise gold_table.error(row.line, f"D2 {d2!r} is not an id of {kb_table.uri}")
        if d1 in gold:
            extra_matches += 1
        else:
            gold[d1] = d2

    entity_records = [_entity_record(dataset, kb_table, kb_title, row) for row in kb_table.rows]
    record_index = {record["id"]: i for i, record in enumerate(entity_records)}

    mention_records: list[dict[str, Any]] = []
    for row in mention_table.rows:  # in table order, so the output is stable
        mention_id = row.values["id"]
        if mention_id not in gold:
            continue
        entity = entity_records[record_index[gold[mention_id]]]
        # The attributes as the reader derives them, so gold attributes match what the linker sees.
        attributes = entity_from_record(
            entity, uri=kb_table.uri, index=record_index[entity["id"]], images_uri=""
        ).attributes
        title = row.values[mention_title]
        mention_records.append(
            {
                "review_id": mention_id,
                "header": title,
                "body": _mention_body(mention_table, mention_title, row),
                "mention": title,
                "review_image_path": [],
                "gold_entity_info": {
                    "id": entity["id"],
                    "product_name": entity["product_name"],
                    "product_category": entity["product_category"],
                },
                "gold_attributes": _gold_attributes(
                    attributes, [v for c, v in row.values.items() if c != "id" and v]
                ),
            }
        )

    order = list(range(len(mention_records)))
    random.Random(seed).shuffle(order)
    n = len(order)
    n_train, n_dev = n * 3 // 5, n // 5
    splits = {
        "train": sorted(order[:n_train]),
        "dev": sorted(order[n_train : n_train + n_dev]),
        "test": sorted(order[n_train + n_dev :]),
    }

    summary: dict[str, Any] = {
        "dataset": dataset,
        "seed": seed,
        "mention_table_rows": len(mention_table.rows),
        "kb_table_rows": len(kb_table.rows),
        "gold_pairs": len(gold_table.rows),
        "extra_gold_matches": extra_matches,
        "entities": len(entity_records),
        "mentions": len(mention_records),
        **{f"mentions_{name}": len(indices) for name, indices in splits.items()},
        "mentions_with_gold_attributes": sum(1 for m in mention_records if m["gold_attributes"]),
        "gold_attribute_values": sum(len(m["gold_attributes"]) for m in mention_records),
    }

    store.ensure_bucket(out_dir)
    write_ameli_entities(entity_records, join_uri(out_dir, "entities.json"), store)
    write_ameli_mentions(mention_records, join_uri(out_dir, "mentions.json"), store)
    for name, indices in splits.items():
        write_ameli_mentions([mention_records[i] for i in indices], join_uri(out_dir, f"mentions_{name}.json"), store)
    store.write_text(join_uri(out_dir, "summary.json"), json.dumps(summary, indent=2) + "\n")
    return summary
