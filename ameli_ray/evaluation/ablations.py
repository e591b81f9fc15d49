"""The paper's ablation rows for one evaluation set.

Rows that only change how the stored scores are combined are recomputed from the link output
(retrieval alone, one stream alone, the full pipeline without one stream); rows that change what the linker sees are re-linked
(no attributes, gold attributes, gold candidates).

Each row but the pipeline's own also carries `accuracy_vs_full`: its accuracy minus the
pipeline's on the same mentions, with a paired 95% interval and the mentions it gains and loses
(`evaluation.crossval.paired_difference`). A test set of 160 reviews moves a row by a point per
1.6 reviews; the paired interval says which leads are more than that.
"""

from __future__ import annotations

import math

import numpy as np

from ameli_ray.evaluation.crossval import paired_difference
from ameli_ray.evaluation.metrics import linking_metrics

KEEP = ("accuracy", "disambiguation_f1", "recall@10", "n_mentions", "nil_precision", "nil_recall")
FULL_ROW = "full: extracted attributes"  # the pipeline itself: what every other row is compared with
VS_FULL = "accuracy_vs_full"
Answers = dict[str, dict[str, str]]  # row -> mention id -> answered entity id ("" for no match)


def answers_of(rows: list[dict]) -> dict[str, str]:
    return {r["mention_id"]: r.get("entity_id") or "" for r in rows}


def add_paired_differences(table: dict[str, dict], rows: list[dict], answers: Answers, *, seed: int = 0) -> None:
    """Sets each row's `accuracy_vs_full` from its answers against the pipeline's `rows`
    (the same mentions); rows without answers, and the pipeline's own row, are left as they are."""
    for name, row in table.items():
        if name != FULL_ROW and name in answers:
            delta = paired_difference(rows, answers[name], seed=seed)
            if delta is not None:
                row[VS_FULL] = delta


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


def recombined_rows(rows: list[dict], fusion, top_n: int, answers_out: Answers | None = None) -> dict[str, dict]:
    """The rows that only recombine the stored scores of the full pipeline's output `rows`:
    retrieval alone (with and without the attribute filter), each stream alone, the full
    pipeline without each stream that has weight (the others renormalised), and the full row.
    Recombined rows keep the filter and the "all contradicted" no-match rule but not the confidence
    threshold, which was calibrated on the full fused score: they can only answer more often, so
    against the full row they err in their own favour. `answers_out` receives each row's answers."""
    answers = answers_out if answers_out is not None else {}

    def only(name: str, weights: dict[str, float], filter_: bool) -> None:
        model = fusion.model_copy(update={"weights": weights, "confidence_threshold": None, "filter": filter_})
        answered = reanswer(rows, model, top_n)
        table[name] = summarise(answered, top_n)
        answers[name] = answers_of(answered)

    table: dict[str, dict] = {}
    only("retrieval only", {"retrieval": 1.0, "text": 0.0, "image": 0.0}, False)
    only("retrieval + attribute filter", {"retrieval": 1.0, "text": 0.0, "image": 0.0}, True)
    only("text stream only", {"retrieval": 0.0, "text": 1.0, "image": 0.0}, fusion.filter)
    if any(not math.isnan(v) for r in rows for v in r["image_stream_scores"] if v is not None):
        only("image stream only", {"retrieval": 0.0, "text": 0.0, "image": 1.0}, fusion.filter)
    for stream in ("text", "image"):
        rest = {s: 0.0 if s == stream else w for s, w in fusion.weights.items()}
        if fusion.weights[stream] > 0 and sum(rest.values()) > 0:
            only(f"full without {stream} stream", {s: w / sum(rest.values()) for s, w in rest.items()}, fusion.filter)
    table[FULL_ROW] = summarise(rows, top_n)
    return table


def ablation_rows(config, kb_uri: str, mentions: list, rows: list[dict], say=lambda _: None,
                  answers_out: Answers | None = None) -> dict:
    """`rows`: the full pipeline's link output for `mentions`. The re-linked rows run in-process
    on one encoding of the mentions (text, photos, OCR) and one disambiguator, whose pair cache
    spares the cross-encoder the statements the variants share. Every row is compared with the
    pipeline on these mentions (`accuracy_vs_full`); `answers_out` receives each row's answers
    (cross-validation pools them over folds and compares again on all the mentions)."""
    from ameli_ray.disambiguation.manifest import read_model_manifest
    from ameli_ray.linker import link_result_row, load_linker
    from ameli_ray.storage import ObjectStore

    store = ObjectStore(config.s3)
    fusion = read_model_manifest(config.disambiguation.model, store)[1].fusion
    top_n = config.disambiguation.fusion.top_n
    answers: Answers = answers_out if answers_out is not None else {}
    table = recombined_rows(rows, fusion, top_n, answers)

    loaded = load_linker(config, kb_uri, store)
    say(f"ablations: encoding the {len(mentions)} mentions once for the re-linked rows")
    encoded = loaded.encode(mentions)
    for source, row_name in (("none", "no attributes"), ("gold", "full: gold attributes")):
        variant = config.model_copy(update={"attributes": config.attributes.model_copy(update={"source": source})})
        say(f"ablation: attributes.source={source}")
        linked = [link_result_row(r) for r in loaded.variant(variant).link(encoded)]
        table[row_name] = summarise(linked, top_n)
        answers[row_name] = answers_of(linked)
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
    answers["gold candidates (upper bound)"] = answers_of(list(upper.values()))
    add_paired_differences(table, rows, answers)
    return table


def pool_folds(tables: list[dict[str, dict]], rows: list[dict], answers: Answers) -> dict[str, dict]:
    """The ablation table of a cross-validation: each row's metrics averaged over the folds that
    have it, weighted by their mentions, and its paired difference from the pipeline over all the
    pooled link `rows` at once (five folds' mentions tell apart what one fold's cannot). A row's
    difference needs its answers for every scored mention (`answers`, merged over folds); a row
    some fold lacks keeps its mean and no difference."""
    out: dict[str, dict] = {}
    for name in dict.fromkeys(n for t in tables for n in t):
        present = [t[name] for t in tables if name in t]
        weights = [r.get("n_mentions", 1) for r in present]
        total = sum(weights) or 1
        out[name] = {k: round(sum(r[k] * w for r, w in zip(present, weights)) / total, 4)
                     for k, v in present[0].items()
                     if k != "n_mentions" and isinstance(v, (int, float)) and all(k in r for r in present)}
        out[name]["n_mentions"] = sum(weights)
    scored = [r["mention_id"] for r in rows if r.get("gold_entity_id")]
    complete = {name: a for name, a in answers.items() if all(m in a for m in scored)}
    add_paired_differences(out, rows, complete)
    return out
