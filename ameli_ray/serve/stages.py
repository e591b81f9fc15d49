"""What each Serve deployment does, without Ray: the three stages over the same linking core as
the batch job (`linker.load_linker`, `Disambiguator.stream_scores`, `fusion.final_answer`),
the versions each holds (hot swap), and the response. `serve/app.py` wraps these in deployments.

    retrieval       mention encoders (text, photos, OCR), attributes, retrieval, attribute views
    disambiguation  text stream + image stream over the top candidates
    fusion          fusion with the model's (or the request's) weights, filter, no-match answer

Versions: a request is answered by one KB version and one model version from end to end. The
retrieval stage picks them (its current ones) and names them in its payload (`Retrieved.key`);
the later stages answer with the same ones: the one they hold, or, in the moments of a swap when
they have not switched yet (or already have), the other one they still hold or load on demand.
Each stage keeps the last `KEEP` versions, so requests in flight finish on the version they
started on while new ones go to the new version.
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np

from ameli_ray.config import AmeliConfig, with_model
from ameli_ray.schema import NIL_ENTITY, LinkResult, Mention
from ameli_ray.serve.api import AttributeRead, CandidateOut, LinkResponse, Versions
from ameli_ray.storage import ObjectStore

_log = logging.getLogger(__name__)
KEEP = 2

T = TypeVar("T")


def version_key(kb_uri: str, model_uri: str | None) -> str:
    return f"{kb_uri}|{model_uri or ''}"


def split_key(key: str) -> tuple[str, str | None]:
    kb, _, model = key.partition("|")
    return kb, model or None


def resolve_versions(config: AmeliConfig, kb: str, model: str | None) -> Versions:
    """The version URIs that `kb` and `model` (roots or versions) name now (LATEST followed)."""
    from ameli_ray.kb.assets import read_manifest

    store = ObjectStore(config.s3)
    kb_uri, kb_manifest = read_manifest(kb, store)
    model_uri = model_version = None
    if model:
        from ameli_ray.disambiguation.manifest import read_model_manifest

        model_uri, model_manifest = read_model_manifest(model, store)
        model_version = model_manifest.version
    return Versions(kb=kb_uri, kb_version=kb_manifest.version, model=model_uri, model_version=model_version)


class VersionCache(Generic[T]):
    """The versions a replica holds, by key; loads run off the event loop, one per key at a time.

    `switch` makes a version current (new requests use it); `get` returns a named version (loading
    it on demand when the replica does not hold it). A failed load leaves everything as it was."""

    def __init__(self, load: Callable[[str], T], keep: int = KEEP):
        self._load = load
        self.keep = keep
        self.held: OrderedDict[str, T] = OrderedDict()
        self.current: str | None = None
        self._loading: dict[str, asyncio.Future] = {}

    async def get(self, key: str | None = None) -> tuple[str, T]:
        key = key or self.current
        if key is None:
            raise RuntimeError("no version loaded yet")
        if key in self.held:
            self.held.move_to_end(key)
            return key, self.held[key]
        return key, await self._load_once(key)

    async def switch(self, key: str) -> T:
        assets = self.held[key] if key in self.held else await self._load_once(key)
        self.current = key
        self.held.move_to_end(key)
        return assets

    async def _load_once(self, key: str) -> T:
        if key in self._loading:
            return await asyncio.shield(self._loading[key])
        future = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            assets = await asyncio.to_thread(self._load, key)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody else waits
            raise
        finally:
            self._loading.pop(key, None)
        self.held[key] = assets
        while len(self.held) > self.keep:
            oldest = next((k for k in self.held if k not in (key, self.current)), None)
            if oldest is None:
                break
            self.held.pop(oldest)  # requests still using it hold their own reference
        future.set_result(assets)
        return assets


# -- the retrieval stage -------------------------------------------------------------------------


@dataclass
class Review:
    """One review as the ingress hands it on: its record and its photos, already checked."""

    mention: Mention
    photos: list  # (source, PIL image)


@dataclass
class Retrieved:
    key: str
    versions: Versions
    result: LinkResult
    evidence: Any  # schema.MentionEvidence
    views: dict[str, tuple[str, list[str], list[str]]] = field(default_factory=dict)  # id -> name, matched, contradicted
    has_model: bool = False


@dataclass
class RetrievalAssets:
    versions: Versions
    loaded: Any  # linker.LoadedLinker, with mention encoders, no disambiguation model
    has_model: bool


def load_retrieval(config: AmeliConfig, key: str, ocr_threads: int | None = None) -> RetrievalAssets:
    from ameli_ray.linker import load_linker

    kb, model = split_key(key)
    versions = resolve_versions(config, kb, model)
    loaded = load_linker(
        with_model(config, versions.model), versions.kb, encoder=True, disambiguation=False, ocr_threads=ocr_threads
    )
    return RetrievalAssets(versions, loaded, versions.model is not None)


def retrieve(assets: RetrievalAssets, key: str, reviews: list[Review], n_views: int) -> list[Retrieved]:
    from ameli_ray.linker import evidence_of

    encoder = assets.loaded.encoder
    encoded = encoder.encode_loaded([r.mention for r in reviews], [r.photos for r in reviews], [[] for _ in reviews])
    results = assets.loaded.linker.retrieve(encoded)
    kb = assets.loaded.kb
    return [
        Retrieved(key, assets.versions, result, evidence_of(enc), candidate_views(kb, result, n_views), assets.has_model)
        for result, enc in zip(results, encoded)
    ]


def candidate_views(kb, result: LinkResult, n: int) -> dict[str, tuple[str, list[str], list[str]]]:
    """Name, and the keys read from the review that agree with / contradict each of the first `n`
    candidates (the linker's own rule, `attributes.extract.relation`)."""
    from ameli_ray.attributes.extract import AGREE, CONTRADICT, relation
    from ameli_ray.attributes.normalize import normalize_key

    views = {}
    for cand in result.candidates[:n]:
        entity = kb.entities[kb.row_of[cand.entity_id]]
        values = {normalize_key(k): v for k, v in entity.attributes.items()}
        matched, contradicted = [], []
        for a in result.attributes:
            value = values.get(normalize_key(a.key))
            if value is None:
                continue
            verdict = relation(a.key, a.value, value)[0]
            if verdict == AGREE and a.key not in matched:
                matched.append(a.key)
            elif verdict == CONTRADICT and a.key not in contradicted:
                contradicted.append(a.key)
        views[cand.entity_id] = (entity.name, matched, contradicted)
    return views


# -- the disambiguation stage --------------------------------------------------------------------


def load_disambiguation(config: AmeliConfig, key: str, device: str = "cpu"):
    """The disambiguator of the key's model over its KB (no mention encoders: evidence arrives)."""
    from ameli_ray.linker import load_linker

    kb, model = split_key(key)
    if model is None:
        return None
    return load_linker(with_model(config, model), kb, encoder=False, retrieval=False, device=device).disambiguator


def stream_scores(disambiguator, items: list[Retrieved]) -> list[tuple[np.ndarray, np.ndarray]]:
    return disambiguator.stream_scores([i.evidence for i in items], [i.result for i in items])


# -- the fusion stage ----------------------------------------------------------------------------


@dataclass
class FusionAssets:
    fusion: Any  # fusion.FusionModel, None without a model
    top_n: int


def load_fusion(config: AmeliConfig, key: str) -> FusionAssets:
    _, model = split_key(key)
    if model is None:
        return FusionAssets(None, config.disambiguation.fusion.top_n)
    from ameli_ray.disambiguation.manifest import read_model_manifest

    fusion = read_model_manifest(model, ObjectStore(config.s3))[1].fusion
    return FusionAssets(fusion, fusion.top_n or config.disambiguation.fusion.top_n)


def answer(assets: FusionAssets, item: Retrieved, scores: tuple[np.ndarray, np.ndarray] | None,
           weights: dict[str, float] | None) -> LinkResult:
    """The final answer: with a model, fusion (the request's stream weights if it gave some),
    the filter and the no-match rules; without one, retrieval and the filter (already applied)."""
    if assets.fusion is None or scores is None:
        return item.result
    from ameli_ray.fusion import final_answer, stream_scores_of

    fusion = assets.fusion if weights is None else assets.fusion.model_copy(update={"weights": weights, "gate": 0.0})
    return final_answer(item.result, stream_scores_of(item.result, *scores, assets.top_n), fusion, assets.top_n)


# -- the response --------------------------------------------------------------------------------


def new_id() -> str:
    return f"req-{uuid.uuid4().hex[:16]}"


def response(result: LinkResult, item: Retrieved, n_candidates: int, errors: list[str] | None = None) -> LinkResponse:
    """The API's answer: the top candidates ordered by the fused score where fusion scored them
    (then by retrieval), with their per-stream scores and the attributes that matched or
    contradicted each."""

    def num(value: float | None) -> float | None:
        return None if value is None or not math.isfinite(value) else float(value)

    cands = list(result.candidates)
    scored = [c for c in cands if "final" in c.channel_scores]
    rest = [c for c in cands if "final" not in c.channel_scores]
    ordered = sorted(scored, key=lambda c: -c.channel_scores["final"]) + rest
    out = []
    for c in ordered[:n_candidates]:
        name, matched, contradicted = item.views.get(c.entity_id, ("", [], []))
        channels = {k: float(v) for k, v in c.channel_scores.items()
                    if k not in ("text_stream", "image_stream", "final") and math.isfinite(v)}
        out.append(CandidateOut(
            entity_id=c.entity_id, name=name, score=num(c.channel_scores.get("final")), retrieval=float(c.score),
            text_stream=num(c.channel_scores.get("text_stream")), image_stream=num(c.channel_scores.get("image_stream")),
            channels=channels, matched=matched, contradicted=contradicted,
        ))
    no_match = result.entity_id == NIL_ENTITY
    return LinkResponse(
        id=result.mention_id, entity_id=None if no_match else result.entity_id, no_match=no_match,
        confidence=num(result.confidence), best_entity_id=result.best_entity_id or None, filtered=result.filtered,
        candidates=out,
        attributes=[AttributeRead(key=a.key, value=a.value, source=a.source, confidence=a.confidence) for a in result.attributes],
        errors=list(errors or []) + list(result.errors), versions=item.versions,
    )


async def pipeline(review: Review, weights: dict[str, float] | None,
                   retrieve_one: Callable[[Review], Awaitable[Retrieved]],
                   score_one: Callable[[Retrieved], Awaitable[tuple[np.ndarray, np.ndarray]]],
                   answer_one: Callable[[Retrieved, Any, dict | None], Awaitable[LinkResult]],
                   n_candidates: int) -> LinkResponse:
    """One review through the three stages (the ingress passes the deployments' handles)."""
    item = await retrieve_one(review)
    scores = await score_one(item) if item.has_model and item.result.candidates else None
    result = await answer_one(item, scores, weights)
    return response(result, item, n_candidates)
