"""The paper's ablation rows for one evaluation set.

Rows that only change how the stored scores are combined are recomputed from the link output
(retrieval alone, one stream alone, the full pipeline without one stream); rows that change what the linker sees are re-linked
(no attributes, gold attributes, gold candidates).
"""

from __future__ import annotations

import math

import numpy as np

from ameli_ray.evaluation.metrics import linking_metrics

KEEP = ("accuracy", "disambiguation_f1", "recall@10", "n_mentions", "nil_precision", "nil_recall")


def summarise(rows: list[dict], top_n: int) -> dict:
    m = linking_metrics(rows, top_n=top_n)
    return {k: m[k] for k in KEEP if k in m}


def reanswer(rows: list[dict], fusion, top_n: int) -> list[dict]:
    """The answers `fusion` gives over the stored per-candidate scores."""
    from ameli_ray.fusion import StreamScores, answer, fuse

    out = []
    for row in rows:
        n = min(top_n, len(row["candidate_ids"]))
        entity = ""
        if n:
            def col(name: str) -> np.ndarray:
                return np.array([math.nan if v is None else v for v in row[name][:n]], np.float64)

            scores = StreamScores(col("candidate_scores"), col("text_stream_scores"), col("image_stream_scores"),
                                  np.array(row["contradicted"][:n], bool))
            best, _ = answer(fuse(scores, fusion), scores.contradicted, fusion)
            entity = row["candidate_ids"][best] if best is not None else ""
        out.append({**row, "entity_id": entity})
    return out


def recombined_rows(rows: list[dict], fusion, top_n: int) -> dict[str, dict]:
    """The rows that only recombine the stored scores of the full pipeline's output `rows`:
    retrieval alone (with and without the attribute filter), each stream alone, the full
    pipeline without each stream that has weight (the others renormalised), and the full row.
    Recombined rows keep the filter and the "all contradicted" no-match rule but not the confidence
    threshold, which was calibrated on the full fused score: they can only answer more often, so
    against the full row they err in their own favour."""

    def only(weights: dict[str, float], filter_: bool) -> dict:
        model = fusion.model_copy(update={"weights": weights, "confidence_threshold": None, "filter": filter_})
        return summarise(reanswer(rows, model, top_n), top_n)

    table: dict[str, dict] = {
        "retrieval only": only({"retrieval": 1.0, "text": 0.0, "image": 0.0}, False),
        "retrieval + attribute filter": only({"retrieval": 1.0, "text": 0.0, "image": 0.0}, True),
        "text stream only": only({"retrieval": 0.0, "text": 1.0, "image": 0.0}, fusion.filter),
    }
    if any(not math.isnan(v) for r in rows for v in r["image_stream_scores"] if v is not None):
        table["image stream only"] = only({"retrieval": 0.0, "text": 0.0, "image": 1.0}, fusion.filter)
    for stream in ("text", "image"):
        rest = {s: 0.0 if s == stream else w for s, w in fusion.weights.items()}
        if fusion.weights[stream] > 0 and sum(rest.values()) > 0:
            table[f"full without {stream} stream"] = only({s: w / sum(rest.values()) for s, w in rest.items()}, fusion.filter)
    table["full: extracted attributes"] = summarise(rows, top_n)
    return table


def ablation_rows(config, kb_uri: str, mentions: list, rows: list[dict], say=lambda _: None) -> dict:
    """`rows`: the full pipeline's link output for `mentions`. The re-linked rows run in-process
    on one encoding of the mentions (text, photos, OCR) and one disambiguator, whose pair cache
    spares the cross-encoder the statements the variants share."""
    from ameli_ray.disambiguation.manifest import read_model_manifest
    from ameli_ray.linker import link_result_row, load_linker
    from ameli_ray.storage import ObjectStore

    store = ObjectStore(config.s3)
    fusion = read_model_manifest(config.disambiguation.model, store)[1].fusion
    top_n = config.disambiguation.fusion.top_n
    table = recombined_rows(rows, fusion, top_n)

    loaded = load_linker(config, kb_uri, store)
    say(f"ablations: encoding the {len(mentions)} mentions once for the re-linked rows")
    encoded = loaded.encode(mentions)
    for source, row_name in (("none", "no attributes"), ("gold", "full: gold attributes")):
        variant = config.model_copy(update={"attributes": config.attributes.model_copy(update={"source": source})})
        say(f"ablation: attributes.source={source}")
        linked = loaded.variant(variant).link(encoded)
        table[row_name] = summarise([link_result_row(r) for r in linked], top_n)
    # gold candidates: only the mentions whose gold retrieval left out of the top_n change
    by_id = {r["mention_id"]: r for r in rows}
    missing = [
        e for e in encoded
        if e.mention.gold_entity_id and e.mention.id in by_id
        and e.mention.gold_entity_id not in by_id[e.mention.id]["candidate_ids"][:top_n]
    ]
    upper = dict(by_id)
    if missing:
        say(f"ablation: gold candidates ({len(missing)} mentions whose gold retrieval missed)")
        for r in loaded.variant(gold_candidates=True).link(missing):
            upper[r.mention_id] = link_result_row(r)
    table["gold candidates (upper bound)"] = summarise(list(upper.values()), top_n)
    return table
