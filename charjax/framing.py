"""Where a character sits in the 48x48 frame, and how any image is brought there.

The geometry constants are shared by the synthetic generator (which draws training glyphs
into this frame) and by `prepare` (which frames a user's drawing, photo or upload the same
way), so training and inference cannot drift apart. Two framings:

* ``fit``: the ink's bounding box is scaled, aspect kept, until its longer side is FIT_BOX
  pixels and centred, as EMNIST frames its characters. Size and position are lost.
* ``line``: the frame is a window on a line of text: capitals are LINE_CAP pixels tall and
  stand on the baseline at row LINE_BASE, so ``o`` is smaller than ``O`` and ``p`` hangs
  below the baseline. Size is meaningful: a user's image is taken whole (padded to a square),
  and a drawing page shows the guides (`line_guides`) to write on.

In both, the polarity (dark ink on light paper is inverted), the background level and the
stroke width (a pen's width and a drawing's size are artefacts of the canvas) are
normalised, so the model sees white strokes of the training set's typical width on black.

`prepare` is the one way to a model input, for predict, serve, reading and folder:PATH images
alike; it is versioned (PREPARATION, stored as config.data.preparation), so an older run's
folder images are still read as it was trained on them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from PIL import Image

from charjax import charset, imageio

SIZE: int = charset.IMAGE_SIZE
FRAMINGS: tuple[str, ...] = ("line", "fit")
# 2: folder images are prepared exactly as a user's image is. 1: as before that (fit kept the
# image's own stroke width; line resized the whole 8-bit image), for runs stored without it.
PREPARATION: int = 2

# fit: the ink box's longer side, pixels; measured on real EMNIST (about 22 of 28 pixels at
# half intensity, centred by the box, not by the centre of mass).
FIT_BOX: float = 22 / 28 * SIZE
# line: cap height and baseline row (pixels of the frame); x-height and descender depth as in
# the single-stroke Hershey fonts (cap line -12, x-height -5, baseline 9, descender 16).
LINE_CAP: float = 22.0
LINE_BASE: float = 31.0
LINE_X_HEIGHT: float = LINE_CAP * 14 / 21
LINE_DESCENT: float = LINE_CAP * 7 / 21
LINE_SHIFT: tuple[float, float] = (1.5, 1.0)  # training jitter of the position (x, y), pixels

# Prepared strokes are redrawn this wide (pixels of the frame) so that `stroke_width` measures
# the median of the synthetic set in that framing (fit glyphs are scaled up to fill the box,
# so their strokes are wider); tests/test_framing.py checks it against the generator.
STROKE_WIDTH: dict[str, float] = {"fit": 5.1, "line": 3.4}
INK_THRESHOLD = 0.5  # of the peak: what counts as ink when cropping and measuring
BLANK_CONTRAST = 0.1  # below this peak-to-background difference an image is blank
MIN_INK_PIXELS = 4  # fewer ink pixels than this is near-blank ...
MIN_INK_EXTENT = 0.02  # ... and so is ink that spans less than this share of the image
_SUPER = 4  # strokes are re-drawn at 4x the frame's resolution, then averaged down
_MAX_SIDE = 1024  # larger images are box-reduced first: cheaper, and no detail is needed
_BLUR_SIGMA = 0.8  # output pixels; the training images' blur is 0.6-1.1


@dataclasses.dataclass(frozen=True)
class Prepared:
    """The model's input for one image, and why it may not be trustworthy."""

    pixels: np.ndarray  # uint8 [SIZE, SIZE, 1], white ink on black
    warning: str | None = None


def check_framing(framing: str) -> str:
    if framing not in FRAMINGS:
        raise ValueError(f"framing must be one of {FRAMINGS}, got {framing!r}")
    return framing


def check_preparation(preparation: int) -> int:
    if preparation not in range(1, PREPARATION + 1) or isinstance(preparation, bool):
        raise ValueError(f"preparation must be 1..{PREPARATION}, got {preparation!r}")
    return preparation


def line_guides() -> dict[str, float]:
    """Rows (pixels of the frame, top = 0) of the lines a line-framed model was trained on."""
    return {
        "cap": LINE_BASE - LINE_CAP,
        "x_height": LINE_BASE - LINE_X_HEIGHT,
        "baseline": LINE_BASE,
        "descender": LINE_BASE + LINE_DESCENT,
    }


def ink_image(image: Image.Image | np.ndarray) -> tuple[np.ndarray, float]:
    """Any picture of a character -> (float32 [H, W] ink in [0, 1] on 0, contrast).

    Colour is turned to luminance; with an alpha channel, alpha is the ink when the colour
    carries nothing (one colour on a transparent background, as drawing apps save it), else
    the image is composed over white. Light-on-dark vs dark-on-light is judged by the border,
    which is background in a character image. The background level becomes 0 and the
    brightest ink 1; `contrast` is their difference before that (near 0: a blank image).
    """
    gray, alpha = _luminance_alpha(image)
    if alpha is not None and alpha.min() < 0.99:
        opaque = alpha > 0.5
        spread = np.ptp(gray[opaque]) if opaque.any() else 0.0
        if spread < 0.1:
            gray = alpha
        else:
            gray = gray * alpha + (1.0 - alpha)
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    if np.median(border) > 0.5:
        gray, border = 1.0 - gray, 1.0 - border
    background = float(np.median(border))
    peak = float(gray.max(initial=0.0))
    contrast = peak - background
    if contrast <= 1e-6:
        return np.zeros_like(gray, np.float32), 0.0
    ink = np.clip((gray - background) / contrast, 0.0, 1.0)
    return ink.astype(np.float32), contrast


