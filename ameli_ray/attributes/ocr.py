"""OCR of review photos behind a small engine interface.

The paper reads review photos with EasyOCR, upright and rotated by 90/180/270 degrees, and keeps
lines with confidence > 0.5. Here an engine does one pass over the image as given (`OcrEngine.read`)
and `ocr_image` owns the rest: downscaling, the confidence cut and the whole-image rotation retry,
so every engine behaves the same. RapidOCR (PP-OCR models inside the wheel, offline) is the
default; Tesseract is the optional alternative. Both already handle some rotated text within their
pass (RapidOCR turns tall boxes and flips upside-down lines; Tesseract reads some vertical lines),
so a rotated photo is often read at rotation 0, and a sideways one at either 90 or 270.

Rotations are counter-clockwise, as in PIL: `rotation=90` means the engine saw
`image.transpose(Image.Transpose.ROTATE_90)`, which turns upright a photo taken 90 degrees clockwise.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image

from ameli_ray.config import OcrSettings
from ameli_ray.errors import ModelLoadError
from ameli_ray.storage.images import to_rgb

# Below this many pixels on a side there is no legible text, and the engines' resizing misbehaves.
MIN_SIDE = 8
# How much more confident alphanumeric text (sum of confidence x characters) a rotation must read
# than the best reading so far to replace it: half a character.
ROTATION_MARGIN = 0.5

_TRANSPOSE = {
    90: Image.Transpose.ROTATE_90,
    180: Image.Transpose.ROTATE_180,
    270: Image.Transpose.ROTATE_270,
}

RAPIDOCR_HINT = (
    "install it with `pip install 'rapidocr>=3' onnxruntime` "
    "(not rapidocr_onnxruntime: the two pull competing OpenCV builds)"
)
TESSERACT_HINT = (
    "install the binary (Debian/Ubuntu: `apt-get install -y tesseract-ocr`) and the wrapper "
    "(`pip install pytesseract`), or set ocr.engine=rapidocr"
)


@dataclass(frozen=True)
class OcrLine:
    text: str
    confidence: float  # 0..1
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in the (downscaled, rotated) image the engine saw
    rotation: int  # 0, 90, 180 or 270: the counter-clockwise rotation under which it was read


@runtime_checkable
class OcrEngine(Protocol):
    name: str

    def read(self, image: Image.Image) -> list[OcrLine]:
        """One pass over an RGB image: every line found, with its confidence; rotation is always 0."""
        ...


class RapidOcrEngine:
    """RapidOCR 3.x on onnxruntime. The models load once, here; `read` is then pure inference."""

    name = "rapidocr"

    def __init__(self, threads: int | None = None, max_side: int = 1024) -> None:
        try:
            from rapidocr import RapidOCR
        except ImportError as exc:
            raise ModelLoadError(f"OCR engine 'rapidocr' is not installed: {RAPIDOCR_HINT}") from exc
        params: dict[str, Any] = {
            "Global.log_level": "critical",  # otherwise it logs every image without text
            "Global.text_score": 0.0,  # return every line: ocr_image applies min_confidence
            # Detection at the image's own size (up to max_side), not rapidocr's default of
            # upscaling the short side to 736: same text read here, and a 1024x200 strip is not
            # blown up to 3800x736 (5x faster on such images).
            "Det.limit_type": "max",
            "Det.limit_side_len": max_side,
            # Global.use_cls stays on: the line classifier flips upside-down lines within the pass.
            # Without it a label at 180 degrees reads as confident garbage ("2566G" at 0.82) that
            # passes min_confidence and keeps the rotation retry from ever running.
        }
        if threads is not None:
            # rapidocr ignores values above os.cpu_count(); clamp so a request is never silently dropped
            n = max(1, min(threads, os.cpu_count() or 1))
            params["EngineConfig.onnxruntime.intra_op_num_threads"] = n
            params["EngineConfig.onnxruntime.inter_op_num_threads"] = 1
        try:
            self._ocr = RapidOCR(params=params)
            # rapidocr loads its models on first use, and would try to download a missing one then;
            # load them now so a broken install fails here, with a clear message, not mid-pipeline.
            for loader in ("_load_det_model", "_load_cls_model", "_load_rec_model"):
                part = getattr(self._ocr, loader, lambda: None)()
                _stop_spinning(getattr(part, "session", None))
        except Exception as exc:
            raise ModelLoadError(f"OCR engine 'rapidocr' could not load its models ({exc}); {RAPIDOCR_HINT}") from exc

    def read(self, image: Image.Image) -> list[OcrLine]:
        # An ndarray goes in untouched and is taken as BGR (a PIL image would be converted by rapidocr).
        bgr = np.ascontiguousarray(np.asarray(to_rgb(image))[:, :, ::-1])
        out = self._ocr(bgr)
        boxes, texts, scores = (getattr(out, k, None) for k in ("boxes", "txts", "scores"))
        if boxes is None or texts is None or scores is None:
            return []
        width, height = image.size
        lines = []
        for quad, text, score in zip(boxes, texts, scores):
            text = text.strip()
            if not text:
                continue
            pts = np.asarray(quad, dtype=float).reshape(-1, 2)
            x0, y0 = pts.min(axis=0).clip(0, None)
            x1, y1 = pts.max(axis=0)
            box = (float(x0), float(y0), float(min(x1, width)), float(min(y1, height)))
            lines.append(OcrLine(text, float(np.clip(score, 0.0, 1.0)), box, 0))
        return lines


def _stop_spinning(wrapper: Any) -> None:
    """Rebuilds a rapidocr model's onnxruntime session with its intra-op threads sleeping between
    runs instead of spinning (onnxruntime's default, which rapidocr does not expose). Spinning
    threads hold cores while torch runs the encoders in the same process, or the cross-encoder in
    the next one: on 2 cores the in-process linker was ~10% slower with them (BENCHMARKS.md). A
    session without a thread pool, or an onnxruntime that no longer keeps the model's path, is
    left as it is."""
    session = getattr(wrapper, "session", None)
    path = getattr(session, "_model_path", None)
    if session is None or not isinstance(path, (str, os.PathLike)) or session.get_session_options().intra_op_num_threads == 1:
        return
    import onnxruntime

    options = session.get_session_options()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    wrapper.session = onnxruntime.InferenceSession(path, sess_options=options, providers=session.get_providers())


class TesseractEngine:
    """Tesseract through pytesseract: words with their confidences, grouped into Tesseract's lines."""

    name = "tesseract"

    def __init__(self, threads: int | None = None, lang: str = "eng", timeout_s: float = 60.0) -> None:
        try:
            import pytesseract
        except ImportError as exc:
            raise ModelLoadError(f"OCR engine 'tesseract' needs pytesseract: {TESSERACT_HINT}") from exc
        cmd = pytesseract.pytesseract.tesseract_cmd
        if shutil.which(cmd) is None:
            raise ModelLoadError(f"OCR engine 'tesseract': binary {cmd!r} not found on PATH; {TESSERACT_HINT}")
        if threads is not None:
            # Tesseract runs as a subprocess that inherits the environment; OpenMP reads this limit at start.
            os.environ["OMP_THREAD_LIMIT"] = str(max(1, threads))
        self._tess = pytesseract
        self._lang = lang
        self._timeout_s = timeout_s

    def read(self, image: Image.Image) -> list[OcrLine]:
        data = self._tess.image_to_data(
            to_rgb(image), lang=self._lang, output_type=self._tess.Output.DICT, timeout=self._timeout_s
        )
        # (block, paragraph, line) -> [(word, confidence 0..100, left, top, width, height)]
        groups: dict[tuple[int, int, int], list[tuple[str, float, int, int, int, int]]] = {}
        for i, word in enumerate(data.get("text", [])):
            conf = float(data["conf"][i])
            word = str(word).strip()
            if conf < 0 or not word:  # -1: a layout row (page, block, line), not a word
                continue
            key = (data["block_num"][i], data["par_num"][i], data["line_num"][i])
            groups.setdefault(key, []).append(
                (word, conf, data["left"][i], data["top"][i], data["width"][i], data["height"][i])
            )
        lines = []
        for words in groups.values():
            text = " ".join(w[0] for w in words)
            # character-weighted, so one confident long word is not dragged down by a stray mark
            chars = sum(len(w[0]) for w in words)
            conf = sum(w[1] * len(w[0]) for w in words) / chars / 100.0
            box = (
                float(min(w[2] for w in words)),
                float(min(w[3] for w in words)),
                float(max(w[2] + w[4] for w in words)),
                float(max(w[3] + w[5] for w in words)),
            )
            lines.append(OcrLine(text, min(max(conf, 0.0), 1.0), box, 0))
        return lines


def make_ocr_engine(settings: OcrSettings, threads: int | None = None) -> OcrEngine | None:
    """The configured engine, loaded; None for engine="none"; ModelLoadError when it is unavailable.

    `threads` caps the engine's intra-op threads (e.g. an actor's `StageResources.threads`);
    None leaves the engine's default (all cores).
    """
    if settings.engine == "none":
        return None
    if settings.engine == "rapidocr":
        return RapidOcrEngine(threads, settings.max_side)
    if settings.engine == "tesseract":
        return TesseractEngine(threads)
    raise ModelLoadError(f"unknown OCR engine {settings.engine!r}: use rapidocr, tesseract or none")


def ocr_image(engine: OcrEngine, image: Image.Image, settings: OcrSettings) -> list[OcrLine]:
    """The lines of `image` with confidence >= min_confidence, in reading order.

    Reads upright; when that keeps fewer than `retry_below_chars` alphanumeric characters, reads
    each of `settings.rotations` too and keeps the reading with the most confident alphanumeric
    characters (sum of confidence x characters; the upright one, then the earlier rotation, wins
    near-ties, see ROTATION_MARGIN).
    """
    image = _prepare(image, settings.max_side)
    if min(image.size) < MIN_SIDE:
        return []
    best = _kept(engine.read(image), settings.min_confidence, 0)
    if _alnum(best) >= settings.retry_below_chars:
        return _reading_order(best)
    best_score = _score(best)
    for rotation in dict.fromkeys(r % 360 for r in settings.rotations):
        if rotation == 0:
            continue
        lines = _kept(engine.read(_rotate(image, rotation)), settings.min_confidence, rotation)
        score = _score(lines)
        # A rotation must win by more than noise: "8GB" read at 0.9997 upright and 0.9999 upside
        # down (the engine flips lines itself) is an upright read.
        if score > best_score + ROTATION_MARGIN:
            best, best_score = lines, score
    return _reading_order(best)


def ocr_images(engine: OcrEngine, images: Sequence[Image.Image], settings: OcrSettings) -> list[list[OcrLine]]:
    return [ocr_image(engine, image, settings) for image in images]


def _prepare(image: Image.Image, max_side: int) -> Image.Image:
    """Any PIL mode -> RGB, longer side <= max_side. Never modifies the caller's image."""
    if image.mode in ("I", "F") or image.mode.startswith("I;"):
        image = _to_8bit_grey(image)  # 16-bit / float: PIL's convert clips at 255, i.e. to white
    try:
        image = to_rgb(image)
    except (ValueError, OSError):  # modes PIL cannot convert to RGB (HSV, ...)
        image = to_rgb(_to_8bit_grey(image))
    width, height = image.size
    if max(width, height) > max_side:
        scale = max_side / max(width, height)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    return image


def _to_8bit_grey(image: Image.Image) -> Image.Image:
    if image.mode == "HSV":
        return image.getchannel("V")
    arr = np.asarray(image, dtype=np.float64)
    if arr.ndim == 3:
        arr = arr.mean(axis=2)
    lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
    scaled = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
    return Image.fromarray(scaled.astype(np.uint8))  # 2-D uint8 -> mode L


def _rotate(image: Image.Image, rotation: int) -> Image.Image:
    if rotation in _TRANSPOSE:
        return image.transpose(_TRANSPOSE[rotation])
    return image.rotate(rotation, expand=True, fillcolor=(255, 255, 255))


def _kept(lines: list[OcrLine], min_confidence: float, rotation: int) -> list[OcrLine]:
    return [replace(line, rotation=rotation) for line in lines if line.confidence >= min_confidence]


def _alnum(lines: Sequence[OcrLine]) -> int:
    return sum(ch.isalnum() for line in lines for ch in line.text)


def _score(lines: Sequence[OcrLine]) -> float:
    return sum(line.confidence * sum(ch.isalnum() for ch in line.text) for line in lines)


def _reading_order(lines: list[OcrLine]) -> list[OcrLine]:
    """Top-to-bottom rows (lines whose vertical centres lie within half a line height), each left-to-right."""
    rows: list[tuple[float, float, list[OcrLine]]] = []  # (centre y, height, lines) of each row's first line
    for line in sorted(lines, key=lambda ln: (ln.box[1] + ln.box[3]) / 2):
        centre, height = (line.box[1] + line.box[3]) / 2, line.box[3] - line.box[1]
        if rows and centre - rows[-1][0] <= max(height, rows[-1][1]) / 2:
            rows[-1][2].append(line)
        else:
            rows.append((centre, height, [line]))
    return [line for _, _, row in rows for line in sorted(row, key=lambda ln: ln.box[0])]
