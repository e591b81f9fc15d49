"""Exactly-once output of a corpus job: one part per input shard, committed shard by shard.

    out/_JOB.json                    which job writes here (inputs, KB and model versions, settings)
    out/part-00003.parquet           the links of shard 3, rows in input order
    out/_rejected/part-00003.jsonl   the records of shard 3 set aside, with source, position, reason
    out/_commits/part-00003.json     shard 3 committed: its input, counts and the part's sha256
    out/_staging/<attempt>/…         pieces in flight; never read, cleared when a job starts
    out/_SUCCESS                     every shard committed: the parts, totals and checksums

A part's name depends only on its shard's place in the sorted input listing, so a retried or
resumed job rewrites the same names instead of adding new ones. A shard counts as done only once
its commit record exists (one PUT: S3 makes it visible whole or not at all), and readers read the
parts the commit records name, checked by sha256: a part written by a job killed before its
commit is invisible and is rewritten by the next run. A job over the same inputs, KB, model and
settings resumes where the last run stopped and does nothing when all is committed; a job over
anything else refuses to mix its output with the old one unless told to overwrite.

Ray-free: the in-process runner and the Ray Data runner commit through the same code.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq

from ameli_ray.errors import ChecksumMismatch, InputFormatError, StorageError
from ameli_ray.storage.objects import ObjectStore, join_uri, parquet_bytes

JOB = "_JOB.json"
SUCCESS = "_SUCCESS"
COMMITS = "_commits"
REJECTED_DIR = "_rejected"
STAGING = "_staging"


def part_name(shard_index: int) -> str:
    return f"part-{shard_index:05d}"


@dataclass
class ShardCommit:
    """What a commit record says of one shard."""

    shard: dict  # Shard.to_json(): uri, size, tag
    part: str  # file name of the parquet part under the output
    rows: int
    sha256: str
    rejected: int
    answered: int  # rows with an entity (not "no matching product")
    job: str

    def to_json(self) -> dict:
        return self.__dict__.copy()


@dataclass
class JobOutput:
    """The output folder of one corpus job (`job`: its fingerprint)."""

    out_uri: str
    job: str
    store: ObjectStore
    attempt: str = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3))

    def uri(self, *parts: str) -> str:
        return join_uri(self.out_uri, *parts)

    # -- starting ---------------------------------------------------------------------------
    def begin(self, record: dict, *, overwrite: bool) -> dict[str, ShardCommit]:
        """Claims the output for this job and returns the shards already committed by an earlier
        run of it (empty for a new job). Refuses output of another job unless `overwrite`."""
        self.store.ensure_bucket(self.out_uri)
        existing = self.store.list_files(self.out_uri)
        if overwrite:
            self.store.delete_prefix(self.out_uri)
            existing = []
        if existing:
            job_uri = self.uri(JOB)
            if job_uri not in existing:
                raise StorageError(
                    f"{self.out_uri} already holds files that no link job committed ({len(existing)} files, e.g. "
                    f"{existing[0]}); link into an empty output or pass --overwrite to replace them"
                )
            old = json.loads(self.store.read_text(job_uri))
            if old.get("job") != self.job:
                raise StorageError(
                    f"{self.out_uri} holds the output of another link job ({_differences(old, record)}); "
                    "pass --overwrite to replace it, or link into another output"
                )
        else:
            self.store.write_text(self.uri(JOB), json.dumps({**record, "job": self.job}, indent=2))
        # pieces of an interrupted run are never committed: start staging afresh
        self.store.delete_prefix(self.uri(STAGING))
        return self.committed()

    def committed(self) -> dict[str, ShardCommit]:
        """{part name: commit} of the shards committed so far by this job."""
        out = {}
        for uri in self.store.list_files(self.uri(COMMITS)):
            if uri.endswith(".json"):
                commit = ShardCommit(**json.loads(self.store.read_text(uri)))
                if commit.job == self.job:
                    out[commit.part.removesuffix(".parquet")] = commit
        return out

    # -- staging and committing -------------------------------------------------------------
    def staging_uri(self, part: str, piece: str) -> str:
        return self.uri(STAGING, self.attempt, part, f"{piece}.parquet")

    def commit(self, shard: dict, part: str, table: pa.Table, rejected: Iterable[dict]) -> ShardCommit:
        """Writes a shard's part and rejected records, then its commit record (the atomic step),
        then drops its staged pieces."""
        rejected = list(rejected)
        data = parquet_bytes(table)
        self.store.write_bytes(self.uri(f"{part}.parquet"), data)
        if rejected:
            self.store.write_text(self.uri(REJECTED_DIR, f"{part}.jsonl"),
                                  "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rejected))
        entity = table.column("entity_id").to_pylist() if table.num_rows else []
        commit = ShardCommit(shard=shard, part=f"{part}.parquet", rows=table.num_rows,
                             sha256=hashlib.sha256(data).hexdigest(), rejected=len(rejected),
                             answered=sum(1 for e in entity if e), job=self.job)
        self.store.write_text(self.uri(COMMITS, f"{part}.json"), json.dumps(commit.to_json()))
        self.store.delete_prefix(self.uri(STAGING, self.attempt, part))
        return commit

    def finish(self, commits: dict[str, ShardCommit], summary: dict) -> None:
        """`_SUCCESS`: written once every shard is committed; what a downstream job waits for."""
        parts = [commits[p] for p in sorted(commits)]
        self.store.delete_prefix(self.uri(STAGING))
        self.store.write_text(self.uri(SUCCESS), json.dumps({
            "job": self.job, "summary": summary,
            "parts": [{"part": c.part, "rows": c.rows, "sha256": c.sha256, "rejected": c.rejected} for c in parts],
        }, indent=2))


def _differences(old: dict, new: dict) -> str:
    keys = [k for k in ("inputs", "kb", "model", "settings") if old.get(k) != new.get(k)]
    if old.get("shards_sha256") != new.get("shards_sha256"):
        keys.append("input files")
    return "other " + ", ".join(keys) if keys else "another fingerprint"


def job_fingerprint(record: dict) -> str:
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


def is_committed_output(out_uri: str, store: ObjectStore) -> bool:
    return store.exists(join_uri(out_uri, JOB))


def read_committed(out_uri: str, store: ObjectStore, schema: pa.Schema | None = None) -> pa.Table:
    """The rows of every committed part, in shard order, each part checked against the sha256
    of its commit record. Parts a killed run wrote without committing are not read."""
    job = json.loads(store.read_text(join_uri(out_uri, JOB)))["job"]
    tables = []
    for uri in store.list_files(join_uri(out_uri, COMMITS)):
        commit = ShardCommit(**json.loads(store.read_text(uri)))
        if commit.job != job:
            continue
        part_uri = join_uri(out_uri, commit.part)
        data = store.read_bytes(part_uri)
        if hashlib.sha256(data).hexdigest() != commit.sha256:
            raise ChecksumMismatch(f"{part_uri}: sha256 does not match its commit record; re-run the job with --overwrite")
        table = pq.read_table(io.BytesIO(data))
        tables.append(table.cast(schema) if schema is not None else table)
    if not tables:
        raise InputFormatError(f"no committed link results under {out_uri} (the job has not committed a shard yet)")
    return pa.concat_tables(tables)


def read_committed_rejected(out_uri: str, store: ObjectStore) -> list[dict]:
    """The records set aside by the committed shards, in shard order."""
    committed = {u.rsplit("/", 1)[-1].removesuffix(".json") for u in store.list_files(join_uri(out_uri, COMMITS))}
    out = []
    for uri in store.list_files(join_uri(out_uri, REJECTED_DIR)):
        if uri.rsplit("/", 1)[-1].removesuffix(".jsonl") in committed:
            out.extend(json.loads(line) for line in store.read_text(uri).splitlines() if line.strip())
    return out
