"""Reading image files into the model's convention: 48x48 grayscale, white ink on black.

Shared by `charjax predict` and folder datasets, so a user's image is prepared exactly
the way training images are. Folder loading decodes 100k files at a time, so the path
is kept in uint8 and in Pillow's C code: no float64 arrays, no per-pixel Python, and the
resize runs on the small grayscale image before it is padded to a square.
"""

from __future__ import annotations

import io
import os
import re
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from charjax import charset
from charjax.errors import DataError, ImageTooLarge

# Refuse absurd images before decoding them (a 10k x 10k PNG is 100 MP, 100 MB as 'L').
# Checked on the header, so a decompression bomb costs nothing; Pillow's own guard (which
# raises only above twice its limit) is set to the same value as a backstop, and its
# warning below that is silenced: the check here names the image and the limit instead.
MAX_PIXELS = 50_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
# Bump when the pixels this module produces change, so decoded-folder caches are rebuilt.
DECODER_VERSION = 2

_EXIF_FORMATS = frozenset({"JPEG", "MPO", "TIFF", "WEBP", "HEIF", "AVIF"})
_SIXTEEN_BIT = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I"})
_ALPHA = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})


def to_grayscale(image: Image.Image) -> Image.Image:
    """Any mode (RGB, RGBA, palette, 1-bit, 16-bit, float, CMYK) -> mode 'L'; alpha over white."""
    mode = image.mode
    if mode == "L":
        return image
    if mode in _SIXTEEN_BIT or mode == "F":
        arr = np.asarray(image)
        top = arr.max(initial=0)
        scale = 255.0 / (1.0 if mode == "F" and top <= 1.0 else 65535.0 if top > 255 else 255.0)
        return Image.fromarray(np.clip(arr * scale + 0.5, 0, 255).astype(np.uint8))
    if mode in _ALPHA or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA") if mode.startswith("P") else image
        la = np.asarray(rgba.convert("LA"), np.uint16)
        gray, alpha = la[..., 0], la[..., 1]
        over_white = (gray * alpha + 255 * (255 - alpha) + 127) // 255
        return Image.fromarray(over_white.astype(np.uint8))
    try:
        return image.convert("L")
    except ValueError:  # modes without a direct path to 'L' (LAB, HSV, ...)
        return image.convert("RGB").convert("L")


def ink_on_black(gray: np.ndarray) -> np.ndarray:
    """Inverts dark-on-light images, judged by the border, which is background in a glyph image."""
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    return 255 - gray if np.median(border) > 127.5 else gray


def fit_square(gray: np.ndarray, size: int = charset.IMAGE_SIZE) -> np.ndarray:
    """uint8 [H, W] -> uint8 [size, size]: scaled to fit keeping its aspect, centred on black."""
    h, w = gray.shape
    side = max(h, w)
    if side != size:
        new_w, new_h = max(1, round(w * size / side)), max(1, round(h * size / side))
        method = Image.Resampling.LANCZOS if side > size else Image.Resampling.BILINEAR
        gray = np.asarray(
            Image.fromarray(gray).resize((new_w, new_h), method, reducing_gap=3.0)
        )
        h, w = new_h, new_w
    if (h, w) == (size, size):
        return np.ascontiguousarray(gray)
    canvas = np.zeros((size, size), np.uint8)
    top, left = (size - h) // 2, (size - w) // 2
    canvas[top : top + h, left : left + w] = gray
    return canvas


def decode_image(data: bytes, name: str, framing: str = "line") -> np.ndarray:
    """Image file bytes -> uint8 [48, 48, 1]; any problem is a DataError naming `name`.

    "line" fits the whole image into the frame (its size stays meaningful); "fit" crops it to
    the ink and scales that box as `charjax.framing` frames fit-framed data.
    """
    if not data:
        raise DataError(f"{name}: empty file (0 bytes)")
    if framing == "fit":
        from charjax import framing as framing_lib

        return framing_lib.prepare(open_picture(data, name), "fit", redraw_strokes=False).pixels
    return _decode(io.BytesIO(data), name)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Reads one image file as uint8 [48, 48, 1]; any problem is a DataError naming the file."""
    return decode_image(read_bytes(path), os.fspath(path))


def read_bytes(path: str | os.PathLike) -> bytes:
    """A file's bytes; a missing file, a folder or an unreadable one is a DataError naming it."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, not an image file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None


