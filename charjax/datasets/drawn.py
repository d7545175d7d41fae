"""Characters drawn with a pen, programmatically: the single-stroke Hershey letters as a person
would draw them on a canvas, at any size and pen width. Image preparation, the drawing page and
the server are tested and benchmarked on them.
"""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image, ImageDraw

# 30 characters across digits, capitals and lower case; none whose identity depends on size.
CHARACTERS = "0234567ABCDEFGHKMNRSTWXYZabdefhkmnrtw"[:30]
SIZES = (1 / 3, 1 / 2, 9 / 10)  # longer side of the drawing, as a fraction of the canvas
PENS = (6.0, 14.0)  # pen widths on a 280-pixel canvas


@functools.cache
def _glyphs(face: str) -> dict:
    from HersheyFonts import HersheyFonts

    fonts = HersheyFonts()
    fonts.load_default_font(face)
    return fonts.all_glyphs


def strokes(char: str, face: str = "futural") -> list[np.ndarray]:
    """The pen paths of `char` in Hershey units (y down), one [K, 2] array per stroke."""
    glyph = _glyphs(face)[char]
    return [np.asarray(s, np.float64) for s in glyph.strokes if len(s) > 0]


def canvas_strokes(char: str, canvas: int, size: float) -> list[np.ndarray]:
    """Pen paths in canvas pixels: the drawing's longer side is `size` of the canvas, centred."""
    paths = strokes(char)
    points = np.concatenate(paths)
    lo, hi = points.min(0), points.max(0)
    scale = size * canvas / max(float((hi - lo).max()), 1e-6)
    centre = (lo + hi) / 2
    return [(p - centre) * scale + canvas / 2 for p in paths]


def guided_strokes(char: str, cap_y: float, base_y: float, centre_x: float) -> list[np.ndarray]:
    """Pen paths written on guide lines: the cap line at `cap_y`, the baseline at `base_y`."""
    scale = (base_y - cap_y) / 21.0  # Hershey units: cap line -12, baseline 9
    paths = strokes(char)
    middle = (np.concatenate(paths)[:, 0].min() + np.concatenate(paths)[:, 0].max()) / 2
    return [np.stack([(p[:, 0] - middle) * scale + centre_x, (p[:, 1] - 9.0) * scale + base_y],
                     axis=1) for p in paths]


def render(char: str, canvas: int = 280, size: float = 0.5, pen: float = 8.0) -> np.ndarray:
    """uint8 [canvas, canvas]: `char` drawn in black with a round pen on white."""
    image = Image.new("L", (canvas, canvas), 255)
    draw = ImageDraw.Draw(image)
    radius = pen / 2
    for path in canvas_strokes(char, canvas, size):
        points = [tuple(p) for p in path]
        if len(points) > 1:
            draw.line(points, fill=0, width=max(1, round(pen)), joint="curve")
        for x, y in (points[0], points[-1]):  # round caps, as a canvas pen draws them
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=0)
    return np.asarray(image)
