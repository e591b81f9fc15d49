"""The Linker: mentions in, LinkResults out. The same object answers a unit test, a Ray Data
batch and (later) a Serve request, so quality measured offline is quality served online.

It is split in two halves because they want different hardware and state: `MentionEncoder`
holds the encoders (GPU-friendly, no KB), `Linker` holds the KB and its indexes (memory, CPU).
Ray Data runs them as two actor pools; in-process they are simply called one after the other.
`load_linker` is the one place they are assembled over a KB (with the compatibility checks and
the disambiguation model): no runner builds its own.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ameli_ray.attributes.evidence import mention_attributes, read_text, wants_mention_ocr
from ameli_ray.attributes.extract import prepare_agreement
from ameli_ray.attributes.normalize import normalize_key
from ameli_ray.attributes.ocr import make_ocr_engine
from ameli_ray.config import AmeliConfig, FusionWeights, with_model
from ameli_ray.encoders import ImageEncoder, TextEncoder
from ameli_ray.encoders.image import embed_loaded, load_image_lists, split_by_owner
from ameli_ray.errors import ConfigError
from ameli_ray.kb.assets import KBManifest, KnowledgeBase
from ameli_ray.retrieval.retriever import CandidateRetriever, MentionQuery
from ameli_ray.schema import NIL_ENTITY, Candidate, LinkResult, Mention, MentionAttribute, MentionEvidence
from ameli_ray.storage import ObjectStore

if TYPE_CHECKING:
    import pyarrow as pa

    from ameli_ray.disambiguation.model import Disambiguator


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
        ocr_threads: int | None = None,
    ):
        self.config = config
        self.store = store
        self.text = text_encoder or TextEncoder(config.text_encoder, store)
        self.image = image_encoder or ImageEncoder(config.image_encoder, store)
        self.ocr = make_ocr_engine(config.ocr, ocr_threads) if wants_mention_ocr(config) else None

    def encode(self, mentions: list[Mention]) -> list[EncodedMention]:
        # each photo is fetched and decoded once, then both embedded and read
        loaded, errors = load_image_lists(
            [m.image_uris for m in mentions], self.store, self.config.images,
            self.config.image_encoder.max_images_per_mention,
        )
        return self.encode_loaded(mentions, loaded, errors)

    def encode_loaded(self, mentions: list[Mention], loaded: list, errors: list[list[str]]) -> list[EncodedMention]:
        """`encode` over photos already fetched and decoded (`loaded`: per mention, its (source,
        image) pairs; `errors`: per mention, the photos that could not be used): a Serve replica
        gets them in the request, checked at the edge, instead of reading URIs itself."""
        text_emb = embed_mention_texts(mentions, self.text)
        emb, owner = embed_loaded(loaded, self.image)
        photos = split_by_owner(emb, owner, len(mentions))
        ocr, ocr_errors = read_text(loaded, self.ocr, self.config) if self.ocr is not None else ([[]] * len(mentions), [[]] * len(mentions))
        return [
            EncodedMention(
                m, MentionQuery(text=m.text, text_emb=text_emb[i], image_emb=photos[i], surface=m.surface), errors[i] + ocr_errors[i], ocr[i]
            )
            for i, m in enumerate(mentions)
        ]


def embed_mention_texts(mentions: list[Mention], encoder: TextEncoder) -> np.ndarray:
    return encoder.encode([m.text for m in mentions])


def check_compatible(manifest: KBManifest, config: AmeliConfig, text: TextEncoder | None = None,
                     image: ImageEncoder | None = None) -> None:
    """The mention encoders must embed into the KB's spaces; say which differs if not.

    The configured model ids are always compared; where an encoder is at hand (every process that
    embeds mentions: in-process, a Ray Data embedding actor, a Serve replica), also the text
    dimension and both encoders' weight fingerprints, which catch weights that changed under the
    same name or URI (KBs from before the text fingerprint was recorded are checked by name).
    """
    m = manifest
    text_model = config.text_encoder.model
    image_model = ImageEncoder.model_id_for(config.image_encoder)
    problems = []
    other_weights = text is not None and m.text_fingerprint and m.text_fingerprint != text.fingerprint
    if m.text_model != text_model or (text is not None and m.text_dim != text.dim) or other_weights:
        dim = f" (dim {text.dim}, weights {text.fingerprint})" if text is not None else ""
        problems.append(f"text encoder {m.text_model!r} (dim {m.text_dim}, weights {m.text_fingerprint or 'not recorded'}), "
                        f"the linker has {text_model!r}{dim}")
    if m.image_model != image_model or (image is not None and m.image_fingerprint != image.fingerprint):
        fp = f", weights {image.fingerprint}" if image is not None else ""
        problems.append(
            f"image encoder {m.image_model!r} (weights {m.image_fingerprint}), the linker has {image_model!r}{fp}"
        )
    if problems:
        raise ConfigError(f"KB {m.name}/{m.version} was built with " + "; ".join(problems))


class Linker:
    """Retrieval, the attribute filter and, given a disambiguator, disambiguation and fusion."""

    def __init__(self, kb: KnowledgeBase, config: AmeliConfig, disambiguator: "Disambiguator | None" = None,
                 gold_candidates: bool = False, fitted_weights: dict[str, float] | None = None,
                 fitted_ignored_keys: list[str] | None = None):
        """`fitted_weights`, `fitted_ignored_keys`: the retrieval channel weights and the
        unreliable attribute keys stored with the model (see `retrieval_weights`,
        `ignored_keys`); read from the disambiguator's fusion when not given."""
        self.kb = kb
        self.config = config
        if fitted_weights is None and disambiguator is not None:
            fitted_weights = disambiguator.fusion.retrieval_weights
        if fitted_ignored_keys is None and disambiguator is not None:
            fitted_ignored_keys = disambiguator.fusion.ignored_attribute_keys
        self.fitted_weights = fitted_weights
        self.fitted_ignored_keys = fitted_ignored_keys
        self.ignored_keys = ignored_keys(config, fitted_ignored_keys)
        self.retriever = CandidateRetriever(kb, config.retrieval, attribute_depth=config.attributes.filter_depth,
                                            weights=retrieval_weights(config, fitted_weights))
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
            read = mention_attributes(enc.mention, enc.ocr, self.kb.vocabulary, source)
            if source == "extracted" and self.ignored_keys:  # gold values are not read, so never unreliable
                read = [a for a in read if normalize_key(a.key) not in self.ignored_keys]
            enc.query.attributes = read
        candidates = self.retriever.retrieve([e.query for e in encoded])
        if self.gold_candidates:
            candidates = [self._with_gold(c, e.mention.gold_entity_id) for c, e in zip(candidates, encoded)]
        results = []
        for enc, cands in zip(encoded, candidates):
            best, filtered = self._answer(cands)
            results.append(
                LinkResult(
                    mention_id=enc.mention.id,
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
                    best_entity_id=best.entity_id if best else "",
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
        return answer_with_filter(cands, self.config.attributes.filter, self.config.attributes.filter_depth)


def answer_with_filter(cands: list[Candidate], filter: bool, depth: int) -> tuple[Candidate | None, bool]:
    """The paper's attribute filter: the best candidate no extracted value contradicts (within
    `depth`); the top one when every candidate there is contradicted. (answer, whether the filter
    moved it)"""
    if not cands:
        return None, False
    if filter:
        for cand in cands[:depth]:
            if not cand.contradicted:
                return cand, cand is not cands[0]
    return cands[0], False


def retrieval_weights(config: AmeliConfig, fitted: dict[str, float] | None) -> FusionWeights:
    """The channel weights a linker retrieves with: those fitted on dev and stored with the
    model (`fitted`: the model's retrieval stream was fused with them), unless
    `retrieval.weights_from` is `config` or the model has none."""
    if fitted and config.retrieval.weights_from == "model":
        return FusionWeights(**fitted)
    return config.retrieval.weights


def ignored_keys(config: AmeliConfig, fitted: list[str] | None) -> frozenset[str]:
    """The attribute keys whose extracted values a linker ignores: `attributes.ignore_keys`, and
    those the model found unreliable on dev unless `retrieval.weights_from` is `config` (the
    model's retrieval fit is then set aside as a whole)."""
    keys = set(config.attributes.ignore_keys)
    if fitted and config.retrieval.weights_from == "model":
        keys.update(normalize_key(k) for k in fitted)
    return frozenset(keys)


def evidence_of(enc: EncodedMention) -> MentionEvidence:
    return MentionEvidence(enc.mention, [a.key for a in enc.query.attributes], enc.query.image_emb)


@dataclass
class LoadedLinker:
    """A linker assembled over one KB version by `load_linker`: what every runner, the training
    retrieval, the ablations and a Serve replica hold. `encoder` is None where mentions arrive
    already embedded (a Ray Data retrieval actor)."""

    kb: KnowledgeBase
    linker: Linker
    encoder: MentionEncoder | None
    config: AmeliConfig

    @property
    def disambiguator(self) -> "Disambiguator | None":
        return self.linker.disambiguator

    def encode(self, mentions: list[Mention]) -> list[EncodedMention]:
        """Text, photos and OCR of each mention, in batches of `text_stage.batch_size`."""
        if self.encoder is None:
            raise ConfigError("this linker was loaded without mention encoders")
        step = self.config.text_stage.batch_size
        return [e for i in range(0, len(mentions), step) for e in self.encoder.encode(mentions[i : i + step])]

    def link(self, mentions: list[Mention]) -> list[LinkResult]:
        return self.linker.link(self.encode(mentions))

    def retrieve(self, mentions: list[Mention]) -> list[tuple[LinkResult, MentionEvidence]]:
        """Candidates (retrieval + attribute filter, no disambiguation) and the evidence that
        disambiguation and training read, per mention in the order given."""
        encoded = self.encode(mentions)
        return list(zip(self.linker.retrieve(encoded), map(evidence_of, encoded)))

    def variant(self, config: AmeliConfig | None = None, *, gold_candidates: bool = False) -> Linker:
        """Another linker over the same KB and disambiguator (an ablation: other attribute
        sources, gold candidates), without loading anything again."""
        return Linker(self.kb, config or self.config, self.disambiguator, gold_candidates=gold_candidates,
                      fitted_weights=self.linker.fitted_weights, fitted_ignored_keys=self.linker.fitted_ignored_keys)


def load_linker(
    config: AmeliConfig, kb: "str | KnowledgeBase", store: ObjectStore | None = None, *, encoder: bool = True,
    disambiguation: bool = True, device: str = "cpu",
    text_encoder: TextEncoder | None = None, image_encoder: ImageEncoder | None = None,
    ocr_threads: int | None = None, chargram_idf: "np.ndarray | None" = None, retrieval: bool = True,
) -> LoadedLinker:
    """The one place a linker is assembled: the KB (a URI, read and verified, or one already in
    memory), the mention encoders (`encoder`), retrieval and the attribute filter, and the
    configured disambiguation model (`disambiguation`; none when `disambiguation.model` is unset).
    `ocr_threads` caps the OCR engine's threads (an actor's share of the node; None = every core).
    The char n-gram channel weighs by `chargram_idf` when given (training, before its model
    exists), else by the idf the configured model fitted (`retrieval.weights_from` "model"),
    else by the KB's own; `retrieval=False` (a stage that only reranks what arrives retrieved)
    leaves it as the KB has it: reweighting a million products' postings costs seconds and 0.9 GB.
    The encoders and the model are checked against the KB: same text model and dimension, same
    image weights; a model whose adapter was trained on another image tower is refused."""
    store = store or ObjectStore(config.s3)
    if isinstance(kb, str):
        from ameli_ray.kb.assets import load_kb, read_manifest

        _, manifest = read_manifest(kb, store)
        check_compatible(manifest, config)  # before the KB's files are read: the mistake is in the config
        kb = load_kb(kb, store, config.index)
    model_manifest = None
    if config.disambiguation.model and config.retrieval.weights_from == "model":
        # read once: the retrieval weights, the char n-gram idf and the streams come from one
        # version, even if the model's LATEST moves meanwhile
        from ameli_ray.disambiguation.manifest import read_model_manifest

        version_uri, model_manifest = read_model_manifest(config.disambiguation.model, store)
        config = with_model(config, version_uri)
    if retrieval and chargram_idf is None and model_manifest is not None and kb.chargram is not None:
        from ameli_ray.disambiguation.manifest import model_chargram_idf

        chargram_idf = model_chargram_idf(version_uri, model_manifest, store, kb.chargram_fingerprint)
    if retrieval and chargram_idf is not None and kb.chargram is not None and config.retrieval.chargram:
        kb = dataclasses.replace(kb, chargram=kb.chargram.with_idf(chargram_idf))  # a copy: the caller's KB stays
    mention_encoder = None
    if encoder:
        mention_encoder = MentionEncoder(config, store, text_encoder, image_encoder, ocr_threads)
        check_compatible(kb.manifest, config, mention_encoder.text, mention_encoder.image)
    else:
        check_compatible(kb.manifest, config)
    disambiguator, fitted, fitted_keys = None, None, None
    if disambiguation and config.disambiguation.model:
        from ameli_ray.disambiguation.model import Disambiguator, load_model

        model = load_model(config.disambiguation.model, store, config.disambiguation, device)
        disambiguator = Disambiguator(model, kb, config.disambiguation)
    elif model_manifest is not None:
        # retrieval alone over a model's KB (a Ray Data retrieval actor): the model's retrieval
        # weights still apply, read from its manifest without loading its weights
        fitted = model_manifest.fusion.retrieval_weights
        fitted_keys = model_manifest.fusion.ignored_attribute_keys
    linker = Linker(kb, config, disambiguator, fitted_weights=fitted, fitted_ignored_keys=fitted_keys)
    return LoadedLinker(kb, linker, mention_encoder, config)


# channel of Candidate.channel_scores -> its column of LINK_RESULT_ARROW_SCHEMA (NaN = absent)
_CHANNEL_COLUMNS = {
    "text": "text_scores", "image": "image_scores", "lexical": "lexical_scores", "chargram": "chargram_scores",
    "name": "name_scores", "attributes": "attribute_scores", "price": "price_scores",
    "numbers": "numbers_scores", "codes": "codes_scores",
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
        filtered=row["filtered"], errors=row["errors"], confidence=row.get("confidence"),
        best_entity_id=row.get("best_entity_id") or "",
    )


def link_result_table(results: "Iterable[LinkResult]") -> "pa.Table":
    """LinkResults as a table of LINK_RESULT_ARROW_SCHEMA (what `link` writes)."""
    import pyarrow as pa

    from ameli_ray.schema import LINK_RESULT_ARROW_SCHEMA

    return pa.Table.from_pylist([link_result_row(r) for r in results], schema=LINK_RESULT_ARROW_SCHEMA)


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
        "confidence": result.confidence,
        "best_entity_id": result.best_entity_id,
    }
