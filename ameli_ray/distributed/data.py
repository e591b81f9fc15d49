"""Ray Data around the linking core: KB embedding and batch linking as actor-pool stages.

Rows carry records as JSON (entity and mention attributes are free-form maps, which Arrow would
turn into ever-changing struct types) plus their embeddings as list<float32> columns. Each actor
class is a few lines over the core's batch functions in `kb.build` and `linker`.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pyarrow as pa

from ameli_ray.config import AmeliConfig
from ameli_ray.distributed.runtime import actor_options, set_threads, stage_device
from ameli_ray.kb.assets import KBManifest, KnowledgeBase, assemble_kb, read_manifest
from ameli_ray.schema import Entity, Mention
from ameli_ray.storage import ObjectStore

_log = logging.getLogger(__name__)

_F32_LIST = pa.list_(pa.float32())


def _records(batch: pa.Table, kind: str) -> list[Entity] | list[Mention]:
    model = Entity if kind == "entity" else Mention
    return [model.model_validate_json(j) for j in batch.column("record").to_pylist()]


class TextEmbedStage:
    """Text embeddings of entities (name, attributes, description) or mentions (review text).
    Mentions are embedded for a KB (`kb_manifest`): the encoder is checked against it here, where
    it is loaded, as `load_linker` checks it in-process."""

    def __init__(self, config: AmeliConfig, kind: str, kb_manifest: KBManifest | None = None):
        from ameli_ray.encoders import TextEncoder
        from ameli_ray.linker import check_compatible

        set_threads(config.text_stage)
        self.kind = kind
        self.encoder = TextEncoder(config.text_encoder, ObjectStore(config.s3))
        if kb_manifest is not None:
            check_compatible(kb_manifest, config, text=self.encoder)

    def __call__(self, batch: pa.Table) -> pa.Table:
        records = _records(batch, self.kind)
        texts = [r.text() if isinstance(r, Entity) else r.text for r in records]
        return batch.append_column("text_emb", pa.array(list(self.encoder.encode(texts)), type=_F32_LIST))


class ImageEmbedStage:
    """Image embeddings of each record's pictures, flattened, and the errors of unusable ones."""

    def __init__(self, config: AmeliConfig, kind: str, kb_manifest: KBManifest | None = None):
        from ameli_ray.encoders import ImageEncoder
        from ameli_ray.linker import check_compatible

        set_threads(config.image_stage)
        self.kind = kind
        self.config = config
        self.store = ObjectStore(config.s3)
        self.encoder = ImageEncoder(config.image_encoder, self.store)
        if kb_manifest is not None:
            check_compatible(kb_manifest, config, image=self.encoder)

    def __call__(self, batch: pa.Table) -> pa.Table:
        from ameli_ray.encoders.image import embed_image_lists, split_by_owner

        records = _records(batch, self.kind)
        limit = self.config.image_encoder
        emb, owner, errors = embed_image_lists(
            [r.image_uris for r in records], self.encoder, self.store, self.config.images,
            limit.max_images_per_entity if self.kind == "entity" else limit.max_images_per_mention,
        )
        per_record = [e.ravel() for e in split_by_owner(emb, owner, len(records))]
        return batch.append_column("image_emb", pa.array(per_record, type=_F32_LIST)).append_column(
            "errors", pa.array(errors, pa.list_(pa.string()))
        )


class OcrStage:
    """Text read from each record's pictures: review photos (attribute evidence) or product images."""

    def __init__(self, config: AmeliConfig, kind: str):
        from ameli_ray.attributes.ocr import make_ocr_engine

        threads = set_threads(config.ocr_stage)
        self.kind = kind
        self.config = config
        self.store = ObjectStore(config.s3)
        self.engine = make_ocr_engine(config.ocr, threads=threads)

    def __call__(self, batch: pa.Table) -> pa.Table:
        from ameli_ray.attributes.evidence import read_text_in_images

        records = _records(batch, self.kind)
        limit = self.config.image_encoder
        lines, errors = read_text_in_images(
            [r.image_uris for r in records], self.engine, self.store, self.config,
            limit.max_images_per_entity if self.kind == "entity" else limit.max_images_per_mention,
        )
        return batch.append_column(
            "ocr", pa.array([[{"text": t, "confidence": c} for t, c in item] for item in lines], _OCR_LINES)
        ).append_column("ocr_errors", pa.array(errors, pa.list_(pa.string())))


