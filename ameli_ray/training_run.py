"""The `train` verb: retrieval over the train and dev mentions, training examples, Ray Train for
each stream, fusion weights and the "no match" threshold tuned on dev, a versioned model.

    train mentions --retrieve--> candidates + evidence --examples--> Ray Train (image, text)
    dev mentions   --retrieve--> candidates + evidence --retrieval weights--> re-ranked candidates
                   --both streams--> fit_fusion -> model/LATEST
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ameli_ray.config import AmeliConfig, with_model
from ameli_ray.errors import InputFormatError
from ameli_ray.kb.assets import KnowledgeBase, center_images, load_kb, read_manifest
from ameli_ray.linker import answer_with_filter, check_compatible
from ameli_ray.runners import Engine, Runner, make_runner
from ameli_ray.schema import NIL_ENTITY, LinkResult, Mention, MentionEvidence
from ameli_ray.storage import ObjectStore

Say = Callable[[str], None]


@dataclass
class Retrieved:
    result: LinkResult  # retrieval + attribute filter, candidates in retrieval order
    evidence: MentionEvidence


def retrieve(config: AmeliConfig, kb: KnowledgeBase, kb_uri: str, mentions: list[Mention], engine: "Engine | Runner",
             chargram_idf: np.ndarray | None = None) -> list[Retrieved]:
    """Candidates and evidence of each mention, in the order given (no disambiguation model).
    `kb` is the loaded `kb_uri`: the in-process runner uses it, Ray actors load their own."""
    return [Retrieved(r, e) for r, e in make_runner(engine).retrieve(config, kb_uri, mentions, kb, chargram_idf)]


def fit_chargram_idf(config: AmeliConfig, kb: KnowledgeBase, mentions: list[Mention]) -> tuple[np.ndarray | None, dict | None]:
    """The char n-gram channel's idf fitted on the KB and `mentions` (the train and dev ones: a
    model never sees the mentions it is scored on), and the record the model keeps of it; (None,
    None) where the KB has no channel or `retrieval.fit_chargram_idf` is off."""
    from ameli_ray.disambiguation.manifest import CHARGRAM_IDF
    from ameli_ray.retrieval.chargram import mention_query_text

    if not (config.retrieval.fit_chargram_idf and config.retrieval.chargram and kb.chargram is not None):
        return None, None
    idf = kb.chargram.fitted_idf(mention_query_text(m) for m in mentions)
    return idf, {"file": CHARGRAM_IDF, "kb_ngrams_sha256": kb.chargram_fingerprint, "n_texts": len(mentions)}


def _cap(mentions: list[Mention], limit: int | None) -> list[Mention]:
    """At most `limit` labelled mentions, a fixed sample (by id hash, so not the first ones of a
    file sorted by product), chosen before retrieval: OCR and encoding are paid only for these."""
    import hashlib

    labelled = [m for m in mentions if m.gold_entity_id]
    if limit is None or len(labelled) <= limit:
        return labelled
    return sorted(labelled, key=lambda m: hashlib.sha1(m.id.encode()).hexdigest())[:limit]


def text_examples(retrieved: list[Retrieved], kb: KnowledgeBase, config: AmeliConfig) -> list[dict]:
    from ameli_ray.disambiguation.examples import text_example, training_candidates

    t = config.train
    rng = np.random.default_rng(t.seed)
    row_of = kb.row_of
    rows = []
    for item in retrieved:
        gold = item.evidence.mention.gold_entity_id
        if not gold or gold == NIL_ENTITY or gold not in row_of:
            continue
        ids, slot = training_candidates([c.entity_id for c in item.result.candidates], gold, t.candidates, rng)
        entities = [kb.entities[row_of[i]] for i in ids]
        rows.append(text_example(item.evidence.mention, item.evidence.attribute_keys, entities, slot, config.disambiguation.text))
    return rows


def image_examples(retrieved: list[Retrieved], kb: KnowledgeBase) -> list[dict]:
    from ameli_ray.disambiguation.examples import image_examples as for_mention

    row_of = kb.row_of
    rows: list[dict] = []
    for item in retrieved:
        gold = item.evidence.mention.gold_entity_id
        if not gold or gold not in row_of or not len(item.evidence.photos):
            continue
        images = kb.image_emb[kb.image_rows(row_of[gold])]
        rows.extend(for_mention(center_images(item.evidence.photos, kb.image_center), images, row_of[gold]))
    return rows


def dev_stream_scores(disambiguator, retrieved: list[Retrieved]):
    """Both streams over dev, and where each gold is: what fusion is tuned on."""
    n = disambiguator.settings.fusion.top_n
    scores = []
    for start in range(0, len(retrieved), 64):
        chunk = retrieved[start : start + 64]
        scores.extend(disambiguator.scores([r.evidence for r in chunk], [r.result for r in chunk]))
    gold_index, is_nil = [], []
    for item in retrieved:
        gold = item.evidence.mention.gold_entity_id
        ids = [c.entity_id for c in item.result.candidates[:n]]
        is_nil.append(gold == NIL_ENTITY)
        gold_index.append(ids.index(gold) if gold and gold in ids else None)
    return scores, gold_index, is_nil


def train_model(
    config: AmeliConfig, kb_uri: str, train_mentions: list[Mention], dev_mentions: list[Mention], model_uri: str,
    *, engine: "Engine | Runner" = "ray", say: Say = lambda _: None,
) -> dict:
    """Trains both streams and the fusion; writes a new model version under `model_uri` and
    returns what happened (version URI, per-epoch history, dev metrics, throughput)."""
    from ameli_ray.disambiguation.manifest import SEEN_MENTIONS, seen_mentions_file
    from ameli_ray.disambiguation.model import new_manifest, update_fusion, write_model
    from ameli_ray.distributed.runtime import ray_session
    from ameli_ray.distributed.train import checkpoint_root
    from ameli_ray.fusion import FusionModel, fit_fusion
    from ameli_ray.linker import load_linker
    from ameli_ray.retrieval.chargram import idf_bytes

    if not any(m.gold_entity_id for m in train_mentions):
        raise InputFormatError("the training mentions carry no gold entities: nothing to train on")
    store = ObjectStore(config.s3)
    kb_uri, manifest = read_manifest(kb_uri, store)  # one version throughout, even if LATEST moves
    check_compatible(manifest, config)
    kb = load_kb(kb_uri, store, config.index)
    started = time.perf_counter()
    # the idf needs texts alone: every training mention counts, not only the capped ones retrieved
    chargram_idf, chargram_record = fit_chargram_idf(config, kb, train_mentions + dev_mentions)
    train_mentions = _cap(train_mentions, config.train.max_train_mentions)
    say(f"retrieving candidates for {len(train_mentions)} training and {len(dev_mentions)} dev mentions")
    # one pass for both (one set of actors, one encoder)
    items = retrieve(config, kb, kb_uri, train_mentions + dev_mentions, engine, chargram_idf)
    train_items, dev_items = items[: len(train_mentions)], items[len(train_mentions) :]
    key_record: dict[str, list[int]] = {}
    if config.attributes.fit_keys and config.attributes.source == "extracted":
        unreliable, key_record = fit_attribute_keys(config, kb, dev_items)
        if unreliable:
            say("attribute keys ignored (their values agree with the right product too rarely on dev): "
                + ", ".join(f"{k} {key_record[k][0]} of {sum(key_record[k])}" for k in unreliable))
            attributes = config.attributes.model_copy(
                update={"ignore_keys": sorted({*config.attributes.ignore_keys, *unreliable})})
            config = config.model_copy(update={"attributes": attributes})
            # again without them: the streams, the retrieval weights and fusion are all fitted on
            # what a linker over this model will read
            items = retrieve(config, kb, kb_uri, train_mentions + dev_mentions, engine, chargram_idf)
            train_items, dev_items = items[: len(train_mentions)], items[len(train_mentions) :]
    retrieve_seconds = time.perf_counter() - started
    record: dict = {"n_train_mentions": len(train_mentions), "n_dev_mentions": len(dev_mentions),
                    "retrieve_seconds": round(retrieve_seconds, 2), "workers": config.train.num_workers,
                    "ignored_attribute_keys": list(config.attributes.ignore_keys)}

    retrieval_fit = None
    if config.retrieval.fit_weights:
        retrieval_fit, dev_items = fit_retrieval(config, dev_items, train_items)
        record["retrieval_weights"] = retrieval_fit.weights
        record["retrieval_dev"] = retrieval_fit.dev
        where = "dev" if config.retrieval.fit_on == "dev" else f"train and dev ({retrieval_fit.n_mentions} reviews)"
        why = f"fitted on {where}" if retrieval_fit.kept else f"as configured (no weighting of the grid did better on {where})"
        say(f"retrieval weights {why}: "
            + ", ".join(f"{c} {w:g}" for c, w in retrieval_fit.weights.items())
            + f"; top-1 {retrieval_fit.dev.get('configured_accuracy', float('nan')):.3f} as configured, "
            f"{retrieval_fit.dev.get('fitted_accuracy', float('nan')):.3f} fitted"
            + (f", {retrieval_fit.dev['cross_fitted_accuracy']:.3f} with each half of dev ranked by the other half's fit "
               "(what fusion is tuned on)"
               if "cross_fitted_accuracy" in retrieval_fit.dev else ""))

    with ray_session(config.ray):  # Ray Train needs Ray even when retrieval ran in-process
        text, image = _train_streams(config, kb, store, train_items, model_uri, record, say)
    if text is None and image is None:
        raise InputFormatError("no stream could be trained: no usable training examples (or zero epochs)")

    provisional = FusionModel(weights={"retrieval": 1.0, "text": 0.0, "image": 0.0},
                              standardisation={s: (0.0, 1.0) for s in ("retrieval", "text", "image")})
    manifest = new_manifest("disambiguation", kb, config.disambiguation, provisional, text=text is not None, image=image is not None)
    # streams first (not yet LATEST), fusion once tuned on dev
    extra = {SEEN_MENTIONS: seen_mentions_file([m.id for m in train_mentions], [m.id for m in dev_mentions])}
    if chargram_idf is not None:
        extra[chargram_record["file"]] = idf_bytes(chargram_idf)
    version_uri = write_model(model_uri, store, manifest, text, image, point_latest=False, extra_files=extra)
    # dev is scored by the model as written and read back, through the factory every linker
    # uses: what fusion is tuned on is what `link` and Serve will run
    disambiguator = load_linker(with_model(config, version_uri), kb, store, encoder=False, retrieval=False).disambiguator
    tuned = time.perf_counter()
    scores, gold_index, is_nil = dev_stream_scores(disambiguator, dev_items)
    fusion = fit_fusion(scores, gold_index, is_nil, config.disambiguation.fusion,
                        filter=config.attributes.filter, filter_depth=config.attributes.filter_depth)
    if retrieval_fit is not None:  # stored even when not kept: the model reproduces what dev saw
        fusion = fusion.model_copy(update={"retrieval_weights": retrieval_fit.weights, "retrieval_dev": retrieval_fit.dev})
    if chargram_record is not None:  # dev was retrieved with it, so every linker over the model is too
        fusion = fusion.model_copy(update={"chargram_idf": chargram_record})
    # every key this model was trained without, the configured ones included
    fusion = fusion.model_copy(update={"ignored_attribute_keys": list(config.attributes.ignore_keys),
                                       "attribute_keys_dev": key_record})
    record["fusion_seconds"] = round(time.perf_counter() - tuned, 2)
    record["seconds"] = round(time.perf_counter() - started, 2)
    update_fusion(version_uri, store, fusion, record, root_uri=model_uri)
    store.delete_prefix(checkpoint_root(model_uri))  # the run is complete: a rerun trains afresh
    w = fusion.weights
    say(f"model {version_uri}: fusion retrieval {w['retrieval']:.1f} / text {w['text']:.1f} / image {w['image']:.1f}, "
        f"dev accuracy {fusion.dev.get('accuracy', float('nan')):.3f}"
        + (f", confidence calibrated ({fusion.calibration.method})" if fusion.calibration is not None else "")
        + (f", no match below confidence {fusion.confidence_threshold:.3f}" if fusion.confidence_threshold is not None else "")
        + (f" (target precision {fusion.target_precision:g}{'' if fusion.target_reached else ', not reached on dev'})"
           if fusion.target_precision is not None else "")
        + (", no match when the attributes contradict every candidate" if fusion.nil_if_contradicted else ""))
    return {"model": version_uri, "fusion": fusion.model_dump(), "training": record}


def fit_attribute_keys(config: AmeliConfig, kb: KnowledgeBase, dev_items: list[Retrieved]
                       ) -> tuple[list[str], dict[str, list[int]]]:
    """The attribute keys read too unreliably on dev to use (`attributes.reliability`), and per
    key what the rule saw: [agreed with the gold product, contradicted it]."""
    from ameli_ray.attributes.extract import ExtractedAttribute
    from ameli_ray.attributes.reliability import key_reliability, unreliable_keys

    rows = kb.row_of
    reviews = [
        ([ExtractedAttribute(key=a.key, value=a.value, surface=a.value, source=a.source, start=0, end=0,
                             confidence=a.confidence) for a in d.result.attributes], rows[d.evidence.mention.gold_entity_id])
        for d in dev_items if _labelled(d) and d.evidence.mention.gold_entity_id in rows
    ]
    reliability = key_reliability(reviews, kb.vocabulary)
    a = config.attributes
    return (unreliable_keys(reliability, a.min_key_precision, a.min_key_reads),
            {k: [r.agree, r.contradict] for k, r in reliability.items()})


HALF_SALT = "half:"  # dev's halves for the cross-fit: independent of the folds and of dev itself


def fit_retrieval(config: AmeliConfig, dev_items: list[Retrieved], train_items: Sequence[Retrieved] = ()):
    """The retrieval channel weights fitted on dev, and with `retrieval.fit_on` "train_and_dev" on
    the retrieved training reviews too (`retrieval.fitting`), and the dev items re-ranked for
    fusion, so the disambiguation streams and fusion are tuned on the ranking the model will
    retrieve with.

    Why the training reviews: nothing in retrieval learns from their labels (the char n-gram idf
    reads their texts only), and a grid of up to 432,000 weightings fitted on a dev of 161-175
    reviews picks partly noise: on Walmart->Amazon's folds of stop 27 the in-sample dev top-1 was
    0.957-0.983 while each half of dev ranked by the other half's fit stayed at 0.920-0.954, and the
    codes channel, weighted 0.4 by every fit over 680 reviews, got 0 from both dev-only fits of
    stop 28's first folds (BENCHMARKS.md, stop 28).

    With `retrieval.cross_fit`, each half of dev (by hash of mention id) is re-ranked with
    weights fitted on the other half (and the training reviews): fusion weighs retrieval against
    the streams as good as it will be on unseen reviews, not as good as it looks where it was
    fitted. The model keeps the weights fitted on all of them; dev's top-1 under the cross-fit is
    recorded (`cross_fitted_accuracy`) beside the in-sample one (over every review fitted on),
    which shows the fit's optimism."""
    from ameli_ray.config import FusionWeights
    from ameli_ray.evaluation.crossval import fold_of
    from ameli_ray.retrieval.fitting import cross_fit, fit_retrieval_weights

    labelled = [d for d in dev_items if _labelled(d)]
    extra = [t for t in train_items if _labelled(t)] if config.retrieval.fit_on == "train_and_dev" else []
    lists = [d.result.candidates for d in [*labelled, *extra]]
    gold = [d.evidence.mention.gold_entity_id for d in [*labelled, *extra]]
    min_gain = config.retrieval.fit_min_gain
    fit = fit_retrieval_weights(lists, gold, config.retrieval.weights, min_gain)
    if not fit.kept:
        return fit, dev_items
    half = [fold_of(d.evidence.mention.id, 2, HALF_SALT) for d in dev_items]
    other = None
    if config.retrieval.cross_fit:
        # aligned with `lists`: dev by its half, the training reviews in both halves' fits (None)
        labelled_half = [h for d, h in zip(dev_items, half) if _labelled(d)] + [None] * len(extra)
        other = cross_fit(lists, gold, labelled_half, config.retrieval.weights, min_gain)
    if other is None:
        weights = FusionWeights(**fit.weights)
        return fit, [_reranked(config, item, weights) for item in dev_items]
    by_half = [FusionWeights(**w) for w in other]
    reranked = [_reranked(config, item, by_half[h]) for item, h in zip(dev_items, half)]
    hits = sum(r.result.candidates[0].entity_id == r.evidence.mention.gold_entity_id
               for r in reranked if _labelled(r) and r.result.candidates)
    fit.dev["cross_fitted_accuracy"] = hits / len(labelled)
    return fit, reranked


