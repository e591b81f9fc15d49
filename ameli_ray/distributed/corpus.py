"""A corpus job on Ray Data: shards parsed in the workers, linked by the actor-pool stages of
`distributed/data.py`, staged in pieces and committed shard by shard (`storage.commit`).

    shard names ──read (tasks)──> records ──the linker (actors)──> link rows ──stage (tasks)──>
        pieces under _staging/ ──driver: a shard complete?──> commit task

The linker runs as one fused pool of actors, or as OCR, text, image, retrieve and disambiguate
pools of their own (`data.link_plan`).

Rows carry their shard's part name and their place in it through every stage, so the driver
can tell when all of a shard's mentions are back (the reader writes how many there are once it
has read the shard) and a commit task merges its pieces in input order. The driver holds the
places of the shards in flight only, and never a record.
"""

from __future__ import annotations

import json

import pyarrow as pa

from ameli_ray.config import S3Settings
from ameli_ray.corpus import CorpusJob, OnCommit, in_input_order
from ameli_ray.distributed.data import mention_link_stages
from ameli_ray.errors import AmeliError
from ameli_ray.schema import LINK_RESULT_ARROW_SCHEMA
from ameli_ray.storage import ObjectStore, parquet_bytes
from ameli_ray.storage.commit import STAGING, JobOutput, ShardCommit

READ_INFO = "_read.json"
# Bytes per parsed record that the read blocks are sized for: a generated review is ~350 bytes of
# JSON, a real one with photos and a long text a few KiB.
RECORD_BYTES = 1024


def read_shards(batch: pa.Table, *, s3: S3Settings, out_uri: str, attempt: str, images_uri: str | None, batch_rows: int):
    """Parses the shards of a batch of shard names into record rows, in blocks of `batch_rows`;
    then records how many valid records each held and the ones set aside."""
    from ameli_ray.formats.shards import read_shard
    from ameli_ray.storage import join_uri

    store = ObjectStore(s3)
    for part, uri in zip(batch.column("part").to_pylist(), batch.column("uri").to_pylist()):
        valid, rejected = 0, []
        for shard_batch in read_shard(str(uri), store, images_uri, batch_rows):
            rejected.extend(shard_batch.rejected)
            if shard_batch.mentions:
                valid += len(shard_batch.mentions)
                yield pa.table({
                    "part": pa.array([str(part)] * len(shard_batch.mentions), pa.string()),
                    "position": pa.array(shard_batch.positions, pa.int64()),
                    "record": pa.array([m.model_dump_json() for m in shard_batch.mentions], pa.string()),
                })
        store.write_text(join_uri(out_uri, STAGING, attempt, str(part), READ_INFO),
                         json.dumps({"valid": valid, "rejected": rejected}))


def stage_pieces(batch: pa.Table, *, s3: S3Settings, out_uri: str, job: str, attempt: str) -> pa.Table:
    """Writes a block of link rows as one staged piece per shard it holds; returns, per piece,
    its URI and the places of its rows."""
    import uuid

    import pyarrow.compute as pc

    out = JobOutput(out_uri, job, ObjectStore(s3), attempt)
    rows = {"part": [], "piece": [], "positions": []}
    for part in pc.unique(batch.column("part")).to_pylist():
        piece = batch.filter(pc.equal(batch.column("part"), part))
        uri = out.staging_uri(part, uuid.uuid4().hex)
        out.store.write_bytes(uri, parquet_bytes(piece))
        rows["part"].append(part)
        rows["piece"].append(uri)
        rows["positions"].append(piece.column("position").to_pylist())
    return pa.table({"part": pa.array(rows["part"], pa.string()), "piece": pa.array(rows["piece"], pa.string()),
                     "positions": pa.array(rows["positions"], pa.list_(pa.int64()))})


def commit_shard(s3: S3Settings, out_uri: str, job: str, attempt: str, shard: dict, part: str, pieces: list[str],
                 rejected: list[dict]) -> ShardCommit:
    """Merges a shard's pieces into its part, in input order, and commits it."""
    import io

    import pyarrow.parquet as pq

    out = JobOutput(out_uri, job, ObjectStore(s3), attempt)
    tables = [pq.read_table(io.BytesIO(out.store.read_bytes(p))) for p in pieces]
    if tables:
        merged = pa.concat_tables(tables)
        merged = in_input_order(merged, merged.column("position").to_numpy()).drop_columns(["part", "position"])
    else:
        merged = LINK_RESULT_ARROW_SCHEMA.empty_table()
    return out.commit(shard, part, merged.cast(LINK_RESULT_ARROW_SCHEMA), rejected)


def corpus_block_bytes(batch_rows: int) -> int:
    """The block size of a corpus job: about two read batches of records."""
    return max(64 * 1024, 2 * batch_rows * RECORD_BYTES)


