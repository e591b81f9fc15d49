"""cluster/local.sh and the documented `ray job submit` flow, for real: a head on 127.0.0.1 with
Ray 2.60's token authentication on, `jobs/build_kb.py` submitted with the `ray job submit` CLI exactly as
the README shows it, `jobs/link_corpus.py` through Ray's job submission API, both reading and writing the
local S3; then `cluster/local.sh stop` stops that head and nothing else.

The script runs in a subprocess with the environment a user's shell has after activating the venv:
tests/conftest.py sets RAY_AUTH_MODE=disabled for the in-process Ray of other tests, which no user has.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "cluster" / "local.sh"
# On 2 cores, actors at the default 0.5 CPU each can leave no CPU for Ray Data's read tasks: quarter-CPU
# actors, as one would set on a small machine (AMELI_<SECTION>__<FIELD>, inherited by the jobs).
SMALL = {f"AMELI_{stage.upper()}__NUM_CPUS": "0.25"
         for stage in ("text_stage", "image_stage", "ocr_stage", "retrieve_stage", "disambiguate_stage", "link_stage")}


def user_env(state: Path, **extra: str) -> dict[str, str]:
    """A user's shell: the venv on PATH, no Ray/pytest settings of this test process."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RAY_", "AMELI_", "PYTEST_"))}  # PYTEST_* makes Ray think it runs in a test
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["AMELI_CLUSTER_DIR"] = str(state)
    return {**env, **extra}


def script(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


def short_state_dir() -> Path:
    # Ray's socket paths live under it and must fit in 107 bytes: pytest's tmp_path is too long.
    return Path(tempfile.mkdtemp(prefix="ameli-rc-", dir="/tmp"))


def live_session_pids(sid: int) -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid=,sid=,stat="], capture_output=True, text=True, check=True).stdout
    return [int(p) for p, s, stat in (line.split()[:3] for line in out.splitlines()) if int(s) == sid and not stat.startswith("Z")]


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


class Lookalikes:
    """Processes named like Ray's (`raylet`, `gcs_server`) in sessions of their own: what `ray stop`,
    which goes by process names, would kill, and what stopping one head must leave alone."""

    def __init__(self, folder: Path):
        self.procs = []
        for name in ("raylet", "gcs_server"):  # a script's process takes the script's name (comm)
            (folder / name).write_text(f"#!{sys.executable}\nimport time\ntime.sleep(600)\n")
            (folder / name).chmod(0o755)
            self.procs.append(subprocess.Popen([str(folder / name)], start_new_session=True))

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.procs)

    def stop(self) -> None:
        for p in self.procs:
            p.kill()
            p.wait()


# -- fast: the script's arguments and a stop with nothing (of ours) to stop ------------------------

@pytest.mark.parametrize("args", [(), ("restart",)])
def test_no_or_an_unknown_subcommand_prints_the_usage_and_exits_2(args, tmp_path):
    out = script(*args, env=user_env(tmp_path / "state"))
    assert out.returncode == 2
    assert out.stderr.startswith("usage: ") and "start" in out.stderr and "stop" in out.stderr


def test_stop_and_env_without_a_head_touch_nothing(tmp_path):
    others = Lookalikes(tmp_path)
    try:
        env = user_env(tmp_path / "state")
        stopped = script("stop", env=env)
        assert stopped.returncode == 0, stopped.stderr
        assert "nothing stopped" in stopped.stdout
        exported = script("env", env=env)
        assert exported.returncode == 1 and exported.stdout == ""  # `eval "$(… env)"` then sets nothing
        assert "cluster/local.sh start" in exported.stderr
        assert script("status", env=env).returncode == 1
        assert others.alive()
    finally:
        others.stop()


def test_a_stale_record_never_stops_a_session_that_is_not_ours(tmp_path):
    """The recorded session id can be reused once the head is gone: without the head's random id in
    a process's environment, the session is someone else's and stop only forgets the record."""
    others = Lookalikes(tmp_path)
    try:
        state = tmp_path / "state"
        state.mkdir()
        foreign_sid = others.procs[0].pid  # start_new_session: the session id is the leader's pid
        (state / "head.env").write_text(
            f"HEAD_ID=0123456789abcdef\nHEAD_SID={foreign_sid}\nHEAD_GCS=127.0.0.1:1\n"
            "HEAD_DASHBOARD=http://127.0.0.1:2\nHEAD_TOKEN=/nonexistent\nHEAD_TEMP_DIR=/nonexistent\n")
        stopped = script("stop", env=user_env(state))
        assert stopped.returncode == 0, stopped.stderr
        assert "no longer running" in stopped.stdout
        assert not (state / "head.env").exists()
        assert others.alive()
    finally:
        others.stop()


def test_start_refuses_a_state_dir_too_long_for_rays_sockets(tmp_path):
    long_dir = tmp_path / ("x" * 60)
    out = script("start", env=user_env(long_dir))
    assert out.returncode == 1
    assert "107 bytes" in out.stderr and "AMELI_CLUSTER_DIR" in out.stderr
    assert not long_dir.exists()


# -- the real thing -----------------------------------------------------------------------------

def _wait(client, job_id: str, timeout_s: float):
    """The job's final status; one still running after timeout_s is stopped and its last status returned."""
    deadline = time.monotonic() + timeout_s
    while True:
        status = client.get_job_status(job_id)
        if status.is_terminal():
            return status
        if time.monotonic() > deadline:
            client.stop_job(job_id)
            return status
        time.sleep(1)