def _labelled(item: Retrieved) -> bool:
    return item.evidence.mention.gold_entity_id not in (None, "", NIL_ENTITY)


def _reranked(config: AmeliConfig, item: Retrieved, weights) -> Retrieved:
    """`item` as retrieval under other channel weights would have returned it (attribute filter included)."""
    from ameli_ray.retrieval.fitting import refuse

    a = config.attributes
    cands = refuse(item.result.candidates, weights)
    best, filtered = answer_with_filter(cands, a.filter, a.filter_depth)
    result = item.result.model_copy(update={
        "candidates": cands, "entity_id": best.entity_id if best else NIL_ENTITY,
        "score": best.score if best else -math.inf, "filtered": filtered, "best_entity_id": best.entity_id if best else "",
    })
    return Retrieved(result, item.evidence)


def _train_streams(config, kb, store, train_items, model_uri, record, say):
    """(text, image) trained streams (None where a stream has no examples or zero epochs)."""
    from ameli_ray.disambiguation.tasks import ImageTask, TextTask
    from ameli_ray.distributed.train import train_stream

    image_rows = image_examples(train_items, kb)
    plan = [(ImageTask(config, int(kb.image_emb.shape[1])), image_rows)] if image_rows else []
    plan.append((TextTask(config), text_examples(train_items, kb, config)))
    trained = {"text": None, "image": None}
    for task, rows in plan:
        if rows and task.epochs > 0:
            outcome = train_stream(task, rows, model_uri, say=say)
            trained[task.name] = task.finish(outcome.state, store)
            record[task.name] = {"examples": len(rows), "history": outcome.history,
                                 "resumed_from_epoch": outcome.resumed_from_epoch}
    return trained["text"], trained["image"]
