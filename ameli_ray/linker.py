"""The Linker: mentions in, LinkResults out. The same object answers a unit test, a Ray Data
batch and (later) a Serve request, so quality measured offline is quality served online.

It is split in two halves because they want different hardware and state: `MentionEncoder`
holds the encoders (GPU-friendly, no KB), `Linker` holds the KB and its indexes (memory, CPU).
Ray Data runs them as two actor pools; in-process they are simply called one after the other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ameli_ray.config import AmeliConfig
from ameli_ray.encoders import ImageEncoder, TextEncoder
from ameli_ray.encoders.image import embed_loaded, load_image_lists, split_by_owner
from ameli_ray.errors import ConfigError
from ameli_ray.kb.assets import KBManifest, KnowledgeBase
from ameli_ray.retrieval.retriever import CandidateRetriever, MentionQuery
from ameli_ray.attributes.evidence import mention_attributes, read_text, wants_mention_ocr
from ameli_ray.attributes.extract import prepare_agreement
from ameli_ray.attributes.ocr import make_ocr_engine
from ameli_ray.schema import NIL_ENTITY, Candidate, LinkResult, Mention, MentionAttribute
from ameli_ray.storage import ObjectStore

if TYPE_CHECKING:
    from ameli_ray.disambiguation.model import Disambiguator, MentionEvidence


@dataclass
class EncodedMention:
    mention: Mention
    query: MentionQuery
    errors: list[str] = field(default_factory=list)
    ocr: list[tuple[str, float]] = field(default_factory=list)  # (line, confidence) read from its photos


class MentionEncoder:
    def __init__(
        self, config: AmeliConfig, store: ObjectStore,
        text_encoder: TextEncoder | None = None, image_encoder: ImageEncoder | None = None,
    ):
        self.config = config
        self.store = store
        self.text = text_encoder or TextEncoder(config.text_encoder, store)
        self.image = image_encoder or ImageEncoder(config.image_encoder, store)
        self.ocr = make_ocr_engine(config.ocr) if wants_mention_ocr(config) else None

    def encode(self, mentions: list[Mention]) -> list[EncodedMention]:
        text_emb = embed_mention_texts(mentions, self.text)
        # each photo is fetched and decoded once, then both embedded and read
        loaded, errors = load_image_lists(
            [m.image_uris for m in mentions], self.store, self.config.images,
            self.config.image_encoder.max_images_per_mention,
        )
        emb, owner = embed_loaded(loaded, self.image)
        photos = split_by_owner(emb, owner, len(mentions))
        ocr, ocr_errors = read_text(loaded, self.ocr, self.config) if self.ocr is not None else ([[]] * len(mentions), [[]] * len(mentions))
        return [
            EncodedMention(
                m, MentionQuery(text=m.text, text_emb=text_emb[i], image_emb=photos[i]), errors[i] + ocr_errors[i], ocr[i]
            )
            for i, m in enumerate(mentions)
        ]


def embed_mention_texts(mentions: list[Mention], encoder: TextEncoder) -> np.ndarray:
    return encoder.encode([m.text for m in mentions])


def check_compatible(manifest: KBManifest, config: AmeliConfig, encoder: "MentionEncoder | None" = None) -> None:
    """The mention encoders must embed into the KB's spaces; say which differs if not.

    Without an encoder at hand (the Ray driver) the configured model ids are compared; with one,
    also the text dimension and the image weights' fingerprint.
    """
    m = manifest
    text_model = config.text_encoder.model
    image_model = ImageEncoder.model_id_for(config.image_encoder)
    problems = []
    if m.text_model != text_model or (encoder is not None and m.text_dim != encoder.text.dim):
        problems.append(f"text encoder {m.text_model!r} (dim {m.text_dim}), the linker has {text_model!r}")
    if m.image_model != image_model or (encoder is not None and m.image_fingerprint != encoder.image.fingerprint):
        fp = f", weights {encoder.image.fingerprint}" if encoder is not None else ""
        problems.append(
            f"image encoder {m.image_model!r} (weights {m.image_fingerprint}), the linker has {image_model!r}{fp}"
        )
    if problems:
        raise ConfigError(f"KB {m.name}/{m.version} was built with " + "; ".join(problems))


class Linker:
    """Retrieval, the attribute filter and, given a disambiguator, disambiguation and fusion."""

    def __init__(self, kb: KnowledgeBase, config: AmeliConfig, disambiguator: "Disambiguator | None" = None,
                 gold_candidates: bool = False):
        self.kb = kb
        self.config = config
        self.retriever = CandidateRetriever(kb, config.retrieval, attribute_depth=config.attributes.filter_depth)
        self.disambiguator = disambiguator
        # evaluation only (the "gold candidates" upper bound): the gold product is put among the
        # disambiguated candidates when retrieval missed it
        self.gold_candidates = gold_candidates
        prepare_agreement(kb.vocabulary)  # per-KB lookup tables, built once here rather than on the first mention

    def link(self, encoded: list[EncodedMention]) -> list[LinkResult]:
        results = self.retrieve(encoded)
        if self.disambiguator is None:
            return results
        return self.disambiguator.rerank([evidence_of(e) for e in encoded], results)

    def retrieve(self, encoded: list[EncodedMention]) -> list[LinkResult]:
        """Retrieval and the attribute filter alone: the answer without a disambiguation model."""
        source = self.config.attributes.source
        for enc in encoded:
            enc.query.attributes = mention_attributes(enc.mention, enc.ocr, self.kb.vocabulary, source)
        candidates = self.retriever.retrieve([e.query for e in encoded])
        if self.gold_candidates:
            candidates = [self._with_gold(c, e.mention.gold_entity_id) for c, e in zip(candidates, encoded)]
        results = []
        for enc, cands in zip(encoded, candidates):
            best, filtered = self._answer(cands)
            results.append(
                LinkResult(
                    mention_id=enc.mention.id,
                    # disambiguation and the "no match" threshold come with issue 4
                    entity_id=best.entity_id if best else NIL_ENTITY,
                    score=best.score if best else -math.inf,
                    candidates=cands,
                    gold_entity_id=enc.mention.gold_entity_id,
                    attributes=[
                        MentionAttribute(key=a.key, value=a.value, source=a.source, confidence=a.confidence)
                        for a in enc.query.attributes
                    ],
                    filtered=filtered,
                    errors=enc.errors,
                )
            )
        return results

    def _with_gold(self, cands: list[Candidate], gold: str | None) -> list[Candidate]:
        n = self.config.disambiguation.fusion.top_n
        ids = [c.entity_id for c in cands]
        if not gold or gold in ids[:n] or gold not in self.kb.row_of:
            return cands
        if gold in ids:
            moved = cands[ids.index(gold)]
            rest = [c for c in cands if c.entity_id != gold]
        else:
            floor = min((c.score for c in cands[:n]), default=0.0)
            moved, rest = Candidate(entity_id=gold, score=floor), list(cands)
        return rest[: n - 1] + [moved] + rest[n - 1 :]

    def _answer(self, cands: list[Candidate]) -> tuple[Candidate | None, bool]:
        """The paper's attribute filter: the best candidate no extracted value contradicts
        (within `filter_depth`); the top one when every candidate there is contradicted."""
        if not cands:
            return None, False
        if self.config.attributes.filter:
            for cand in cands[: self.config.attributes.filter_depth]:
                if not cand.contradicted:
                    return cand, cand is not cands[0]
        return cands[0], False


def evidence_of(enc: EncodedMention) -> "MentionEvidence":
    from ameli_ray.disambiguation.model import MentionEvidence

    return MentionEvidence(enc.mention, [a.key for a in enc.query.attributes], enc.query.image_emb)


def make_disambiguator(kb: KnowledgeBase, config: AmeliConfig, store: ObjectStore, device: str = "cpu") -> "Disambiguator | None":
    """The configured disambiguation model over this KB, or None when none is configured."""
    if not config.disambiguation.model:
        return None
    from ameli_ray.disambiguation.model import Disambiguator, load_model

    model = load_model(config.disambiguation.model, store, config.disambiguation, device)
    return Disambiguator(model, kb, config.disambiguation)


# channel of Candidate.channel_scores -> its column of LINK_RESULT_ARROW_SCHEMA (NaN = absent)
_CHANNEL_COLUMNS = {
    "text": "text_scores", "image": "image_scores", "lexical": "lexical_scores", "attributes": "attribute_scores",
    "text_stream": "text_stream_scores", "image_stream": "image_stream_scores", "final": "final_scores",
}


def link_result_from_row(row: dict) -> LinkResult:
    """The inverse of `link_result_row` (NaN channel scores are the absent ones)."""
    cands = []
    for i, entity_id in enumerate(row["candidate_ids"]):
        scores = {name: row[col][i] for name, col in _CHANNEL_COLUMNS.items() if row.get(col) is not None}
        cands.append(
            Candidate(
                entity_id=entity_id, score=row["candidate_scores"][i],
                channel_scores={k: float(v) for k, v in scores.items() if v is not None and not math.isnan(v)},
                contradicted=row["contradicted"][i],
            )
        )
    return LinkResult(
        mention_id=row["mention_id"], entity_id=row["entity_id"], score=row["score"], candidates=cands,
        gold_entity_id=row["gold_entity_id"], attributes=[MentionAttribute(**a) for a in row["attributes"]],
        filtered=row["filtered"], errors=row["errors"],
    )


def link_result_row(result: LinkResult) -> dict:
    """A LinkResult as a row of LINK_RESULT_ARROW_SCHEMA."""
    nan = float("nan")
    cands = result.candidates
    return {
        "mention_id": result.mention_id,
        "entity_id": result.entity_id,
        "score": result.score,
        "gold_entity_id": result.gold_entity_id,
        "candidate_ids": [c.entity_id for c in cands],
        "candidate_scores": [c.score for c in cands],
        **{col: [c.channel_scores.get(name, nan) for c in cands] for name, col in _CHANNEL_COLUMNS.items()},
        "contradicted": [c.contradicted for c in cands],
        "attributes": [a.model_dump() for a in result.attributes],
        "filtered": result.filtered,
        "errors": list(result.errors),
    }
