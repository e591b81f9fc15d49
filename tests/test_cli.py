"""The CLI as a user runs it: real processes, real Ray, the real local S3 server.

Every bad-input case must end within seconds with exit status 2 and one line naming the problem.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ameli_ray.storage.local_s3 import free_port

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "ameli_ray.cli", *args], capture_output=True, text=True, timeout=timeout,
        env=full_env, cwd=REPO,
    )


def s3_env(settings) -> dict:
    return {
        "AMELI_S3__ENDPOINT_URL": settings.endpoint_url,
        "AMELI_S3__ACCESS_KEY_ID": settings.access_key_id.get_secret_value(),
        "AMELI_S3__SECRET_ACCESS_KEY": settings.secret_access_key.get_secret_value(),
    }


def test_config_command_shows_overrides():
    out = run_cli("config", "--set", "retrieval.top_k=42")
    assert out.returncode == 0, out.stderr
    assert "top_k: 42" in out.stdout


@pytest.mark.integration
@pytest.mark.ray
def test_build_and_link_through_s3_with_ray(toy_dir, s3_settings, s3_store, s3_bucket, tmp_path):
    s3_store.upload_dir(toy_dir, f"{s3_bucket}/toy")
    env = s3_env(s3_settings)
    built = run_cli("build-kb", "--entities", f"{s3_bucket}/toy/entities.json", "--kb", f"{s3_bucket}/kb/toy",
                    "--version", "v1", env=env)
    assert built.returncode == 0, built.stderr[-3000:]
    stats = json.loads(built.stdout.strip().splitlines()[-1])
    assert stats["kb"] == f"{s3_bucket}/kb/toy/v1" and stats["n_entities"] == 6 and stats["n_images"] == 6

    linked = run_cli("link", "--kb", f"{s3_bucket}/kb/toy", "--mentions", f"{s3_bucket}/toy/mentions.json",
                     "--out", f"{s3_bucket}/links", env=env)
    assert linked.returncode == 0, linked.stderr[-3000:]
    from ameli_ray.workflows import read_link_results

    table = read_link_results(f"{s3_bucket}/links", s3_store)
    rows = table.to_pylist()
    assert len(rows) == 6
    assert all(r["candidate_ids"] and len(r["text_scores"]) == len(r["candidate_ids"]) for r in rows)
    assert sum(r["entity_id"] == r["gold_entity_id"] for r in rows) == 6

    info = run_cli("kb-info", "--kb", f"{s3_bucket}/kb/toy", env=env)
    assert info.returncode == 0 and json.loads(info.stdout)["verified"] is True
    assert json.loads(info.stdout)["text_index_params"] == {"kind": "flat", "vectors": 6}

    # tamper with one asset: kb-info and link both refuse it, naming the file
    s3_store.write_bytes(f"{s3_bucket}/kb/toy/v1/entities.parquet", b"tampered")
    for args in (("kb-info", "--kb", f"{s3_bucket}/kb/toy"),
                 ("link", "--kb", f"{s3_bucket}/kb/toy", "--mentions", f"{s3_bucket}/toy/mentions.json",
                  "--out", f"{s3_bucket}/links2", "--engine", "local")):
        bad = run_cli(*args, env=env)
        assert bad.returncode == 2, bad.stderr[-2000:]
        assert "entities.parquet" in bad.stderr and "does not match" in bad.stderr


@pytest.mark.slow
def test_build_kb_from_a_glob_of_shards_on_s3_sets_bad_records_aside(toy_dir, s3_settings, s3_store, s3_bucket):
    """What a catalogue of millions looks like: gzip JSONL shards under a prefix. A bad line and a
    repeated id are set aside in the version's rejected.jsonl; the build goes on."""
    import gzip

    from ameli_ray.formats import read_entities
    from ameli_ray.storage import ObjectStore

    entities = read_entities(str(toy_dir / "entities.json"), ObjectStore())
    records = [json.dumps({"id": e.id, "name": e.name, "attributes": e.attributes, "image_uris": e.image_uris})
               for e in entities]
    s3_store.write_bytes(f"{s3_bucket}/cat/part-0.jsonl.gz", gzip.compress(("\n".join(records[:3]) + "\n").encode()))
    s3_store.write_bytes(f"{s3_bucket}/cat/part-1.jsonl.gz",
                         gzip.compress(("\n".join([*records[3:], "{oops", records[0]]) + "\n").encode()))
    env = s3_env(s3_settings)
    built = run_cli("build-kb", "--entities", f"{s3_bucket}/cat/part-*.jsonl.gz", "--kb", f"{s3_bucket}/kb",
                    "--engine", "local", env=env)
    assert built.returncode == 0, built.stderr[-3000:]
    stats = json.loads(built.stdout.strip().splitlines()[-1])
    assert stats["n_entities"] == len(entities) and stats["n_rejected"] == 2 and stats["n_images"] == len(entities)
    rejected = [json.loads(line) for line in s3_store.read_text(f"{stats['kb']}/rejected.jsonl").splitlines()]
    assert [(r["source"].rsplit("/", 1)[-1], r["position"]) for r in rejected] == [("part-1.jsonl.gz", 4),
                                                                                  ("part-1.jsonl.gz", 5)]
    assert "set aside" in built.stderr
    info = run_cli("kb-info", "--kb", f"{s3_bucket}/kb", env=env)
    assert info.returncode == 0 and '"rejected": 2' in info.stdout, info.stdout[-2000:]