_OCR_LINES = pa.list_(pa.struct([("text", pa.string()), ("confidence", pa.float32())]))


def _ocr_wanted(kind: str, config: AmeliConfig) -> bool:
    from ameli_ray.attributes.evidence import wants_entity_ocr, wants_mention_ocr

    return wants_mention_ocr(config) if kind == "mention" else wants_entity_ocr(config)


def _embedded(records: list, kind: str, config: AmeliConfig, kb_manifest: KBManifest | None = None,
              then: tuple[str, ...] = ()):
    """A dataset of records with text_emb, image_emb and errors columns (and ocr, ocr_errors
    when OCR runs for this kind of record). Mentions are embedded for the KB of `kb_manifest`;
    `then` names the stage pools the caller adds after (see `warn_if_pools_cannot_start`)."""
    return embed_stages(_record_rows(records, config), kind, config, kb_manifest, then)


def _record_rows(records: list, config: AmeliConfig):
    import ray

    rows = [{"row": i, "record": r.model_dump_json()} for i, r in enumerate(records)]
    return ray.data.from_items(rows, override_num_blocks=_blocks(len(rows), config.text_stage.batch_size))


def embed_stages(ds, kind: str, config: AmeliConfig, kb_manifest: KBManifest | None = None, then: tuple[str, ...] = ()):
    """OCR (where it runs for this kind), text and image embedding over a dataset of `record` rows.
    `then`: the stage pools the caller adds after these, which must start beside them."""
    kwargs = {"config": config, "kind": kind}
    ocr = ("ocr_stage",) if _ocr_wanted(kind, config) else ()
    warn_if_pools_cannot_start(config, (*ocr, "text_stage", "image_stage", *then))
    if ocr:
        ds = ds.map_batches(OcrStage, fn_constructor_kwargs=kwargs, batch_format="pyarrow", **actor_options(config.ocr_stage))
    embed = {**kwargs, "kb_manifest": kb_manifest}
    return ds.map_batches(
        TextEmbedStage, fn_constructor_kwargs=embed, batch_format="pyarrow", **actor_options(config.text_stage)
    ).map_batches(ImageEmbedStage, fn_constructor_kwargs=embed, batch_format="pyarrow", **actor_options(config.image_stage))


def _ocr_of(batch: pa.Table) -> tuple[list[list[tuple[str, float]]], list[list[str]]]:
    if "ocr" not in batch.column_names:
        return [[] for _ in range(batch.num_rows)], [[] for _ in range(batch.num_rows)]
    lines = [[(d["text"], d["confidence"]) for d in item] for item in batch.column("ocr").to_pylist()]
    return lines, batch.column("ocr_errors").to_pylist()


