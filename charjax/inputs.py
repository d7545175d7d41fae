"""What counts as an image for `Recognizer.predict`/`recognize`, `charjax predict`, `serve`
and `eval`, and when the answer to one is only a guess. One set of rules for all of them.

Accepted: a file path, a Pillow image, or a numpy (or JAX) array [H, W] or [H, W, C] with C
in 1-4 (gray, gray+alpha, RGB, RGBA), or a list or a batch [N, H, W(, C)] of those. An
array's dtype fixes its range, with no guessing and no silent rescaling:

* integers (uint8, int64, ...): 0-255;
* floats: 0-1;
* bool: False is 0, True is 1.

A value outside its dtype's range is a DataError naming the range (a 16-bit image must be
scaled to 0-255 by its owner, who knows its white level). Anything else (bytes, None, a
nested Python list, a string array) is a TypeError saying what to pass.

An answered image gets a warning when it is blank (no contrast), a speck, or noise. Noise is
judged by the one property handwriting always has and random pixels never do: neighbouring
pixels agree. At most 128 pixels on a side, the ink's correlation with its neighbour in the
best of four directions (across, down, both diagonals) is 0.3 or more for every character
the synthetic generator draws and every pen-drawn test glyph (a 1-pixel pen on a 60-pixel
canvas included), and at most 0.15 for uniform, Gaussian, salt-and-pepper and JPEG-compressed
noise of any size (tests/test_recognizer.py checks both sides on generated images).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any

import numpy as np
from PIL import Image

from charjax import imageio
from charjax.errors import DataError

ACCEPTED = ("a file path, a PIL image, or a numpy array [H, W] or [H, W, 1|2|3|4] "
            "(integers 0-255, floats 0-1, or bool), or a list of them")
NOISE_CORRELATION = 0.2  # below this neighbour correlation, an image is noise
NOISE_SIDE = 128  # the correlation is measured at most this many pixels on a side
NOISE_WARNING = ("looks like noise, not a character (neighbouring pixels do not agree): "
                 "the answer is a guess")


def type_problem(item: Any) -> str | None:
    """Why `item` is not one image the API takes (a sentence with what to pass), or None."""
    if isinstance(item, str | os.PathLike | Image.Image | np.ndarray) or _is_jax_array(item):
        return None
    if isinstance(item, bytes | bytearray | memoryview):
        return (f"got {type(item).__name__}: pass a path, an array or a PIL image (for a file's "
                "contents, PIL.Image.open(io.BytesIO(data)))")
    if item is None:
        return f"got None: pass {ACCEPTED}"
    if isinstance(item, list | tuple):
        return ("got a nested list: pass each image as a numpy array "
                "(np.asarray(rows, np.uint8) for 0-255 values), a path or a PIL image")
    return f"got {type(item).__name__}: pass {ACCEPTED}"


def as_items(images: Any) -> list[Any]:
    """One image or many -> a list of single images; a TypeError names what is wrong.

    A 2-D array, or a 3-D one whose last axis is 1-4 long, is one image; a 3-D or 4-D array
    otherwise is a batch.
    """
    if isinstance(images, str | os.PathLike | Image.Image):
        return [images]
    if isinstance(images, np.ndarray) or _is_jax_array(images):
        arr = np.asarray(images)
        if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] <= 4):
            return [arr]
        if arr.ndim in (3, 4):
            return list(arr)
        raise DataError(f"an image array is [H, W], [H, W, C] or a batch [N, H, W(, C)], got "
                        f"shape {tuple(arr.shape)}")
    if isinstance(images, list | tuple) or (
            isinstance(images, Iterable) and not isinstance(images, bytes | bytearray | dict)):
        items = list(images)
        for index, item in enumerate(items):
            problem = type_problem(item)
            if problem:
                raise TypeError(f"image {index}: {problem}")
        return items
    raise TypeError(type_problem(images) or f"got {type(images).__name__}: pass {ACCEPTED}")


def check_array(array: Any) -> np.ndarray:
    """The array as numpy, after the shape, dtype and range rules (see the module docstring)."""
    arr = np.asarray(array)
    if arr.dtype == object or arr.dtype.kind in "USVMmc":
        raise TypeError(f"an image array must hold numbers, got dtype {arr.dtype}; pass "
                        f"{ACCEPTED}")
    if arr.ndim == 3 and arr.shape[-1] not in (1, 2, 3, 4) or arr.ndim not in (2, 3):
        raise DataError(f"an image array is [H, W] or [H, W, 1|2|3|4], got shape "
                        f"{tuple(arr.shape)}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise DataError(f"image has no pixels (shape {tuple(arr.shape)})")
    if arr.dtype == bool:
        return arr
    if arr.dtype.kind in "iu":
        low, high = int(arr.min()), int(arr.max())
        if low < 0 or high > 255:
            raise DataError(f"integer pixels must be in 0..255, got {low}..{high}; scale the "
                            "image to 0-255 (or pass floats in 0-1)")
        return arr
    if not np.isfinite(arr).all():
        raise DataError("image array holds NaN or infinite values; pass finite floats in 0-1")
    low, high = float(arr.min()), float(arr.max())
    if low < 0.0 or high > 1.0:
        raise DataError(f"float pixels must be in 0..1, got {low:g}..{high:g}; divide 0-255 "
                        "values by 255 (or pass them as uint8)")
    return arr


def _is_jax_array(item: Any) -> bool:
    jax = sys.modules.get("jax")  # never imported here just to answer no
    return jax is not None and isinstance(item, jax.Array)


def neighbour_correlation(ink: np.ndarray) -> float:
    """The largest correlation of a 2-D image with itself shifted by one pixel, across, down
    or diagonally: near 1 for strokes, near 0 for independent pixels (and 0 when flat)."""
    ink = np.asarray(ink, np.float64)
    best = 0.0
    for a, b in ((ink[:, :-1], ink[:, 1:]), (ink[:-1], ink[1:]),
                 (ink[:-1, :-1], ink[1:, 1:]), (ink[:-1, 1:], ink[1:, :-1])):
        if a.size == 0:
            continue
        a, b = a - a.mean(), b - b.mean()
        scale = np.sqrt((a * a).sum() * (b * b).sum())
        if scale > 0:
            best = max(best, float((a * b).sum() / scale))
    return best


def batch_neighbour_correlation(images: np.ndarray) -> np.ndarray:
    """`neighbour_correlation` of each image of a batch [N, H, W(, 1)], vectorised (eval)."""
    x = np.asarray(images, np.float32).reshape(images.shape[0], images.shape[1], -1)
    best = np.zeros(len(x), np.float32)
    for a, b in ((x[:, :, :-1], x[:, :, 1:]), (x[:, :-1], x[:, 1:]),
                 (x[:, :-1, :-1], x[:, 1:, 1:]), (x[:, :-1, 1:], x[:, 1:, :-1])):
        a = a - a.mean(axis=(1, 2), keepdims=True)
        b = b - b.mean(axis=(1, 2), keepdims=True)
        scale = np.sqrt((a * a).sum(axis=(1, 2)) * (b * b).sum(axis=(1, 2)))
        r = np.where(scale > 0, (a * b).sum(axis=(1, 2)) / np.maximum(scale, 1e-12), 0.0)
        best = np.maximum(best, r)
    return best


def is_noise(image: Image.Image | np.ndarray) -> bool:
    """True when `image` (a Pillow image or a checked array) looks like noise: its ink,
    at most NOISE_SIDE pixels on a side, has a neighbour correlation below NOISE_CORRELATION."""
    from charjax import framing

    ink, contrast = framing.ink_image(_small(image))
    return contrast > 0 and neighbour_correlation(ink) < NOISE_CORRELATION


def _small(image: Image.Image | np.ndarray) -> Image.Image | np.ndarray:
    """`image` box-reduced to at most NOISE_SIDE pixels on a side (cheap: it is only measured)."""
    if isinstance(image, Image.Image):
        try:
            return imageio.reduced(image, NOISE_SIDE)
        except (ValueError, NotImplementedError, OSError):  # a mode Pillow cannot reduce
            return image  # measured at full size: slower, never wrong
    arr = np.asarray(image)
    factor = -(-max(arr.shape[:2]) // NOISE_SIDE)
    if factor <= 1:
        return arr
    arr = arr.astype(np.float32) if arr.dtype.kind in "biu" else arr
    h, w = (arr.shape[0] // factor) * factor, (arr.shape[1] // factor) * factor
    if h == 0 or w == 0:  # a sliver: thinned, not averaged
        return arr[::factor, ::factor]
    cut = arr[:h, :w]
    return cut.reshape(h // factor, factor, w // factor, factor, *arr.shape[2:]).mean(axis=(1, 3))


def guess_counts(images: np.ndarray, chunk: int = 2048) -> tuple[int, int]:
    """(blank, noise) counts of a batch of framed images [N, 48, 48(, 1)] uint8 (what `eval`
    scores): blank has less contrast than `framing.BLANK_CONTRAST`; noise as `is_noise`."""
    from charjax import framing

    blank = noise = 0
    for start in range(0, len(images), chunk):
        part = np.asarray(images[start:start + chunk])
        flat = part.reshape(len(part), -1)
        spread = (flat.max(axis=1).astype(np.int32) - flat.min(axis=1)) / 255.0
        is_blank = spread < framing.BLANK_CONTRAST
        r = batch_neighbour_correlation(part)
        blank += int(is_blank.sum())
        noise += int((~is_blank & (r < NOISE_CORRELATION)).sum())
    return blank, noise
