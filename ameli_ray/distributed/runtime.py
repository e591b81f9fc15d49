"""Starting or joining Ray, kept on loopback for local runs."""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Iterator

from ameli_ray.config import RaySettings, ServeStage, StageResources

# Without this Ray binds the machine's external address for its local cluster.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


def start_ray(settings: RaySettings) -> None:
    import ray

    if ray.is_initialized():
        return
    if settings.address == "local":
        ray.init(
            address="local",
            num_cpus=settings.num_cpus,
            object_store_memory=settings.object_store_memory_mb * 1024 * 1024 if settings.object_store_memory_mb else None,
            include_dashboard=False,
            logging_level=logging.WARNING,
            configure_logging=True,
        )
    else:
        ray.init(address=settings.address, logging_level=logging.WARNING)


@contextlib.contextmanager
def ray_session(settings: RaySettings) -> Iterator[None]:
    """Starts (and afterwards stops) a local Ray, or joins the configured cluster; inside an open
    session it does nothing, so `evaluate` and `demo` keep one Ray for all their steps while
    `build-kb` and `link` alone start Ray only after their input is read."""
    import ray

    owned = not ray.is_initialized()
    start_ray(settings)
    try:
        yield
    finally:
        if owned:
            stop_ray()


def stop_ray() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()


def actor_options(stage: StageResources) -> dict:
    """The map_batches keyword arguments of an actor-pool stage."""
    return dict(
        concurrency=stage.concurrency,
        num_cpus=stage.num_cpus,
        num_gpus=stage.num_gpus or None,
        batch_size=stage.batch_size,
    )


def stage_device(stage: StageResources) -> str:
    """Where a stage's model runs: the GPU Ray gave the actor (`num_gpus`), else the CPU even
    where the node has GPUs the actor was not given."""
    if not stage.num_gpus:
        return "cpu"
    from ameli_ray.encoders.text import pick_device

    return pick_device(None)


def set_threads(stage: "StageResources | ServeStage") -> int:
    """Torch in an actor must not assume the whole machine: N actors x all cores thrash. The count
    is the stage's `threads`, else the CPUs Ray gave this actor (a Serve config's
    `ray_actor_options` may give more or fewer than `num_cpus` of the configuration says), else
    `num_cpus`. Returns it, for the actor's other thread pools (the OCR engine's onnxruntime)."""
    import torch

    threads = stage.threads or max(1, math.ceil(assigned_cpus() or stage.num_cpus))
    torch.set_num_threads(threads)
    return threads


def assigned_cpus() -> float | None:
    """The CPUs Ray reserved for the calling actor or task; None outside a Ray worker."""
    import ray

    if not ray.is_initialized():
        return None
    try:
        return ray.get_runtime_context().get_assigned_resources().get("CPU")
    except AssertionError:  # the driver: only workers have assigned resources
        return None