def build_kb_with_ray(entities: list[Entity], config: AmeliConfig, name: str) -> tuple[KnowledgeBase, list[list[str]]]:
    """Embeds entities given in memory (evaluation) on the Ray cluster, then indexes them on the
    driver; a catalogue's build is `stream_kb_with_ray`."""
    from ameli_ray.encoders.image import ImageEncoder
    from ameli_ray.encoders.text import TextEncoder

    if not entities:
        raise ValueError("cannot build a KB from no entities")
    start = time.perf_counter()
    text_emb: list = [None] * len(entities)
    image_emb: list = [None] * len(entities)
    errors: list[list[str]] = [[] for _ in entities]
    ocr_text: list[str] = [""] * len(entities)
    for batch in _embedded(entities, "entity", config).iter_batches(batch_format="pyarrow", batch_size=None):
        lines, ocr_errors = _ocr_of(batch)
        for r, t, im, errs, ocr, oerrs in zip(
            batch.column("row").to_pylist(), batch.column("text_emb").to_numpy(zero_copy_only=False),
            batch.column("image_emb").to_numpy(zero_copy_only=False), batch.column("errors").to_pylist(),
            lines, ocr_errors,
        ):
            text_emb[r], image_emb[r], errors[r] = t, im, errs + oerrs
            ocr_text[r] = " ".join(text for text, _ in ocr)
    embed_seconds = time.perf_counter() - start
    # built on the driver only for their identity (model id, weights fingerprint, dim): cheap
    image_encoder = ImageEncoder(config.image_encoder, ObjectStore(config.s3), device="cpu")
    text_encoder = TextEncoder(config.text_encoder, ObjectStore(config.s3), device="cpu")
    dim = image_encoder.dim
    owners = np.concatenate([np.full(len(v) // dim, i, np.int32) for i, v in enumerate(image_emb)])
    kb = assemble_kb(
        entities, np.stack(text_emb).astype(np.float32),
        np.concatenate([np.asarray(v, np.float32) for v in image_emb]).reshape(-1, dim), owners,
        name=name, text_model=config.text_encoder.model, image_model=image_encoder.model_id,
        image_fingerprint=image_encoder.fingerprint, text_fingerprint=text_encoder.fingerprint, index_settings=config.index,
        lexical=config.retrieval.lexical, chargram=config.retrieval.chargram,
        entity_ocr=ocr_text if _ocr_wanted("entity", config) else None,
        build_info={
            "runner": "ray-data",
            "embed_seconds": round(embed_seconds, 3),
            "seconds": round(time.perf_counter() - start, 3),
            "entities_per_s": round(len(entities) / max(embed_seconds, 1e-9), 2),
        },
    )
    return kb, errors


def read_entity_shards(batch: pa.Table, *, s3, images_uri: str | None, batch_rows: int, staging_uri: str):
    """Parses the entity shards of a batch of shard URIs into record rows of about `batch_rows`;
    the records a shard sets aside go to `staging_uri` (one JSON file per shard) for the driver."""
    import hashlib
    import json

    from ameli_ray.formats.shards import read_shard
    from ameli_ray.storage import join_uri

    store = ObjectStore(s3)
    for uri in batch.column("uri").to_pylist():
        rejected: list[dict] = []
        for shard_batch in read_shard(str(uri), store, images_uri, batch_rows, kind="entity"):
            rejected.extend(shard_batch.rejected)
            if shard_batch.records:
                yield pa.table({
                    "source": pa.array([str(uri)] * len(shard_batch.records), pa.string()),
                    "position": pa.array(shard_batch.positions, pa.int64()),
                    "record": pa.array([e.model_dump_json() for e in shard_batch.records], pa.string()),
                })
        if rejected:
            name = hashlib.sha256(str(uri).encode()).hexdigest()[:16]
            store.write_text(join_uri(staging_uri, f"{name}.json"), json.dumps(rejected))


def stream_kb_with_ray(config: AmeliConfig, shards: list, images_uri: str | None, builder, staging_uri: str,
                       batch_rows: int) -> None:
    """The streamed KB build on Ray Data: shards parsed by tasks, OCR and embeddings in the actor
    pools, and each block handed to `builder` (kb.streamed) on the driver as it arrives, in input
    order, so the driver holds one block, never the catalogue."""
    import json

    import ray

    from ameli_ray.distributed.corpus import corpus_block_bytes

    store = ObjectStore(config.s3)
    # small blocks keep every stage busy (see link_corpus_with_ray); input order makes the KB's
    # rows, and so its files' checksums, the same on every run. The dataset keeps a copy of the
    # context as it was when created.
    context = ray.data.DataContext.get_current()
    saved = context.target_max_block_size, context.execution_options.preserve_order
    context.target_max_block_size = corpus_block_bytes(batch_rows)
    context.execution_options.preserve_order = True
    try:
        ds = ray.data.from_items([{"uri": s.uri} for s in shards], override_num_blocks=len(shards))
    finally:
        context.target_max_block_size, context.execution_options.preserve_order = saved
    ds = ds.map_batches(read_entity_shards, batch_size=1, batch_format="pyarrow", num_cpus=0,
                        concurrency=min(2, len(shards)),
                        fn_kwargs={"s3": config.s3, "images_uri": images_uri, "batch_rows": batch_rows,
                                   "staging_uri": staging_uri})
    ds = embed_stages(ds, "entity", config)
    ocr = _ocr_wanted("entity", config)
    dim = builder.image_dim
    for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
        lines, ocr_errors = _ocr_of(batch)
        builder.add(
            _records(batch, "entity"),
            np.stack(batch.column("text_emb").to_numpy(zero_copy_only=False)).astype(np.float32),
            [np.asarray(v, np.float32).reshape(-1, dim) for v in batch.column("image_emb").to_numpy(zero_copy_only=False)],
            [" ".join(t for t, _ in item) for item in lines] if ocr else None,
            list(zip(batch.column("source").to_pylist(), batch.column("position").to_pylist())),
            [a + b for a, b in zip(batch.column("errors").to_pylist(), ocr_errors)],
        )
    for uri in store.list_files(staging_uri):
        builder.reject(json.loads(store.read_text(uri)))


class RetrieveStage:
    """Retrieval and the attribute filter. With `keep_evidence` the mention record and its photo
    features stay in the output, for the disambiguation stage or for building training examples."""

    def __init__(self, config: AmeliConfig, kb_uri: str, keep_evidence: bool = False, chargram_idf=None):
        from ameli_ray.linker import load_linker

        set_threads(config.retrieve_stage)
        # mentions arrive embedded (the embedding stages checked their encoders against the KB)
        loaded = load_linker(config, kb_uri, encoder=False, disambiguation=False, chargram_idf=chargram_idf)
        self.kb, self.linker = loaded.kb, loaded.linker
        self.keep_evidence = keep_evidence

    def __call__(self, batch: pa.Table) -> pa.Table:
        from ameli_ray.linker import EncodedMention, link_result_table
        from ameli_ray.retrieval.retriever import MentionQuery

        dim = self.kb.manifest.image_dim
        encoded = []
        lines, ocr_errors = _ocr_of(batch)
        for mj, t, im, errs, ocr, oerrs in zip(
            batch.column("record").to_pylist(), batch.column("text_emb").to_numpy(zero_copy_only=False),
            batch.column("image_emb").to_numpy(zero_copy_only=False), batch.column("errors").to_pylist(),
            lines, ocr_errors,
        ):
            m = Mention.model_validate_json(mj)
            query = MentionQuery(m.text, np.asarray(t, np.float32), np.asarray(im, np.float32).reshape(-1, dim), surface=m.surface)
            encoded.append(EncodedMention(m, query, errs + oerrs, ocr))
        table = link_result_table(self.linker.retrieve(encoded))
        if self.keep_evidence:
            table = table.append_column("record", batch.column("record")).append_column("image_emb", batch.column("image_emb"))
        return _carry(batch, table)


class DisambiguateStage:
    """Both streams over the top candidates, fusion, the filter and the "no match" threshold.
    Its own actor pool: the cross-encoder is the part that wants a GPU."""

    def __init__(self, config: AmeliConfig, kb_uri: str):
        from ameli_ray.linker import load_linker

        set_threads(config.disambiguate_stage)
        device = stage_device(config.disambiguate_stage)
        loaded = load_linker(config, kb_uri, encoder=False, retrieval=False, device=device)
        self.kb, self.disambiguator = loaded.kb, loaded.disambiguator

    def __call__(self, batch: pa.Table) -> pa.Table:
        from ameli_ray.linker import link_result_table

        results, evidence = zip(*_with_evidence(batch, self.kb.manifest.image_dim)) if batch.num_rows else ((), ())
        return _carry(batch, link_result_table(self.disambiguator.rerank(list(evidence), list(results))))


# where a corpus job's row came from (its shard's part, its place there): kept through the stages
_CARRIED = ("part", "position")


def _carry(batch: pa.Table, out: pa.Table) -> pa.Table:
    for name in _CARRIED:
        if name in batch.column_names:
            out = out.append_column(name, batch.column(name))
    return out


def _with_evidence(batch: pa.Table, image_dim: int) -> list:
    """(LinkResult, MentionEvidence) of each row of RetrieveStage's output with `keep_evidence`."""
    from ameli_ray.linker import link_result_from_row
    from ameli_ray.schema import MentionEvidence

    extra = ["record", "image_emb", *(c for c in _CARRIED if c in batch.column_names)]
    results = [link_result_from_row(r) for r in batch.drop_columns(extra).to_pylist()]
    return [
        (r, MentionEvidence(Mention.model_validate_json(mj), [a.key for a in r.attributes],
                            np.asarray(im, np.float32).reshape(-1, image_dim)))
        for mj, im, r in zip(batch.column("record").to_pylist(),
                             batch.column("image_emb").to_numpy(zero_copy_only=False), results)
    ]


def retrieve_with_ray(mentions: list[Mention], kb_uri: str, config: AmeliConfig, chargram_idf=None):
    """(LinkResult, MentionEvidence) per mention, streamed back to the driver (training examples),
    in no particular order. `chargram_idf` reaches every retrieval actor (a numpy array)."""
    kb_uri, manifest = read_manifest(kb_uri, ObjectStore(config.s3))  # one version for every actor
    kwargs = {"config": config, "kb_uri": kb_uri, "keep_evidence": True, "chargram_idf": chargram_idf}
    ds = _embedded(mentions, "mention", config, manifest, then=("retrieve_stage",)).map_batches(
        RetrieveStage, fn_constructor_kwargs=kwargs,
        batch_format="pyarrow", **actor_options(config.retrieve_stage),
    )
    for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
        yield from _with_evidence(batch, manifest.image_dim)


def link_with_ray(mentions: list[Mention], kb_uri: str, out_uri: str, config: AmeliConfig, store: ObjectStore) -> int:
    """Links mentions and writes parquet files under `out_uri` (local or s3://). Returns the row count."""
    kb_uri, manifest = read_manifest(kb_uri, store)  # one version for every actor, even if LATEST moves
    ds = mention_link_stages(_record_rows(mentions, config), config, kb_uri, manifest)
    store.ensure_bucket(out_uri)
    # Each block becomes one parquet file written through the ObjectStore, so the output goes
    # wherever the inputs came from with the same credentials, timeouts and error messages.
    written = ds.map_batches(
        ParquetPartWriter, fn_constructor_kwargs={"s3": config.s3, "out_uri": out_uri},
        batch_format="pyarrow", batch_size=None, concurrency=1, num_cpus=0.25,
    ).sum("rows")
    return int(written or 0)


def link_plan(config: AmeliConfig) -> str:
    """"fused" or "stages" (config.link_plan): auto keeps the stages apart where one of them asks
    for GPUs, so that only that stage's actors hold them."""
    if config.link_plan != "auto":
        return config.link_plan
    stages = (config.ocr_stage, config.text_stage, config.image_stage, config.retrieve_stage, config.disambiguate_stage)
    return "stages" if any(s.num_gpus for s in stages) else "fused"


def mention_link_stages(ds, config: AmeliConfig, kb_uri: str, kb_manifest: KBManifest):
    """Mention `record` rows in, link rows out (the rows' `part` and `position` carried), by the
    configured plan: one fused `LinkStage` pool, or the embedding stages then `link_stages`."""
    if link_plan(config) == "fused":
        warn_if_pools_cannot_start(config, ("link_stage",))
        return ds.map_batches(LinkStage, fn_constructor_kwargs={"config": config, "kb_uri": kb_uri},
                              batch_format="pyarrow", **actor_options(config.link_stage))
    after = ("retrieve_stage", "disambiguate_stage") if config.disambiguation.model else ("retrieve_stage",)
    return link_stages(embed_stages(ds, "mention", config, kb_manifest, then=after), config, kb_uri)


def pools_shortfall(config: AmeliConfig, names: tuple[str, ...], cluster: dict[str, float]) -> str | None:
    """Why the actor pools `names` of one pipeline cannot all start at once on a cluster with
    `cluster` resources (ray.cluster_resources()), or None when they can."""
    pools = {n: getattr(config, n) for n in names}
    parts = []
    for resource, field in (("CPU", "num_cpus"), ("GPU", "num_gpus")):
        need = sum(p.concurrency * getattr(p, field) for p in pools.values())
        have = float(cluster.get(resource, 0.0))
        if need > have + 1e-9:
            each = ", ".join(f"{n} {p.concurrency}x{getattr(p, field):g}" for n, p in pools.items() if getattr(p, field))
            parts.append(f"{need:g} {resource}s ({each}) where the Ray cluster has {have:g}")
    if not parts:
        return None
    return (f"the actor pools of this pipeline ask for {' and '.join(parts)}; if a pool's actors cannot start, "
            "Ray Data can wait for ever: lower those stages' concurrency or num_cpus/num_gpus"
            + (", or use link_plan=fused" if "retrieve_stage" in names else ""))


def warn_if_pools_cannot_start(config: AmeliConfig, names: tuple[str, ...]) -> None:
    """Warns, before the job starts, when the actor pools of one pipeline cannot all start at once.
    Seen on 2 cores: five pools of two 0.5-CPU actors waited for ever, the CPUs held by actors of
    later pools waiting for an earlier pool's actors that could not start. Whether it hangs depends
    on which actors Ray places first (the defaults ask for 2.5 CPUs with a model and have run on 2
    cores), and a cluster may grow, so this is a warning that names the numbers, not a refusal."""
    import ray

    problem = pools_shortfall(config, names, ray.cluster_resources())
    if problem is not None:
        _log.warning("%s", problem)


class LinkStage:
    """The whole linker in one actor: OCR, both encoders, retrieval, the attribute filter and,
    with a model, disambiguation and fusion: the calls the in-process loop makes, block by block."""

    def __init__(self, config: AmeliConfig, kb_uri: str):
        from ameli_ray.linker import load_linker

        # onnxruntime's OCR pool would otherwise take every core of the node, and spin on them
        threads = set_threads(config.link_stage)
        # load_linker checks the encoders and the model against the KB, as in-process
        device = stage_device(config.link_stage)
        self.linker = load_linker(config, kb_uri, device=device, ocr_threads=threads)

    def __call__(self, batch: pa.Table) -> pa.Table:
        from ameli_ray.linker import link_result_table

        return _carry(batch, link_result_table(self.linker.link(_records(batch, "mention"))))


def link_stages(ds, config: AmeliConfig, kb_uri: str):
    """Retrieval and the attribute filter, then (with a model) disambiguation, over embedded
    mention rows: link rows out."""
    disambiguate = bool(config.disambiguation.model)
    ds = ds.map_batches(
        RetrieveStage, fn_constructor_kwargs={"config": config, "kb_uri": kb_uri, "keep_evidence": disambiguate},
        batch_format="pyarrow", **actor_options(config.retrieve_stage),
    )
    if disambiguate:
        ds = ds.map_batches(
            DisambiguateStage, fn_constructor_kwargs={"config": config, "kb_uri": kb_uri},
            batch_format="pyarrow", **actor_options(config.disambiguate_stage),
        )
    return ds


class ParquetPartWriter:
    def __init__(self, s3, out_uri: str):
        self.store = ObjectStore(s3)
        self.out_uri = out_uri

    def __call__(self, batch: pa.Table) -> pa.Table:
        import uuid

        from ameli_ray.storage import join_uri, parquet_bytes

        self.store.write_bytes(join_uri(self.out_uri, f"part-{uuid.uuid4().hex}.parquet"), parquet_bytes(batch))
        return pa.table({"rows": [batch.num_rows]})


def _blocks(n_rows: int, batch_size: int) -> int:
    return max(1, min(200, -(-n_rows // batch_size)))