def stage_seconds(ds) -> dict[str, dict[str, float]]:
    """Per operator of an executed dataset: `busy_s`, its tasks' wall time summed (the work, with
    the waits inside it), and `span_s`, first start to last end. Read from Ray Data's own stats
    (an internal summary: Ray versions that lack it give none, never an error)."""
    try:
        summary = ds.get_stats_summary() if hasattr(ds, "get_stats_summary") else ds._get_stats_summary()

        def operators(node):  # a tree: each map_batches' summary holds the one before it as a parent
            for parent in getattr(node, "parents", None) or ():
                yield from operators(parent)
            yield from node.operators_stats

        return {
            # "MapBatches(a)->MapBatches(b)" when Ray Data fused two stages into one operator
            "->".join(o.removeprefix("MapBatches(").removesuffix(")") for o in op.operator_name.split("->")): {
                "busy_s": round(float(op.wall_time.sum if op.wall_time is not None else 0.0), 2),
                "span_s": round(float(op.time_total_s), 2)}
            for op in operators(summary)
        }
    except Exception:  # noqa: BLE001 - a figure for the summary, not worth failing a finished job over
        return {}


def link_corpus_with_ray(job: CorpusJob, on_commit: OnCommit) -> dict[str, ShardCommit]:
    import ray

    todo = job.todo
    if not todo:
        return {}
    config, out = job.config, job.out
    s3 = config.s3
    shard_of = dict(todo)
    # Ray Data merges what a task yields into blocks of up to `target_max_block_size` (128 MiB by
    # default): a whole shard would become one block and the model stages would run one after the
    # other on it instead of side by side. Blocks of a few read batches keep them all busy. The
    # dataset seals a copy of the current context when it is created, so the change stays with it.
    context = ray.data.DataContext.get_current()
    default_block_size = context.target_max_block_size
    context.target_max_block_size = corpus_block_bytes(job.batch_rows)
    try:
        ds = ray.data.from_items([{"part": p, "uri": s.uri} for p, s in todo], override_num_blocks=len(todo))
    finally:
        context.target_max_block_size = default_block_size
    ds = ds.map_batches(
        read_shards, batch_size=1, batch_format="pyarrow", num_cpus=0, concurrency=min(2, len(todo)),
        fn_kwargs={"s3": s3, "out_uri": out.out_uri, "attempt": out.attempt, "images_uri": job.images_uri,
                   "batch_rows": job.batch_rows},
    )
    ds = mention_link_stages(ds, config, job.kb_uri, job.kb_manifest)
    ds = ds.map_batches(stage_pieces, batch_size=None, batch_format="pyarrow", num_cpus=0,
                        fn_kwargs={"s3": s3, "out_uri": out.out_uri, "job": out.job, "attempt": out.attempt})

    commit = ray.remote(num_cpus=0)(commit_shard)
    pieces: dict[str, list[str]] = {}
    seen: dict[str, set[int]] = {}
    expected: dict[str, dict] = {}
    pending: dict = {}  # ObjectRef -> part
    commits: dict[str, ShardCommit] = {}

    def read_info(part: str) -> dict | None:
        if part not in expected:
            uri = out.uri(STAGING, out.attempt, part, READ_INFO)
            if not out.store.exists(uri):
                return None
            expected[part] = json.loads(out.store.read_text(uri))
        return expected[part]

    def maybe_commit(part: str) -> None:
        info = read_info(part)
        if info is None or part in commits or part in pending.values() or len(seen.get(part, ())) < info["valid"]:
            return
        ref = commit.remote(s3, out.out_uri, out.job, out.attempt, shard_of[part].to_json(), part,
                            pieces.pop(part, []), info["rejected"])
        pending[ref] = part
        seen.pop(part, None)

    def collect(timeout: float) -> None:
        if not pending:
            return
        ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=timeout)
        for ref in ready:
            part = pending.pop(ref)
            commits[part] = ray.get(ref)
            expected.pop(part, None)
            on_commit(commits[part])

    for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
        for part, piece, positions in zip(*(batch.column(c).to_pylist() for c in ("part", "piece", "positions"))):
            pieces.setdefault(part, []).append(piece)
            seen.setdefault(part, set()).update(positions)
            maybe_commit(part)
        collect(0)
    for part, _ in todo:  # shards with no valid record never reach the stages
        maybe_commit(part)
    collect(None)
    job.stage_seconds = stage_seconds(ds)
    missing = [p for p, _ in todo if p not in commits]
    if missing:
        raise AmeliError(
            f"{len(missing)} shard(s) did not come back whole (e.g. {shard_of[missing[0]].uri}: "
            f"{len(seen.get(missing[0], ()))} of {(read_info(missing[0]) or {}).get('valid', '?')} mentions); "
            "nothing of them was committed: run the same command again to link them"
        )
    return commits
