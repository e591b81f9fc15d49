"""What training one stream means, one object per stream (after open_clip's tasks: a small object
wraps a model and its loss). The Ray Train loop in `ameli_ray.distributed.train` takes a task and
never asks which stream it trains: epochs, batch size and format, the model, the optimizer, the
loss of a batch, DDP's options and the final module all come from the task.

Plain torch, no Ray: a task travels to the Ray Train workers pickled in `train_loop_config`, so it
holds only the config (and the image stream its feature dimension), never a model.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import pyarrow as pa
import torch
from torch import nn

from ameli_ray.config import AmeliConfig
from ameli_ray.disambiguation.examples import collate_text, n_slots
from ameli_ray.disambiguation.image_stream import ImageStream
from ameli_ray.disambiguation.losses import candidate_cross_entropy, contrastive_loss
from ameli_ray.precision import autocast
from ameli_ray.storage import ObjectStore

__all__ = ["ImageTask", "StreamTask", "TextTask", "task_for", "unwrap"]

_OPERATIONAL = {"max_failures", "checkpoint_every_epochs", "threads", "cpus_per_worker"}


def _feed(h, value: Any) -> None:
    """Hashes a training example (dicts, lists, strings, numbers, numpy arrays) unambiguously."""
    if isinstance(value, dict):
        h.update(b"{%d" % len(value))
        for key in sorted(value):
            _feed(h, str(key))
            _feed(h, value[key])
    elif isinstance(value, (list, tuple)):
        h.update(b"[%d" % len(value))
        for item in value:
            _feed(h, item)
    elif isinstance(value, np.ndarray):
        h.update(f"a{value.dtype.str}{value.shape}".encode())
        h.update(np.ascontiguousarray(value).tobytes())
    else:
        data = repr(value).encode()
        h.update(b"s%d:" % len(data) + data)


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (or the model itself)."""
    return model.module if hasattr(model, "module") else model


@dataclass(frozen=True)
class StreamTask(ABC):
    """One stream's training, minus the loop: Ray Train workers build the model and optimizer
    from it, feed its batches to `training_forward`, and the driver turns the final weights into
    the stream with `finish`."""

    config: AmeliConfig = field(repr=False)  # the whole configuration: too long for a repr
    name: ClassVar[str]
    # what `DataIterator.iter_batches` hands `training_forward`
    batch_format: ClassVar[Literal["pyarrow", "numpy"]]

    @property
    @abstractmethod
    def epochs(self) -> int: ...

    @property
    @abstractmethod
    def batch_size(self) -> int:
        """Examples per step per worker."""

    @property
    def ddp_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of DistributedDataParallel (Ray Train's `parallel_strategy_kwargs`)."""
        return {"find_unused_parameters": False}

    @abstractmethod
    def build_model(self, store: ObjectStore | None = None) -> nn.Module:
        """A freshly initialised stream (seed torch first for the same weights on every worker)."""

    def fingerprint(self, rows: list[dict]) -> str:
        """sha256 of what decides this run's weights: the stream, its training examples, the
        training hyper-parameters, the stream's settings (base model included) and `identity()`.
        A checkpoint is resumed only by a run with the same fingerprint. Operational settings
        (retries, checkpoint frequency, threads, CPUs per worker) are left out: changing them
        does not change what is learnt."""
        import hashlib
        import json

        h = hashlib.sha256()
        settings = {
            "stream": self.name,
            "identity": self.identity(),
            "train": self.config.train.model_dump(mode="json", exclude=_OPERATIONAL),
            "settings": getattr(self.config.disambiguation, self.name).model_dump(mode="json"),
        }
        h.update(json.dumps(settings, sort_keys=True).encode())
        for row in rows:
            _feed(h, row)
        return h.hexdigest()

    def identity(self) -> dict[str, Any]:
        """What else defines the stream beyond the configuration (the image tower's dimension)."""
        return {}

    @abstractmethod
    def build_optimizer(self, model: nn.Module) -> torch.optim.Optimizer: ...

    @abstractmethod
    def training_forward(self, model: nn.Module, batch: Any, device: torch.device) -> tuple[torch.Tensor, int]:
        """(loss, examples in the batch) of one step; `model` may be DDP-wrapped: call it, so
        DDP's gradient hooks fire."""

    def finish(self, state: dict[str, torch.Tensor], store: ObjectStore | None = None) -> nn.Module:
        """The trained stream, in eval mode, from the final weights of a run."""
        model = self.build_model(store)
        model.load_state_dict(state)
        return model.eval()


@dataclass(frozen=True)
class TextTask(StreamTask):
    """The cross-encoder: cross-entropy over each mention's candidates (the gold is always among them)."""

    name: ClassVar[str] = "text"
    batch_format: ClassVar[Literal["pyarrow", "numpy"]] = "pyarrow"  # rows of ragged lists

    @property
    def epochs(self) -> int:
        return self.config.train.text_epochs

    @property
    def batch_size(self) -> int:
        return self.config.train.text_batch_mentions

    @property
    def ddp_kwargs(self) -> dict[str, Any]:
        # the missing-slot vector is not used by every batch
        return {"find_unused_parameters": True}

    def build_model(self, store: ObjectStore | None = None) -> nn.Module:
        from ameli_ray.disambiguation.text_stream import TextStream  # transformers is heavy

        settings = self.config.disambiguation.text
        return TextStream(settings, n_slots(settings), store)

    def build_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        """AdamW; the pretrained cross-encoder gets a small learning rate, its new head a large one."""
        t = self.config.train
        backbone = [p for n, p in model.named_parameters() if p.requires_grad and n.startswith("backbone.")]
        head = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("backbone.")]
        return torch.optim.AdamW(
            [{"params": backbone, "lr": t.text_lr}, {"params": head, "lr": t.head_lr}], weight_decay=0.01
        )

    def training_forward(self, model: nn.Module, batch: pa.Table | list[dict], device: torch.device) -> tuple[torch.Tensor, int]:
        rows = batch.to_pylist() if isinstance(batch, pa.Table) else batch
        premises, hypotheses, index, mask, gold, match = collate_text(rows, n_slots(self.config.disambiguation.text))
        tokens = {k: v.to(device) for k, v in unwrap(model).tokenize(premises, hypotheses).items()}
        with autocast(device, self.config.train.mixed_precision):
            logits = model(tokens, index.to(device), match.to(device))
        return candidate_cross_entropy(logits.float(), gold.to(device), mask.to(device)), len(rows)


