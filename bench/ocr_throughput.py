"""OCR throughput on one core: RapidOCR (and Tesseract where installed), the rotation retry against upright only.

    .venv/bin/python bench/ocr_throughput.py [--labels 40] [--images DIR] [--engines rapidocr tesseract]

Images: `--labels` rendered product labels (capacities, model numbers, colours; half of them
rotated by 90/180/270, some with text too short to skip the retry) plus the ABO sample photos in
../shared/data/abo_samples (skipped if missing); or, with --images DIR, every image under DIR
(decoded through `decode_image`, as the pipeline does).

Each engine runs in this one process with one thread (onnxruntime intra-op threads / Tesseract's
OMP_THREAD_LIMIT = 1, OpenCV single-threaded), so images/s is images/s per core. After one warm-up
image, the same images go through `ocr_image` twice: upright only (rotations=[]: the same-run
baseline) and with the configured rotations (the paper's 90/180/270). Reported per engine, mode and
subset: images/s, wall and CPU ms/image, the share of images where the retry ran and where a
rotation won, the share of labels whose every string was read back exactly, and wall and CPU time
relative to upright only (CPU time is the steadier figure on a busy machine).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont
from rich.console import Console
from rich.table import Table

from ameli_ray.attributes.ocr import OcrEngine, OcrLine, make_ocr_engine, ocr_image
from ameli_ray.config import OcrSettings
from ameli_ray.errors import ModelLoadError
from ameli_ray.storage.images import decode_image

ABO_SAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "abo_samples"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}


@dataclass
class Sample:
    name: str
    subset: str  # "labels" or "photos"
    image: Image.Image
    truth: list[str] = field(default_factory=list)  # rendered strings, for labels


def render_labels(n: int, seed: int = 0) -> list[Sample]:
    rng = random.Random(seed)
    capacities = ["32GB", "64GB", "128GB", "256GB", "512GB", "1TB", "2TB"]
    colours = ["Black", "Midnight Blue", "Silver", "Rose Gold", "Graphite"]
    short = ["4K", "8GB", "5G", "XL"]
    samples = []
    for i in range(n):
        model = f"{rng.choice('ABCDNSX')}{rng.choice('VMKX')}-{rng.choice('AGQ')}{rng.randint(1, 9)}{rng.choice('XZ')}-{rng.randint(100, 999)}"
        if i % 8 == 7:
            lines = [rng.choice(short)]  # short text: always triggers the retry
        else:
            lines = rng.sample([model, rng.choice(capacities), rng.choice(colours)], k=rng.randint(1, 3))
        size = rng.choice([28, 36, 48, 64])
        font = ImageFont.load_default(size=size)
        width = max(int(font.getlength(t)) for t in lines) + 2 * size
        height = int(len(lines) * size * 1.4) + 2 * size
        shade = rng.randint(215, 255)
        img = Image.new("RGB", (width, height), (shade, shade - rng.randint(0, 15), shade - rng.randint(0, 25)))
        draw = ImageDraw.Draw(img)
        for j, text in enumerate(lines):
            draw.text((size, size + j * int(size * 1.4)), text, fill=(rng.randint(0, 60),) * 3, font=font)
        angle = [0, 0, 0, 90, 180, 270][i % 6]  # half of them rotated
        if angle:
            img = img.rotate(angle, expand=True)
        samples.append(Sample(f"label{i:02d}@{angle}", "labels", img, lines))
    return samples


def load_dir(root: Path) -> list[Sample]:
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    return [Sample(str(p.relative_to(root)), "photos", decode_image(p.read_bytes(), source=str(p))) for p in paths]


class CountingEngine:
    """Counts engine passes, to tell which images went through the rotation retry."""

    def __init__(self, inner: OcrEngine) -> None:
        self.inner, self.name, self.calls = inner, inner.name, 0

    def read(self, image: Image.Image) -> list[OcrLine]:
        self.calls += 1
        return self.inner.read(image)


@dataclass
class Run:
    wall_ms: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)
    retried: list[bool] = field(default_factory=list)
    rotated: list[bool] = field(default_factory=list)
    read_ok: list[bool] = field(default_factory=list)  # labels only


def cpu_seconds() -> float:
    """This process's CPU time plus its finished children's (Tesseract runs as a subprocess)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def measure(engine: CountingEngine, samples: list[Sample], settings: OcrSettings) -> dict[str, Run]:
    runs = {"labels": Run(), "photos": Run(), "all": Run()}
    for s in samples:
        calls, wall, cpu = engine.calls, time.perf_counter(), cpu_seconds()
        lines = ocr_image(engine, s.image, settings)
        wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
        found = {"".join(ln.text.split()).lower() for ln in lines}
        for run in (runs[s.subset], runs["all"]):
            run.wall_ms.append(wall * 1000)
            run.cpu_ms.append(cpu * 1000)
            run.retried.append(engine.calls - calls > 1)
            run.rotated.append(any(ln.rotation for ln in lines))
            if s.truth:
                run.read_ok.append(all("".join(t.split()).lower() in found for t in s.truth))
    return {k: v for k, v in runs.items() if v.wall_ms}


