"""The data the quality benchmarks share: the demo catalogue and the entity-matching sets, made
once per workdir (a second run reuses them)."""

from __future__ import annotations

from pathlib import Path

from ameli_ray.formats import convert_em
from ameli_ray.storage import ObjectStore

DEFAULT_EM = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "em"


def demo_catalog(workdir: Path, products: int, console) -> Path:
    """WORKDIR/demo/catalog: the demo catalogue of `products` products, seed 0."""
    from ameli_ray.catalog import generate_catalog

    console.rule(f"demo catalogue ({products} products)")
    cat = workdir / "demo" / "catalog"
    if not (cat / "summary.json").exists():
        generate_catalog(cat, n_products=products, seed=0)
    return cat


def em_dataset(name: str, data: Path, workdir: Path, store: ObjectStore, console) -> Path | None:
    """WORKDIR/<name>/data: the entity-matching set converted to the AMELI format; None (and a
    note) when its CSVs are not under `data`."""
    src = data / name
    if not src.is_dir():
        console.print(f"[yellow]skipping {name}: {src} not found[/]")
        return None
    console.rule(name)
    out = workdir / name / "data"
    if not (out / "entities.json").exists():
        convert_em(name, str(src), str(out), store)  # type: ignore[arg-type]
    return out
