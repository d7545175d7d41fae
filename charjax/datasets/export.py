"""Write a Dataset as a folder in the tutorial's layout: one PNG per image, label in the name.

Names are ``label_<code>_<n>.png`` with the character's three-digit decimal code
(``label_097_000001.png`` is an ``a``), so ``a`` and ``A`` never collide on a
case-insensitive file system, and `folder:OUT` with the default pattern reads the folder
back to the same images and labels, in label order (names sort by code, which is charset
order, then by n, which keeps the original order within a class). Images are 48x48
8-bit grayscale PNGs, lossless. One caveat of the round trip: the folder reader flips
dark-on-light images to white-on-black judging by the border, so an exported image whose
border is mostly ink would come back inverted.
"""

from __future__ import annotations

import logging
import os
import time

from PIL import Image

from charjax.datasets.base import Dataset
from charjax.datasets.folder import label_token
from charjax.errors import DataError

PROGRESS_EVERY_S = 5.0

_log = logging.getLogger("charjax.datasets.export")


def file_name(char: str, index: int, width: int = 6) -> str:
    """The exported name of image `index` of class `char`."""
    return f"label_{label_token(char)}_{index:0{width}d}.png"


def export(dataset: Dataset, out_dir: str | os.PathLike) -> int:
    """Writes every image of `dataset` to `out_dir` (new or empty); returns how many."""
    out_dir = os.path.expanduser(os.fspath(out_dir))
    if os.path.isfile(out_dir):
        raise DataError(f"{out_dir}: is a file; --out wants a new or empty folder")
    if os.path.isdir(out_dir) and os.listdir(out_dir):
        raise DataError(f"{out_dir}: is not empty; export into a new or empty folder so the "
                        "result holds this dataset only")
    os.makedirs(out_dir, exist_ok=True)
    n = len(dataset)
    width = max(6, len(str(n - 1)))
    start = last = time.perf_counter()
    for i, (image, label) in enumerate(zip(dataset.images, dataset.labels, strict=True)):
        name = file_name(dataset.classes[label], i, width)
        Image.fromarray(image[..., 0]).save(os.path.join(out_dir, name), format="PNG")
        now = time.perf_counter()
        if now - last >= PROGRESS_EVERY_S:
            _log.info("exported %d/%d images (%.0f images/s)", i + 1, n, (i + 1) / (now - start))
            last = now
    _log.info("exported %d images to %s in %.1f s", n, out_dir, time.perf_counter() - start)
    return n