@pytest.mark.slow
def test_malformed_and_truncated_entities_file(tmp_path):
    for name, content, expected in (
        ("truncated.json", '[{"id": 1, "product_name": "A"}, {"id": 2, "product_na', "not valid JSON"),
        ("object.json", '{"id": 1}', "array"),
        ("missing.json", '[{"product_name": "no id"}]', "id"),
    ):
        path = tmp_path / name
        path.write_text(content)
        start = time.monotonic()
        out = run_cli("build-kb", "--entities", str(path), "--kb", str(tmp_path / "kb"), "--engine", "local", timeout=60)
        assert out.returncode == 2, out.stderr[-2000:]
        assert name in out.stderr and expected in out.stderr
        assert "Traceback" not in out.stderr
        assert time.monotonic() - start < 30


def test_errors_are_one_unwrapped_line_whatever_the_width(tmp_path):
    """Logs are not terminals: rich would wrap at 80 columns (or $COLUMNS) and split the message."""
    deep = tmp_path / ("a-rather-long-folder-name-" * 6) / "[not-markup]"
    deep.mkdir(parents=True)
    path = deep / "truncated.json"
    path.write_text('[{"id": 1, "product_name": "A"}, {"id": 2, "product_na')
    out = run_cli("build-kb", "--entities", str(path), "--kb", str(tmp_path / "kb"), "--engine", "local",
                  env={"COLUMNS": "20"}, timeout=60)
    assert out.returncode == 2, out.stderr[-2000:]
    (line,) = [ln for ln in out.stderr.splitlines() if ln.startswith("error:")]
    assert str(path) in line and "not valid JSON" in line


def test_unreachable_s3_endpoint_fails_fast(tmp_path):
    start = time.monotonic()
    out = run_cli("build-kb", "--entities", "s3://bucket/entities.json", "--kb", "s3://bucket/kb",
                  env={"AMELI_S3__ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}, timeout=60)
    assert out.returncode == 2
    assert "unreachable" in out.stderr and "Traceback" not in out.stderr
    assert time.monotonic() - start < 20


@pytest.mark.slow
def test_missing_mention_image_is_reported_not_fatal(toy_dir, tmp_path):
    kb = tmp_path / "kb"
    assert run_cli("build-kb", "--entities", str(toy_dir / "entities.json"), "--kb", str(kb), "--engine", "local").returncode == 0
    mentions = tmp_path / "mentions.jsonl"
    mentions.write_text(json.dumps({"id": "m1", "text": "Aero X2 256GB", "image_uris": [str(tmp_path / "nope.jpg")]}) + "\n")
    out = run_cli("link", "--kb", str(kb), "--mentions", str(mentions), "--out", str(tmp_path / "links"), "--engine", "local")
    assert out.returncode == 0, out.stderr[-2000:]
    from ameli_ray.storage import ObjectStore
    from ameli_ray.workflows import read_link_results

    (row,) = read_link_results(str(tmp_path / "links"), ObjectStore()).to_pylist()
    assert row["errors"] == [f"image not found: {tmp_path / 'nope.jpg'}"]
    assert row["entity_id"]  # still linked, on its text


@pytest.mark.slow
def test_train_and_link_refuse_a_missing_model_or_kb_with_one_line(tmp_path, toy_dir):
    """No KB to train against, no model to link with: exit 2 naming what is missing, quickly."""
    mentions = str(toy_dir / "mentions.json")
    out = run_cli("train", "--kb", str(tmp_path / "nokb"), "--train-mentions", mentions, "--dev-mentions", mentions,
                  "--model", str(tmp_path / "model"), "--engine", "local")
    assert out.returncode == 2, out.stderr
    assert "no KB at" in out.stderr and "Traceback" not in out.stderr
    built = run_cli("build-kb", "--entities", str(toy_dir / "entities.json"), "--kb", str(tmp_path / "kb"), "--engine", "local")
    assert built.returncode == 0, built.stderr
    linked = run_cli("link", "--kb", str(tmp_path / "kb"), "--mentions", mentions, "--out", str(tmp_path / "links"),
                     "--engine", "local", "--set", f"disambiguation.model={tmp_path / 'nomodel'}")
    assert linked.returncode == 2, linked.stderr
    assert "no disambiguation model at" in linked.stderr and "Traceback" not in linked.stderr


def test_summary_lines_show_intervals_baseline_and_confidence():
    from ameli_ray.cli import _summary_lines

    folds = {"pooled": {"accuracy": {"value": 0.9, "ci95": [0.88, 0.92]}},
             "per_fold_summary": {"accuracy": {"per_fold": [0.89, 0.91]}}}
    cal = {"method": "platt", "ece": 0.031, "coverage_at_precision": {"0.95": 0.8, "0.99": 0.5}}
    lines = _summary_lines({"folds": folds, "calibration": cal})
    assert lines == ["accuracy: 0.900 (95% CI 0.880-0.920); folds 0.890, 0.910",
                     "confidence (platt): ECE 0.031; coverage at 95% precision 80%, at 99% 50%"]
    assert _summary_lines({"baseline": {"char_tfidf": {"accuracy": 0.8}}}) == [
        "char n-gram TF-IDF baseline: top-1 0.800 on the same mentions"]
    assert _summary_lines({"accuracy": 0.5}) == []
    seen = {"train": 12, "dev": 0, "n_scored": 40}
    assert _summary_lines({"seen_by_model": seen}) == [
        "WARNING: 12 of the 40 scored mentions were in the model's training data and 0 in its dev data: not held-out figures"]
    assert _summary_lines({"seen_by_model": {"train": 0, "dev": 0, "n_scored": 40}}) == []


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.parametrize("engine", ["local", "ray"])
def test_a_broken_kb_ends_link_with_the_same_line_on_both_engines(engine, toy_dir, tmp_path):
    """A checksum mismatch (found by the Ray actors that load the KB), a missing version and a
    LATEST pointing at a missing version: exit 2 and the one error line, whichever engine."""
    kb = tmp_path / "kb"
    built = run_cli("build-kb", "--entities", str(toy_dir / "entities.json"), "--kb", str(kb), "--version", "v1",
                    "--engine", "local")
    assert built.returncode == 0, built.stderr

    def link(kb_uri: str) -> str:
        out = run_cli("link", "--kb", kb_uri, "--mentions", str(toy_dir / "mentions.json"), "--out", str(tmp_path / "links"),
                      "--engine", engine, "--set", "ray.num_cpus=2")
        assert out.returncode == 2, out.stderr[-3000:]
        # the KB is checked on the driver before any actor loads it: no worker's traceback above the line
        assert "Traceback" not in out.stderr and "RayTaskError" not in out.stderr, out.stderr[-3000:]
        return out.stderr.strip().splitlines()[-1]

    data = bytearray((kb / "v1" / "text_embeddings.npy").read_bytes())
    data[-1] ^= 0xFF
    (kb / "v1" / "text_embeddings.npy").write_bytes(bytes(data))
    assert link(str(kb)) == (f"error: {kb / 'v1' / 'text_embeddings.npy'}: sha256 {_sha(data)[:12]}… does not match the "
                             f"manifest's {_sha(_flip_last(data))[:12]}…; the KB is corrupt or was modified — rebuild it")
    assert link(str(kb / "v2")).startswith(f"error: no KB at {kb / 'v2'}")
    (kb / "LATEST").write_text("v9\n")
    assert link(str(kb)).startswith(f"error: no KB at {kb / 'v9'}")


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(bytes(data)).hexdigest()


def _flip_last(data: bytearray) -> bytes:
    original = bytearray(data)
    original[-1] ^= 0xFF
    return bytes(original)
