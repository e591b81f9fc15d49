"""The training tasks: each builds its stream and optimizer, computes a step's loss on a tiny batch
in the format Ray Data hands the loop, travels pickled, and turns final weights into the stream."""

from __future__ import annotations

import pickle

import numpy as np
import pyarrow as pa
import pytest
import torch

from ameli_ray.config import AmeliConfig, ImageStreamSettings, TextStreamSettings
from ameli_ray.disambiguation.examples import image_examples, text_example
from ameli_ray.disambiguation.image_stream import ImageStream
from ameli_ray.disambiguation.tasks import ImageTask, StreamTask, TextTask, task_for
from ameli_ray.disambiguation.text_stream import TextStream
from ameli_ray.schema import Entity, Mention

DIM = 16


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # tiny tensors on a busy 2-core machine: more threads only spin (see test_text_stream.py)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _config() -> AmeliConfig:
    text = TextStreamSettings(max_seq_length=32, statements=2, description_pair=True, match_features=True)
    return AmeliConfig(
        disambiguation={"text": text.model_dump(), "image": ImageStreamSettings(reduction=2).model_dump()},
        train={"text_epochs": 3, "text_batch_mentions": 2, "image_epochs": 5, "image_batch": 8, "seed": 1},
    )


def _entity(i: int, colour: str, capacity: str) -> Entity:
    return Entity(id=str(i), name=f"Aero X2 {capacity} {colour}", description=f"A {colour} phone.",
                  attributes={"Color": colour, "Storage Capacity": capacity, "Brand": "Nordvik"})


ENTITIES = [_entity(1, "Red", "128GB"), _entity(2, "Blue", "128GB"), _entity(3, "Red", "256GB")]


def _text_rows(config: AmeliConfig) -> list[dict]:
    settings = config.disambiguation.text
    first = Mention(id="a", text="Love the red one, 128GB is plenty.", surface="Aero X2", gold_entity_id="1")
    second = Mention(id="b", text="The blue phone, 128GB.", surface="Aero X2", gold_entity_id="2")
    return [text_example(first, ["color"], ENTITIES, 0, settings),
            text_example(second, [], ENTITIES[:2], 1, settings)]  # fewer candidates: padding


