"""The exactly-once commit protocol of corpus jobs: readers see committed parts only, a rerun
of the same job resumes, another job is refused, and staging never leaks into the output."""

import json

import pyarrow as pa
import pytest

from ameli_ray.errors import ChecksumMismatch, StorageError
from ameli_ray.schema import LINK_RESULT_ARROW_SCHEMA
from ameli_ray.storage.commit import COMMITS, JobOutput, read_committed, read_committed_rejected


def _rows(*ids: str) -> pa.Table:
    return pa.Table.from_pylist([{"mention_id": i, "entity_id": "e1" if i != "nil" else ""} for i in ids],
                                schema=LINK_RESULT_ARROW_SCHEMA)


@pytest.fixture(params=["local", "s3"])
def out_uri(request, tmp_path, s3_bucket):
    return str(tmp_path / "out") if request.param == "local" else f"{s3_bucket}/out"


def test_only_committed_parts_are_read_and_a_rerun_resumes(out_uri, s3_store):
    store = s3_store
    job = JobOutput(out_uri, "job-a", store)
    assert job.begin({"inputs": "x"}, overwrite=False) == {}
    job.commit({"uri": "s0"}, "part-00000", _rows("m1", "nil"), [{"source": "s0", "position": 3, "error": "bad"}])
    # a killed run: shard 1's part written, its commit record never
    store.write_bytes(job.uri("part-00001.parquet"), b"half a part")
    store.write_bytes(job.staging_uri("part-00001", "piece"), b"staged")
    assert read_committed(out_uri, store).column("mention_id").to_pylist() == ["m1", "nil"]
    assert read_committed_rejected(out_uri, store) == [{"source": "s0", "position": 3, "error": "bad"}]

    again = JobOutput(out_uri, "job-a", store)
    done = again.begin({"inputs": "x"}, overwrite=False)
    assert list(done) == ["part-00000"] and done["part-00000"].rows == 2 and done["part-00000"].answered == 1
    assert not [f for f in store.list_files(out_uri) if "/_staging/" in f]  # the dead run's pieces are gone
    again.commit({"uri": "s1"}, "part-00001", _rows("m2"), [])
    again.finish({**done, **again.committed()}, {"n_mentions": 3})
    assert read_committed(out_uri, store).column("mention_id").to_pylist() == ["m1", "nil", "m2"]
    success = json.loads(store.read_text(again.uri("_SUCCESS")))
    assert [p["part"] for p in success["parts"]] == ["part-00000.parquet", "part-00001.parquet"]


def test_another_job_is_refused_unless_overwritten(out_uri, s3_store):
    JobOutput(out_uri, "job-a", s3_store).begin({"kb": "kb/v1"}, overwrite=False)
    with pytest.raises(StorageError, match=r"another link job \(other kb\).*--overwrite"):
        JobOutput(out_uri, "job-b", s3_store).begin({"kb": "kb/v2"}, overwrite=False)
    other = JobOutput(out_uri, "job-b", s3_store)
    assert other.begin({"kb": "kb/v2"}, overwrite=True) == {}
    assert json.loads(s3_store.read_text(other.uri("_JOB.json")))["job"] == "job-b"


def test_files_of_no_job_are_not_mixed_with(out_uri, s3_store):
    s3_store.write_bytes(f"{out_uri}/part-{'f' * 32}.parquet", b"x")  # an old run with random part names
    with pytest.raises(StorageError, match="no link job committed"):
        JobOutput(out_uri, "job-a", s3_store).begin({}, overwrite=False)


def test_a_part_that_does_not_match_its_commit_is_refused(out_uri, s3_store):
    job = JobOutput(out_uri, "job-a", s3_store)
    job.begin({}, overwrite=False)
    job.commit({"uri": "s0"}, "part-00000", _rows("m1"), [])
    s3_store.write_bytes(job.uri("part-00000.parquet"), _part_bytes(_rows("m9")))
    with pytest.raises(ChecksumMismatch, match="part-00000.parquet"):
        read_committed(out_uri, s3_store)
    assert s3_store.list_files(job.uri(COMMITS))


def _part_bytes(table: pa.Table) -> bytes:
    from ameli_ray.storage import parquet_bytes

    return parquet_bytes(table)
