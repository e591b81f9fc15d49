"""The embedded default for online linking: the demo catalogue's KB and model, built once into the
local cache (`~/.cache/ameli-ray/serve-demo`, or `$AMELI_CACHE_DIR/serve-demo`) and reused.

`embedded:demo` in `serve.kb`, `disambiguation.model` or a deployment's `user_config` names them.
`ameli-ray serve` and `serve run serve_configs/local.yaml` prepare them when they are missing
(catalogue generation, a KB build and, unless told otherwise, the demo's training profile: a few
minutes on a laptop, once). Ray-free except the training (Ray Train), as everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ameli_ray.config import AmeliConfig
from ameli_ray.storage import ObjectStore

EMBEDDED = "embedded:demo"
N_PRODUCTS = 600


def demo_root() -> Path:
    from ameli_ray.encoders.loading import cache_dir

    return cache_dir() / "serve-demo"


def resolve_embedded(uri: str | None, what: str) -> str | None:
    """`embedded:demo` -> the cached demo KB or model folder; anything else as it is."""
    if uri != EMBEDDED:
        return uri
    return str(demo_root() / ("kb" if what == "kb" else "model"))


def _has_version(root: Path) -> bool:
    return (root / "LATEST").exists()


def prepare_demo(config: AmeliConfig, *, model: bool = True, say: Callable[[str], None] = lambda _: None) -> tuple[str, str | None]:
    """(KB root, model root or None): the demo's, built now where missing (verified when read)."""
    from ameli_ray.catalog import generate_catalog
    from ameli_ray.formats import read_mentions
    from ameli_ray.workflows import build_kb, demo_profile

    root = demo_root()
    catalog, kb, model_root = root / "catalog", root / "kb", root / "model"
    config = demo_profile(config)
    if not (catalog / "summary.json").exists():
        say(f"generating the demo catalogue ({N_PRODUCTS} products) in {catalog}")
        generate_catalog(catalog, n_products=N_PRODUCTS, seed=0)
    if not _has_version(kb):
        say(f"building the demo KB in {kb}")
        build_kb(config, str(catalog / "entities.json"), str(kb), engine="local", say=say)
    if model and not _has_version(model_root):
        from ameli_ray.training_run import train_model

        store = ObjectStore(config.s3)
        split = {s: read_mentions(str(catalog / f"mentions_{s}.json"), store) for s in ("train", "dev")}
        say(f"training the demo model in {model_root} (once; a few minutes)")
        train_model(config, str(kb), split["train"], split["dev"], str(model_root), engine="local", say=say)
    return str(kb), str(model_root) if model else None


def demo_catalog() -> Path:
    return demo_root() / "catalog"