def _image_batch(rows: int = 6) -> dict[str, np.ndarray]:
    """What `iter_batches(batch_format="numpy")` gives for rows of `examples.image_examples`."""
    rng = np.random.default_rng(0)
    examples = []
    for group in range(rows // 2):  # two photos per product: each other's positives, masked
        examples += image_examples(rng.standard_normal((2, DIM)).astype(np.float32),
                                   rng.standard_normal((3, DIM)).astype(np.float32), group)
    return {k: np.stack([e[k] for e in examples]) for k in examples[0]}


@pytest.fixture(scope="module")
def text_model() -> TextStream:
    torch.manual_seed(0)
    return TextTask(_config()).build_model()


def test_task_for_names_the_streams_and_the_settings_come_from_the_config():
    config = _config()
    text, image = task_for("text", config), task_for("image", config, image_dim=DIM)
    assert isinstance(text, TextTask) and isinstance(image, ImageTask) and image.image_dim == DIM
    assert (text.name, text.epochs, text.batch_size, text.batch_format) == ("text", 3, 2, "pyarrow")
    assert (image.name, image.epochs, image.batch_size, image.batch_format) == ("image", 5, 8, "numpy")
    # the missing-slot vector is not in every text batch's graph; every adapter weight is
    assert text.ddp_kwargs == {"find_unused_parameters": True}
    assert image.ddp_kwargs == {"find_unused_parameters": False}
    with pytest.raises(ValueError, match="feature dimension"):
        task_for("image", config)
    with pytest.raises(ValueError, match="feature dimension"):
        ImageTask(config, 0)
    with pytest.raises(ValueError, match="unknown stream"):
        task_for("audio", config)
    with pytest.raises(TypeError):  # the base is abstract
        StreamTask(config)


def test_tasks_pickle_as_ray_train_ships_them():
    config = _config()
    for task in (TextTask(config), ImageTask(config, DIM)):
        back = pickle.loads(pickle.dumps(task))
        assert back == task and type(back) is type(task)
        assert (back.epochs, back.batch_size, back.ddp_kwargs) == (task.epochs, task.batch_size, task.ddp_kwargs)
    assert repr(ImageTask(config, DIM)) == f"ImageTask(image_dim={DIM})"  # not the whole config


def test_text_task_builds_its_optimizer_with_two_learning_rates(text_model):
    task = TextTask(_config())
    optimizer = task.build_optimizer(text_model)
    backbone, head = optimizer.param_groups
    assert backbone["lr"] == task.config.train.text_lr and head["lr"] == task.config.train.head_lr
    trainable = {id(p) for p in text_model.parameters() if p.requires_grad}
    assert {id(p) for g in optimizer.param_groups for p in g["params"]} == trainable
    assert {id(p) for p in text_model.head.parameters()} <= {id(p) for p in head["params"]}


def test_text_training_forward_on_an_arrow_batch(text_model):
    task = TextTask(_config())
    rows = _text_rows(task.config)
    text_model.train()
    text_model.zero_grad(set_to_none=True)
    loss, n = task.training_forward(text_model, pa.Table.from_pylist(rows), torch.device("cpu"))
    assert n == 2 and loss.dim() == 0 and torch.isfinite(loss) and loss.requires_grad
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in text_model.head.parameters())
    assert text_model.match_head is not None and text_model.match_head[0].weight.grad.abs().sum() > 0
    # plain rows (what the Arrow batch holds) give the same loss
    text_model.eval()
    with torch.no_grad():
        a = task.training_forward(text_model, pa.Table.from_pylist(rows), torch.device("cpu"))[0]
        b = task.training_forward(text_model, rows, torch.device("cpu"))[0]
    assert a.item() == pytest.approx(b.item(), abs=1e-6)


def test_text_finish_gives_the_trained_stream_in_eval_mode(text_model):
    task = TextTask(_config())
    state = {k: v.clone() for k, v in text_model.state_dict().items()}
    with torch.no_grad():
        state["missing"].add_(0.5)  # "trained": differs from a fresh stream
    finished = task.finish(state)
    assert isinstance(finished, TextStream) and not finished.training
    assert torch.equal(finished.missing, state["missing"])


def test_image_task_builds_model_optimizer_and_a_contrastive_step():
    task = ImageTask(_config(), DIM)
    torch.manual_seed(0)
    model = task.build_model()
    assert isinstance(model, ImageStream) and model.dim == DIM and model.adapter.mlp[0].out_features == DIM // 2
    optimizer = task.build_optimizer(model)
    assert [g["lr"] for g in optimizer.param_groups] == [task.config.train.image_lr]
    assert {id(p) for p in optimizer.param_groups[0]["params"]} == {id(p) for p in model.parameters()}
    batch = _image_batch(6)
    loss, n = task.training_forward(model, batch, torch.device("cpu"))
    assert n == 6 and loss.dim() == 0 and torch.isfinite(loss) and loss.requires_grad
    loss.backward()
    assert model.logit_scale.grad is not None and model.adapter.mlp[0].weight.grad.abs().sum() > 0
    optimizer.step()  # and a step of the task's optimizer lowers the loss on the same batch
    with torch.no_grad():
        assert task.training_forward(model, batch, torch.device("cpu"))[0] < loss


def test_image_finish_gives_the_trained_stream_in_eval_mode():
    task = ImageTask(_config(), DIM)
    torch.manual_seed(3)
    trained = task.build_model()
    finished = task.finish({k: v.clone() for k, v in trained.state_dict().items()})
    assert isinstance(finished, ImageStream) and not finished.training
    x = torch.randn(4, DIM)
    assert torch.equal(finished.encode(x), trained.encode(x))
