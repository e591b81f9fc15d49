"""Rendering product images: each view of a product drawn with masks of its body and the
positions of its printed label lines (what OCR could read)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ameli_ray.catalog.planning import _S_LAYOUT, _Product

JPEG_QUALITY = 88
_N_VIEWS = 3  # 0: the product, 1: its retail box, 2: another side (with the model sticker)
_BG = (247, 247, 245)
_OUTLINE = (70, 70, 74)
_LABEL_BG = (250, 250, 246)
_INK = (16, 16, 18)
_DARK = (22, 24, 30)
_Line = tuple[str, tuple[str, ...], int]  # a label line: text, the Spec keys it shows, font px at 224


@dataclass(frozen=True)
class _TextLine:
    """One printed line: where its glyphs are, how big, and which Spec values it shows."""

    text: str
    box: tuple[int, int, int, int]
    font_px: int
    keys: tuple[str, ...]
    group: int  # lines of one label share a group; a close-up photo frames a whole group


@dataclass
class _Rendered:
    image: Image.Image
    body: np.ndarray  # bool mask: pixels painted in the product's colour
    foreground: np.ndarray  # bool mask: everything that is not background
    lines: list[_TextLine]


@lru_cache(maxsize=64)
def _font(px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=px)


class _Canvas:
    """Draws each shape three times: the picture, a product-colour mask and a foreground mask."""

    def __init__(self, size: int, layout: np.random.Generator) -> None:
        self.size = size
        self.image = Image.new("RGB", (size, size), _BG)
        self._body = Image.new("L", (size, size), 0)
        self._fg = Image.new("L", (size, size), 0)
        self._draws = (ImageDraw.Draw(self.image), ImageDraw.Draw(self._body), ImageDraw.Draw(self._fg))
        self.lines: list[_TextLine] = []
        # Family-level layout jitter: members of a family look alike except colour and labels.
        self.dx, self.dy = (float(v) for v in layout.uniform(-0.03, 0.03, size=2))
        self.scale = float(layout.uniform(0.92, 1.04))

    def pt(self, x: float, y: float) -> tuple[int, int]:
        s = self.size
        return (round(((x - 0.5) * self.scale + 0.5 + self.dx) * s),
                round(((y - 0.5) * self.scale + 0.5 + self.dy) * s))

    def box(self, x0: float, y0: float, x1: float, y1: float) -> tuple[int, int, int, int]:
        return (*self.pt(x0, y0), *self.pt(x1, y1))

    def px(self, v: float) -> int:
        return max(1, round(v * self.size * self.scale))

    def shape(self, kind: str, xy: Any, fill: tuple[int, int, int], *, body: bool, outline: bool = True,
              **kw: Any) -> None:
        img, bmask, fmask = self._draws
        width = max(1, self.px(0.008)) if outline else 0
        if kind in ("line", "arc"):
            w = kw.pop("width")
            getattr(img, kind)(xy, fill=fill, width=w, **kw)
            getattr(bmask, kind)(xy, fill=255 if body else 0, width=w, **kw)
            getattr(fmask, kind)(xy, fill=255, width=w, **kw)
            return
        line_color = _OUTLINE if outline else None
        getattr(img, kind)(xy, fill=fill, outline=line_color, width=width, **kw)
        getattr(bmask, kind)(xy, fill=255 if body else 0, outline=0 if outline else None, width=width, **kw)
        getattr(fmask, kind)(xy, fill=255, outline=255 if outline else None, width=width, **kw)

    def label(self, xy: tuple[int, int, int, int], lines: Sequence[_Line],
              *, background: bool = True) -> None:
        """A light label with dark, centred lines of text, each shrunk to fit the label width."""
        x0, y0, x1, y1 = xy
        if background:
            self.shape("rectangle", xy, _LABEL_BG, body=False)
        width, height = x1 - x0, y1 - y0
        sizes = []
        for text, _, max_px in lines:
            px = max(6, round(max_px * self.size / 224 * self.scale))
            while px > 6 and _font(px).getlength(text) > 0.9 * width:
                px -= 1
            sizes.append(px)
        total = sum(1.25 * p for p in sizes)
        if total > 0.92 * height:  # too tall: shrink every line alike
            factor = 0.92 * height / total
            sizes = [max(6, int(p * factor)) for p in sizes]
            total = sum(1.25 * p for p in sizes)
        group = len({ln.group for ln in self.lines})
        y = y0 + (height - total) / 2
        draw = self._draws[0]
        for (text, keys, _), px in zip(lines, sizes):
            cx, cy = (x0 + x1) / 2, y + 0.625 * px
            draw.text((cx, cy), text, fill=_INK, font=_font(px), anchor="mm")
            bbox = draw.textbbox((cx, cy), text, font=_font(px), anchor="mm")
            self.lines.append(_TextLine(text, tuple(int(v) for v in bbox), px, keys, group))  # type: ignore[arg-type]
            y += 1.25 * px

    def done(self) -> _Rendered:
        return _Rendered(self.image, np.asarray(self._body) > 127, np.asarray(self._fg) > 127, self.lines)


def _printed(kind: str, value: str) -> str:
    """How a value is printed on a label (OCR reads this; `gold` then records the Spec value)."""
    number = value.split()[0]
    return {
        "inches": f"{number} INCH",
        "hertz": f"{number}Hz",
        "watts": f"{number}W",
        "cups": f"{number} CUP",
        "ram": f"{value} RAM",
    }.get(kind, value.upper() if kind in ("clothing", "functions", "plain") else value)


def _printed_lines(product: _Product, *, big: int, keys: Iterable[str] | None = None) -> list[_Line]:
    """Label lines for the printable axis values of `product` (all of them unless `keys` given)."""
    out = []
    for axis in product.category.axes:
        if axis.kind == "color" or not axis.printed or (keys is not None and axis.key not in keys):
            continue
        value = product.attrs[axis.key]
        text = _printed(axis.kind, value)
        if axis.kind == "storage" and axis.key == "Solid State Drive Capacity":
            text = f"{value} SSD"
        out.append((text, (axis.key,), big))
    return out


def _render_view(product: _Product, view: int, size: int, seed: int) -> _Rendered:
    canvas = _Canvas(size, np.random.default_rng([seed, _S_LAYOUT, product.family.index, view]))
    if view == 1:
        _draw_box(canvas, product)
    else:
        _DRAWERS[product.category.shape](canvas, product, view)
    return canvas.done()


def _brand_line(product: _Product, px: int) -> _Line:
    return (product.family.brand.upper(), ("Brand",), px)


def _model_line(product: _Product, px: int) -> _Line:
    return (product.attrs["Model Number"], ("Model Number",), px)


def _draw_box(c: _Canvas, p: _Product) -> None:
    """The retail box: a band in the product colour and a printed face naming the variant."""
    c.shape("rectangle", c.box(0.12, 0.08, 0.88, 0.92), (232, 230, 224), body=False)
    c.shape("rectangle", c.box(0.12, 0.08, 0.88, 0.30), p.rgb, body=True)
    series = (f"{p.family.series.upper()} {p.category.noun.upper()}", ("Series",), 13)
    lines = [_brand_line(p, 22), series, *_printed_lines(p, big=24), _model_line(p, 11)]
    c.label(c.box(0.16, 0.34, 0.84, 0.88), lines, background=False)


def _draw_phone(c: _Canvas, p: _Product, view: int) -> None:
    body = c.box(0.30, 0.06, 0.70, 0.94)
    c.shape("rounded_rectangle", body, p.rgb, body=True, radius=c.px(0.06))
    if view == 0:
        c.shape("rounded_rectangle", c.box(0.325, 0.10, 0.675, 0.90), _DARK, body=False, radius=c.px(0.03))
        c.label(c.box(0.335, 0.38, 0.665, 0.62), [*_printed_lines(p, big=26), _brand_line(p, 12)])
    else:
        c.shape("rounded_rectangle", c.box(0.34, 0.10, 0.50, 0.30), _DARK, body=False, radius=c.px(0.03))
        for y in (0.15, 0.24):
            c.shape("ellipse", c.box(0.37, y - 0.035, 0.44, y + 0.035), (60, 62, 70), body=False)
        c.label(c.box(0.325, 0.74, 0.675, 0.86), [_brand_line(p, 9), _model_line(p, 9)])


def _draw_laptop(c: _Canvas, p: _Product, view: int) -> None:
    if view == 0:
        c.shape("rectangle", c.box(0.16, 0.10, 0.84, 0.62), p.rgb, body=True)
        c.shape("rectangle", c.box(0.19, 0.13, 0.81, 0.59), _DARK, body=False, outline=False)
        c.shape("polygon", [c.pt(0.16, 0.62), c.pt(0.84, 0.62), c.pt(0.95, 0.76), c.pt(0.05, 0.76)], p.rgb, body=True)
        c.shape("polygon", [c.pt(0.20, 0.64), c.pt(0.80, 0.64), c.pt(0.86, 0.71), c.pt(0.14, 0.71)],
                (40, 40, 46), body=False, outline=False)
        c.label(c.box(0.28, 0.22, 0.72, 0.50), [*_printed_lines(p, big=18), _brand_line(p, 10)])
    else:  # closed lid from above, brand plate and a service sticker
        c.shape("rounded_rectangle", c.box(0.10, 0.18, 0.90, 0.82), p.rgb, body=True, radius=c.px(0.03))
        c.label(c.box(0.36, 0.40, 0.64, 0.52), [_brand_line(p, 16)])
        c.label(c.box(0.56, 0.66, 0.86, 0.78), [_model_line(p, 9)])


def _draw_headphones(c: _Canvas, p: _Product, view: int) -> None:
    c.shape("arc", c.box(0.22, 0.12, 0.78, 0.80), p.rgb, body=True, start=180, end=360, width=c.px(0.06))
    for x in (0.16, 0.64):
        c.shape("ellipse", c.box(x, 0.40, x + 0.20, 0.74), p.rgb, body=True)
        c.shape("ellipse", c.box(x + 0.04, 0.46, x + 0.16, 0.68), (44, 44, 48), body=False, outline=False)
    if view == 0:
        c.label(c.box(0.36, 0.78, 0.64, 0.86), [_brand_line(p, 12)])
    else:
        c.label(c.box(0.26, 0.80, 0.74, 0.95), [*_printed_lines(p, big=11), _model_line(p, 10)])


def _draw_screen(c: _Canvas, p: _Product, view: int, *, monitor: bool) -> None:
    top, bottom = (0.14, 0.66) if monitor else (0.12, 0.70)
    if view == 0:
        c.shape("rectangle", c.box(0.06, top, 0.94, bottom), p.rgb, body=True)
        c.shape("rectangle", c.box(0.09, top + 0.03, 0.91, bottom - 0.03), (38, 60, 110), body=False, outline=False)
        c.shape("polygon", [c.pt(0.09, bottom - 0.03), c.pt(0.50, top + 0.10), c.pt(0.91, bottom - 0.03)],
                (90, 120, 170), body=False, outline=False)
        c.label(c.box(0.60, top + 0.05, 0.89, top + 0.21), _printed_lines(p, big=16))
    else:  # the back: vents and the model sticker
        c.shape("rectangle", c.box(0.10, top, 0.90, bottom), p.rgb, body=True)
        for i in range(5):
            y = top + 0.06 + 0.03 * i
            c.shape("line", [c.pt(0.30, y), c.pt(0.70, y)], _OUTLINE, body=False, width=c.px(0.008))
        c.label(c.box(0.34, bottom - 0.20, 0.66, bottom - 0.05), [_brand_line(p, 10), _model_line(p, 9)])
    if monitor:
        c.shape("rectangle", c.box(0.46, bottom, 0.54, 0.84), p.rgb, body=True)
        c.shape("rectangle", c.box(0.30, 0.84, 0.70, 0.88), p.rgb, body=True)
    else:
        for x in (0.18, 0.76):
            c.shape("polygon", [c.pt(x, bottom), c.pt(x + 0.06, bottom), c.pt(x + 0.09, 0.80), c.pt(x - 0.03, 0.80)],
                    p.rgb, body=True)


def _draw_tv(c: _Canvas, p: _Product, view: int) -> None:
    _draw_screen(c, p, view, monitor=False)


def _draw_monitor(c: _Canvas, p: _Product, view: int) -> None:
    _draw_screen(c, p, view, monitor=True)


def _draw_card(c: _Canvas, p: _Product, view: int) -> None:
    micro = p.attrs.get("Card Type", "").startswith("micro")
    x0, x1, y0, y1 = (0.26, 0.74, 0.14, 0.86) if micro else (0.20, 0.80, 0.08, 0.92)
    notch = 0.12 if micro else 0.14
    outline = [c.pt(x0, y0), c.pt(x1 - notch, y0), c.pt(x1, y0 + notch), c.pt(x1, y1), c.pt(x0, y1)]
    c.shape("polygon", outline, p.rgb, body=True)
    if view == 0:
        c.label(c.box(x0 + 0.03, y0 + 0.24, x1 - 0.03, y1 - 0.10),
                [_brand_line(p, 12), *_printed_lines(p, big=26)])
    else:  # the back: gold contacts and a fine-print model number
        for i in range(7):
            x = x0 + 0.05 + i * (x1 - x0 - 0.10) / 7
            c.shape("rectangle", c.box(x, y0 + 0.04, x + 0.035, y0 + 0.16), (200, 170, 80), body=False, outline=False)
        c.label(c.box(x0 + 0.04, y1 - 0.22, x1 - 0.04, y1 - 0.06), [_model_line(p, 9)])


def _draw_drive(c: _Canvas, p: _Product, view: int) -> None:
    c.shape("rounded_rectangle", c.box(0.22, 0.12, 0.78, 0.88), p.rgb, body=True, radius=c.px(0.05))
    c.shape("ellipse", c.box(0.48, 0.16, 0.52, 0.20), (90, 200, 255), body=False, outline=False)
    if view == 0:
        c.label(c.box(0.28, 0.36, 0.72, 0.64), [_brand_line(p, 13), *_printed_lines(p, big=26)])
    else:
        c.label(c.box(0.28, 0.70, 0.72, 0.82), [_model_line(p, 9), *_printed_lines(p, big=9)])


def _draw_shoe(c: _Canvas, p: _Product, view: int) -> None:
    flip = view == 2  # the other shoe of the pair, seen from the other side
    fx: Callable[[float], float] = (lambda x: 1 - x) if flip else (lambda x: x)
    sole = [(0.07, 0.68), (0.95, 0.68), (0.96, 0.74), (0.90, 0.79), (0.10, 0.80), (0.06, 0.75)]
    upper = [(0.09, 0.69), (0.10, 0.48), (0.20, 0.40), (0.33, 0.45), (0.45, 0.34), (0.55, 0.42), (0.76, 0.52),
             (0.89, 0.57), (0.94, 0.64), (0.93, 0.69)]
    c.shape("polygon", [c.pt(fx(x), y) for x, y in sole], (236, 236, 232), body=False)
    c.shape("polygon", [c.pt(fx(x), y) for x, y in upper], p.rgb, body=True)
    for i in range(4):
        x = 0.46 + 0.06 * i
        c.shape("line", [c.pt(fx(x), 0.40 + 0.035 * i), c.pt(fx(x + 0.05), 0.45 + 0.035 * i)], (235, 235, 235),
                body=False, width=c.px(0.012))
    if view == 0:  # the hang tag
        c.shape("line", [c.pt(0.30, 0.38), c.pt(0.30, 0.14)], _OUTLINE, body=False, width=c.px(0.006))
        c.label(c.box(0.20, 0.06, 0.56, 0.22), [*_printed_lines(p, big=20), _brand_line(p, 10)])
    else:  # the tongue label
        c.label(c.box(0.30, 0.12, 0.70, 0.30), [*_printed_lines(p, big=14), _model_line(p, 9)])


def _draw_shirt(c: _Canvas, p: _Product, view: int) -> None:
    shirt = [(0.30, 0.10), (0.42, 0.10), (0.50, 0.16), (0.58, 0.10), (0.70, 0.10), (0.92, 0.28), (0.82, 0.40),
             (0.74, 0.34), (0.74, 0.92), (0.26, 0.92), (0.26, 0.34), (0.18, 0.40), (0.08, 0.28)]
    c.shape("polygon", [c.pt(x, y) for x, y in shirt], p.rgb, body=True)
    if view == 0:  # the neck tag
        c.label(c.box(0.40, 0.17, 0.60, 0.27), _printed_lines(p, big=14))
    else:  # the hang tag on the sleeve
        c.label(c.box(0.52, 0.52, 0.86, 0.72), [_brand_line(p, 11), *_printed_lines(p, big=14), _model_line(p, 8)])


def _draw_printer(c: _Canvas, p: _Product, view: int) -> None:
    c.shape("polygon", [c.pt(0.28, 0.36), c.pt(0.36, 0.16), c.pt(0.64, 0.16), c.pt(0.72, 0.36)], (240, 240, 236),
            body=False)
    c.shape("rounded_rectangle", c.box(0.10, 0.34, 0.90, 0.80), p.rgb, body=True, radius=c.px(0.02))
    c.shape("rectangle", c.box(0.24, 0.66, 0.76, 0.70), _DARK, body=False, outline=False)
    if view == 0:
        c.label(c.box(0.14, 0.40, 0.60, 0.60), [_brand_line(p, 14), *_printed_lines(p, big=14)])
    else:
        c.label(c.box(0.56, 0.40, 0.86, 0.56), [_model_line(p, 9)])


def _draw_coffee(c: _Canvas, p: _Product, view: int) -> None:
    c.shape("rounded_rectangle", c.box(0.24, 0.08, 0.76, 0.90), p.rgb, body=True, radius=c.px(0.03))
    c.shape("rectangle", c.box(0.30, 0.52, 0.70, 0.84), (210, 214, 218), body=False)  # the carafe bay
    c.shape("ellipse", c.box(0.34, 0.56, 0.66, 0.82), (120, 80, 50), body=False)  # coffee in the carafe
    if view == 0:
        c.label(c.box(0.30, 0.14, 0.70, 0.44), [_brand_line(p, 12), *_printed_lines(p, big=20)])
    else:
        c.label(c.box(0.30, 0.30, 0.70, 0.46), [_model_line(p, 9), *_printed_lines(p, big=9, keys=("Wattage",))])


_DRAWERS: dict[str, Callable[[_Canvas, _Product, int], None]] = {
    "phone": _draw_phone, "laptop": _draw_laptop, "headphones": _draw_headphones, "tv": _draw_tv,
    "monitor": _draw_monitor, "card": _draw_card, "drive": _draw_drive, "shoe": _draw_shoe,
    "shirt": _draw_shirt, "printer": _draw_printer, "coffee": _draw_coffee,
}


def _save_jpeg(image: Image.Image, path: Path) -> None:
    image.save(path, format="JPEG", quality=JPEG_QUALITY, optimize=False, progressive=False)


def _write_product_images(product: _Product, views: list[_Rendered], folder: Path) -> list[str]:
    names = []
    for k, view in enumerate(product.image_views):
        name = f"{product.entity_id}_{k}.jpg"
        _save_jpeg(views[view].image, folder / name)
        names.append(name)
    return names