def stroke_width(mask: np.ndarray) -> float:
    """Mean stroke width (pixels) of a binary ink mask: twice the area over the outline length.

    The outline is counted as pixel edges between ink and background, scaled by pi/4 for the
    staircase a curve makes; for a stroke of width w and length L, area / (outline / 2) = w.
    """
    mask = np.asarray(mask, bool)
    area = int(mask.sum())
    if area == 0:
        return 0.0
    padded = np.pad(mask, 1)
    edges = np.count_nonzero(padded[1:] != padded[:-1]) + np.count_nonzero(
        padded[:, 1:] != padded[:, :-1]
    )
    return 2.0 * area / (edges * np.pi / 4)


def prepare(
    image: Image.Image | np.ndarray, framing: str = "fit", preparation: int = PREPARATION
) -> Prepared:
    """Any image of one character -> the model's 48x48 input, framed as the model was trained.

    `image`: a Pillow image (any mode) or an array [H, W], [H, W, 1|2|3|4] (uint8 0-255 or
    float 0-1). The warning is set for a blank or near-blank image (the answer is noise).
    `preparation` 1 is how folder images of older runs were read (see PREPARATION).
    """
    check_framing(framing)
    if check_preparation(preparation) == 1 and framing == "line":
        return Prepared(_whole_image_v1(image)[..., None])
    ink, contrast = ink_image(image)
    if ink.shape[0] > _MAX_SIDE or ink.shape[1] > _MAX_SIDE:
        ink = _reduce(ink)
    mask = ink > INK_THRESHOLD
    if contrast < BLANK_CONTRAST or not mask.any():
        return Prepared(np.zeros((SIZE, SIZE, 1), np.uint8), "blank image: no ink to recognise")
    warning = None
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    extent = max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1
    if mask.sum() < MIN_INK_PIXELS or extent < MIN_INK_EXTENT * max(mask.shape):
        warning = "near-blank image: only a speck of ink to recognise"
    return Prepared(_frame(ink, mask, framing, redraw=preparation > 1)[..., None], warning)


def _luminance_alpha(image: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """float32 gray [H, W] and alpha [H, W] (or None) in [0, 1] from a Pillow image or array."""
    arr = imageio.gray_alpha(image) if isinstance(image, Image.Image) else np.asarray(image)
    if arr.dtype == bool:
        arr = arr.astype(np.float32)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (2, 3, 4)):
        raise ValueError(
            f"an image array is [H, W] or [H, W, 1|2|3|4], got shape {tuple(arr.shape)}"
        )
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"image has no pixels ({arr.shape[1]}x{arr.shape[0]})")
    if np.issubdtype(arr.dtype, np.integer):
        top = 65535.0 if arr.dtype.itemsize > 1 and arr.max(initial=0) > 255 else 255.0
        arr = arr.astype(np.float32) / top
    elif np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float32)
        if not np.isfinite(arr).all():
            raise ValueError("image array holds NaN or infinite values")
        if arr.max(initial=0.0) > 1.0:
            arr = arr / 255.0
        arr = np.clip(arr, 0.0, 1.0)
    else:
        raise ValueError(f"image array must be numbers, got dtype {arr.dtype}")
    if arr.ndim == 2:
        return arr, None
    channels = arr.shape[-1]
    alpha = arr[..., -1] if channels in (2, 4) else None
    colour = arr[..., :3] if channels >= 3 else arr[..., :1]
    gray = colour @ np.array([0.299, 0.587, 0.114], np.float32) if channels >= 3 else colour[..., 0]
    return gray.astype(np.float32), alpha


