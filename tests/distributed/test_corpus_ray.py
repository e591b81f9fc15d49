"""A corpus job on Ray Data killed mid-run, once the driver and once a worker, then run again
with the same command: every mention linked exactly once, with the answers of an uninterrupted
run. Real processes and signals; the job's Ray is the private one its driver starts."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ameli_ray import workflows
from ameli_ray.catalog.corpus import generate_corpus
from ameli_ray.config import AmeliConfig
from ameli_ray.storage import ObjectStore

pytestmark = [pytest.mark.slow, pytest.mark.ray, pytest.mark.integration]
REPO = Path(__file__).resolve().parents[2]
# small blocks, so shards commit one by one while the job is still running
SETTINGS = ["--set", "ray.num_cpus=2", "--set", "text_stage.batch_size=8", "--set", "image_stage.batch_size=8",
            "--set", "retrieve_stage.batch_size=8", "--set", "link_stage.batch_size=8", "--set", "ocr.engine=none"]


@pytest.fixture(scope="module")
def job(toy_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus-ray")
    kb = str(root / "kb")
    workflows.build_kb(AmeliConfig(), str(toy_dir / "entities.json"), kb, engine="local")
    generate_corpus(str(toy_dir / "entities.json"), str(root / "corpus"), 120, shard_size=15, bad_share=0.03)
    reference = str(root / "reference")
    config = AmeliConfig.load(None, [s for s in SETTINGS if s != "--set"])
    workflows.link(config, kb, str(root / "corpus"), reference, engine="local")
    return kb, str(root / "corpus"), _answers(reference)


def _answers(out: str) -> list[tuple[str, str, tuple[str, ...]]]:
    rows = workflows.read_link_results(out, ObjectStore()).to_pylist()
    return [(r["mention_id"], r["entity_id"], tuple(r["candidate_ids"][:3])) for r in rows]


def _start(kb: str, corpus: str, out: str, plan: str = "auto") -> subprocess.Popen:
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled"}
    # a session of its own: the driver and the Ray it starts can be killed together
    return subprocess.Popen(
        [sys.executable, "-m", "ameli_ray.cli", "link", "--kb", kb, "--mentions", corpus, "--out", out, *SETTINGS,
         "--set", f"link_plan={plan}"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )


def _wait_for_commits(out: str, proc: subprocess.Popen, n: int = 1, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while len(list((Path(out) / "_commits").glob("*.json"))) < n:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "no shard committed in time"
        time.sleep(0.2)


def _session_processes(sid: int) -> dict[int, str]:
    """pid -> command line of every live process of a session (from /proc: no psutil here)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[3]) == sid:
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue
    return found


def _kill_session(sid: int) -> None:
    try:
        os.killpg(sid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + 30
    while _session_processes(sid) and time.monotonic() < deadline:
        time.sleep(0.2)


def _finish(kb: str, corpus: str, out: str) -> dict:
    proc = _start(kb, corpus, out)
    try:
        stdout, stderr = proc.communicate(timeout=400)
    finally:
        _kill_session(proc.pid)
    assert proc.returncode == 0, stderr[-3000:]
    return json.loads(stdout.strip().splitlines()[-1])


def test_the_driver_killed_mid_run_then_the_same_command_finishes_exactly_once(job, tmp_path):
    kb, corpus, expected = job
    out = str(tmp_path / "out")
    proc = _start(kb, corpus, out)
    try:
        _wait_for_commits(out, proc)
    finally:
        _kill_session(proc.pid)  # SIGKILL: no handler runs, the staged pieces stay behind
    assert not (Path(out) / "_SUCCESS").exists()
    partial = _answers(out)
    assert 0 < len(partial) < len(expected) and set(partial) <= set(expected)

    stats = _finish(kb, corpus, out)
    assert stats["shards_resumed"] >= 1 and stats["n_mentions"] == len(expected)
    # where the rerun's time went, from Ray Data's stats: every model stage worked and took time
    # (Ray Data may fuse neighbouring stages into one operator, named "a->b")
    stages = {part: times for name, times in stats["stages"].items() for part in name.split("->")}
    assert {"read_shards", "LinkStage", "stage_pieces"} <= set(stages)  # the fused plan: no GPU asked for
    assert stages["LinkStage"]["busy_s"] > 0 and stages["LinkStage"]["span_s"] > 0
    assert _answers(out) == expected  # each mention once, in input order, the same answers
    assert not list(Path(out).glob("_staging/**/*.parquet"))


@pytest.mark.parametrize("plan, actor", [("fused", "LinkStage"), ("stages", "RetrieveStage")])
def test_a_worker_killed_mid_run_loses_and_duplicates_nothing(job, tmp_path, plan, actor):
    kb, corpus, expected = job
    out = str(tmp_path / "out")
    proc = _start(kb, corpus, out, plan)
    try:
        _wait_for_commits(out, proc)
        workers = {pid: cmd for pid, cmd in _session_processes(proc.pid).items() if actor in cmd}
        assert workers, f"no {actor} actor found"
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        try:
            proc.communicate(timeout=400)
        except subprocess.TimeoutExpired:
            pass
    finally:
        _kill_session(proc.pid)
    if proc.returncode != 0 or not (Path(out) / "_SUCCESS").exists():  # Ray could not recover: run it again
        _finish(kb, corpus, out)
    assert _answers(out) == expected
