"""bf16 autocast, one rule for every model that runs: `mixed_precision` = `auto` (bf16 on a GPU,
fp32 on a CPU), `bf16` (also on a CPU, where recent x86 and Arm cores have bf16 units) or `no`.

Autocast rather than bf16 weights: layer norms, softmax and the final normalisation stay in
fp32, so bf16 vectors stay close to fp32 ones (bench/gpu_precision.py measures how close), and
a KB embedded on a GPU in bf16 can be queried on a CPU in fp32. torch is imported where a model
runs, like the encoders: a driver that only plans a job never loads it.
"""

from __future__ import annotations

import contextlib
from typing import Any, Literal

MixedPrecision = Literal["auto", "bf16", "no"]


def device_type(device: Any) -> str:
    """'cuda' for 'cuda', 'cuda:1' or torch.device('cuda', 1); 'cpu' likewise."""
    return (device if isinstance(device, str) else device.type).split(":")[0]


def bf16_wanted(device: Any, mode: MixedPrecision) -> bool:
    return mode == "bf16" or (mode == "auto" and device_type(device) == "cuda")


def autocast(device: Any, mode: MixedPrecision):
    """A bf16 autocast context for `device` when `mode` asks for one there; else a no-op."""
    if not bf16_wanted(device, mode):
        return contextlib.nullcontext()
    import torch

    return torch.autocast(device_type=device_type(device), dtype=torch.bfloat16)