def _whole_image_v1(image: Image.Image | np.ndarray) -> np.ndarray:
    """Preparation 1's line framing: 8-bit gray (alpha over white), inverted when the border
    is light, resized whole into the frame (aspect kept) and centred on black; uint8 [S, S]."""
    gray = imageio.gray_alpha(image if isinstance(image, Image.Image) else Image.fromarray(image))
    if gray.ndim == 3:
        level, alpha = gray[..., 0].astype(np.uint16), gray[..., 1].astype(np.uint16)
        gray = ((level * alpha + 255 * (255 - alpha) + 127) // 255).astype(np.uint8)
    elif gray.dtype != np.uint8:  # 16-bit, 32-bit or float levels
        top = gray.max(initial=0)
        white = 1.0 if gray.dtype.kind == "f" and top <= 1.0 else 65535.0 if top > 255 else 255.0
        gray = np.clip(gray * (255.0 / white) + 0.5, 0, 255).astype(np.uint8)
    if np.median(np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])) > 127.5:
        gray = 255 - gray
    h, w = gray.shape
    if max(h, w) != SIZE:
        new_w, new_h = max(1, round(w * SIZE / max(h, w))), max(1, round(h * SIZE / max(h, w)))
        method = Image.Resampling.LANCZOS if max(h, w) > SIZE else Image.Resampling.BILINEAR
        gray = np.asarray(Image.fromarray(gray).resize((new_w, new_h), method, reducing_gap=3.0))
        h, w = new_h, new_w
    canvas = np.zeros((SIZE, SIZE), np.uint8)
    canvas[(SIZE - h) // 2 : (SIZE - h) // 2 + h, (SIZE - w) // 2 : (SIZE - w) // 2 + w] = gray
    return canvas


def _reduce(ink: np.ndarray) -> np.ndarray:
    factor = int(np.ceil(max(ink.shape) / _MAX_SIDE))
    return np.asarray(Image.fromarray(ink, "F").reduce(factor), np.float32)


def _frame(ink: np.ndarray, mask: np.ndarray, framing: str, redraw: bool = True) -> np.ndarray:
    """uint8 [SIZE, SIZE]: the ink placed per `framing`, strokes redrawn STROKE_WIDTH wide."""
    height, width = ink.shape
    pen = STROKE_WIDTH[framing] if redraw else 0.0
    width_src = stroke_width(mask) if redraw else 0.0
    if framing == "fit":
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        # The box less one stroke width is what the pen's centre spans; scaling that to
        # FIT_BOX less the redrawn width gives a FIT_BOX box whatever pen drew the image.
        span = max(bottom - top, right - left) - width_src
        scale = (FIT_BOX - pen) / max(span, 1.0)
        centre = ((left + right) / 2, (top + bottom) / 2)
    else:
        scale = SIZE / max(height, width)
        centre = (width / 2, height / 2)
    if not redraw:
        out = _resample(ink, centre, scale, SIZE)
        return np.round(np.clip(out / max(float(out.max()), 1e-6), 0, 1) * 255).astype(np.uint8)
    fine = _resample(ink, centre, scale * _SUPER, SIZE * _SUPER)
    fine_mask = fine > INK_THRESHOLD * max(float(fine.max()), 1e-6)
    fine_mask = _set_width(fine_mask, stroke_width(fine_mask), pen * _SUPER)
    out = fine_mask.reshape(SIZE, _SUPER, SIZE, _SUPER).mean(axis=(1, 3))
    out = _blur(out, _BLUR_SIGMA)
    out = out / max(float(out.max()), 1e-6)
    return np.round(out * 255).astype(np.uint8)


def _resample(ink: np.ndarray, centre: tuple[float, float], scale: float, size: int) -> np.ndarray:
    """float [size, size]: the region of `ink` around `centre` (x, y) at `scale`, zero outside.

    Pillow's resize with a source box filters properly when shrinking (no aliasing of thin
    strokes) and places the region to a fraction of a pixel; crop pads outside with zeros.
    """
    half = size / 2 / scale
    x0, y0 = centre[0] - half, centre[1] - half
    left, top = int(np.floor(x0)), int(np.floor(y0))
    right, bottom = int(np.ceil(x0 + 2 * half)), int(np.ceil(y0 + 2 * half))
    region = Image.fromarray(ink, "F").crop((left, top, right, bottom))
    box = (x0 - left, y0 - top, x0 - left + 2 * half, y0 - top + 2 * half)
    method = Image.Resampling.BOX if scale < 1 else Image.Resampling.BILINEAR
    return np.asarray(region.resize((size, size), method, box=box), np.float32)


def _set_width(mask: np.ndarray, width: float, target: float) -> np.ndarray:
    """Grows (or thins) the strokes of a binary mask by a disc so they are `target` wide."""
    radius = (target - width) / 2
    if radius < 0:
        radius = max(radius, -0.35 * width)  # thinning more could erase whole strokes
    if abs(radius) < 0.5:
        return mask
    r = int(np.ceil(abs(radius)))
    dy, dx = np.mgrid[-r : r + 1, -r : r + 1]
    offsets = np.argwhere(dy**2 + dx**2 <= radius**2) - r
    grow = radius > 0
    padded = np.pad(mask, r, constant_values=False)
    h, w = mask.shape
    out = np.zeros_like(mask) if grow else np.ones_like(mask)
    for oy, ox in offsets:
        shifted = padded[r + oy : r + oy + h, r + ox : r + ox + w]
        out = (out | shifted) if grow else (out & shifted)
    return out


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    taps = np.arange(-2, 3)
    kernel = np.exp(-0.5 * (taps / sigma) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(image, 2)
    height, width = image.shape
    pairs = list(zip(kernel, taps, strict=True))
    rows = sum(k * padded[:, 2 + t : 2 + t + width] for k, t in pairs)
    return sum(k * rows[2 + t : 2 + t + height] for k, t in pairs)
