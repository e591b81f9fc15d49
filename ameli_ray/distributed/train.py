"""Ray Train around the disambiguation streams: a TorchTrainer per stream, data from Ray Data
shards, DDP over the workers (gloo on CPU, NCCL on GPU), bf16 autocast on GPU, checkpoints
(safetensors + manifest) in the run's storage — S3 or a shared path — every epoch.

The loop does not know which stream it trains: a `StreamTask` (`ameli_ray.disambiguation.tasks`)
gives the model, optimizer, loss, epochs, batching and DDP options; the stream's name only names
the run, its checkpoint folder and the messages.

Shuffling (`train.shuffle`: the streams named there, the image stream by default): every epoch
each worker shuffles its whole shard with a seed derived from `train.seed`, the epoch and its
rank, so the order of an epoch depends on nothing else and a resumed run sees the orders an
uninterrupted one would have.

Resuming: the run's name is fixed per model and stream, so re-running the same command after a
crash (driver, node or cluster) finds the run's checkpoints and continues from the newest;
within a run, Ray Train restarts failed workers from it (`train.max_failures`). The folder is
removed once the trained model version is written.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ameli_ray.config import AmeliConfig, TrainSettings
from ameli_ray.disambiguation.tasks import StreamTask, unwrap
from ameli_ray.storage import ObjectStore, join_uri
from ameli_ray.storage.objects import is_s3, split_s3

_log = logging.getLogger(__name__)

# Fault injection for the kill-and-resume test: the worker stalls after reporting this epoch,
# so that a test can kill the driver at a known point.
STALL_AFTER_EPOCH_ENV = "AMELI_TRAIN_STALL_AFTER_EPOCH"


@dataclass
class TrainOutcome:
    stream: str
    state: dict[str, torch.Tensor]  # the final weights
    history: list[dict[str, float]]  # one entry per epoch, resumed runs included
    resumed_from_epoch: int | None


def checkpoint_root(model_root: str) -> str:
    return join_uri(model_root, "_checkpoints")


def storage_for(uri: str, config: AmeliConfig) -> tuple[str, Any]:
    """(storage_path, storage_filesystem) for Ray Train: S3 through pyarrow with our endpoint and
    credentials, or a local/shared path."""
    if not is_s3(uri):
        return os.path.abspath(uri.removeprefix("file://")), None
    import pyarrow.fs as pafs

    s3 = config.s3
    # transient S3 errors (5xx, throttling) retried as boto3 retries them everywhere else
    kwargs: dict[str, Any] = {"region": s3.region, "connect_timeout": s3.connect_timeout_s,
                              "request_timeout": s3.request_timeout_s,
                              "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=s3.max_attempts)}
    scheme, netloc = ObjectStore(s3).endpoint()
    if netloc is not None:
        kwargs.update(endpoint_override=netloc, scheme=scheme)
    if s3.access_key_id and s3.secret_access_key:
        kwargs.update(access_key=s3.access_key_id.get_secret_value(), secret_key=s3.secret_access_key.get_secret_value())
    bucket, key = split_s3(uri)
    return f"{bucket}/{key}".rstrip("/"), pafs.S3FileSystem(**kwargs)


def train_stream(task: StreamTask, rows: list[dict], model_root: str, *, say=lambda _: None) -> TrainOutcome:
    """Trains `task`'s stream on `rows` (examples from `disambiguation.examples`) with Ray Train,
    under `task.config`."""
    import ray
    import ray.train
    from ray.train.torch import TorchTrainer

    from ameli_ray.disambiguation.checkpoint import model_tensors, read_checkpoint_manifest

    config, stream = task.config, task.name
    t = config.train
    storage_path, filesystem = storage_for(checkpoint_root(model_root), config)
    ObjectStore(config.s3).ensure_bucket(checkpoint_root(model_root))
    stall = os.environ.get(STALL_AFTER_EPOCH_ENV)
    fingerprint = task.fingerprint(rows)
    trainer = TorchTrainer(
        _train_loop,
        train_loop_config={
            "task": task, "n_rows": len(rows), "fingerprint": fingerprint,
            "stall_after_epoch": int(stall) if stall else None,
            "stored_checkpoint": _newest_stored_checkpoint(model_root, stream, config, fingerprint, say),
        },
        scaling_config=ray.train.ScalingConfig(
            num_workers=t.num_workers, use_gpu=t.use_gpu, resources_per_worker={"CPU": t.cpus_per_worker},
        ),
        run_config=ray.train.RunConfig(
            name=stream, storage_path=storage_path, storage_filesystem=filesystem,
            failure_config=ray.train.FailureConfig(max_failures=t.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
        ),
        datasets={"train": ray.data.from_items(rows)},
    )
    say(f"training the {stream} stream: {len(rows)} examples, {task.epochs} epochs, {t.num_workers} worker(s)"
        f"{' with GPUs' if t.use_gpu else ''}{', shuffled every epoch' if stream in t.shuffle else ''}")
    from ameli_ray.distributed.runner import clear_errors

    with clear_errors():  # a worker's ameli-ray error ends the run as it would in-process
        result = trainer.fit()
    if result.checkpoint is None:
        raise RuntimeError(f"the {stream} stream's training reported no checkpoint")
    with result.checkpoint.as_directory() as directory:
        manifest = read_checkpoint_manifest(directory)
        state = model_tensors(directory)
    info = manifest.get("info", {})
    return TrainOutcome(stream, state, info.get("history", []), info.get("resumed_from_epoch"))


def _newest_stored_checkpoint(model_root: str, stream: str, config: AmeliConfig, fingerprint: str,
                              say=lambda _: None) -> tuple[int, str, Any] | None:
    """(epoch, storage path, filesystem) of the newest checkpoint of `stream` in storage that
    this run wrote (same fingerprint: same examples, hyper-parameters and base model), by its own
    manifest. Ray Train resumes only from checkpoints it has registered; a run killed between a
    checkpoint's upload and its registration would otherwise start over. A checkpoint of another
    run (a crashed run with other data or settings) is never continued: it is named and skipped."""
    import json

    from ameli_ray.disambiguation.checkpoint import CHECKPOINT_MANIFEST

    store = ObjectStore(config.s3)
    newest: tuple[int, str] | None = None
    for uri in store.list_files(join_uri(checkpoint_root(model_root), stream)):
        if not uri.endswith("/" + CHECKPOINT_MANIFEST):
            continue
        try:
            manifest = json.loads(store.read_text(uri))
            epoch = int(manifest["epoch"])
        except (ValueError, KeyError, TypeError) as exc:
            # not one of ours, or half written: the checksums would refuse it anyway
            _log.warning("checkpoint %s cannot be read (%s): not resumed from", uri, exc)
            continue
        if _fingerprint_of(manifest) != fingerprint:
            say(f"checkpoint {uri.rsplit('/', 1)[0]} (epoch {epoch}) is of another run (other examples, settings or base "
                f"model): not resumed from; the {stream} stream trains afresh")
            continue
        if newest is None or epoch > newest[0]:
            newest = (epoch, uri.rsplit("/", 1)[0])
    if newest is None:
        return None
    return (newest[0], *storage_for(newest[1], config))


def _resume(model: torch.nn.Module, optimizer: torch.optim.Optimizer, stored: tuple | None, fingerprint: str) -> dict | None:
    """Loads the newer of Ray Train's registered checkpoint and the newest one in storage, if
    this run wrote them (`fingerprint`); returns its manifest (None: nothing to resume from)."""
    import ray.train

    from ameli_ray.disambiguation.checkpoint import load_checkpoint, read_checkpoint_manifest
    from ameli_ray.errors import ChecksumMismatch, InputFormatError

    manifest = None
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        # Ray Train restores the state of an earlier run under the same name and storage path
        # too: a checkpoint of another run is not continued
        with checkpoint.as_directory() as directory:
            if _fingerprint_of(read_checkpoint_manifest(directory)) == fingerprint:
                manifest = load_checkpoint(directory, model, optimizer)
            else:
                _log.warning("checkpoint %s is of another run (other examples, settings or base model): "
                             "not resumed from, training afresh", checkpoint.path)
    if stored is not None and stored[0] > (int(manifest["epoch"]) if manifest else 0):
        try:
            with ray.train.Checkpoint(path=stored[1], filesystem=stored[2]).as_directory() as directory:
                manifest = load_checkpoint(directory, model, optimizer)
        except (ChecksumMismatch, InputFormatError, OSError) as exc:
            # an incomplete upload (a file missing or short): checksums are verified before any
            # weight is loaded, and the run goes on from the registered checkpoint (or afresh)
            _log.warning("stored checkpoint %s (epoch %d) not resumed from: %s", stored[1], stored[0], exc)
    return manifest


def _fingerprint_of(manifest: dict) -> str | None:
    return (manifest.get("info") or {}).get("fingerprint")


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """The shuffle seed of one worker's epoch: a function of the run's seed, the epoch and the
    rank only (so a resumed run shuffles its epochs as an uninterrupted one; ranks differ so that
    equal-sized shards are not permuted alike)."""
    # 32 bits: older Ray versions hand the seed to numpy's RandomState, which takes no more
    return int(np.random.SeedSequence([seed % 2**64, epoch, rank]).generate_state(1)[0])


def iter_batches_kwargs(task: StreamTask, train: TrainSettings, epoch: int, rank: int, n_rows: int) -> dict[str, Any]:
    """Keyword arguments of `DataIterator.iter_batches` for one epoch of `task` on a worker whose
    shard holds at most `n_rows` rows.

    For a stream named in `train.shuffle`, a full shuffle of the shard: Ray's local shuffle buffer yields nothing
    until it holds `local_shuffle_buffer_size` rows or the shard is exhausted, so a buffer as
    large as the whole dataset permutes the whole shard at once. Ray raises a buffer smaller than
    the batch size to the batch size; ours is at least that already. Without shuffling, exactly
    the arguments the loop passed before shuffling existed (the same batches in the same order).
    """
    kwargs: dict[str, Any] = {"batch_size": task.batch_size, "batch_format": task.batch_format}
    if task.name in train.shuffle:
        kwargs["local_shuffle_buffer_size"] = max(n_rows, task.batch_size, 1)
        kwargs["local_shuffle_seed"] = epoch_seed(train.seed, epoch, rank)
    return kwargs


def _train_loop(loop_config: dict) -> None:
    """Runs on every Ray Train worker."""
    import ray.train
    import ray.train.torch

    from ameli_ray.disambiguation.checkpoint import save_checkpoint

    task: StreamTask = loop_config["task"]
    config = task.config
    t = config.train
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    torch.set_num_threads(t.threads or max(1, math.ceil(t.cpus_per_worker)))
    torch.manual_seed(t.seed)  # the same initial weights on every worker
    model = task.build_model(ObjectStore(config.s3))
    optimizer = task.build_optimizer(model)
    start_epoch, history, resumed_from = 0, [], None
    manifest = _resume(model, optimizer, loop_config.get("stored_checkpoint"), loop_config["fingerprint"])
    if manifest is not None:
        start_epoch = resumed_from = int(manifest["epoch"])
        history = list(manifest.get("info", {}).get("history", []))
    device = ray.train.torch.get_device()
    if world > 1:
        model = ray.train.torch.prepare_model(model, parallel_strategy_kwargs=task.ddp_kwargs)
    else:
        model = model.to(device)
    _optimizer_to(optimizer, device)
    shard = ray.train.get_dataset_shard("train")
    epochs = task.epochs
    for epoch in range(start_epoch, epochs):
        model.train()
        started = time.perf_counter()
        total, steps, samples = 0.0, 0, 0
        for batch in shard.iter_batches(**iter_batches_kwargs(task, t, epoch, rank, loop_config["n_rows"])):
            loss, n = task.training_forward(model, batch, device)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
            optimizer.step()
            total += float(loss.detach())
            steps += 1
            samples += n
        seconds = time.perf_counter() - started
        samples_all = _sum_over_workers(samples, world)
        metrics = {
            "epoch": epoch + 1, "loss": total / max(steps, 1), "samples": samples_all,
            "seconds": round(seconds, 3), "samples_per_s": round(samples_all / max(seconds, 1e-9), 2),
        }
        history.append(metrics)
        last = epoch + 1 == epochs
        if rank == 0 and (last or (epoch + 1) % t.checkpoint_every_epochs == 0):
            with tempfile.TemporaryDirectory() as directory:
                save_checkpoint(
                    directory, unwrap(model), optimizer, epoch=epoch + 1, step=steps, metrics=metrics,
                    info={"stream": task.name, "history": history, "resumed_from_epoch": resumed_from, "workers": world,
                          "fingerprint": loop_config["fingerprint"]},
                )
                ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(directory))
        else:
            ray.train.report(metrics)
        if loop_config.get("stall_after_epoch") == epoch + 1:
            time.sleep(3600)


def _sum_over_workers(value: int, world: int) -> int:
    if world == 1:
        return value
    tensor = torch.tensor([value], dtype=torch.long)
    torch.distributed.all_reduce(tensor)
    return int(tensor.item())


def _optimizer_to(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    for state in optimizer.state.values():
        for key, value in state.items():
            if isinstance(value, torch.Tensor) and key != "step":
                state[key] = value.to(device)
