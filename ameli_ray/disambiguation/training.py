"""What one training step of each stream computes: models, optimizers, losses. Plain torch; the
Ray Train loop in `ameli_ray.distributed.train` feeds it shards and handles checkpoints.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import numpy as np
import torch

from ameli_ray.config import AmeliConfig, TrainSettings
from ameli_ray.disambiguation.examples import collate_text, n_slots
from ameli_ray.disambiguation.image_stream import ImageStream
from ameli_ray.disambiguation.losses import candidate_cross_entropy, contrastive_loss

STREAMS = ("image", "text")


def build_stream(stream: str, config: AmeliConfig, image_dim: int | None = None, store=None) -> torch.nn.Module:
    if stream == "text":
        from ameli_ray.disambiguation.text_stream import TextStream

        return TextStream(config.disambiguation.text, n_slots(config.disambiguation.text), store)
    if image_dim is None:
        raise ValueError("the image stream needs the image-tower feature dimension")
    return ImageStream(image_dim, config.disambiguation.image)


def build_optimizer(stream: str, model: torch.nn.Module, train: TrainSettings) -> torch.optim.Optimizer:
    """AdamW; the pretrained cross-encoder gets a small learning rate, its new head a large one."""
    if stream == "image":
        return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=train.image_lr, weight_decay=0.0)
    backbone = [p for n, p in model.named_parameters() if p.requires_grad and n.startswith("backbone.")]
    head = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("backbone.")]
    return torch.optim.AdamW(
        [{"params": backbone, "lr": train.text_lr}, {"params": head, "lr": train.head_lr}], weight_decay=0.01
    )


def autocast(device: torch.device, train: TrainSettings):
    """bf16 autocast on GPU unless switched off; fp32 on CPU unless bf16 is asked for."""
    wanted = train.mixed_precision == "bf16" or (train.mixed_precision == "auto" and device.type == "cuda")
    if not wanted:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if hasattr(model, "module") else model


def text_step_loss(model: torch.nn.Module, rows: list[dict[str, Any]], config: AmeliConfig,
                   device: torch.device) -> torch.Tensor:
    """Cross-entropy over each mention's candidates (the gold is always among them)."""
    premises, hypotheses, index, mask, gold, match = collate_text(rows, n_slots(config.disambiguation.text))
    tokens = {k: v.to(device) for k, v in unwrap(model).tokenize(premises, hypotheses).items()}
    with autocast(device, config.train):
        logits = model(tokens, index.to(device), match.to(device))
    return candidate_cross_entropy(logits.float(), gold.to(device), mask.to(device))


def image_step_loss(model: torch.nn.Module, batch: dict[str, np.ndarray], config: AmeliConfig,
                    device: torch.device, gather: bool = True) -> torch.Tensor:
    """Contrastive loss of review photos against their products' images; with `gather`, every
    worker's batch is a negative of every other's."""
    photos = torch.as_tensor(np.stack(batch["photo"]), dtype=torch.float32, device=device)
    images = torch.as_tensor(np.stack(batch["product_image"]), dtype=torch.float32, device=device)
    groups = torch.as_tensor(np.asarray(batch["group"], dtype=np.int64), device=device)
    inner = unwrap(model)
    with autocast(device, config.train):
        q, k = model(photos), model(images)
    return contrastive_loss(q.float(), k.float(), groups, inner.scale(), gather=gather)


def finite(value: float) -> float:
    return value if math.isfinite(value) else float("nan")
