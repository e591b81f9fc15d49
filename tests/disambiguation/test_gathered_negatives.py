"""A real 2-worker Ray Train run: with negatives gathered across workers, the mean of the workers'
contrastive losses and their DDP-averaged gradients equal the single-process ones over the whole batch."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ameli_ray.config import ImageStreamSettings, RaySettings
from ameli_ray.disambiguation.image_stream import ImageStream
from ameli_ray.disambiguation.losses import contrastive_loss

pytestmark = pytest.mark.ray

ROWS, DIM = 16, 32
# rows 0/9 and 3/12/14 show the same product; each half of the batch holds one of each pair
GROUPS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 10, 11, 3, 13, 3, 15]
# name -> (gather, first row of rank 1's slice)
VARIANTS = {"gathered": (True, 8), "local": (False, 8), "uneven": (True, 9)}


def _batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(7)
    products = F.normalize(torch.randn(ROWS, DIM, generator=gen), dim=-1)
    photos = F.normalize(products + 0.5 * torch.randn(ROWS, DIM, generator=gen), dim=-1)
    return photos, products, torch.tensor(GROUPS)


def _model() -> ImageStream:
    torch.manual_seed(0)  # identical init everywhere (DDP would broadcast rank 0's anyway)
    return ImageStream(DIM, ImageStreamSettings())


def _loss_and_grads(model: torch.nn.Module, photos, products, groups, gather: bool):
    n = photos.shape[0]
    z = model(torch.cat([photos, products]))  # one forward through DDP, so its gradient hooks fire
    inner = getattr(model, "module", model)
    loss = contrastive_loss(z[:n], z[n:], groups, inner.scale(), gather=gather)
    loss.backward()
    return loss.item(), {k: p.grad.numpy().copy() for k, p in inner.named_parameters()}


def train_loop(config: dict) -> None:
    import ray.train
    from ray.train.torch import prepare_model

    torch.set_num_threads(1)
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    assert world == 2
    photos, products, groups = _batch()
    for name, (gather, split) in VARIANTS.items():
        rows = slice(0, split) if rank == 0 else slice(split, ROWS)
        model = prepare_model(_model())
        loss, grads = _loss_and_grads(model, photos[rows], products[rows], groups[rows], gather)
        out = Path(config["out"])
        np.savez(out / f"{name}_grads_rank{rank}.npz", **grads)
        (out / f"{name}_loss_rank{rank}.json").write_text(json.dumps({"loss": loss, "rows": split if rank == 0 else ROWS - split}))


@pytest.fixture(scope="module")
def ray_local():
    from ameli_ray.distributed.runtime import start_ray, stop_ray

    start_ray(RaySettings(num_cpus=2))
    yield
    stop_ray()


def test_gathered_negatives_match_the_single_process_batch(ray_local, tmp_path):
    import ray.cloudpickle
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    # pytest imports this file by its basename, which the Ray workers cannot import: ship the loop by value
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    out = tmp_path / "out"
    out.mkdir()
    trainer = TorchTrainer(
        train_loop,
        train_loop_config={"out": str(out)},
        scaling_config=ScalingConfig(num_workers=2, use_gpu=False, resources_per_worker={"CPU": 1}),
        run_config=RunConfig(storage_path=str(tmp_path / "runs"), name="gathered-negatives"),
    )
    result = trainer.fit()
    assert result.error is None

    photos, products, groups = _batch()
    single_loss, single_grads = _loss_and_grads(_model(), photos, products, groups, gather=False)

    def worker(name: str, rank: int) -> tuple[dict, dict]:
        meta = json.loads((out / f"{name}_loss_rank{rank}.json").read_text())
        return meta, dict(np.load(out / f"{name}_grads_rank{rank}.npz"))

    (m0, g0), (m1, g1) = worker("gathered", 0), worker("gathered", 1)
    assert (m0["loss"] + m1["loss"]) / 2 == pytest.approx(single_loss, rel=1e-5)
    for grads in (g0, g1):  # DDP leaves the same averaged gradients on both workers
        assert grads.keys() == single_grads.keys()
        for k, ref in single_grads.items():
            np.testing.assert_allclose(grads[k], ref, rtol=1e-5, atol=1e-6, err_msg=k)

    # control: without gathering each worker sees only its own 8 rows as negatives
    (l0, _), (l1, _) = worker("local", 0), worker("local", 1)
    assert abs((l0["loss"] + l1["loss"]) / 2 - single_loss) > 1e-2

    # 9 + 7 rows (a short last batch): padding and offsets are right when the size-weighted mean matches
    (u0, _), (u1, _) = worker("uneven", 0), worker("uneven", 1)
    assert (u0["rows"], u1["rows"]) == (9, 7)
    assert (9 * u0["loss"] + 7 * u1["loss"]) / ROWS == pytest.approx(single_loss, rel=1e-5)
