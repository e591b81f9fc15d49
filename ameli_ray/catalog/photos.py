"""Review photos: random crops of the rendered views, planned so that they show (or keep
secret) given attribute values, then rendered and written."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from ameli_ray.catalog.render import _N_VIEWS, _Rendered, _save_jpeg

# Calibrated with RapidOCR (PP-OCR) on these photos: text whose font is >= 10 px in the photo,
# blurred by a Gaussian radius <= px / 12, is read ~95% of the time (model numbers ~88%, letter
# confusions); below 8 px hardly ever. Between the two, a secret (a value the scenario hides) is
# not safe, so hidden values must stay under the lower bound.
# The *_CUT shares say how much of a line's height may be cut off by the photo's edge (OCR reads
# through slight clipping).
_READABLE_PX, _READABLE_BLUR, _READABLE_CUT = 10.0, 1 / 12, 0.15
_PERHAPS_PX, _PERHAPS_BLUR, _PERHAPS_CUT = 7.5, 1 / 6, 0.4
# Share of a photo in the product's colour from which it "shows the colour" (5%: a few thousand
# pixels, e.g. the headband and cups of headphones), and below which a hidden colour is safe.
_COLOR_SHOWN, _COLOR_PERHAPS = 0.05, 0.01
_BACKGROUNDS = ((150, 110, 70), (120, 120, 125), (44, 44, 50), (70, 90, 120), (214, 212, 204), (90, 120, 90),
                (176, 150, 120), (200, 190, 210))


@dataclass(frozen=True)
class _Photo:
    view: int
    crop: tuple[float, float, float]  # x0, y0, side in source pixels (a square)
    quarter_turns: int
    angle: float
    blur: float
    noise: float
    brightness: float
    contrast: float
    background: int


def _sample_photo(views: list[_Rendered], rng: np.random.Generator, target: str | None) -> _Photo:
    """A random photo of one view: the whole thing, a close-up of a label, or a detail of the body.

    Unplanned photos mostly show the product itself, as reviewers' photos do; the retail box,
    which names the variant in big letters, is photographed less often.
    """
    size = views[0].image.size[0]
    view = int(rng.choice(_N_VIEWS, p=[0.4, 0.3, 0.3] if target else [0.5, 0.15, 0.35]))
    kind = target or str(rng.choice(["full", "label", "detail"], p=[0.45, 0.2, 0.35]))
    rendered = views[view]
    if kind == "label" and rendered.lines:
        groups = sorted({ln.group for ln in rendered.lines})
        group = groups[int(rng.integers(len(groups)))]
        boxes = np.array([ln.box for ln in rendered.lines if ln.group == group], dtype=float)
        x0, y0 = boxes[:, 0].min(), boxes[:, 1].min()
        x1, y1 = boxes[:, 2].max(), boxes[:, 3].max()
        side = max(x1 - x0, y1 - y0) * float(rng.uniform(1.15, 1.9))
        side = min(max(side, 0.18 * size), size)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    elif kind == "detail":
        ys, xs = np.nonzero(rendered.body)
        side = float(rng.uniform(0.25, 0.5)) * size
        if len(xs):
            i = int(rng.integers(len(xs)))
            cx, cy = float(xs[i]), float(ys[i])
        else:
            cx = cy = size / 2
    else:
        side = float(rng.uniform(0.72, 1.0)) * size
        cx, cy = size / 2 + float(rng.uniform(-0.1, 0.1)) * size, size / 2 + float(rng.uniform(-0.1, 0.1)) * size
    side = min(side, float(size))
    x0 = min(max(cx - side / 2, 0.0), size - side)
    y0 = min(max(cy - side / 2, 0.0), size - side)
    quarter = int(rng.choice(4, p=[0.7, 0.1, 0.1, 0.1]))
    angle = 0.0 if rng.random() < 0.5 else float(rng.uniform(-14, 14))
    blur = 0.0 if rng.random() < 0.6 else float(rng.uniform(0.4, 2.2))
    return _Photo(view, (x0, y0, side), quarter, angle, blur, float(rng.uniform(0, 9)),
                  float(rng.uniform(0.9, 1.1)), float(rng.uniform(0.88, 1.12)), int(rng.integers(len(_BACKGROUNDS))))


def _photo_shows(photo: _Photo, views: list[_Rendered]) -> tuple[set[str], set[str], set[str], set[str]]:
    """For a planned photo, the keys (OCR reads, OCR might read, it shows, it might show).

    Quarter turns do not matter: OCR pipelines (AMELI's included) try all four orientations.
    """
    rendered = views[photo.view]
    size = rendered.image.size[0]
    x0, y0, side = photo.crop
    scale = size / side
    cos, sin = math.cos(math.radians(photo.angle)), math.sin(math.radians(photo.angle))
    half = size / 2
    ocr: set[str] = set()
    perhaps: set[str] = set()

    def inside(box: tuple[float, float, float, float]) -> bool:
        # The box's corners in the photo: crop, scale, then the tilt about the centre (which cuts
        # the corners off). Quarter turns map the surviving region onto itself.
        bx0, by0, bx1, by1 = box
        corners = [((x - x0) * scale - half, (y - y0) * scale - half) for x in (bx0, bx1) for y in (by0, by1)]
        return all(abs(dx * cos + dy * sin) <= half - 1 and abs(-dx * sin + dy * cos) <= half - 1
                   for dx, dy in corners)

    def inside_but(box: tuple[int, int, int, int], share: float) -> bool:
        cut = share * (box[3] - box[1])
        return inside((box[0] + cut, box[1] + cut, box[2] - cut, box[3] - cut))

    for line in rendered.lines:
        px = line.font_px * scale
        if px >= _PERHAPS_PX and photo.blur <= _PERHAPS_BLUR * px and inside_but(line.box, _PERHAPS_CUT):
            perhaps.update(line.keys)
            if px >= _READABLE_PX and photo.blur <= _READABLE_BLUR * px and inside_but(line.box, _READABLE_CUT):
                ocr.update(line.keys)
    ix0, iy0, iside = int(x0), int(y0), max(1, int(side))
    body_share = float(rendered.body[iy0:iy0 + iside, ix0:ix0 + iside].mean())
    image = {"Color"} if body_share >= _COLOR_SHOWN else set()
    image_perhaps = {"Color"} if body_share >= _COLOR_PERHAPS else set()
    return ocr, perhaps, image, image_perhaps


def _background(size: int, index: int, rng: np.random.Generator) -> np.ndarray:
    base = np.array(_BACKGROUNDS[index], dtype=np.float32)
    ramp = np.linspace(-18, 18, size, dtype=np.float32)
    grain = np.sin(np.linspace(0, float(rng.uniform(6, 30)), size, dtype=np.float32) + float(rng.uniform(0, 6)))
    shade = (ramp[:, None] + 6 * grain[None, :])[..., None]
    return np.clip(base + shade, 0, 255)


def _render_photo(photo: _Photo, views: list[_Rendered], rng: np.random.Generator) -> Image.Image:
    rendered = views[photo.view]
    size = rendered.image.size[0]
    pixels = np.asarray(rendered.image, dtype=np.float32)
    mixed = np.where(rendered.foreground[..., None], pixels, _background(size, photo.background, rng))
    img = Image.fromarray(mixed.astype(np.uint8))
    x0, y0, side = photo.crop
    img = img.resize((size, size), Image.Resampling.BILINEAR, box=(x0, y0, x0 + side, y0 + side))
    if photo.quarter_turns:
        img = img.transpose([Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180,
                             Image.Transpose.ROTATE_270][photo.quarter_turns - 1])
    if photo.angle:
        img = img.rotate(photo.angle, resample=Image.Resampling.BILINEAR, fillcolor=_BACKGROUNDS[photo.background])
    if photo.blur:
        img = img.filter(ImageFilter.GaussianBlur(photo.blur))
    arr = np.asarray(img, dtype=np.float32)
    arr = (arr - 128.0) * photo.contrast + 128.0
    arr = arr * photo.brightness + rng.normal(0.0, photo.noise, size=arr.shape).astype(np.float32)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def _plan_photo(views: list[_Rendered], rng: np.random.Generator, want: set[str], avoid: set[str],
                sensitive: set[str], tries: int = 16) -> tuple[_Photo, set[str], set[str]] | None:
    """Rejection-sample a photo that shows every key in `want` and none in `avoid`.

    The first two thirds of the tries also refuse photos where a `sensitive` value (one that
    decides between family members) is only half-legible, so gold stays crisp where it matters.
    """
    printed = {k for v in views for ln in v.lines for k in ln.keys}
    for attempt in range(tries):
        if want & printed and rng.random() < 0.75:
            target: str | None = "label"
        elif "Color" in want:
            target = "full" if rng.random() < 0.6 else "detail"
        else:
            target = None
        photo = _sample_photo(views, rng, target)
        ocr, perhaps, image, image_perhaps = _photo_shows(photo, views)
        if not want <= ocr | image or avoid & (perhaps | image_perhaps):
            continue
        if attempt < 2 * tries // 3 and sensitive & ((perhaps - ocr) | (image_perhaps - image)):
            continue
        return photo, ocr, image
    return None


def _take_photos(review_id: int, views: list[_Rendered], want: set[str], avoid: set[str], sensitive: set[str],
                 rng: np.random.Generator, folder: Path) -> tuple[list[str], set[str], set[str]]:
    """Write 0-3 photos; the first ones carry the planned evidence (one key each), the others
    only keep the scenario's secrets. Returns (file names, keys OCR reads, keys shown)."""
    targets = sorted(want)
    n_photos = max(len(targets), int(rng.choice(4, p=[0.4, 0.35, 0.17, 0.08])))
    names: list[str] = []
    ocr_keys: set[str] = set()
    image_keys: set[str] = set()
    for k in range(n_photos):
        wanted = {targets[k]} if k < len(targets) else set()
        planned = _plan_photo(views, rng, wanted, avoid, sensitive, tries=40 if wanted else 12)
        if planned is None:  # no photo keeps the secrets: the reviewer posts one photo fewer
            continue
        photo, ocr, image = planned
        name = f"{review_id}_{len(names)}.jpg"
        _save_jpeg(_render_photo(photo, views, rng), folder / name)
        names.append(name)
        ocr_keys |= ocr
        image_keys |= image
    return names, ocr_keys, image_keys
