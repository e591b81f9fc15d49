"""OCR: the rotation / threshold / ordering logic on a fake engine (fast), RapidOCR and Tesseract for real (slow)."""

from __future__ import annotations

import shutil
import sys

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from ameli_ray.attributes.ocr import (
    MIN_SIDE,
    OcrEngine,
    OcrLine,
    make_ocr_engine,
    ocr_image,
    ocr_images,
)
from ameli_ray.config import OcrSettings
from ameli_ray.errors import ModelLoadError

SETTINGS = OcrSettings()
ODD_MODES = ["1", "L", "P", "RGBA", "LA", "CMYK", "I;16", "I", "F", "HSV"]


def _norm(text: str) -> str:
    return "".join(text.split()).lower()


def _label(lines: list[str], size: tuple[int, int] = (640, 240), font_size: int = 48) -> Image.Image:
    font = ImageFont.load_default(size=font_size)
    img = Image.new("RGB", size, (245, 243, 238))
    draw = ImageDraw.Draw(img)
    for i, text in enumerate(lines):
        draw.text((30, 30 + i * int(font_size * 1.4)), text, fill=(20, 20, 20), font=font)
    return img


def _odd(mode: str, size: tuple[int, int] = (120, 60)) -> Image.Image:
    if mode == "RGBA":
        return Image.new("RGBA", size, (0, 0, 0, 0))  # fully transparent: composited on white
    if mode == "HSV":
        return Image.new("HSV", size, (0, 0, 200))
    return Image.new(mode, size)


# -- the logic, on a fake engine ---------------------------------------------------------------


def _marked(size: tuple[int, int] = (160, 80)) -> Image.Image:
    """A landscape image with a dark square in its top-left corner: the fake engine's 'upright'."""
    img = Image.new("RGB", size, "white")
    ImageDraw.Draw(img).rectangle((5, 5, 20, 20), fill="black")
    return img


class FakeEngine:
    """Reads `text` only when the marker is top-left in a landscape image; garbage otherwise."""

    name = "fake"

    def __init__(self, upright: list[OcrLine] | None = None, garbage: list[OcrLine] | None = None) -> None:
        self.upright = upright if upright is not None else [OcrLine("NV-AX2-256", 0.95, (30, 30, 150, 60), 0)]
        self.garbage = garbage if garbage is not None else [OcrLine("x", 0.9, (0, 0, 5, 5), 0)]
        self.seen: list[Image.Image] = []

    def read(self, image: Image.Image) -> list[OcrLine]:
        self.seen.append(image)
        grey = np.asarray(image.convert("L"))
        ys, xs = np.nonzero(grey < 128)
        w, h = image.size
        upright = len(xs) > 0 and w > h and xs.mean() < w / 2 and ys.mean() < h / 2
        return list(self.upright if upright else self.garbage)


def test_fake_engine_satisfies_the_protocol():
    assert isinstance(FakeEngine(), OcrEngine)


def test_upright_text_is_read_in_one_pass():
    engine = FakeEngine()
    lines = ocr_image(engine, _marked(), SETTINGS)
    assert [(ln.text, ln.rotation) for ln in lines] == [("NV-AX2-256", 0)]
    assert len(engine.seen) == 1 and engine.seen[0].mode == "RGB"


@pytest.mark.parametrize("angle", [90, 180, 270])
def test_rotation_retry_undoes_the_rotation(angle):
    engine = FakeEngine()
    rotated = _marked().rotate(angle, expand=True)  # PIL: counter-clockwise
    lines = ocr_image(engine, rotated, SETTINGS)
    assert [ln.text for ln in lines] == ["NV-AX2-256"]
    assert lines[0].rotation == (360 - angle) % 360
    assert len(engine.seen) == 4  # upright + the three rotations


def test_low_confidence_upright_text_triggers_the_retry():
    engine = FakeEngine(garbage=[OcrLine("LOOKS-LIKE-TEXT", 0.3, (0, 0, 50, 10), 0)])
    lines = ocr_image(engine, _marked().rotate(90, expand=True), SETTINGS)
    assert lines[0].rotation == 270


def test_no_retry_when_disabled():
    engine = FakeEngine()
    rotated = _marked().rotate(90, expand=True)
    for update in ({"rotations": []}, {"retry_below_chars": 0}):
        assert [ln.text for ln in ocr_image(engine, rotated, SETTINGS.model_copy(update=update))] == ["x"]
    assert len(engine.seen) == 2


