"""The verbs of ameli-ray (build a KB, link a corpus, evaluate, the demo), shared by the CLI and
the Ray job entrypoints. Each is a short composition of the core modules and one runner
(`ameli_ray.runners`), chosen once from `engine`: `ray` (Ray Data actor pools, the default) or
`local` (in-process, for small runs and tests).
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ameli_ray.config import AmeliConfig, with_model
from ameli_ray.errors import ConfigError, InputFormatError
from ameli_ray.evaluation import linking_metrics
from ameli_ray.formats import read_entities, read_mentions
from ameli_ray.kb.assets import KnowledgeBase, write_kb
from ameli_ray.runners import Engine, Runner, make_runner
from ameli_ray.schema import LINK_RESULT_ARROW_SCHEMA, NIL_ENTITY, Entity, Mention
from ameli_ray.storage import ObjectStore, join_uri, s3_for_run
from ameli_ray.storage.objects import is_s3
from ameli_ray.storage.versioned import check_new_version

REJECTED = "_rejected.jsonl"
Say = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def build_kb(
    config: AmeliConfig, entities_uri: str, kb_uri: str, *, images_uri: str | None = None,
    name: str | None = None, engine: Engine | Runner = "ray", version: str | None = None, say: Say = _quiet,
    entities: list[Entity] | None = None,
) -> tuple[str, KnowledgeBase | None, dict]:
    """Embeds entities, indexes them and writes a new KB version under `kb_uri`.

    Read from `entities_uri` (a file, a prefix or a glob of JSONL / Parquet / AMELI JSON shards),
    they are streamed (`kb.streamed`): read, embedded and spilled batch by batch, invalid records
    set aside in the version's rejected.jsonl, and no process ever holds the whole catalogue; the
    KB returned is then None. Given as `entities` (evaluation, benchmarks), they are built in
    memory and the KB is returned."""
    store = ObjectStore(config.s3)
    if version is not None:  # refused before the embedding, not after (write_kb checks again)
        check_new_version(kb_uri, version, store)
    name = name or Path(kb_uri.rstrip("/")).name or "kb"
    if entities is None:
        return _build_kb_streamed(config, entities_uri, kb_uri, images_uri, name, engine, version, say)
    if not entities:
        raise InputFormatError(f"{entities_uri} holds no entities: nothing to build a KB from")
    say(f"read {len(entities)} entities from {entities_uri}")
    start = time.perf_counter()
    kb, errors = make_runner(engine).build_kb(config, entities, name)
    seconds = time.perf_counter() - start
    version_uri = write_kb(kb, kb_uri, store, version)
    problems = [e for errs in errors for e in errs]
    stats = {
        "n_entities": len(entities),
        "n_images": kb.manifest.n_images,
        "seconds": round(seconds, 2),
        "entities_per_s": round(len(entities) / seconds, 1),
        "image_errors": len(problems),
    }
    say(f"KB {version_uri}: {stats['n_entities']} entities, {stats['n_images']} images, "
        f"{stats['entities_per_s']} entities/s")
    for p in problems[:10]:
        say(f"  [yellow]skipped[/] {p}")
    if len(problems) > 10:
        say(f"  … and {len(problems) - 10} more image errors")
    return version_uri, kb, stats


def _build_kb_streamed(config: AmeliConfig, entities_uri: str, kb_uri: str, images_uri: str | None, name: str,
                       engine: Engine | Runner, version: str | None, say: Say) -> tuple[str, None, dict]:
    import tempfile

    from ameli_ray.encoders import ImageEncoder, TextEncoder
    from ameli_ray.formats.shards import list_shards
    from ameli_ray.kb.streamed import StreamedKBBuilder
    from ameli_ray.storage.versioned import new_version

    store = ObjectStore(config.s3)
    shards = list_shards(entities_uri, store)
    say(f"building KB {name} from {len(shards)} entity file(s) at {entities_uri}")
    runner = make_runner(engine)
    # the KB's identity (model ids, weights fingerprints, dims); the in-process runner also embeds
    # with them, while under Ray the driver only needs their identity: there, kept off any GPU
    device = None if runner.name == "local" else "cpu"
    text_encoder = TextEncoder(config.text_encoder, store, device=device)
    image_encoder = ImageEncoder(config.image_encoder, store, device=device)
    version = version or new_version()
    check_new_version(kb_uri, version, store)
    staging = join_uri(kb_uri, "_staging", version)  # readers' set-aside records, for the driver
    start = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="ameli-kb-", dir=config.index.build_dir) as spill:
            builder = StreamedKBBuilder(Path(spill), text_encoder.dim, image_encoder.dim)
            runner_name = runner.stream_kb(config, shards, images_uri, builder, staging, config.text_stage.batch_size,
                                           (text_encoder, image_encoder))
            embed_s = time.perf_counter() - start
            say(f"embedded {builder.n_entities} entities ({builder.n_images} images, {len(builder.rejected)} set aside) "
                f"in {embed_s:.0f} s; indexing")
            version_uri, manifest = builder.finish(
                kb_uri, store, name=name, text_model=config.text_encoder.model, image_model=image_encoder.model_id,
                image_fingerprint=image_encoder.fingerprint, text_fingerprint=text_encoder.fingerprint,
                index_settings=config.index, lexical=config.retrieval.lexical, chargram=config.retrieval.chargram,
                version=version, build_info={"runner": runner_name, "shards": len(shards), "embed_seconds": round(embed_s, 3),
                                             "entities_per_s": round(builder.n_entities / max(embed_s, 1e-9), 2)},
            )
    finally:
        store.delete_prefix(staging)
    seconds = time.perf_counter() - start
    stats = {
        "n_entities": manifest.n_entities,
        "n_images": manifest.n_images,
        "n_rejected": len(builder.rejected),
        "seconds": round(seconds, 2),
        "entities_per_s": round(manifest.n_entities / seconds, 1),
        "image_errors": builder.image_errors,
    }
    say(f"KB {version_uri}: {stats['n_entities']} entities, {stats['n_images']} images, "
        f"{stats['entities_per_s']} entities/s")
    for r in builder.rejected[:10]:
        say(f"  [yellow]set aside[/] {r['error']}")
    if builder.rejected:
        say(f"  {len(builder.rejected)} record(s) set aside: {join_uri(version_uri, 'rejected.jsonl')}")
    for p in builder.error_samples:
        say(f"  [yellow]skipped[/] {p}")
    if builder.image_errors > len(builder.error_samples):
        say(f"  … and {builder.image_errors - len(builder.error_samples)} more image errors")
    return version_uri, None, stats


@dataclass
class LinkRun:
    stats: dict  # n_mentions, n_rejected, seconds, mentions_per_s
    gold_attributes: dict[str, dict[str, str]]  # by mention id, where known: what scoring needs of the input


def link(
    config: AmeliConfig, kb_uri: str, mentions_uri: str, out_uri: str, *, images_uri: str | None = None,
    engine: Engine | Runner = "ray", say: Say = _quiet, overwrite: bool = False,
    progress: Callable[[int, int, int], None] | None = None,
) -> LinkRun:
    """Links a corpus (a file, a prefix or a glob of shards) into one committed parquet part per
    shard (answer, top-K candidates, per-channel scores), exactly once: the same command after a
    crash resumes, after success does nothing (see `ameli_ray.corpus`). `progress(shards done,
    shards, mentions done)` is called as shards commit."""
    from ameli_ray.corpus import plan_corpus_link, previous_summary

    store = ObjectStore(config.s3)
    job = plan_corpus_link(config, kb_uri, mentions_uri, out_uri, store=store, images_uri=images_uri, overwrite=overwrite)
    done = previous_summary(job)
    if done is not None:
        say(f"{out_uri} already holds this job's complete output ({done['n_mentions']} mentions); nothing to do "
            "(--overwrite relinks)")
        return LinkRun({**done, "seconds": 0.0, "mentions_per_s": 0.0, "already_done": True}, {})
    todo = job.todo
    say(f"{len(job.shards)} shard(s) under {mentions_uri}; {len(todo)} to link"
        + (f", {len(job.done)} committed by an earlier run" if job.done else "") + f"; KB {job.kb_uri}")
    committed = [len(job.done), sum(c.rows for c in job.done.values())]

    def on_commit(commit) -> None:
        committed[0] += 1
        committed[1] += commit.rows
        if progress is not None:
            progress(committed[0], len(job.shards), committed[1])

    start = time.perf_counter()
    commits = make_runner(engine).link_corpus(job, on_commit)
    summary = job.finish(commits, time.perf_counter() - start)
    if summary["n_rejected"]:
        say(f"[yellow]{summary['n_rejected']} records rejected[/] (see {join_uri(out_uri, '_rejected')}/)")
    say(f"linked {summary['n_mentions']} mentions into {out_uri}: {summary['answered']} answered, "
        f"no-match share {summary['no_match_share']:.1%}, {summary['mentions_per_s']} mentions/s")
    return LinkRun(summary, {})


def link_mentions(
    config: AmeliConfig, kb_uri: str, mentions: list[Mention], out_uri: str, *, rejected: list[str] | None = None,
    engine: Engine | Runner = "ray", say: Say = _quiet,
) -> LinkRun:
    """`link` over records already read (`evaluate` links a held-out part of a corpus)."""
    store = ObjectStore(config.s3)
    rejected = rejected or []
    _clear_output(out_uri, store)
    if rejected:
        # a corpus is linked even when some records are bad; which ones, and why, goes beside the output
        store.ensure_bucket(out_uri)
        store.write_text(join_uri(out_uri, REJECTED), "".join(json.dumps({"error": r}) + "\n" for r in rejected))
        say(f"[yellow]{len(rejected)} records rejected[/] (see {join_uri(out_uri, REJECTED)}), e.g. {rejected[0]}")
    start = time.perf_counter()
    make_runner(engine).link(config, kb_uri, mentions, out_uri)
    seconds = time.perf_counter() - start
    stats = {"n_mentions": len(mentions), "n_rejected": len(rejected), "seconds": round(seconds, 2),
             "mentions_per_s": round(len(mentions) / seconds, 1) if mentions else 0.0}
    say(f"linked {len(mentions)} mentions into {out_uri} ({stats['mentions_per_s']} mentions/s)")
    return LinkRun(stats, {m.id: m.gold_attributes for m in mentions if m.gold_attributes})


def read_link_results(out_uri: str, store: ObjectStore) -> pa.Table:
    """The link rows under `out_uri`: a corpus job's committed parts (checked against their
    commit records), or every part of an in-memory link (`link_mentions`)."""
    from ameli_ray.storage.commit import is_committed_output, read_committed

    if is_committed_output(out_uri, store):
        return read_committed(out_uri, store, LINK_RESULT_ARROW_SCHEMA)
    files = [f for f in store.list_files(out_uri) if f.endswith(".parquet")]
    if not files:
        raise InputFormatError(f"no link results (parquet files) under {out_uri}")
    return pa.concat_tables(
        [pq.read_table(io.BytesIO(store.read_bytes(f))).cast(LINK_RESULT_ARROW_SCHEMA) for f in files]
    )


def read_rejected(out_uri: str, store: ObjectStore) -> list[dict]:
    """The records set aside while linking into `out_uri`: {"error", and for a corpus job
    "source" and "position"}."""
    from ameli_ray.storage.commit import is_committed_output, read_committed_rejected

    if is_committed_output(out_uri, store):
        return read_committed_rejected(out_uri, store)
    uri = join_uri(out_uri, REJECTED)
    return [json.loads(line) for line in store.read_text(uri).splitlines() if line.strip()] if store.exists(uri) else []


def split_mentions(mentions: list[Mention], dev_share: float = 0.2, test_share: float = 0.2
                   ) -> tuple[list[Mention], list[Mention], list[Mention]]:
    """A deterministic train/dev/test split by a hash of the mention id: the same corpus always
    splits the same way, whatever order it comes in."""
    import hashlib

    def bucket(m: Mention) -> float:
        return int(hashlib.sha1(m.id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF

    train, dev, test = [], [], []
    for m in mentions:
        b = bucket(m)
        (test if b < test_share else dev if b < test_share + dev_share else train).append(m)
    return train, dev, test


def evaluate(
    config: AmeliConfig, entities_uri: str, mentions_uri: str, workdir: str, *, images_uri: str | None = None,
    train_mentions_uri: str | None = None, dev_mentions_uri: str | None = None, ablations: bool = True,
    train: bool = True, engine: Engine | Runner = "ray", say: Say = _quiet, folds: int | None = None,
    nil_products: float | None = None, report: bool = True,
) -> dict:
    """Builds a KB, trains the disambiguation model (unless `disambiguation.model` names one),
    links the evaluation mentions with the full pipeline, scores them; writes workdir/metrics.json
    (and workdir/report.html).

    Without --train-mentions/--dev-mentions the given mentions are split (60/20/20 by id hash):
    the model trains on the first part, tunes fusion on the second, and only the held-out rest
    is scored. With `folds` K, K models are trained, one per fold of the mentions (by id hash;
    dev is a quarter of each fold's training part), and every mention is scored once, as test of
    its fold; metrics are pooled, with 95% bootstrap intervals and per-fold values.
    `nil_products` S removes a share S of the linked products from the KB and relabels their
    reviews "no matching product"; those reviews are kept out of training and dev (the model
    never sees one) and scored as test. `train=False` (no model) scores retrieval and the
    attribute filter over all mentions."""
    workdir_path = Path(workdir)
    workdir_path.mkdir(parents=True, exist_ok=True)
    store = ObjectStore(config.s3)
    entity_images = join_uri(images_uri, "product_images") if images_uri else None
    mention_images = join_uri(images_uri, "cleaned_review_images") if images_uri else None
    rejected: list[str] = []
    mentions = read_mentions(mentions_uri, store, mention_images, rejected)
    trained = train and config.disambiguation.model is None
    if trained and (train_mentions_uri is None) != (dev_mentions_uri is None):
        raise ValueError("give both --train-mentions and --dev-mentions, or neither (the mentions are then split)")
    if folds is not None and (not trained or train_mentions_uri is not None):
        raise ConfigError("--folds trains one model per fold of --mentions: it takes no --train-mentions/--dev-mentions, "
                         "--no-train or disambiguation.model")
    entities = read_entities(entities_uri, store, entity_images)
    held_out: set[str] = set()
    if nil_products:
        from ameli_ray.evaluation.crossval import hold_out_products

        entities, mentions, held_out = hold_out_products(entities, mentions, nil_products)
        say(f"held out {nil_products:.0%} of the linked products: {len(held_out)} reviews now have no matching product "
            "(kept out of training and dev)")
    if folds is not None:
        from ameli_ray.evaluation.crossval import fold_splits

        plan = fold_splits(mentions, folds)
        scored_note: dict = {"mentions": f"all of {mentions_uri}, each once, in {folds} folds by hash of mention id"}
    elif trained and train_mentions_uri is None:
        plan = [split_mentions(mentions)]
        scored_note = {"mentions": "held-out 20% of the given mentions (split by hash of mention id)",
                       "split": {"train": len(plan[0][0]), "dev": len(plan[0][1]), "test": len(plan[0][2])}}
    else:
        plan = [(read_mentions(train_mentions_uri, store, mention_images) if trained else [],
                 read_mentions(dev_mentions_uri, store, mention_images) if trained else [], mentions)]
        scored_note = {"mentions": f"all of {mentions_uri}"}
    if held_out:  # the model never sees a review of a held-out product
        plan = [([m for m in t if m.id not in held_out], [m for m in d if m.id not in held_out], s) for t, d, s in plan]
        scored_note["held_out_products"] = {"share": nil_products, "n_reviews": len(held_out)}
    if folds is not None:
        scored_note["folds"] = [{"train": len(t), "dev": len(d), "test": len(s)} for t, d, s in plan]
    scored_note["mention_ids"] = [m.id for _, _, test in plan for m in test]
    engine = make_runner(engine)
    fold_metrics: list[dict] = []
    pooled: list[dict] = []
    pooled_answers: dict[str, dict[str, str]] = {}  # ablation row -> mention id -> answer, over folds
    with engine.session(config):
        version_uri, _, build_stats = build_kb(
            config, entities_uri, str(workdir_path / "kb"), images_uri=entity_images, engine=engine, say=say,
            entities=entities,
        )
        for i, (train_set, dev, test) in enumerate(plan):
            fold_dir = workdir_path / f"fold-{i}" if folds is not None else workdir_path
            if folds is not None:
                say(f"[bold]fold {i + 1}/{folds}[/]: train {len(train_set)}, dev {len(dev)}, test {len(test)}")
            fold_config, training = config, None
            if trained:
                from ameli_ray.training_run import train_model

                training = train_model(fold_config, version_uri, train_set, dev, str(fold_dir / "model"), engine=engine, say=say)
                fold_config = with_model(config, training["model"])
            rows: list[dict] = []
            m = link_and_score(fold_config, version_uri, test, str(fold_dir / "links"), build_stats, rejected=rejected,
                               engine=engine, say=say, ablations=ablations, entities=entities, rows_out=rows,
                               corpus=mentions, ablation_answers_out=pooled_answers)
            if training is not None:
                m["training"] = training["training"]
                m["fusion"] = _fusion_record(training["fusion"])
            elif config.disambiguation.model:
                from ameli_ray.disambiguation.manifest import read_model_manifest, seen_overlap

                m["fusion"] = _fusion_record(read_model_manifest(config.disambiguation.model, store)[1].fusion.model_dump())
                # a given model may have trained or tuned on what is scored here: say so
                m["seen_by_model"] = seen_overlap(config.disambiguation.model, store, [t.id for t in test])
                seen = m["seen_by_model"]
                if seen is None:
                    say("[yellow]the model records no training mentions: overlap with the scored ones cannot be checked[/]")
                elif seen["train"] or seen["dev"]:
                    say(f"[bold red]WARNING[/]: {seen['train']} of the {seen['n_scored']} scored mentions were in the model's "
                        f"training data and {seen['dev']} in its dev data: these figures are not held-out figures")
            fold_metrics.append(m)
            pooled.extend(rows)
    if folds is None:
        metrics = fold_metrics[0]
    else:
        metrics = _pool_folds(fold_metrics, pooled, config, version_uri, build_stats, pooled_answers)
    metrics["scored"] = scored_note
    _finish(metrics, pooled, workdir_path, entities, report, f"evaluate: {mentions_uri}", say)
    return metrics


def _fusion_record(fusion: dict) -> dict:
    """What metrics.json (and the report) keep of a trained fusion."""
    keep = ("weights", "gate", "filter", "grid", "calibration", "confidence_threshold", "target_precision",
            "target_reached", "nil_if_contradicted", "dev", "retrieval_weights", "retrieval_dev",
            "ignored_attribute_keys", "attribute_keys_dev")
    return {k: fusion[k] for k in keep if k in fusion}


def _pool_folds(fold_metrics: list[dict], rows: list[dict], config: AmeliConfig, kb_uri: str, build_stats: dict,
                ablation_answers: dict[str, dict[str, str]] | None = None) -> dict:
    """One figure per metric over every mention (each scored once, by the model that did not see
    it), its 95% bootstrap interval, and the per-fold values with their mean. Each ablation row is
    compared with the pipeline on all the mentions at once (`ablation_answers`, pooled over folds):
    the paired interval of five folds together is what a fold's own cannot be."""
    from ameli_ray.evaluation.crossval import bootstrap, confidence_metrics, fold_summary

    top_n = config.disambiguation.fusion.top_n if fold_metrics[0].get("fusion") else None
    metrics = linking_metrics(rows, top_n=top_n)
    baseline_hits = _baseline_hits(rows)
    intervals = bootstrap(rows, top_n, extra={"baseline_char_tfidf_accuracy": baseline_hits} if baseline_hits is not None else None)
    keys = [k for k, v in fold_metrics[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    metrics.update(
        kb=kb_uri, n_entities=build_stats["n_entities"],
        folds={"k": len(fold_metrics), "pooled": intervals, "per_fold_summary": fold_summary(fold_metrics, keys),
               "per_fold": [{k: f[k] for k in keys if k in f} for f in fold_metrics],
               "fusion": [f.get("fusion", {}).get("weights") for f in fold_metrics],
               "retrieval_weights": [f.get("fusion", {}).get("retrieval_weights") for f in fold_metrics],
               "ignored_attribute_keys": [f.get("fusion", {}).get("ignored_attribute_keys") for f in fold_metrics],
               "calibration_method": [(f.get("fusion", {}).get("calibration") or {}).get("method") for f in fold_metrics]},
    )
    calibration = confidence_metrics(rows)
    if calibration is not None:
        calibration["method"] = ", ".join(sorted({m for m in metrics["folds"]["calibration_method"] if m}))
        metrics["calibration"] = calibration
    if baseline_hits is not None:
        metrics["baseline"] = {"char_tfidf": {"accuracy": intervals["baseline_char_tfidf_accuracy"]["value"]}}
    if fold_metrics[0].get("ablations"):
        from ameli_ray.evaluation.ablations import pool_folds

        metrics["ablations"] = pool_folds([f["ablations"] for f in fold_metrics], rows, ablation_answers or {})
    if fold_metrics[0].get("fusion"):
        metrics["fusion"] = fold_metrics[0]["fusion"]  # the first fold's, for the report's grid
    metrics["training"] = [f.get("training") for f in fold_metrics]
    return metrics


def _baseline_hits(rows: list[dict]):
    """The char TF-IDF baseline's hit per labelled mention (NaN for NIL ones), in `rows` order."""
    import numpy as np

    labelled = [r for r in rows if r.get("gold_entity_id") is not None]
    if not labelled or "baseline_entity_id" not in labelled[0]:
        return None
    return np.array([np.nan if r["gold_entity_id"] == NIL_ENTITY else float(r["baseline_entity_id"] == r["gold_entity_id"])
                     for r in labelled])


def _finish(metrics: dict, rows: list[dict], workdir: Path, entities: list[Entity] | None, report: bool, title: str,
            say: Say) -> None:
    """metrics.json, and report.html beside it."""
    attributes = {e.id: e.attributes for e in entities or []}
    calibration, fitted = metrics.get("calibration"), (metrics.get("fusion") or {}).get("calibration")
    if calibration is not None and "method" not in calibration and fitted:
        calibration["method"] = fitted["method"]  # the calibrator that gave these confidences
    if attributes and rows:
        from ameli_ray.evaluation.report import attribute_error_breakdown

        metrics["errors_by_attribute_type"] = attribute_error_breakdown(rows, attributes)
    (workdir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    if report:
        from ameli_ray.evaluation.report import write_report

        path = write_report(metrics, rows, workdir, entities=attributes, title=title)
        say(f"report written to {path}")


def link_and_score(
    config: AmeliConfig, kb_uri: str, mentions: list[Mention], out_uri: str, build_stats: dict, *,
    rejected: list[str] | None = None, engine: Engine | Runner = "ray", say: Say = _quiet, ablations: bool = True,
    entities: list[Entity] | None = None, rows_out: list[dict] | None = None, corpus: list[Mention] | None = None,
    ablation_answers_out: dict[str, dict[str, str]] | None = None,
) -> dict:
    """Links with the full pipeline and scores; with `ablations`, also the paper's rows; with
    `entities` (the KB's), the char n-gram TF-IDF baseline on the same mentions (its weights
    fitted on the entities and the texts of `corpus`, all the mentions of the run, labels unread);
    the confidence figures whenever the answers carry one. `rows_out` receives the link rows,
    `ablation_answers_out` each ablation row's answers (merged into what it holds)."""
    store = ObjectStore(config.s3)
    run = link_mentions(config, kb_uri, mentions, out_uri, rejected=rejected, engine=engine, say=say)
    results = read_link_results(out_uri, store)
    metrics = score(results, build_stats, run, kb_uri, config)
    rows = results.to_pylist()
    from ameli_ray.evaluation.crossval import confidence_metrics

    calibration = confidence_metrics(rows)
    if calibration is not None:
        metrics["calibration"] = calibration
    if entities is not None:
        metrics.update(_char_tfidf(entities, mentions, corpus or mentions, rows, say))
    if ablations and config.disambiguation.model:
        from ameli_ray.evaluation.ablations import ablation_rows

        answers: dict[str, dict[str, str]] = {}
        metrics["ablations"] = ablation_rows(config, kb_uri, mentions, rows, say, answers_out=answers)
        if ablation_answers_out is not None:
            for name, by_mention in answers.items():
                ablation_answers_out.setdefault(name, {}).update(by_mention)
    if rows_out is not None:
        rows_out.extend(rows)
    return metrics


def score(results: pa.Table, build_stats: dict, run: LinkRun, kb_uri: str, config: AmeliConfig | None = None) -> dict:
    rows = results.to_pylist()
    top_n = config.disambiguation.fusion.top_n if config is not None and config.disambiguation.model else None
    metrics = linking_metrics(rows, top_n=top_n)
    gold = run.gold_attributes
    if gold:
        from ameli_ray.evaluation.attributes import attribute_prf

        scored = [r for r in rows if r["mention_id"] in gold]
        predicted = [{a["key"]: a["value"] for a in sorted(r["attributes"], key=lambda a: a["confidence"])} for r in scored]
        prf = attribute_prf(predicted, [gold[r["mention_id"]] for r in scored])
        metrics.update({f"attribute_{k}": prf[k] for k in ("precision", "recall", "f1")})
    metrics.update(
        kb=kb_uri,
        model=config.disambiguation.model if config is not None else None,
        n_entities=build_stats["n_entities"],
        kb_build_entities_per_s=build_stats["entities_per_s"],
        linking_mentions_per_s=run.stats["mentions_per_s"],
    )
    return metrics


def _char_tfidf(entities: list[Entity], mentions: list[Mention], corpus: list[Mention], rows: list[dict], say: Say) -> dict:
    """The strongest simple baseline, on the mentions just scored: top-1 of a character n-gram
    TF-IDF (`evaluation.baseline`). Each row gets its `baseline_entity_id` (folds pool them)."""
    from ameli_ray.evaluation.baseline import char_tfidf_rank

    labelled = [m for m in mentions if m.gold_entity_id]
    if not labelled:
        return {}
    scored = {m.id for m in labelled}
    top = char_tfidf_rank(entities, labelled, k=1, fit_mentions=[m for m in corpus if m.id not in scored])
    top1 = {m.id: (t[0] if t else "") for m, t in zip(labelled, top)}
    real = [m for m in labelled if m.gold_entity_id != NIL_ENTITY]
    accuracy = sum(top1[m.id] == m.gold_entity_id for m in real) / len(real) if real else 0.0
    say(f"char n-gram TF-IDF baseline: top-1 {accuracy:.3f} on the same {len(real)} mentions")
    for row in rows:
        row["baseline_entity_id"] = top1.get(row["mention_id"], "")
    return {"baseline": {"char_tfidf": {"accuracy": round(accuracy, 4)}}}


def _clear_output(uri: str, store: ObjectStore) -> None:
    """An in-memory link's output replaces what was there (its parts have unique names), and a
    corpus job's files there would otherwise make readers take it for that job's output."""
    from ameli_ray.storage.commit import COMMITS, JOB, REJECTED_DIR, STAGING, SUCCESS

    base = uri.rstrip("/") if is_s3(uri) else store.resolve(uri)[1]
    for f in store.list_files(uri):
        name = f[len(base):].lstrip("/")
        top = name.split("/", 1)[0]
        if (name.endswith(".parquet") and "/" not in name) or top in (REJECTED, JOB, SUCCESS, COMMITS, REJECTED_DIR, STAGING):
            store.delete(f)


# A short training run that fits the demo's 15-minute budget on 2 CPU cores; a setting given in
# the config file, the environment or --set wins over these.
DEMO_TRAIN = {"text_epochs": 2, "max_train_mentions": 200, "candidates": 5, "image_epochs": 15, "threads": 2,
              "text_lr": 1e-4, "head_lr": 3e-3}
DEMO_TEXT_STREAM = {"max_seq_length": 64, "frozen_layers": 4}


def demo_profile(config: AmeliConfig) -> AmeliConfig:
    def fill(section, values: dict):
        return section.model_copy(update={k: v for k, v in values.items() if k not in section.model_fields_set})

    text = fill(config.disambiguation.text, DEMO_TEXT_STREAM)
    return config.model_copy(update={
        "train": fill(config.train, DEMO_TRAIN),
        "disambiguation": config.disambiguation.model_copy(update={"text": text}),
    })


def demo(config: AmeliConfig, workdir: str, *, n_products: int = 600, seed: int = 0,
         engine: Engine | Runner = "ray", say: Say = _quiet, progress=None, ablations: bool = True) -> dict:
    """The main job on the embedded default: catalogue -> local S3 -> KB -> training (Ray Train)
    -> link the test split with the full pipeline -> metrics and ablations."""
    from ameli_ray.catalog import generate_catalog
    from ameli_ray.training_run import train_model

    config = demo_profile(config)
    workdir_path = Path(workdir)
    catalog_dir = workdir_path / "catalog"
    clock = _Steps(say)
    say(f"generating the demo catalogue ({n_products} products, seed {seed}) in {catalog_dir}")
    summary = generate_catalog(catalog_dir, n_products=n_products, seed=seed, progress=progress)
    clock.done("catalogue")
    with s3_for_run(config.s3) as s3:
        config = config.model_copy(update={"s3": s3})
        store = ObjectStore(s3)
        say(f"S3 endpoint: {s3.endpoint_url or 'AWS default'}")
        bucket = "s3://ameli-demo"
        n_files = store.upload_dir(catalog_dir, f"{bucket}/catalog")
        say(f"uploaded {n_files} catalogue files to {bucket}/catalog")
        split = {name: read_mentions(f"{bucket}/catalog/mentions_{name}.json", store) for name in ("train", "dev", "test")}
        clock.done("upload")
        engine = make_runner(engine)
        with engine.session(config):
            clock.done("start")
            version_uri, _, build_stats = build_kb(
                config, f"{bucket}/catalog/entities.json", f"{bucket}/kb/demo", engine=engine, say=say
            )
            entities = read_entities(f"{bucket}/catalog/entities.json", store)  # for the report: 600 products
            clock.done("KB build")
            training = train_model(config, version_uri, split["train"], split["dev"], f"{bucket}/models/demo",
                                   engine=engine, say=say)
            clock.done("training")
            config = with_model(config, training["model"])
            out_uri = f"{bucket}/links/test"
            rows: list[dict] = []
            metrics = link_and_score(config, version_uri, split["test"], out_uri, build_stats,
                                     engine=engine, say=say, ablations=ablations, entities=entities, rows_out=rows,
                                     corpus=[m for part in split.values() for m in part])
            clock.done("linking, scoring" + (" and ablations" if ablations else ""))
        pq.write_table(read_link_results(out_uri, store), workdir_path / "links_test.parquet")
    metrics["training"] = training["training"]
    metrics["fusion"] = _fusion_record(training["fusion"])
    metrics["catalogue"] = {"n_entities": summary.n_entities, "n_mentions": summary.n_mentions}
    _finish(metrics, rows, workdir_path, entities, True, "demo: test split of the generated catalogue", say)
    clock.done("report")
    metrics["wall_seconds_per_step"] = clock.steps  # measured by the command itself (BENCHMARKS quotes these)
    metrics["wall_seconds"] = round(sum(clock.steps.values()), 1)
    (workdir_path / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    say(f"demo wall time {metrics['wall_seconds']:.0f} s: " + ", ".join(f"{k} {v:.0f} s" for k, v in clock.steps.items()))
    return metrics


class _Steps:
    """Wall time of each step of a run, said as it ends: the figures a user can check."""

    def __init__(self, say: Say):
        self.say = say
        self.steps: dict[str, float] = {}
        self._last = time.perf_counter()

    def done(self, step: str) -> None:
        now = time.perf_counter()
        self.steps[step] = round(now - self._last, 1)
        self._last = now
        self.say(f"[dim]{step}: {self.steps[step]:.1f} s[/]")
