"""Reading image files into the model's convention: 48x48 grayscale, white ink on black.

Shared by `charjax predict` and folder datasets, so a user's image is prepared exactly
the way training images are.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from charjax import charset
from charjax.errors import DataError

# Refuse absurd images before decoding them (a 10k x 10k PNG is 100 MP).
Image.MAX_IMAGE_PIXELS = 50_000_000


def to_grayscale(image: Image.Image) -> np.ndarray:
    """Any mode (RGB, RGBA, palette, 16-bit, ...) -> float [H, W] in [0, 1]; alpha over white."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(image, dtype=np.float64)
        top = 65535.0 if arr.max() > 255 else 255.0
        return np.clip(arr / top, 0, 1)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return np.asarray(image.convert("L"), dtype=np.float64) / 255.0


def ink_on_black(gray: np.ndarray) -> np.ndarray:
    """Inverts dark-on-light images, judged by the border, which is background in a glyph image."""
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    return 1.0 - gray if np.median(border) > 0.5 else gray


def fit_square(gray: np.ndarray, size: int = charset.IMAGE_SIZE) -> np.ndarray:
    """Pads to a square with background (keeping the aspect ratio), resizes to size x size uint8."""
    h, w = gray.shape
    side = max(h, w)
    canvas = np.zeros((side, side), np.float64)
    top, left = (side - h) // 2, (side - w) // 2
    canvas[top : top + h, left : left + w] = gray
    image = Image.fromarray(np.round(canvas * 255).astype(np.uint8))
    if side != size:
        image = image.resize((size, size), Image.LANCZOS if side > size else Image.BILINEAR)
    return np.asarray(image, np.uint8)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Reads one image file as uint8 [48, 48, 1]; any problem is a DataError naming the file."""
    path = os.fspath(path)
    try:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image)
            image.load()
            gray = to_grayscale(image)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, not an image file") from None
    except UnidentifiedImageError:
        raise DataError(f"{path}: not an image Pillow can read (PNG, JPEG, BMP, ...)") from None
    except Image.DecompressionBombError as e:
        raise DataError(f"{path}: image too large to be a character image ({e})") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{path}: unreadable or truncated image ({e})") from None
    if gray.size == 0:
        raise DataError(f"{path}: image has no pixels")
    return fit_square(ink_on_black(gray))[..., None]
