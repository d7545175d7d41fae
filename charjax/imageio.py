"""Image files to upright pictures (`open_picture`), within limits, and a picture's gray
levels and alpha (`gray_alpha`, the one place that knows Pillow's modes): decoding only.
`charjax.framing.prepare` makes the model's input of it, for predict, serve and folders."""

from __future__ import annotations

import io
import os
import re
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from charjax.errors import DataError, ImageTooLarge

# Refuse absurd images before decoding them (a 10k x 10k PNG is 100 MP, 100 MB as 'L').
# Checked on the header, so a decompression bomb costs nothing; Pillow's own guard (which
# raises only above twice its limit) is set to the same value as a backstop, and its
# warning below that is silenced: the check here names the image and the limit instead.
MAX_PIXELS = 50_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

_EXIF_FORMATS = frozenset({"JPEG", "MPO", "TIFF", "WEBP", "HEIF", "AVIF"})
_SIXTEEN_BIT = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I"})
_ALPHA = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})


def gray_alpha(image: Image.Image) -> np.ndarray:
    """Any mode -> gray levels [H, W], or [H, W, 2] with alpha where the mode has it.

    Colour becomes luminance (8-bit); 16-bit, 32-bit and float modes keep their own values
    and dtype, for the reader to scale."""
    mode = image.mode
    if mode in _SIXTEEN_BIT or mode == "F":
        return np.asarray(image)
    if mode in _ALPHA or (mode == "P" and "transparency" in image.info):
        return np.asarray(image.convert("RGBA").convert("LA"))
    try:
        return np.asarray(image.convert("L"))
    except ValueError:  # modes without a direct path to 'L' (LAB, HSV, ...)
        return np.asarray(image.convert("RGB").convert("L"))


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
    draft: tuple[str | None, int] = (None, 1024),
    max_pixels: int = MAX_PIXELS,
    formats: tuple[str, ...] | None = None,
    max_side: int | None = None,
) -> Image.Image:
    """Image file bytes -> a loaded, upright Pillow image in its own mode (alpha kept).

    `draft`: the (mode, side) a JPEG is decoded at, no smaller than that side (Pillow's
    draft): `charjax.framing.prepare` crops to the ink before it shrinks, so 1024 keeps
    the detail it needs. Problems are DataErrors naming `name`.

    Memory stays bounded whatever the bytes claim: the pixel count is read from the header
    (after a JPEG's draft scaling) and checked against `max_pixels` before anything is
    decoded (ImageTooLarge), `formats` restricts the decoders tried (Pillow's names), and
    `max_side` box-reduces the decoded image to at most that many pixels on a side.
    """
    if not data:
        raise DataError(f"{name}: empty file (0 bytes)")
    image = _decode(io.BytesIO(data), name, draft, max_pixels, formats)
    try:
        return image if max_side is None else reduced(image, max_side)
    except (ValueError, OSError) as e:  # a mode Pillow can neither reduce nor convert
        raise DataError(f"{name}: cannot be reduced ({image.mode} image: {e}); send an "
                        "RGB or grayscale image") from None


def reduced(image: Image.Image, side: int) -> Image.Image:
    """`image` box-reduced by a whole factor to at most `side` pixels on a side (as it is when
    it fits), its mode kept where Pillow can reduce it (else as RGBA or I, which
    `gray_alpha` reads the same way)."""
    factor = -(-max(image.size) // side)
    if factor <= 1:
        return image
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


def _decode(
    stream: io.BytesIO,
    name: str,
    draft: tuple[str | None, int],
    max_pixels: int,
    formats: tuple[str, ...] | None,
) -> Image.Image:
    try:
        # Not a `with` block: closing the image would free the pixels it returns; the
        # stream is the caller's bytes, nothing to close.
        image = Image.open(stream, formats=formats)
        width, height = image.size
        if width == 0 or height == 0:
            raise DataError(f"{name}: image has no pixels ({width}x{height})")
        image.draft(draft[0], (draft[1], draft[1]))  # JPEG: decoded small
        width, height = image.size  # what will be decoded (a JPEG's draft is smaller)
        if width * height > max_pixels:
            raise ImageTooLarge(f"{name}: {width}x{height} = {width * height:,} pixels is too "
                                f"large for a character image (the limit is {max_pixels:,} "
                                "pixels); crop or shrink it")
        image.load()
        if image.format in _EXIF_FORMATS:
            ImageOps.exif_transpose(image, in_place=True)
        return image
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
