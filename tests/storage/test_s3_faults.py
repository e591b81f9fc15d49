"""S3 faults in the middle of a KB build and a link, through a fault-injecting proxy in front of
the local S3 server: transient ones (503 SlowDown, 500 InternalError) are retried and the run
completes; a permanent one (403) ends it with one line naming the object, and leaves no
half-written version behind (no manifest, LATEST unmoved)."""

from __future__ import annotations

import pytest
from s3_faults import FaultyS3, every, forbid  # tests/storage/, on sys.path as the test's folder
from test_cli import run_cli, s3_env  # tests/, on sys.path as conftest's folder

from ameli_ray.config import AmeliConfig
from ameli_ray.storage import ObjectStore
from ameli_ray.storage.versioned import LATEST, MANIFEST

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def _config(settings) -> AmeliConfig:
    return AmeliConfig.load(None, ["ocr.engine=none"]).model_copy(update={"s3": settings})


def test_transient_faults_mid_build_and_link_are_retried(toy_dir, s3_settings, s3_store, s3_bucket, tmp_path):
    from ameli_ray.workflows import build_kb, link, read_link_results

    s3_store.upload_dir(toy_dir, f"{s3_bucket}/toy")
    plan_503, plan_500 = every(4), every(7, 500, "InternalError")
    with FaultyS3(s3_settings.endpoint_url, lambda m, p, n: plan_503(m, p, n) or plan_500(m, p, n)) as proxy:
        config = _config(s3_settings.model_copy(update={"endpoint_url": proxy.endpoint_url}))
        version_uri, _, stats = build_kb(config, f"{s3_bucket}/toy/entities.json", f"{s3_bucket}/kb", engine="local")
        run = link(config, version_uri, f"{s3_bucket}/toy/mentions.json", f"{s3_bucket}/links", engine="local")
    codes = {code for *_, code in proxy.faults}
    assert {"SlowDown", "InternalError"} <= codes and len(proxy.faults) >= 5
    assert stats["n_entities"] == 6 and run.stats["n_mentions"] == 6
    assert len(read_link_results(f"{s3_bucket}/links", s3_store)) == 6


def test_a_permanent_fault_mid_build_ends_it_with_one_line_and_no_half_written_version(toy_dir, s3_settings, s3_store,
                                                                                      s3_bucket):
    s3_store.upload_dir(toy_dir, f"{s3_bucket}/toy")
    entities, kb = f"{s3_bucket}/toy/entities.json", f"{s3_bucket}/kb"
    first = run_cli("build-kb", "--entities", entities, "--kb", kb, "--version", "v1", "--engine", "local",
                    env=s3_env(s3_settings))
    assert first.returncode == 0, first.stderr[-2000:]
    # writes into the KB root are denied from the 4th on: mid-way through v2's files
    with FaultyS3(s3_settings.endpoint_url, forbid(after=3, path_part="/kb/")) as proxy:
        env = {**s3_env(s3_settings), "AMELI_S3__ENDPOINT_URL": proxy.endpoint_url}
        second = run_cli("build-kb", "--entities", entities, "--kb", kb, "--version", "v2", "--engine", "local", env=env)
    assert second.returncode == 2, second.stderr[-2000:]
    denied = proxy.faults[0][1]
    assert second.stderr.strip().splitlines()[-1] == f"error: write s3:/{denied}: AccessDenied"
    assert "Traceback" not in second.stderr
    assert s3_store.read_text(f"{kb}/{LATEST}").strip() == "v1"
    assert not s3_store.exists(f"{kb}/v2/{MANIFEST}")  # v2 is no version: nothing will read it
    assert ObjectStore(s3_settings).exists(f"{kb}/v1/{MANIFEST}")


def test_a_permanent_fault_on_the_links_output_ends_link_with_one_line(toy_dir, s3_settings, s3_store, s3_bucket):
    s3_store.upload_dir(toy_dir, f"{s3_bucket}/toy")
    built = run_cli("build-kb", "--entities", f"{s3_bucket}/toy/entities.json", "--kb", f"{s3_bucket}/kb",
                    "--engine", "local", env=s3_env(s3_settings))
    assert built.returncode == 0, built.stderr[-2000:]
    with FaultyS3(s3_settings.endpoint_url, forbid(after=0, path_part="/links/")) as proxy:
        env = {**s3_env(s3_settings), "AMELI_S3__ENDPOINT_URL": proxy.endpoint_url}
        out = run_cli("link", "--kb", f"{s3_bucket}/kb", "--mentions", f"{s3_bucket}/toy/mentions.json",
                      "--out", f"{s3_bucket}/links", "--engine", "local", env=env)
    assert out.returncode == 2, out.stderr[-2000:]
    line = out.stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: write {s3_bucket}/links/") and line.endswith(": AccessDenied"), line
    assert "Traceback" not in out.stderr