@pytest.mark.integration
def test_build_kb_and_link_corpus_submitted_to_a_local_head(toy_dir, s3_settings, s3_store, s3_bucket, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from ray.job_submission import JobStatus, JobSubmissionClient

    from ameli_ray.kb.assets import read_manifest
    from ameli_ray.storage.local_s3 import free_port

    s3_store.upload_dir(toy_dir, f"{s3_bucket}/catalog")
    s3_env = {
        "AMELI_S3__ENDPOINT_URL": s3_settings.endpoint_url,
        "AMELI_S3__ACCESS_KEY_ID": s3_settings.access_key_id.get_secret_value(),
        "AMELI_S3__SECRET_ACCESS_KEY": s3_settings.secret_access_key.get_secret_value(),
    }
    state = short_state_dir()
    gcs_port, dashboard_port = free_port(), free_port()
    # The head hands the environment it was started in to its jobs, as a real cluster's nodes hand theirs:
    # the S3 settings and the small-machine stage sizes travel that way, as cluster/README.md shows.
    env = user_env(state, AMELI_CLUSTER_PORT=str(gcs_port), AMELI_CLUSTER_DASHBOARD_PORT=str(dashboard_port),
                   AMELI_CLUSTER_NUM_CPUS="2", **s3_env, **SMALL)
    others = Lookalikes(tmp_path)
    sid = None
    try:
        # free ports for the two listeners whose defaults (10001, 52365) another Ray may hold
        started = script("start", f"--ray-client-server-port={free_port()}",
                         f"--dashboard-agent-listen-port={free_port()}", env=env)
        assert started.returncode == 0, started.stdout + started.stderr
        record = dict(line.split("=", 1) for line in (state / "head.env").read_text().split())
        sid = int(record["HEAD_SID"])
        exported = script("env", env=env)
        assert exported.returncode == 0, exported.stderr
        assert exported.stdout.splitlines() == [
            f"export RAY_ADDRESS=http://127.0.0.1:{dashboard_port}", "export RAY_AUTH_MODE=token",
            f"export RAY_AUTH_TOKEN_PATH={state / 'auth_token'}", "unset RAY_AUTH_TOKEN"]
        assert exported.stdout in started.stdout  # `start` prints the same lines

        # Token auth is really on: a client that was not told RAY_AUTH_MODE=token is turned away.
        refused = subprocess.run(["ray", "job", "list", "--address", f"http://127.0.0.1:{dashboard_port}"],
                                 cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
        assert refused.returncode != 0 and "Missing authentication token" in refused.stdout + refused.stderr

        # cluster/README.md's flow, word for word: eval the env, then `ray job submit --working-dir .`.
        kb_root = f"{s3_bucket}/kb/products"
        build = subprocess.run(
            ["bash", "-c", 'eval "$(cluster/local.sh env)" && '
             'ray job submit --working-dir . -- python jobs/build_kb.py --entities "$BUCKET/catalog/entities.json" --kb "$KB"'],
            cwd=REPO, env={**env, "BUCKET": s3_bucket, "KB": kb_root}, capture_output=True, text=True, timeout=300)
        assert build.returncode == 0 and "succeeded" in build.stdout, (build.stdout + build.stderr)[-4000:]
        _, manifest = read_manifest(kb_root, s3_store)
        assert manifest.n_entities == 6 and manifest.n_images == 6
        assert manifest.build["runner"] == "ray-data"  # built by Ray Data actors on the head, not in-process

        # Ray's job submission API, as a scheduler would call it; the token goes in as a bearer header
        # (this process runs its own Ray settings, so it does not switch RAY_AUTH_MODE globally).
        token = (state / "auth_token").read_text().strip()
        client = JobSubmissionClient(f"http://127.0.0.1:{dashboard_port}", headers={"Authorization": f"Bearer {token}"})
        out_uri = f"{s3_bucket}/links/toy"
        job_id = client.submit_job(  # per-job settings go in the runtime env; they override the head's
            entrypoint=f"python jobs/link_corpus.py --kb {kb_root} --mentions {s3_bucket}/catalog/mentions.json --out {out_uri}",
            runtime_env={"working_dir": str(REPO), "env_vars": {"AMELI_RETRIEVAL__TOP_K": "4"}},
        )
        status = _wait(client, job_id, timeout_s=300)
        assert status == JobStatus.SUCCEEDED, client.get_job_logs(job_id)[-4000:]
        parts = [u for u in s3_store.list_files(out_uri) if u.endswith(".parquet")]
        assert parts
        links = pa.concat_tables([pq.read_table(io.BytesIO(s3_store.read_bytes(u))) for u in parts]).to_pylist()
        assert sorted(r["mention_id"] for r in links) == [str(100 + i) for i in range(1, 7)]
        assert all(r["entity_id"] in {str(i) for i in range(1, 7)} for r in links)
        right = sum(r["entity_id"] == str(int(r["mention_id"]) - 100) for r in links)
        assert right >= 4, links  # the toy is easy (capacity in the text, colour in the photo)
        assert max(len(r["candidate_ids"]) for r in links) == 4  # the job's runtime env reached the linker
    finally:
        stopped = script("stop", env=env)
        try:
            assert stopped.returncode == 0, stopped.stdout + stopped.stderr
            if sid is not None:
                assert live_session_pids(sid) == [], "processes of the head outlived `cluster/local.sh stop`"
            assert not listening(dashboard_port) and not listening(gcs_port)
            assert others.alive(), "stopping one head killed processes that were not its own"
        finally:
            others.stop()
            shutil.rmtree(state, ignore_errors=True)
