"""Relinking a corpus of any size: shards in, one committed part per shard out, exactly once.

    job = plan_corpus_link(config, kb_uri, "s3://b/reviews/", "s3://b/links/2026-11", store=store)
    commits = make_runner(engine).link_corpus(job, on_commit)   # only the shards not yet committed
    summary = job.finish(commits, seconds)

The driver holds the shard listing and one commit record per shard, never the records: the
workers (or, in-process, this module) parse each shard in bounded batches (`formats.shards`) and
write through the commit protocol of `storage.commit`. The job's fingerprint covers the input
files (URI, size, ETag or mtime), the KB and model versions and every setting that changes an
answer, so the same command after a crash resumes, after success does nothing, and over changed
inputs or another model refuses to mix outputs. Ray-free; the Ray Data pipeline is
`distributed/corpus.py`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pyarrow as pa

from ameli_ray.config import AmeliConfig, with_model
from ameli_ray.formats.shards import Shard, list_shards, read_shard
from ameli_ray.storage import ObjectStore
from ameli_ray.storage.commit import SUCCESS, JobOutput, ShardCommit, job_fingerprint, part_name

if TYPE_CHECKING:
    from ameli_ray.kb.assets import KBManifest

# Settings that change an answer: a job over other values is another job. Operational ones
# (ray, s3, stage sizes, serve, training) are left out: a resume may run on another cluster.
ANSWER_SETTINGS = ("text_encoder", "image_encoder", "images", "index", "retrieval", "ocr", "attributes", "disambiguation")

OnCommit = Callable[[ShardCommit], None]


@dataclass
class CorpusJob:
    config: AmeliConfig  # with the model pinned to one version
    kb_uri: str  # one KB version for every worker, even if LATEST moves during the job
    kb_manifest: "KBManifest"
    shards: list[Shard]
    out: JobOutput
    done: dict[str, ShardCommit]  # committed by an earlier run of this job
    images_uri: str | None = None
    batch_rows: int = 256
    # where the time went, per stage, where the runner can tell (the Ray job: its operators'
    # busy seconds, summed over their tasks and actors, and the span from first start to last end)
    stage_seconds: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def todo(self) -> list[tuple[str, Shard]]:
        """(part name, shard) of every shard still to link."""
        return [(part_name(i), s) for i, s in enumerate(self.shards) if part_name(i) not in self.done]

    def finish(self, new: dict[str, ShardCommit], seconds: float) -> dict:
        """The summary, and `_SUCCESS` when every shard is committed."""
        commits = {**self.done, **new}
        mentions = sum(c.rows for c in commits.values())
        answered = sum(c.answered for c in commits.values())
        linked_now = sum(c.rows for c in new.values())
        summary = {
            "n_mentions": mentions,
            "n_rejected": sum(c.rejected for c in commits.values()),
            "answered": answered,
            "no_match_share": round(1 - answered / mentions, 4) if mentions else 0.0,
            "shards": len(self.shards),
            "shards_resumed": len(self.done),
            "seconds": round(seconds, 2),
            "mentions_per_s": round(linked_now / seconds, 1) if seconds > 0 and linked_now else 0.0,
            "kb": self.kb_uri,
            "model": self.config.disambiguation.model,
            "out": self.out.out_uri,
        }
        if self.stage_seconds:
            summary["stages"] = self.stage_seconds
        if len(commits) == len(self.shards):
            self.out.finish(commits, summary)
        return summary


def plan_corpus_link(
    config: AmeliConfig, kb_uri: str, mentions_uri: str, out_uri: str, *, store: ObjectStore,
    images_uri: str | None = None, overwrite: bool = False,
) -> CorpusJob:
    """Lists the shards, pins the KB and model versions, and claims the output."""
    from ameli_ray.kb.assets import read_manifest
    from ameli_ray.linker import check_compatible
    from ameli_ray.storage.versioned import resolve_version

    kb_version, manifest = read_manifest(kb_uri, store)
    check_compatible(manifest, config)  # before any record is read: the mistake is in the config
    if config.disambiguation.model:
        config = with_model(config, resolve_version(config.disambiguation.model, store, "disambiguation model"))
    shards = list_shards(mentions_uri, store)
    settings = config.model_dump(mode="json", include=set(ANSWER_SETTINGS))
    record = {
        "inputs": mentions_uri, "images": images_uri, "kb": kb_version, "model": config.disambiguation.model,
        "settings": settings, "shards": [s.to_json() for s in shards],
    }
    out = JobOutput(out_uri, job_fingerprint(record), store)
    # the job file names its fingerprint's inputs, not every shard (a corpus may have 100k)
    job_file = {k: v for k, v in record.items() if k != "shards"} | {
        "n_shards": len(shards), "shards_sha256": job_fingerprint({"shards": record["shards"]})}
    done = out.begin(job_file, overwrite=overwrite)
    return CorpusJob(config, kb_version, manifest, shards, out, done, images_uri, batch_rows=config.text_stage.batch_size)


def previous_summary(job: CorpusJob) -> dict | None:
    """The summary of a run that already committed every shard of this job."""
    if job.todo or not job.out.store.exists(job.out.uri(SUCCESS)):
        return None
    return json.loads(job.out.store.read_text(job.out.uri(SUCCESS)))["summary"]


def link_corpus_in_process(job: CorpusJob, on_commit: OnCommit) -> dict[str, ShardCommit]:
    """The plain loop: one shard after another through one in-process linker (small corpora,
    tests, and the baseline the Ray Data job is measured against)."""
    from ameli_ray.linker import link_result_table, load_linker

    if not job.todo:  # every shard committed by an earlier run that died before _SUCCESS
        return {}
    store = job.out.store
    linker = load_linker(job.config, job.kb_uri, store)
    commits = {}
    for part, shard in job.todo:
        results, positions, rejected = [], [], []
        for batch in read_shard(shard.uri, store, job.images_uri, job.batch_rows):
            results.extend(linker.link(batch.mentions))
            positions.extend(batch.positions)
            rejected.extend(batch.rejected)
        table = link_result_table(results)
        commits[part] = job.out.commit(shard.to_json(), part, in_input_order(table, positions), rejected)
        on_commit(commits[part])
    return commits


def in_input_order(table: pa.Table, positions: list[int] | pa.Array) -> pa.Table:
    """A shard's rows sorted by their place in the input, each place once: the part is the
    same bytes whatever order the blocks came back in, or how often a retried task sent them."""
    import numpy as np

    pos = np.asarray(positions, dtype=np.int64)
    order = np.argsort(pos, kind="stable")
    keep = order[np.concatenate([[True], np.diff(pos[order]) != 0])] if len(pos) else order
    return table.take(pa.array(keep))
