"""The records that flow through the linker: entities, mentions, candidates, link results.

Every reader in `ameli_ray.formats` produces these, every stage consumes them, and the Arrow
schemas below are what the KB entity table and the batch-linking output are written as.
Identifiers are strings everywhere (the AMELI release uses ints, the entity-matching sets use
ints or SKUs); a reader converts once, at the edge.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, field_validator

NIL_ENTITY = ""  # "no matching product": an answer of the linker, and a gold label of NIL mentions


def _as_id(value: Any) -> str:
    if value is None:
        raise ValueError("id is missing")
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError(f"id must be a string or integer, got {type(value).__name__}")
    text = str(value).strip()
    if not text:
        raise ValueError("id is empty")
    return text


class Entity(BaseModel):
    """A product of the knowledge base."""

    model_config = ConfigDict(extra="forbid")

    id: str
    name: str
    category: str = ""
    description: str = ""
    features: list[str] = Field(default_factory=list)
    attributes: dict[str, str] = Field(default_factory=dict)
    image_uris: list[str] = Field(default_factory=list)

    _id = field_validator("id", mode="before")(_as_id)

    def text(self, max_attributes: int = 32) -> str:
        """The text the bi-encoder and the lexical channel see: name, category, attributes (at
        most `max_attributes`, none that repeats the name), description.

        Attributes come before the description so that truncation (the text encoder reads
        `text_encoder.max_seq_length` tokens, 128 by default) never cuts off the model numbers and
        capacities that decide between near-duplicates.
        """
        parts = [self.name]
        if self.category:
            parts.append(self.category)
        attrs = [
            f"{k}: {v}" for k, v in list(self.attributes.items())[:max_attributes] if v != self.name  # no echo of the name
        ]
        if attrs:
            parts.append("; ".join(attrs))
        if self.description:
            parts.append(self.description)
        return ". ".join(p for p in parts if p)


class Mention(BaseModel):
    """A review: text and photos. `gold_entity_id` is known for labelled splits only."""

    model_config = ConfigDict(extra="forbid")

    id: str
    text: str
    surface: str = ""
    image_uris: list[str] = Field(default_factory=list)
    gold_entity_id: str | None = None
    # None: unlabelled; NIL_ENTITY: labelled as about a product the KB does not hold.
    # Attribute values the review states (known to the catalogue generator and the EM converter);
    # used only for evaluation and the gold-attribute ablation, never by the linker itself.
    gold_attributes: dict[str, str] = Field(default_factory=dict)

    _id = field_validator("id", mode="before")(_as_id)

    @field_validator("gold_entity_id", mode="before")
    @classmethod
    def _gold(cls, value: Any) -> str | None:
        # None: unlabelled; NIL_ENTITY (""): labelled "no matching product in the KB"
        return value if value is None or value == NIL_ENTITY else _as_id(value)


class Candidate(BaseModel):
    """One retrieved entity with the score of every channel that saw it."""

    model_config = ConfigDict(extra="forbid")

    entity_id: str
    score: float
    channel_scores: dict[str, float] = Field(default_factory=dict)
    contradicted: bool = False  # an extracted attribute value contradicts this entity's


class MentionAttribute(BaseModel):
    """An attribute value the linker read from the mention (text or photo) or was given (gold)."""

    model_config = ConfigDict(extra="forbid")

    key: str
    value: str  # normalised
    source: str  # text | ocr | gold
    confidence: float


class LinkResult(BaseModel):
    """The linker's answer for one mention."""

    mention_id: str
    entity_id: str  # NIL_ENTITY when the linker answers "no matching product"
    score: float
    candidates: list[Candidate]
    gold_entity_id: str | None = None
    attributes: list[MentionAttribute] = Field(default_factory=list)
    filtered: bool = False  # the attribute filter passed over a higher-ranked, contradicted candidate
    errors: list[str] = Field(default_factory=list)  # per-record problems, e.g. an unreadable image
    # the calibrated probability that `best_entity_id` is right (None: no disambiguation model)
    confidence: float | None = None
    # the answer before the no-match rules ("" without candidates): what a person reviewing a
    # withheld answer would look at first
    best_entity_id: str = ""


ENTITY_ARROW_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("name", pa.string()),
        ("category", pa.string()),
        ("description", pa.string()),
        ("features", pa.list_(pa.string())),
        ("attributes", pa.map_(pa.string(), pa.string())),
        ("image_uris", pa.list_(pa.string())),
    ]
)

LINK_RESULT_ARROW_SCHEMA = pa.schema(
    [
        ("mention_id", pa.string()),
        ("entity_id", pa.string()),
        ("score", pa.float32()),
        ("gold_entity_id", pa.string()),
        ("candidate_ids", pa.list_(pa.string())),
        ("candidate_scores", pa.list_(pa.float32())),
        # one list per channel, aligned with candidate_ids; NaN where a channel had no signal
        ("text_scores", pa.list_(pa.float32())),
        ("image_scores", pa.list_(pa.float32())),
        ("lexical_scores", pa.list_(pa.float32())),
        ("chargram_scores", pa.list_(pa.float32())),
        ("name_scores", pa.list_(pa.float32())),
        ("attribute_scores", pa.list_(pa.float32())),
        ("price_scores", pa.list_(pa.float32())),
        ("numbers_scores", pa.list_(pa.float32())),
        ("codes_scores", pa.list_(pa.float32())),
        ("contradicted", pa.list_(pa.bool_())),
        # disambiguation of the first fusion.top_n candidates (NaN beyond, or without a model)
        ("text_stream_scores", pa.list_(pa.float32())),
        ("image_stream_scores", pa.list_(pa.float32())),
        ("final_scores", pa.list_(pa.float32())),
        (
            "attributes",
            pa.list_(
                pa.struct([("key", pa.string()), ("value", pa.string()), ("source", pa.string()), ("confidence", pa.float32())])
            ),
        ),
        ("filtered", pa.bool_()),
        ("errors", pa.list_(pa.string())),
        ("confidence", pa.float32()),
        ("best_entity_id", pa.string()),
    ]
)


def entities_to_table(entities: list[Entity]) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {**e.model_dump(), "attributes": list(e.attributes.items())}
            for e in entities
        ],
        schema=ENTITY_ARROW_SCHEMA,
    )


def attribute_pairs(table: pa.Table) -> tuple[pa.Array, pa.Array, np.ndarray] | None:
    """An entities table's attributes flattened, one entry per (row, attribute) in attribute
    order: (keys, values, owner row of each); None when no row has any. Arrow throughout: what
    the KB-wide readers (listed prices, code texts) build on instead of a dict per product. A
    slice's offset is respected."""
    column = table.column("attributes").combine_chunks()
    if not len(column) or column.null_count == len(column):
        return None
    column = column.cast(pa.list_(pa.struct([("key", pa.string()), ("value", pa.string())])))
    pairs = column.flatten()
    return pairs.field(0), pairs.field(1), pc.list_parent_indices(column).to_numpy()


def entities_from_table(table: pa.Table) -> list[Entity]:
    rows = table.to_pylist()
    return [Entity(**{**row, "attributes": dict(row["attributes"] or [])}) for row in rows]


@dataclass
class MentionEvidence:
    """What disambiguation needs of a mention besides its candidates."""

    mention: Mention
    attribute_keys: list[str]  # keys of the attribute values read from it (statements about these come first)
    photos: np.ndarray  # [n_photos, image_dim] raw image-tower features