def test_near_tie_keeps_the_upright_reading():
    class SameEverywhere:
        name = "same"

        def __init__(self) -> None:
            self.calls = 0

        def read(self, image):
            self.calls += 1
            # upright is a hair less confident: noise must not flip the answer to a rotation
            return [OcrLine("8GB", 0.9990 + self.calls * 1e-4, (0, 0, 10, 10), 0)]

    lines = ocr_image(SameEverywhere(), _marked(), SETTINGS)
    assert lines[0].rotation == 0


def test_min_confidence_filters_lines():
    lines = [
        OcrLine("low", 0.49, (0, 0, 10, 10), 0),
        OcrLine("edge", 0.5, (0, 20, 10, 30), 0),
        OcrLine("high", 0.99, (0, 40, 10, 50), 0),
    ]
    engine = FakeEngine(upright=lines)
    assert [ln.text for ln in ocr_image(engine, _marked(), SETTINGS)] == ["edge", "high"]
    strict = SETTINGS.model_copy(update={"min_confidence": 0.9, "rotations": []})
    assert [ln.text for ln in ocr_image(engine, _marked(), strict)] == ["high"]


def test_reading_order_is_rows_top_to_bottom_then_left_to_right():
    shuffled = [
        OcrLine("c", 0.9, (10, 62, 40, 80), 0),
        OcrLine("b", 0.9, (60, 12, 90, 30), 0),  # same row as "a", slightly lower
        OcrLine("a", 0.9, (5, 10, 40, 28), 0),
        OcrLine("d", 0.9, (50, 60, 90, 78), 0),
    ]
    lines = ocr_image(FakeEngine(upright=shuffled), _marked(), SETTINGS.model_copy(update={"rotations": []}))
    assert [ln.text for ln in lines] == ["a", "b", "c", "d"]


def test_large_images_are_downscaled_and_the_callers_image_is_untouched():
    engine = FakeEngine()
    big = _marked((3000, 1200))
    ocr_image(engine, big, SETTINGS)
    assert engine.seen[0].size == (1024, 410)
    assert big.size == (3000, 1200)


@pytest.mark.parametrize("size", [(1, 1), (MIN_SIDE - 1, 500), (500, MIN_SIDE - 1)])
def test_tiny_images_give_nothing_without_calling_the_engine(size):
    engine = FakeEngine()
    assert ocr_image(engine, Image.new("RGB", size, "white"), SETTINGS) == []
    assert engine.seen == []


@pytest.mark.parametrize("mode", ODD_MODES)
def test_any_mode_reaches_the_engine_as_rgb(mode):
    engine = FakeEngine(upright=[], garbage=[])
    assert ocr_image(engine, _odd(mode), SETTINGS) == []
    assert {img.mode for img in engine.seen} == {"RGB"}


def test_ocr_images_is_per_image():
    out = ocr_images(FakeEngine(), [_marked(), Image.new("RGB", (1, 1)), _marked().rotate(180)], SETTINGS)
    assert [[ln.rotation for ln in lines] for lines in out] == [[0], [], [180]]


# -- engine construction -----------------------------------------------------------------------


def test_engine_none_gives_none():
    assert make_ocr_engine(OcrSettings(engine="none")) is None


def test_tesseract_binary_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda *args, **kwargs: None)
    with pytest.raises(ModelLoadError, match="tesseract") as err:
        make_ocr_engine(OcrSettings(engine="tesseract"))
    assert "apt-get install -y tesseract-ocr" in str(err.value)


def test_pytesseract_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "pytesseract", None)  # makes the import fail
    with pytest.raises(ModelLoadError, match="pip install pytesseract"):
        make_ocr_engine(OcrSettings(engine="tesseract"))


def test_rapidocr_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "rapidocr", None)
    with pytest.raises(ModelLoadError, match="rapidocr.*pip install"):
        make_ocr_engine(OcrSettings())


def test_unknown_engine_is_a_clear_error():
    with pytest.raises(ModelLoadError, match="unknown OCR engine 'easyocr'"):
        make_ocr_engine(OcrSettings.model_construct(engine="easyocr"))


# -- RapidOCR for real (models load once per module) -------------------------------------------


@pytest.fixture(scope="module")
def rapid() -> OcrEngine:
    engine = make_ocr_engine(SETTINGS, threads=1)
    assert engine is not None and engine.name == "rapidocr"
    return engine


@pytest.mark.slow
def test_rapidocr_reads_a_rendered_label(rapid):
    label = _label(["256GB", "NV-AX2-256"])
    lines = ocr_image(rapid, label, SETTINGS)
    assert [_norm(ln.text) for ln in lines] == ["256gb", "nv-ax2-256"]
    for ln in lines:
        assert ln.rotation == 0 and SETTINGS.min_confidence <= ln.confidence <= 1
        x0, y0, x1, y1 = ln.box
        assert 0 <= x0 < x1 <= label.width and 0 <= y0 < y1 <= label.height


