"""Candidate retrieval: nine channels, one fused ranking.

- text:    cosine between the mention's text embedding and each entity's (FAISS);
- image:   an entity's score is the max cosine over (mention photo, entity image) pairs, as in the paper;
- lexical: BM25 over entity name, attributes and description;
- chargram: char n-gram TF-IDF cosine of the mention's name and text with the entity's name and
  attribute values (`retrieval.chargram`): model codes across separators and spellings;
- name:    the same index queried with the mention's name alone (its surface form), where it has
  one. With the text, a long description outweighs the few n-grams of the name that decide ("adobe
  premiere pro cs3 upgrade" against "... cs3 ... full version for windows"); alone, a bare series
  name says little. Which deserves weight is the dev fit's to say: summing the two cosines ranks
  Amazon->Google's offers 0.756 top-1 against 0.685 and 0.733 for either alone, Walmart->Amazon's
  0.835 against 0.887 with the text (char TF-IDF over all mentions, BENCHMARKS.md, stop 26).
  Both queries go through one sparse product: over Walmart->Amazon's 22,074 products the pair
  costs 6.8 ms per review against 4.6 ms for name + text alone (ad-hoc, BENCHMARKS.md, stop 26);
- price:   closeness of the price the review states to each product's listed price
  (`retrieval.price`), where it states one; it re-scores the pool and proposes nobody;
- numbers: the share of the numbers in the review's name (editions, versions, years) that each
  product's name has (`retrieval.numbers`), where its name has any; it too only re-scores;
- codes:   the share of the model codes in the review's text ("modelno: 74030", "DCS-1100") that
  each product's name and attribute values hold ("74030" inside "SWI74030", or "34992" inside
  "LP34992"; `retrieval.codes`), where it writes any; it only re-scores;
- attributes: agreement of the attribute values read from the mention with each entity's values
  (sum of confidences agreeing minus contradicting, over the total confidence read: -1..1).
  As in the paper, values are first matched back to the top candidates: only a value that agrees
  with at least one of the `attribute_depth` best candidates of the attribute-free ranking counts.
  A value no plausible candidate has (another seller's dimensions, a junk brand, a misread label)
  would otherwise contradict the right product as readily as the wrong ones.

Each channel proposes its own top `pool_per_channel`; every proposed entity is then scored by
every channel exactly, and the weighted sum ranks the pool. Cosines enter as they are; BM25,
unbounded, is divided by its best score in the pool. Scales are kept rather than standardised on
purpose: a channel whose scores barely differ (the text of a review that names no colour, across
the colours of one phone) must not be stretched into a strong vote against the channel that does
tell them apart (the photo).
A channel with no signal for a mention (no photos, no known token) drops out and the remaining
weights are renormalised, so a text-only mention is not penalised for lacking photos.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from ameli_ray.attributes.extract import ExtractedAttribute, agreement_scores
from ameli_ray.config import FusionWeights, RetrievalSettings
from ameli_ray.kb.assets import KnowledgeBase, center_images
from ameli_ray.retrieval import index as vindex
from ameli_ray.retrieval.chargram import query_text
from ameli_ray.retrieval.codes import code_share, review_codes
from ameli_ray.retrieval.numbers import number_keys
from ameli_ray.retrieval.price import closeness as price_closeness
from ameli_ray.retrieval.price import stated_price
from ameli_ray.schema import Candidate


@dataclass
class MentionQuery:
    text: str
    text_emb: np.ndarray  # [text_dim], L2-normalised
    image_emb: np.ndarray  # [n_photos, image_dim], raw encoder output (centred here)
    attributes: list[ExtractedAttribute] = field(default_factory=list)
    surface: str = ""  # the product name as the review writes it (the char n-gram channel reads it)

    @functools.cached_property
    def price(self) -> float | None:
        """The price the text states (`retrieval.price.stated_price`); None: none."""
        return stated_price(self.text)

    @functools.cached_property
    def codes(self) -> frozenset[str]:
        """The model codes the text and the name write (`retrieval.codes.review_codes`)."""
        return review_codes(f"{self.surface} {self.text}")


CHANNELS = ("text", "image", "lexical", "chargram", "name", "attributes", "price", "numbers", "codes")


class CandidateRetriever:
    """`weights`: the channel weights (those fitted on dev and stored with a model, see
    `retrieval.fitting`); the settings' own when None."""

    def __init__(self, kb: KnowledgeBase, settings: RetrievalSettings, attribute_depth: int = 10,
                 weights: FusionWeights | None = None):
        self.kb = kb
        self.settings = settings
        self.attribute_depth = attribute_depth
        self.weights = weights or settings.weights
        # read now (seconds over a million products), not on the first review that needs them
        if settings.price:
            _ = kb.prices
        if settings.numbers:
            _ = kb.name_numbers
        if settings.codes:
            _ = kb.code_texts

    def retrieve(self, queries: list[MentionQuery]) -> list[list[Candidate]]:
        if not queries:
            return []
        s = self.settings
        pool_k = s.pool_per_channel
        text_scores, text_ids = vindex.search(self.kb.text_index, np.stack([q.text_emb for q in queries]), pool_k)
        image_hits = self._image_pools(queries, pool_k)
        out = []
        for qi, query in enumerate(queries):
            proposals = [text_ids[qi][text_ids[qi] >= 0]]
            lex_all = None
            if s.lexical and self.kb.lexical is not None:
                lex_all = self.kb.lexical.scores(query.text)
                if lex_all.any():
                    top = min(pool_k, len(lex_all))
                    best = np.argpartition(-lex_all, top - 1)[:top]
                    proposals.append(best[lex_all[best] > 0])
            grams_all = name_all = None
            if s.chargram and self.kb.chargram is not None:
                surface = query.surface.strip()
                full = query_text(query.surface, query.text)
                if surface and surface != query.text.strip():  # a name that is the whole text would repeat the channel
                    grams_all, name_all = self.kb.chargram.scores_many([full, surface])  # one sparse product for both
                else:
                    grams_all = self.kb.chargram.scores(full)
                for scores in (grams_all, name_all):
                    if scores is not None and scores.any():
                        top = min(pool_k, len(scores))
                        best = np.argpartition(-scores, top - 1)[:top]
                        proposals.append(best[scores[best] > 0])
            photos = center_images(query.image_emb, self.kb.image_center) if len(query.image_emb) else None
            if photos is not None:
                proposals.append(image_hits[qi])
            pool = np.unique(np.concatenate(proposals)).astype(np.int64)
            channels: dict[str, np.ndarray] = {"text": self.kb.text_emb[pool] @ query.text_emb}
            if photos is not None and len(self.kb.image_emb):
                channels["image"] = self.kb.image_scores(photos, pool)
            if lex_all is not None and lex_all.any():
                channels["lexical"] = lex_all[pool]
            if grams_all is not None and grams_all.any():
                channels["chargram"] = grams_all[pool]
            if name_all is not None and name_all.any():
                channels["name"] = name_all[pool]
            if query.price is not None and s.price:
                near = price_closeness(query.price, self.kb.prices[pool], s.price_span)
                if not np.isnan(near).all():
                    channels["price"] = near
            numbers = number_keys(query.surface) if s.numbers else set()
            if numbers:
                channels["numbers"] = self.kb.name_numbers.shared(numbers, pool)
            codes = query.codes if s.codes else frozenset()
            if codes:
                channels["codes"] = code_share(codes, self.kb.code_texts, pool)
            contradicted = np.zeros(len(pool), dtype=bool)
            useful = self._discriminating(query.attributes, pool, channels)
            if useful:
                score, contradicted = agreement_scores(useful, pool, self.kb.vocabulary)
                total = sum(a.confidence for a in useful)
                channels["attributes"] = np.asarray(score, dtype=np.float64) / max(total, 1e-9)
            out.append(self._fuse(pool, channels, np.asarray(contradicted, dtype=bool)))
        return out

    def _discriminating(
        self, attributes: list[ExtractedAttribute], pool: np.ndarray, channels: dict[str, np.ndarray]
    ) -> list[ExtractedAttribute]:
        """The values that agree with at least one of the top candidates before attributes count."""
        if not attributes:
            return []
        order = np.argsort(-self._fused(channels), kind="stable")[: self.attribute_depth]
        top = pool[order]
        return [a for a in attributes if agreement_scores([a], top, self.kb.vocabulary)[0].max() > 0]

    def _image_pools(self, queries: list[MentionQuery], pool_k: int) -> list[np.ndarray]:
        """Entities proposed by the image channel, per query (one FAISS call for all photos)."""
        counts = [len(q.image_emb) for q in queries]
        if not sum(counts) or not len(self.kb.image_emb):
            return [np.zeros(0, np.int64) for _ in queries]
        photos = center_images(np.concatenate([q.image_emb for q in queries if len(q.image_emb)]), self.kb.image_center)
        # several images per entity: ask for more image hits so the entity pool is deep enough
        _, ids = vindex.search(self.kb.image_index, photos, pool_k * 2)
        result, start = [], 0
        for n in counts:
            hits = ids[start : start + n].ravel()
            start += n
            result.append(np.unique(self.kb.image_owner[hits[hits >= 0]]).astype(np.int64))
        return result

    def _fused(self, channels: dict[str, np.ndarray]) -> np.ndarray:
        return fuse_channels(channels, self.weights)

    def _fuse(self, pool: np.ndarray, channels: dict[str, np.ndarray], contradicted: np.ndarray) -> list[Candidate]:
        fused = self._fused(channels)
        top = np.argsort(-fused, kind="stable")[: self.settings.top_k]
        ids = self.kb.ids
        return [
            Candidate(
                entity_id=ids[int(pool[i])],
                score=float(fused[i]),
                channel_scores={name: float(raw[i]) for name, raw in channels.items()},
                contradicted=bool(contradicted[i]),
            )
            for i in top
        ]


def fuse_channels(channels: dict[str, np.ndarray], weights: FusionWeights) -> np.ndarray:
    """The weighted sum of the present channels' normalised scores, weights renormalised over
    the present ones (a text-only mention is not penalised for lacking photos)."""
    w = weights.model_dump()
    fused = np.zeros(len(next(iter(channels.values()))), dtype=np.float64)
    total = sum(w[c] for c in channels)
    for name, raw in channels.items():
        if total <= 0:
            break
        fused += (w[name] / total) * normalise(name, raw)
    return fused


def normalise(channel: str, raw: np.ndarray) -> np.ndarray:
    """Cosines as they are, BM25 over its pool maximum; NaN (an entity without images) counts as
    the pool's lowest score."""
    x = np.asarray(raw, dtype=np.float64)
    if np.isnan(x).all():
        return np.zeros_like(x)
    x = np.where(np.isnan(x), np.nanmin(x), x)
    if channel == "lexical":
        top = x.max()
        return x / top if top > 0 else np.zeros_like(x)
    return x
