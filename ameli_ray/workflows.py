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
from ameli_ray.errors import InputFormatError
from ameli_ray.evaluation import linking_metrics
from ameli_ray.formats import read_entities, read_mentions
from ameli_ray.kb.assets import KnowledgeBase, read_manifest, write_kb
from ameli_ray.linker import check_compatible
from ameli_ray.runners import Engine, Runner, make_runner
from ameli_ray.schema import LINK_RESULT_ARROW_SCHEMA, Mention
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
) -> tuple[str, KnowledgeBase, dict]:
    """Reads entities, embeds them, indexes them and writes a new KB version under `kb_uri`."""
    store = ObjectStore(config.s3)
    if version is not None:  # refused before the embedding, not after (write_kb checks again)
        check_new_version(kb_uri, version, store)
    entities = read_entities(entities_uri, store, images_uri)
    if not entities:
        raise InputFormatError(f"{entities_uri} holds no entities: nothing to build a KB from")
    say(f"read {len(entities)} entities from {entities_uri}")
    name = name or Path(kb_uri.rstrip("/")).name or "kb"
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


@dataclass
class LinkRun:
    stats: dict  # n_mentions, n_rejected, seconds, mentions_per_s
    gold_attributes: dict[str, dict[str, str]]  # by mention id, where known: what scoring needs of the input


def link(
    config: AmeliConfig, kb_uri: str, mentions_uri: str, out_uri: str, *, images_uri: str | None = None,
    engine: Engine | Runner = "ray", say: Say = _quiet,
) -> LinkRun:
    """Links every mention and writes parquet (answer, top-K candidates, per-channel scores)."""
    store = ObjectStore(config.s3)
    kb_version_uri, manifest = read_manifest(kb_uri, store)
    check_compatible(manifest, config)  # before the corpus is read: the mistake is in the config
    rejected: list[str] = []
    mentions = read_mentions(mentions_uri, store, images_uri, rejected)
    say(f"read {len(mentions)} mentions from {mentions_uri}; KB {kb_version_uri}")
    return link_mentions(config, kb_version_uri, mentions, out_uri, rejected=rejected, engine=engine, say=say)


def link_mentions(
    config: AmeliConfig, kb_uri: str, mentions: list[Mention], out_uri: str, *, rejected: list[str] | None = None,
    engine: Engine | Runner = "ray", say: Say = _quiet,
) -> LinkRun:
    """`link` over records already read (`evaluate` links a held-out part of a corpus)."""
    store = ObjectStore(config.s3)
    rejected = rejected or []
    _clear_local(out_uri)
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
    files = [f for f in store.list_files(out_uri) if f.endswith(".parquet")]
    if not files:
        raise InputFormatError(f"no link results (parquet files) under {out_uri}")
    return pa.concat_tables(
        [pq.read_table(io.BytesIO(store.read_bytes(f))).cast(LINK_RESULT_ARROW_SCHEMA) for f in files]
    )


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
    train: bool = True, engine: Engine | Runner = "ray", say: Say = _quiet,
) -> dict:
    """Builds a KB, trains the disambiguation model (unless `disambiguation.model` names one),
    links the evaluation mentions with the full pipeline, scores them; writes workdir/metrics.json.

    Without --train-mentions/--dev-mentions the given mentions are split (60/20/20 by id hash):
    the model trains on the first part, tunes fusion on the second, and only the held-out rest
    is scored. `train=False` (no model) scores retrieval and the attribute filter over all of them."""
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
    if trained and train_mentions_uri is None:
        train_set, dev, scored = split_mentions(mentions)
        scored_note = {"mentions": "held-out 20% of the given mentions (split by hash of mention id)",
                       "split": {"train": len(train_set), "dev": len(dev), "test": len(scored)}}
    else:
        train_set = read_mentions(train_mentions_uri, store, mention_images) if trained else []
        dev = read_mentions(dev_mentions_uri, store, mention_images) if trained else []
        scored = mentions
        scored_note = {"mentions": f"all of {mentions_uri}"}
    scored_note["mention_ids"] = [m.id for m in scored]
    engine = make_runner(engine)
    with engine.session(config):
        version_uri, _, build_stats = build_kb(
            config, entities_uri, str(workdir_path / "kb"), images_uri=entity_images, engine=engine, say=say
        )
        training = None
        if trained:
            from ameli_ray.training_run import train_model

            training = train_model(config, version_uri, train_set, dev, str(workdir_path / "model"), engine=engine, say=say)
            config = with_model(config, training["model"])
        metrics = link_and_score(config, version_uri, scored, str(workdir_path / "links"), build_stats,
                                 rejected=rejected, engine=engine, say=say, ablations=ablations)
    metrics["scored"] = scored_note
    if training is not None:
        metrics["training"] = training["training"]
    (workdir_path / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def link_and_score(
    config: AmeliConfig, kb_uri: str, mentions: list[Mention], out_uri: str, build_stats: dict, *,
    rejected: list[str] | None = None, engine: Engine | Runner = "ray", say: Say = _quiet, ablations: bool = True,
) -> dict:
    """Links with the full pipeline and scores; with `ablations`, also the paper's rows."""
    store = ObjectStore(config.s3)
    run = link_mentions(config, kb_uri, mentions, out_uri, rejected=rejected, engine=engine, say=say)
    results = read_link_results(out_uri, store)
    metrics = score(results, build_stats, run, kb_uri, config)
    if ablations and config.disambiguation.model:
        from ameli_ray.evaluation.ablations import ablation_rows

        metrics["ablations"] = ablation_rows(config, kb_uri, mentions, results.to_pylist(), say)
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


def _clear_local(uri: str) -> None:
    """Batch output folders are replaced, not appended to (parts have unique names)."""
    if is_s3(uri):
        return
    path = Path(uri)
    if path.is_dir():
        for f in [*path.glob("*.parquet"), path / REJECTED]:
            f.unlink(missing_ok=True)


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
    say(f"generating the demo catalogue ({n_products} products, seed {seed}) in {catalog_dir}")
    summary = generate_catalog(catalog_dir, n_products=n_products, seed=seed, progress=progress)
    with s3_for_run(config.s3) as s3:
        config = config.model_copy(update={"s3": s3})
        store = ObjectStore(s3)
        say(f"S3 endpoint: {s3.endpoint_url or 'AWS default'}")
        bucket = "s3://ameli-demo"
        n_files = store.upload_dir(catalog_dir, f"{bucket}/catalog")
        say(f"uploaded {n_files} catalogue files to {bucket}/catalog")
        split = {name: read_mentions(f"{bucket}/catalog/mentions_{name}.json", store) for name in ("train", "dev", "test")}
        engine = make_runner(engine)
        with engine.session(config):
            version_uri, _, build_stats = build_kb(
                config, f"{bucket}/catalog/entities.json", f"{bucket}/kb/demo", engine=engine, say=say
            )
            training = train_model(config, version_uri, split["train"], split["dev"], f"{bucket}/models/demo",
                                   engine=engine, say=say)
            config = with_model(config, training["model"])
            out_uri = f"{bucket}/links/test"
            metrics = link_and_score(config, version_uri, split["test"], out_uri, build_stats,
                                     engine=engine, say=say, ablations=ablations)
        pq.write_table(read_link_results(out_uri, store), workdir_path / "links_test.parquet")
    metrics["training"] = training["training"]
    metrics["catalogue"] = {"n_entities": summary.n_entities, "n_mentions": summary.n_mentions}
    (workdir_path / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics
