"""Ray Train checkpoints and resume: a training run killed after its first epoch's checkpoint
continues from that checkpoint when the same command runs again.

The image stream on synthetic features keeps this fast; the loop, the checkpoint format and the
resume path are the ones the text stream uses too.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow]

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from ameli_ray.config import AmeliConfig, RaySettings
    from ameli_ray.distributed.runtime import start_ray, stop_ray
    from ameli_ray.disambiguation.tasks import ImageTask
    from ameli_ray.distributed.train import train_stream

    endpoint, model_root, out = sys.argv[1], sys.argv[2], sys.argv[3]
    config = AmeliConfig.load(None, [
        f"s3.endpoint_url={endpoint}", "s3.access_key_id=testing", "s3.secret_access_key=testing",
        "train.image_epochs=3", "train.image_batch=32", "ray.num_cpus=2",
    ])
    rng = np.random.default_rng(int(sys.argv[4]) if len(sys.argv) > 4 else 0)  # another seed: other data
    rows = [{"photo": rng.standard_normal(16).astype(np.float32), "product_image": rng.standard_normal(16).astype(np.float32),
             "group": i % 40} for i in range(128)]
    start_ray(config.ray)
    outcome = train_stream(ImageTask(config, image_dim=16), rows, model_root)
    stop_ray()
    json.dump({"history": outcome.history, "resumed_from_epoch": outcome.resumed_from_epoch}, open(out, "w"))
    """
)


def _checkpoint_epochs(store, root: str) -> list[int]:
    epochs = []
    for uri in store.list_files(root):
        if uri.endswith("/checkpoint.json"):
            epochs.append(json.loads(store.read_text(uri))["epoch"])
    return sorted(epochs)


def test_killed_training_resumes_from_its_checkpoint(s3_server, s3_store, s3_bucket, tmp_path):
    from ameli_ray.distributed.train import STALL_AFTER_EPOCH_ENV, checkpoint_root

    model_root = f"{s3_bucket}/models/resume"
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled", "HF_HUB_OFFLINE": "1"}
    args = [sys.executable, str(script), s3_server.endpoint_url, model_root]

    # first run: stalls after epoch 1's checkpoint; we kill it (driver, Ray and workers) there
    first = subprocess.Popen(
        [*args, str(tmp_path / "first.json")], env={**env, STALL_AFTER_EPOCH_ENV: "1"},
        start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and not _checkpoint_epochs(s3_store, checkpoint_root(model_root)):
            assert first.poll() is None, "the first run ended before its first checkpoint"
            time.sleep(1)
        assert _checkpoint_epochs(s3_store, checkpoint_root(model_root)) == [1]
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    assert not (tmp_path / "first.json").exists()

    # second run, same command: resumes from epoch 1 and runs epochs 2 and 3 only
    second = subprocess.run([*args, str(tmp_path / "second.json")], env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    outcome = json.loads((tmp_path / "second.json").read_text())
    assert outcome["resumed_from_epoch"] == 1
    assert [h["epoch"] for h in outcome["history"]] == [1, 2, 3]  # epoch 1 from the first run's record
    assert _checkpoint_epochs(s3_store, checkpoint_root(model_root))[-1] == 3

    # a run with other data under the same model root never continues those checkpoints (Ray Train
    # restores its registered state by run name, and the stored ones are found by manifest)
    third = subprocess.run([*args, str(tmp_path / "third.json"), "1"], env=env, capture_output=True, text=True, timeout=300)
    assert third.returncode == 0, third.stderr[-3000:]
    outcome = json.loads((tmp_path / "third.json").read_text())
    assert outcome["resumed_from_epoch"] is None and [h["epoch"] for h in outcome["history"]] == [1, 2, 3]


def test_checkpoint_round_trip_restores_model_and_optimizer(tmp_path):
    import torch

    from ameli_ray.config import ImageStreamSettings
    from ameli_ray.disambiguation.checkpoint import load_checkpoint, save_checkpoint
    from ameli_ray.disambiguation.image_stream import ImageStream
    from ameli_ray.errors import ChecksumMismatch

    torch.manual_seed(0)
    model = ImageStream(8, ImageStreamSettings())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    x = torch.randn(4, 8)
    model(x).sum().backward()
    opt.step()
    save_checkpoint(tmp_path, model, opt, epoch=2, step=7, metrics={"loss": 1.5})

    torch.manual_seed(1)
    other = ImageStream(8, ImageStreamSettings())
    other_opt = torch.optim.AdamW(other.parameters(), lr=1e-2)
    manifest = load_checkpoint(tmp_path, other, other_opt)
    assert manifest["epoch"] == 2 and manifest["metrics"] == {"loss": 1.5}
    for a, b in zip(model.state_dict().values(), other.state_dict().values()):
        assert torch.equal(a, b)
    state, other_state = opt.state_dict()["state"], other_opt.state_dict()["state"]
    assert state and state.keys() == other_state.keys()
    for index in state:
        assert all(torch.equal(state[index][k], other_state[index][k]) for k in ("step", "exp_avg", "exp_avg_sq"))

    data = bytearray((tmp_path / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (tmp_path / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(ChecksumMismatch):
        load_checkpoint(tmp_path, other)


def test_the_newest_stored_checkpoint_is_found_by_its_own_manifest(tmp_path, caplog):
    """What a run killed between a checkpoint's upload and Ray Train's registering it resumes
    from: the highest epoch among the manifests in storage of this run (same fingerprint),
    whatever Ray Train recorded. Another run's checkpoint is named and skipped; an unreadable
    manifest is logged, not silently passed over."""
    from ameli_ray.config import AmeliConfig
    from ameli_ray.distributed.train import _newest_stored_checkpoint, checkpoint_root

    model_root = str(tmp_path / "model")
    stream_dir = Path(checkpoint_root(model_root)) / "text"
    assert _newest_stored_checkpoint(model_root, "text", AmeliConfig(), "run-1") is None
    for name, body in (("checkpoint_a", '{"epoch": 1, "info": {"fingerprint": "run-1"}}'),
                       ("checkpoint_b", '{"epoch": 2, "info": {"fingerprint": "run-1"}}'),
                       ("checkpoint_c", "{half"),
                       ("checkpoint_d", '{"epoch": 5, "info": {"fingerprint": "run-0"}}'),
                       ("checkpoint_e", '{"epoch": 6}')):  # from before fingerprints: another run too
        (stream_dir / name).mkdir(parents=True)
        (stream_dir / name / "checkpoint.json").write_text(body)
    said: list[str] = []
    with caplog.at_level("WARNING", logger="ameli_ray.distributed.train"):
        epoch, path, filesystem = _newest_stored_checkpoint(model_root, "text", AmeliConfig(), "run-1", said.append)
    assert (epoch, path, filesystem) == (2, str(stream_dir / "checkpoint_b"), None)
    assert sorted(s.split(" (epoch")[0].rsplit("/", 1)[-1] for s in said) == ["checkpoint_d", "checkpoint_e"]
    assert all("another run" in s and "trains afresh" in s for s in said)
    assert any("checkpoint_c/checkpoint.json cannot be read" in r.getMessage() for r in caplog.records)
    assert _newest_stored_checkpoint(model_root, "image", AmeliConfig(), "run-1") is None


def test_the_run_fingerprint_follows_data_settings_and_base_model_not_operations():
    import numpy as np

    from ameli_ray.config import AmeliConfig
    from ameli_ray.disambiguation.tasks import ImageTask, TextTask

    rows = [{"photo": np.ones(4, np.float32), "product_image": np.zeros(4, np.float32), "group": 1}]
    base = ImageTask(AmeliConfig(), 4).fingerprint(rows)
    assert base == ImageTask(AmeliConfig(), 4).fingerprint([dict(r) for r in rows])
    other_rows = [{**rows[0], "photo": np.full(4, 2, np.float32)}]
    assert ImageTask(AmeliConfig(), 4).fingerprint(other_rows) != base
    assert ImageTask(AmeliConfig.load(None, ["train.image_lr=0.01"]), 4).fingerprint(rows) != base
    assert ImageTask(AmeliConfig(), 8).fingerprint(rows) != base
    assert ImageTask(AmeliConfig.load(None, ["train.max_failures=5", "train.checkpoint_every_epochs=2"]), 4).fingerprint(rows) == base
    text_rows = [{"premise": "a review", "hypotheses": ["x"], "label": 0}]
    text = TextTask(AmeliConfig()).fingerprint(text_rows)
    assert TextTask(AmeliConfig.load(None, ["disambiguation.text.model=some/other-model"])).fingerprint(text_rows) != text


def test_a_stored_checkpoint_that_fails_its_checksum_is_named_in_the_log(tmp_path, monkeypatch, caplog):
    """The resume path does not pass over a broken stored checkpoint in silence: which one, and why."""
    import ray.train
    import torch

    from ameli_ray.config import ImageStreamSettings
    from ameli_ray.disambiguation.checkpoint import save_checkpoint
    from ameli_ray.disambiguation.image_stream import ImageStream
    from ameli_ray.distributed.train import _resume

    model = ImageStream(8, ImageStreamSettings())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    save_checkpoint(tmp_path, model, opt, epoch=2, step=1, metrics={}, info={"fingerprint": "run-1"})
    data = bytearray((tmp_path / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (tmp_path / "model.safetensors").write_bytes(bytes(data))
    monkeypatch.setattr(ray.train, "get_checkpoint", lambda: None)  # nothing registered by Ray Train
    with caplog.at_level("WARNING", logger="ameli_ray.distributed.train"):
        assert _resume(model, opt, (2, str(tmp_path), None), "run-1") is None  # trains afresh
    [record] = [r for r in caplog.records if "not resumed from" in r.getMessage()]
    assert str(tmp_path) in record.getMessage() and "sha256" in record.getMessage()
