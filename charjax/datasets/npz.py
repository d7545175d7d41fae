"""`npz:PATH` — arrays in the format of shared/data/emnist-byclass (images, labels, classes).

Images may be any square or rectangular size, uint8, white ink on black, with or
without a trailing channel axis; they are resized to 48x48 as training data is.
"""

from __future__ import annotations

import os
import zipfile

import numpy as np
from PIL import Image

from charjax import charset
from charjax.datasets import sources
from charjax.datasets.base import Dataset
from charjax.errors import DataError


def resize_images(images: np.ndarray, size: int = charset.IMAGE_SIZE) -> np.ndarray:
    """uint8 [N, H, W] -> uint8 [N, size, size, 1] by bilinear resampling (a no-op at size)."""
    if images.shape[1:3] == (size, size):
        return images.reshape(images.shape[0], size, size, 1)
    out = np.empty((images.shape[0], size, size), np.uint8)
    for i, img in enumerate(images):
        out[i] = np.asarray(Image.fromarray(img).resize((size, size), Image.BILINEAR))
    return out[..., None]


def _map_labels(labels: np.ndarray, classes: str | None, path: str) -> np.ndarray:
    """Maps the file's class order into charset order, by character when the file names them."""
    if classes is None or classes == charset.CLASSES:
        mapped = labels.astype(np.int64)
    else:
        try:
            table = np.array([charset.char_to_index(c) for c in classes])
        except ValueError as e:
            raise DataError(f"{path}: 'classes' holds a character outside the charset: {e}") from e
        if labels.size and labels.max() >= len(table):
            raise DataError(f"{path}: label {labels.max()} has no entry in 'classes'")
        mapped = table[labels.astype(np.int64)]
    if mapped.size and (mapped.min() < 0 or mapped.max() >= charset.NUM_CLASSES):
        raise DataError(
            f"{path}: labels must be class indices 0..{charset.NUM_CLASSES - 1}, found "
            f"{mapped.min()}..{mapped.max()}"
        )
    return mapped.astype(np.int32)


_ZIP_MAGIC = b"PK\x03\x04"  # np.savez writes a zip archive
_EMPTY_ZIP_MAGIC = b"PK\x05\x06"


def _check_magic(path: str) -> None:
    """Names what the file really is when it is no zip archive (np.load would otherwise
    try to unpickle it and blame allow_pickle)."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror or e})") from None
    if head.startswith((_ZIP_MAGIC, _EMPTY_ZIP_MAGIC)):
        return
    if not head:
        what = "is empty (0 bytes)"
    elif head.startswith(b"\x93NUMPY"):
        what = "is a single-array .npy file, not an .npz archive"
    elif all(32 <= c < 127 or c in b"\t\r\n" for c in head):
        what = ("is a text file (it starts with "
                f"{head.decode('ascii').strip().splitlines()[0][:24]!r}), not an .npz archive")
    else:
        what = "is not an .npz archive (no zip header)"
    raise DataError(f"{path}: {what}; save the arrays with np.savez(path, images=uint8 [N,H,W], "
                    "labels=int [N])")


def load(path: str | os.PathLike) -> Dataset:
    """Reads and validates an npz file; every problem is one DataError naming the file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such file (expected an .npz with 'images' and 'labels')")
    _check_magic(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = {"images", "labels"} - set(data.files)
            if missing:
                raise DataError(
                    f"{path}: missing key(s) {sorted(missing)}; found {sorted(data.files)}. "
                    "Save with np.savez(path, images=uint8 [N,H,W], labels=int [N])"
                )
            images, labels = data["images"], data["labels"]
            classes = str(data["classes"]) if "classes" in data.files else None
            if classes is not None and data["classes"].ndim != 0:
                raise DataError(f"{path}: 'classes' must be one string of characters in label "
                                f"order, got an array of shape {data['classes'].shape}")
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        if isinstance(e, DataError):
            raise
        raise DataError(f"{path}: not a readable .npz file ({e})") from e
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(
            f"{path}: 'images' must be uint8 [N, H, W] (or [N, H, W, 1]), got "
            f"{images.dtype} {images.shape}"
        )
    if labels.ndim != 1 or labels.shape[0] != images.shape[0] or labels.dtype.kind not in "iu":
        raise DataError(
            f"{path}: 'labels' must be integers [N] matching {images.shape[0]} images, got "
            f"{labels.dtype} {labels.shape}"
        )
    if images.shape[0] == 0 or 0 in images.shape[1:]:
        raise DataError(f"{path}: holds no images ('images' has shape {images.shape})")
    return Dataset(resize_images(images), _map_labels(labels, classes, path))


sources.register(sources.Source(
    "npz", "PATH", "arrays: images uint8 [N,H,W], labels [N], optional classes; resized to 48x48",
    lambda path, _: (load(path), [])))
