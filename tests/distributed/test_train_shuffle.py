"""Shuffling the training examples every epoch: what the loop asks of `iter_batches`, and what a
real Ray Data iterator then yields (every row once per epoch, a new order each epoch, the same
orders for the same seed, resumed or not; the arrival order with shuffling off)."""

from __future__ import annotations

import numpy as np
import pytest

from ameli_ray.config import AmeliConfig, RaySettings
from ameli_ray.disambiguation.tasks import ImageTask, TextTask
from ameli_ray.distributed.train import epoch_seed, iter_batches_kwargs

ROWS, BATCH, EPOCHS = 200, 16, 3


def _task(shuffle: bool = True, seed: int = 0, batch: int = BATCH) -> ImageTask:
    return ImageTask(AmeliConfig(train={"shuffle": shuffle, "seed": seed, "image_batch": batch}), image_dim=4)


def test_without_shuffling_the_loop_asks_exactly_what_it_asked_before():
    for task in (_task(shuffle=False), TextTask(AmeliConfig(train={"shuffle": False}))):
        for epoch in range(3):
            assert iter_batches_kwargs(task, task.config.train, epoch, 0, ROWS) == {
                "batch_size": task.batch_size, "batch_format": task.batch_format,
            }


def test_shuffling_asks_for_a_buffer_as_large_as_the_data_and_a_seed_per_epoch():
    task = _task()
    t = task.config.train
    kwargs = iter_batches_kwargs(task, t, 0, 0, ROWS)
    assert kwargs["batch_size"] == BATCH and kwargs["batch_format"] == "numpy"
    assert kwargs["local_shuffle_buffer_size"] == ROWS  # the whole shard: a full shuffle
    # never below the batch size (Ray would round it up anyway)
    assert iter_batches_kwargs(_task(batch=64), t, 0, 0, 10)["local_shuffle_buffer_size"] == 64
    seeds = {iter_batches_kwargs(task, t, e, 0, ROWS)["local_shuffle_seed"] for e in range(20)}
    assert len(seeds) == 20  # a new order every epoch
    assert iter_batches_kwargs(task, t, 3, 0, ROWS) == iter_batches_kwargs(_task(), t, 3, 0, ROWS)  # deterministic
    assert epoch_seed(0, 3, 0) != epoch_seed(1, 3, 0)  # the run's seed matters
    assert epoch_seed(0, 3, 0) != epoch_seed(0, 3, 1)  # as does the worker's rank
    assert all(0 <= epoch_seed(s, e, r) < 2**32 for s in (-5, 0, 2**70) for e in (0, 9) for r in (0, 3))


@pytest.fixture(scope="module")
def ray_local():
    from ameli_ray.distributed.runtime import start_ray, stop_ray

    start_ray(RaySettings(num_cpus=2))
    yield
    stop_ray()


def _epoch_orders(task: ImageTask, epochs: range) -> list[list[int]]:
    """The row order of each epoch through a real Ray Data iterator, as the loop iterates its shard.
    The dataset arrives in several blocks, as a shard may."""
    import ray.data

    iterator = ray.data.from_items([{"i": i} for i in range(ROWS)], override_num_blocks=8).iterator()
    orders = []
    for epoch in epochs:
        kwargs = iter_batches_kwargs(task, task.config.train, epoch, 0, ROWS)
        batches = [b["i"].tolist() for b in iterator.iter_batches(**kwargs)]
        assert all(len(b) == BATCH for b in batches[:-1])
        orders.append([i for b in batches for i in b])
    return orders


@pytest.mark.ray
def test_a_ray_data_iterator_shuffles_fully_and_reproducibly(ray_local):
    orders = _epoch_orders(_task(), range(EPOCHS))
    for order in orders:
        assert sorted(order) == list(range(ROWS))  # every row exactly once per epoch
    assert len({tuple(o) for o in orders}) == EPOCHS  # a new order every epoch
    # a full shuffle, not one within blocks of 25 rows: the first batch draws from most of them
    assert len({i // (ROWS // 8) for i in orders[0][:BATCH]}) >= 5
    assert _epoch_orders(_task(), range(EPOCHS)) == orders  # the same seed, the same orders
    assert _epoch_orders(_task(), range(1, EPOCHS)) == orders[1:]  # a run resumed after epoch 1
    assert _epoch_orders(_task(seed=1), range(1))[0] != orders[0]
    # shuffling off: the arrival order, every epoch
    assert _epoch_orders(_task(shuffle=False), range(2)) == [list(range(ROWS))] * 2
    assert np.mean([abs(p - i) for p, i in enumerate(orders[0])]) > ROWS / 5  # rows really moved


def test_by_default_only_the_contrastive_stream_is_shuffled():
    """The image stream's in-batch negatives need mixed batches; the text stream's per-mention
    loss does not, and shuffling it cost dev accuracy (BENCHMARKS.md, issue 9)."""
    config = AmeliConfig()
    assert config.train.shuffle == ["image"]
    assert "local_shuffle_seed" in iter_batches_kwargs(ImageTask(config, image_dim=4), config.train, 0, 0, ROWS)
    assert "local_shuffle_seed" not in iter_batches_kwargs(TextTask(config), config.train, 0, 0, ROWS)
    assert AmeliConfig.load(None, ["train.shuffle=true"]).train.shuffle == ["text", "image"]
    assert AmeliConfig.load(None, ["train.shuffle=false"]).train.shuffle == []
    assert AmeliConfig.load(None, ["train.shuffle=[text]"]).train.shuffle == ["text"]
