"""Training checkpoints: safetensors for the weights and the optimizer state, a JSON manifest for
the rest (epoch, step, metrics, optimizer hyper-parameters, sha256 of every file).

No pickle anywhere: `torch.save` would be one `torch.load` away from running code found in a
bucket. A checkpoint folder is what Ray Train uploads to its storage (S3 or a shared path) and
hands back to `get_checkpoint()` after a failure.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, load_model, save_file, save_model

from ameli_ray.errors import ChecksumMismatch, InputFormatError

CHECKPOINT_MANIFEST = "checkpoint.json"
MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"


def save_checkpoint(
    directory: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None, *,
    epoch: int, step: int, metrics: dict[str, float], info: dict[str, Any] | None = None,
) -> Path:
    """Writes the checkpoint files into `directory` (which must exist); returns the manifest path."""
    directory = Path(directory)
    save_model(model, str(directory / MODEL_FILE))  # handles tied weights, unlike save_file
    manifest: dict[str, Any] = {"epoch": epoch, "step": step, "metrics": metrics, "info": info or {}}
    if optimizer is not None:
        tensors, groups, scalars = _flatten_optimizer(optimizer)
        save_file(tensors, str(directory / OPTIMIZER_FILE))
        manifest["optimizer"] = {"param_groups": groups, "scalars": scalars}
    manifest["files"] = {
        f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(directory.glob("*.safetensors"))
    }
    path = directory / CHECKPOINT_MANIFEST
    path.write_text(json.dumps(manifest, indent=2))
    return path


def read_checkpoint_manifest(directory: str | Path) -> dict[str, Any]:
    """The manifest, after checking every file it lists against its sha256."""
    directory = Path(directory)
    path = directory / CHECKPOINT_MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputFormatError(f"{directory} is not a checkpoint: no {CHECKPOINT_MANIFEST}") from None
    except ValueError as exc:
        raise InputFormatError(f"{path}: not valid JSON ({exc})") from None
    for name, digest in manifest.get("files", {}).items():
        actual = hashlib.sha256((directory / name).read_bytes()).hexdigest()
        if actual != digest:
            raise ChecksumMismatch(f"{directory / name}: sha256 {actual[:12]}… does not match the checkpoint manifest")
    return manifest


def load_checkpoint(
    directory: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None
) -> dict[str, Any]:
    """Restores `model` (and `optimizer`) in place; returns the verified manifest."""
    directory = Path(directory)
    manifest = read_checkpoint_manifest(directory)
    missing, unexpected = load_model(model, str(directory / MODEL_FILE), strict=False)
    if missing or unexpected:
        raise InputFormatError(
            f"checkpoint {directory} does not fit the model: missing {sorted(missing)[:5]}, "
            f"unexpected {sorted(unexpected)[:5]}"
        )
    if optimizer is not None and "optimizer" in manifest:
        opt = manifest["optimizer"]
        optimizer.load_state_dict(
            _unflatten_optimizer(load_file(str(directory / OPTIMIZER_FILE)), opt["param_groups"], opt["scalars"])
        )
    return manifest


def model_tensors(directory: str | Path) -> dict[str, torch.Tensor]:
    """The weights of a verified checkpoint as a state dict (to build the final model from)."""
    read_checkpoint_manifest(directory)
    return load_file(str(Path(directory) / MODEL_FILE))


def _flatten_optimizer(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[dict], dict[str, float]]:
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, float] = {}
    for index, entries in state["state"].items():
        for name, value in entries.items():
            key = f"{index}.{name}"
            if isinstance(value, torch.Tensor):
                tensors[key] = value.detach().cpu().contiguous()
            else:
                scalars[key] = float(value)
    groups = [{k: list(v) if isinstance(v, tuple) else v for k, v in g.items()} for g in state["param_groups"]]
    return tensors, groups, scalars


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], groups: list[dict], scalars: dict[str, float]) -> dict:
    state: dict[int, dict[str, Any]] = {}
    for key, value in [*tensors.items(), *scalars.items()]:
        index, _, name = key.partition(".")
        state.setdefault(int(index), {})[name] = value
    restored_groups = [{k: tuple(v) if k == "betas" else v for k, v in g.items()} for g in groups]
    return {"state": state, "param_groups": restored_groups}