def open_picture(
    data: bytes,
    name: str,
    draft_size: int = 1024,
    max_pixels: int = MAX_PIXELS,
    formats: tuple[str, ...] | None = None,
    max_side: int | None = None,
) -> Image.Image:
    """Image file bytes -> a loaded, upright Pillow image in its own mode (alpha kept).

    For `charjax.framing.prepare`, which crops to the ink before it shrinks, so large JPEGs
    are decoded at no less than `draft_size` pixels. Problems are DataErrors naming `name`.

    Memory stays bounded whatever the bytes claim: the pixel count is read from the header
    (after a JPEG's draft scaling) and checked against `max_pixels` before anything is
    decoded (ImageTooLarge), `formats` restricts the decoders tried (Pillow's names), and
    `max_side` box-reduces the decoded image to at most that many pixels on a side.
    """
    if not data:
        raise DataError(f"{name}: empty file (0 bytes)")
    image = _decode(io.BytesIO(data), name, draft_size=draft_size, keep_mode=True,
                    max_pixels=max_pixels, formats=formats)
    if max_side is not None and max(image.size) > max_side:
        try:
            image = _reduce_to(image, max_side)
        except (ValueError, OSError) as e:  # a mode Pillow can neither reduce nor convert
            raise DataError(f"{name}: cannot be reduced ({image.mode} image: {e}); send an "
                            "RGB or grayscale image") from None
    return image


def _reduce_to(image: Image.Image, side: int) -> Image.Image:
    """`image` box-reduced by a whole factor to at most `side` pixels on a side, its mode kept
    where Pillow can reduce it (else as RGBA or I, which `framing` reads the same way)."""
    factor = -(-max(image.size) // side)
    if image.mode == "1":
        image = image.convert("L")
    elif image.mode in ("P", "PA"):
        image = image.convert("RGBA")
    elif image.mode in _SIXTEEN_BIT and image.mode != "I":
        image = image.convert("I")
    try:
        return image.reduce(factor)
    except (ValueError, NotImplementedError):  # a mode reduce() does not take
        return image.convert("RGBA").reduce(factor)


def _too_large(name: str, width: int, height: int, limit: int) -> ImageTooLarge:
    return ImageTooLarge(
        f"{name}: {width}x{height} = {width * height:,} pixels is too large for a character "
        f"image (the limit is {limit:,} pixels); crop or shrink it")


def _decode(
    stream: io.BytesIO,
    name: str,
    draft_size: int = charset.IMAGE_SIZE,
    keep_mode: bool = False,
    max_pixels: int = MAX_PIXELS,
    formats: tuple[str, ...] | None = None,
) -> np.ndarray | Image.Image:
    try:
        # Not a `with` block: closing the image would free the pixels it returns; the
        # stream is the caller's bytes, nothing to close.
        image = Image.open(stream, formats=formats)
        width, height = image.size
        if width == 0 or height == 0:
            raise DataError(f"{name}: image has no pixels ({width}x{height})")
        image.draft(None if keep_mode else "L", (draft_size, draft_size))  # JPEG: small
        width, height = image.size  # what will be decoded (a JPEG's draft is smaller)
        if width * height > max_pixels:
            raise _too_large(name, width, height, max_pixels)
        image.load()
        if image.format in _EXIF_FORMATS:
            ImageOps.exif_transpose(image, in_place=True)
        if keep_mode:
            return image
        gray = np.asarray(to_grayscale(image))
    except DataError:
        raise
    except UnidentifiedImageError:
        raise DataError(
            f"{name}: not a readable image (no format Pillow knows: not an image, a corrupt "
            "header, or an unsupported format); replace it with a PNG"
        ) from None
    except Image.DecompressionBombError as e:  # Pillow's own guard, above 2 x MAX_PIXELS
        size = re.search(r"\((\d+) pixels\)", str(e))
        what = f"{int(size.group(1)):,} pixels" if size else "its size"
        raise ImageTooLarge(f"{name}: {what} is too large for a character image (the limit "
                            f"is {max_pixels:,} pixels); crop or shrink it") from None
    except MemoryError:
        raise
    except Exception as e:  # noqa: BLE001 - Pillow plugins raise many types on corrupt files
        raise DataError(
            f"{name}: unreadable or truncated image ({type(e).__name__}: {e})"
        ) from None
    return fit_square(ink_on_black(gray))[..., None]