@pytest.mark.slow
@pytest.mark.parametrize("angle", [90, 180, 270])
def test_rapidocr_reads_a_rotated_label(rapid, angle):
    lines = ocr_image(rapid, _label(["256GB", "NV-AX2-256"]).rotate(angle, expand=True), SETTINGS)
    assert sorted(_norm(ln.text) for ln in lines) == ["256gb", "nv-ax2-256"]
    # RapidOCR turns tall text boxes and flips upside-down lines within one pass, so a whole
    # label is often read upright; otherwise by the rotation that undoes `angle`, or that plus 180.
    undo = (360 - angle) % 360
    assert {ln.rotation for ln in lines} <= {0, undo, (undo + 180) % 360}


@pytest.mark.slow
def test_rapidocr_short_sideways_text_is_read_through_the_retry(rapid):
    # "4K" photographed 90 degrees clockwise: too short a box for RapidOCR to turn, so the
    # upright pass reads nothing and a sideways rotation does.
    lines = ocr_image(rapid, _label(["4K"], (200, 120)).rotate(270, expand=True), SETTINGS)
    assert [_norm(ln.text) for ln in lines] == ["4k"]
    assert lines[0].rotation in (90, 270)


@pytest.mark.slow
def test_rapidocr_threshold_filters(rapid):
    label = _label(["256GB", "NV-AX2-256"])
    everything = rapid.read(label)
    assert everything and all(ln.rotation == 0 for ln in everything)
    cut = max(ln.confidence for ln in everything)
    kept = ocr_image(rapid, label, SETTINGS.model_copy(update={"min_confidence": cut, "rotations": []}))
    assert kept and all(ln.confidence >= cut for ln in kept)
    assert ocr_image(rapid, _odd("L"), SETTINGS.model_copy(update={"min_confidence": 1.0})) == []


@pytest.mark.slow
@pytest.mark.parametrize("mode", ODD_MODES)
def test_rapidocr_blank_images_of_any_mode_give_nothing(rapid, mode):
    assert ocr_image(rapid, _odd(mode), SETTINGS) == []


@pytest.mark.slow
@pytest.mark.parametrize("size", [(1, 1), (MIN_SIDE, MIN_SIDE), (2000, 9), (9, 2000), (31, 17), (4000, 3000)])
def test_rapidocr_odd_sizes_give_nothing(rapid, size):
    assert ocr_image(rapid, Image.new("RGB", size, "white"), SETTINGS) == []
    assert ocr_image(rapid, Image.new("RGB", size, "black"), SETTINGS) == []


@pytest.mark.slow
@pytest.mark.parametrize("size", [(MIN_SIDE, MIN_SIDE), (600, 9), (9, 600), (31, 17), (300, 200)])
def test_rapidocr_survives_noise(rapid, size):
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    for ln in ocr_image(rapid, noise, SETTINGS):  # whatever it reads in noise, well-formed and no error
        assert ln.confidence >= SETTINGS.min_confidence and ln.text


# -- Tesseract, where installed ----------------------------------------------------------------


def _tesseract() -> OcrEngine | None:
    try:
        return make_ocr_engine(OcrSettings(engine="tesseract"), threads=1)
    except ModelLoadError:
        return None


@pytest.mark.slow
@pytest.mark.parametrize("angle", [0, 90, 180, 270])
def test_tesseract_reads_a_label(angle):
    engine = _tesseract()
    if engine is None:
        pytest.skip("tesseract or pytesseract not installed")
    settings = OcrSettings(engine="tesseract")
    lines = ocr_image(engine, _label(["256GB", "NV-AX2-256"]).rotate(angle, expand=True), settings)
    assert sorted(_norm(ln.text) for ln in lines) == ["256gb", "nv-ax2-256"]
    assert all(0 <= ln.confidence <= 1 for ln in lines)
    assert ocr_image(engine, _odd("L"), settings) == []


@pytest.mark.slow
def test_rapidocr_threads_sleep_between_runs_instead_of_spinning():
    # spinning onnxruntime threads held the cores torch needed next (in-process ~10% slower on 2 cores)
    engine = make_ocr_engine(SETTINGS)
    parts = [engine._ocr.text_det, engine._ocr.text_cls, engine._ocr.text_rec]
    options = [p.session.session.get_session_options() for p in parts]
    assert [o.get_session_config_entry("session.intra_op.allow_spinning") for o in options] == ["0"] * 3
    # and the sessions still read: the rebuilt ones are the ones that run
    assert [_norm(ln.text) for ln in ocr_image(engine, _label(["256GB"]), SETTINGS)] == ["256gb"]