def pct(flags: list[bool]) -> str:
    return f"{100 * sum(flags) / len(flags):.0f}%" if flags else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labels", type=int, default=40, help="rendered label images (ignored with --images)")
    parser.add_argument("--images", type=Path, help="use every image under this folder instead")
    parser.add_argument("--abo", type=Path, default=ABO_SAMPLES, help="ABO sample photos (skipped if missing)")
    parser.add_argument("--engines", nargs="+", default=["rapidocr", "tesseract"], choices=["rapidocr", "tesseract"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    console = Console(width=max(Console().width, 170))  # the table is wide; keep it whole in logs

    try:  # OpenCV (inside RapidOCR) would otherwise use every core for its resizes and warps
        import cv2

        cv2.setNumThreads(1)
    except ImportError:
        pass

    if args.images:
        samples = load_dir(args.images)
    else:
        samples = render_labels(args.labels, args.seed)
        if args.abo.is_dir():
            samples += load_dir(args.abo)
        else:
            console.print(f"[yellow]no ABO samples at {args.abo}: labels only[/]")
    if not samples:
        raise SystemExit("no images")
    n_labels = sum(s.subset == "labels" for s in samples)
    console.print(f"{len(samples)} images: {n_labels} rendered labels, {len(samples) - n_labels} photos; 1 thread")

    table = Table(title="OCR throughput, one process, one thread")
    for col in ("engine", "mode", "subset", "images", "img/s", "ms/img", "p50 ms", "p95 ms", "CPU ms/img",
                "retry ran", "rotation won", "labels read", "wall vs upright", "CPU vs upright"):
        table.add_column(col, justify="left" if col in ("engine", "mode", "subset") else "right")

    for name in args.engines:
        base = OcrSettings(engine=name)
        try:
            start = time.perf_counter()
            loaded = make_ocr_engine(base, threads=1)
            load_s = time.perf_counter() - start
        except ModelLoadError as exc:
            console.print(f"[yellow]skipping {name}: {exc}[/]")
            continue
        assert loaded is not None
        engine = CountingEngine(loaded)
        ocr_image(engine, samples[0].image, base)  # warm-up: first inference initialises kernels
        console.print(f"{name}: loaded in {load_s:.1f} s")
        upright = measure(engine, samples, base.model_copy(update={"rotations": []}))
        full = measure(engine, samples, base)
        rotations = "+" + "/".join(map(str, base.rotations))
        for mode, runs in (("upright only", upright), (rotations, full)):
            for subset, run in runs.items():
                if subset == "all" and len(runs) == 2:  # one subset: "all" would repeat it
                    continue
                total = sum(run.wall_ms)
                table.add_row(
                    name, mode, subset, str(len(run.wall_ms)),
                    f"{1000 * len(run.wall_ms) / total:.2f}",
                    f"{statistics.mean(run.wall_ms):.0f}",
                    f"{statistics.median(run.wall_ms):.0f}",
                    f"{sorted(run.wall_ms)[int(0.95 * (len(run.wall_ms) - 1))]:.0f}",
                    f"{statistics.mean(run.cpu_ms):.0f}",
                    pct(run.retried), pct(run.rotated), pct(run.read_ok),
                    f"{total / sum(upright[subset].wall_ms):.2f}x",
                    f"{sum(run.cpu_ms) / sum(upright[subset].cpu_ms):.2f}x",
                )
        table.add_section()
    console.print(table)


if __name__ == "__main__":
    main()