@dataclass(frozen=True)
class ImageTask(StreamTask):
    """The image adapter: contrastive loss of review photos against their products' images, every
    worker's batch a negative of every other's (gathered)."""

    image_dim: int  # the image tower's feature dimension (the adapter's input)

    name: ClassVar[str] = "image"
    batch_format: ClassVar[Literal["pyarrow", "numpy"]] = "numpy"  # fixed-size feature vectors

    def __post_init__(self) -> None:
        if self.image_dim < 1:
            raise ValueError("the image stream needs the image-tower feature dimension")

    @property
    def epochs(self) -> int:
        return self.config.train.image_epochs

    @property
    def batch_size(self) -> int:
        return self.config.train.image_batch

    def build_model(self, store: ObjectStore | None = None) -> nn.Module:
        return ImageStream(self.image_dim, self.config.disambiguation.image)

    def identity(self) -> dict[str, Any]:
        return {"image_dim": self.image_dim}

    def build_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        params = [p for p in model.parameters() if p.requires_grad]
        return torch.optim.AdamW(params, lr=self.config.train.image_lr, weight_decay=0.0)

    def training_forward(self, model: nn.Module, batch: dict[str, np.ndarray], device: torch.device) -> tuple[torch.Tensor, int]:
        photos = torch.as_tensor(np.stack(batch["photo"]), dtype=torch.float32, device=device)
        images = torch.as_tensor(np.stack(batch["product_image"]), dtype=torch.float32, device=device)
        groups = torch.as_tensor(np.asarray(batch["group"], dtype=np.int64), device=device)
        with autocast(device, self.config.train.mixed_precision):
            q, k = model(photos), model(images)
        # outside a process group (one worker) the gather is a no-op
        return contrastive_loss(q.float(), k.float(), groups, unwrap(model).scale(), gather=True), len(groups)

    def finish(self, state: dict[str, torch.Tensor], store: ObjectStore | None = None) -> nn.Module:
        return ImageStream.from_state_dict(state, self.config.disambiguation.image).eval()


def task_for(stream: str, config: AmeliConfig, image_dim: int | None = None) -> StreamTask:
    """The task of the stream named `stream` ("text" or "image"; the image stream needs `image_dim`)."""
    if stream == TextTask.name:
        return TextTask(config)
    if stream == ImageTask.name:
        if image_dim is None:
            raise ValueError("the image stream needs the image-tower feature dimension")
        return ImageTask(config, int(image_dim))
    raise ValueError(f"unknown stream {stream!r}; expected {TextTask.name!r} or {ImageTask.name!r}")
