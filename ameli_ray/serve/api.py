"""The HTTP API of online linking: request and response bodies (pydantic; FastAPI publishes them
at /docs). Ray-free: the Serve deployments (`serve/app.py`), the tests and the load bench share it.

A review is named like a record of the JSONL corpus (`id`, `text`, `surface`, `image_uris`), plus
`images` for photos sent inline (base64). Limits that depend on the operator's configuration
(photos per review, text length, reviews per batch) are checked by the ingress against
`serve.*`, with a 4xx that says which one.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field, field_validator

# the per-request stream weights: each between 0 and MAX_WEIGHT, not all zero (renormalised)
MAX_WEIGHT = 10.0


class StreamWeights(BaseModel):
    """Fusion weights for one request, instead of the model's dev-tuned ones (renormalised)."""

    model_config = ConfigDict(extra="forbid")

    retrieval: float = Field(..., ge=0, le=MAX_WEIGHT)
    text: float = Field(..., ge=0, le=MAX_WEIGHT)
    image: float = Field(..., ge=0, le=MAX_WEIGHT)

    @field_validator("retrieval", "text", "image")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    def normalised(self) -> dict[str, float]:
        total = self.retrieval + self.text + self.image
        if total <= 0:
            raise ValueError("stream weights: at least one must be above zero")
        return {"retrieval": self.retrieval / total, "text": self.text / total, "image": self.image / total}


class LinkRequest(BaseModel):
    """One review."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "id": "r-1", "text": "Love the 256GB blue one, battery lasts two days.", "surface": "Aero X2",
        "image_uris": [], "images": [],
    }]})

    id: str | None = Field(None, max_length=256, description="the review's id (echoed back); generated when absent")
    text: str = Field(..., min_length=1, description="the review's text")
    surface: str = Field("", max_length=1000, description="the product name as the review writes it, if known")
    image_uris: list[str] = Field([], description="s3:// photos under a prefix the operator allowed")
    images: list[str] = Field([], description="photos inline, base64 (JPEG, PNG, WebP…)")
    weights: StreamWeights | None = Field(None, description="fusion weights for this request (retrieval/text/image)")
    candidates: int | None = Field(None, ge=1, description="how many candidates to list (at most serve.max_candidates)")

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("text is blank")
        return value


class LinkBatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reviews: list[LinkRequest] = Field(..., min_length=1)


class AttributeRead(BaseModel):
    """An attribute value read from the review's text or photos (normalised)."""

    key: str
    value: str
    source: str  # text | ocr
    confidence: float


class CandidateOut(BaseModel):
    entity_id: str
    name: str
    score: float | None = Field(None, description="the fused score the answer was chosen on (top candidates only)")
    retrieval: float = Field(..., description="the retrieval score")
    text_stream: float | None = None
    image_stream: float | None = None
    channels: dict[str, float] = Field({}, description="the retrieval channels' raw scores")
    matched: list[str] = Field([], description="keys whose value read from the review agrees with the product's")
    contradicted: list[str] = Field([], description="keys whose value read from the review contradicts the product's")


class Versions(BaseModel):
    kb: str = Field(..., description="the KB version URI that answered")
    kb_version: str
    model: str | None = Field(None, description="the disambiguation model version URI (None: retrieval and filter only)")
    model_version: str | None = None


class LinkResponse(BaseModel):
    id: str
    entity_id: str | None = Field(..., description="the product, or null for 'no matching product'")
    no_match: bool
    confidence: float | None = Field(None, description="calibrated probability that the best candidate is right")
    best_entity_id: str | None = Field(None, description="the best candidate before the no-match rules")
    filtered: bool = Field(False, description="the attribute filter passed over a contradicted top candidate")
    candidates: list[CandidateOut]
    attributes: list[AttributeRead]
    errors: list[str] = Field([], description="photos that could not be used (the review is linked on the rest)")
    versions: Versions


class LinkBatchResponse(BaseModel):
    results: list[LinkResponse]


class VersionResponse(BaseModel):
    service: str
    versions: Versions
    refused: list[str] = Field([], description="updates that were refused (the versions above kept serving)")


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody
