"""Labelled image grids as PNG: eyeball a dataset, its augmentation, or a model's mistakes.

Pillow draws (no display needed, so it works on a headless training box); the captions use
the DejaVu Sans Mono font that matplotlib ships, where I, l and 1 (and O and 0) differ —
in Pillow's default font I and l are the same bar, so "l→I" read "l→l".
"""

from __future__ import annotations

import functools
import math
import os

import jax
import ml_collections
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from charjax import augment, charset
from charjax.datasets.base import Dataset

SCALE = 2  # thumbnails are enlarged (nearest neighbour) so 48 px glyphs stay readable
PAD = 2  # pixels of grid background around each thumbnail
LABEL_HEIGHT = 16  # pixels under each thumbnail for its label
FONT_SIZE = 12
_BACKGROUND = (48, 48, 48)
_TEXT = (235, 235, 235)
_WRONG = (255, 70, 70)
_ARROW = object()  # marker: draw an arrow here (the default font has no "→" glyph)


def cell_size(height: int, width: int) -> tuple[int, int]:
    """(width, height) in pixels of one grid cell for thumbnails of `height` x `width`."""
    return width * SCALE + 2 * PAD, height * SCALE + LABEL_HEIGHT + 2 * PAD


def write_grid(
    images: np.ndarray,
    labels: np.ndarray,
    path: str,
    classes: str = charset.CLASSES,
    columns: int = 16,
    predictions: np.ndarray | None = None,
    confidences: np.ndarray | None = None,
) -> None:
    """Write images [N, H, W, 1] (uint8, or float in [0, 1]) as a labelled PNG grid.

    Each cell shows the thumbnail and its character; with `predictions` it shows
    "true→pred", red where they differ, followed by the prediction's probability when
    `confidences` [N] is given. The PNG is ``min(columns, N)`` cells wide and
    ``ceil(N / columns)`` cells high, each cell `cell_size(H, W)`.
    """
    thumbs = _to_uint8(images)
    labels = _check_labels(np.asarray(labels), len(thumbs), len(classes), "labels")
    if predictions is not None:
        predictions = _check_labels(
            np.asarray(predictions), len(thumbs), len(classes), "predictions"
        )
    if columns < 1:
        raise ValueError(f"columns must be >= 1, got {columns}")
    n, h, w = thumbs.shape
    cols = min(columns, n)
    cell_w, cell_h = cell_size(h, w)
    grid = Image.new("RGB", (cols * cell_w, math.ceil(n / cols) * cell_h), _BACKGROUND)
    draw = ImageDraw.Draw(grid)
    font = caption_font()
    for i in range(n):
        x, y = (i % cols) * cell_w, (i // cols) * cell_h
        size = (w * SCALE, h * SCALE)
        thumb = Image.fromarray(thumbs[i]).resize(size, Image.Resampling.NEAREST)
        grid.paste(thumb.convert("RGB"), (x + PAD, y + PAD))
        text_y = y + PAD + h * SCALE + 1
        true = classes[labels[i]]
        if predictions is None:
            _centred_text(draw, font, [true], x, cell_w, text_y, _TEXT)
        else:
            pred = classes[predictions[i]]
            colour = _TEXT if pred == true else _WRONG
            parts = [true, _ARROW, pred]
            if confidences is not None:
                parts.append(f" {100 * float(confidences[i]):.0f}%")
            _centred_text(draw, font, parts, x, cell_w, text_y, colour)
    grid.save(path, format="PNG")


@functools.lru_cache(maxsize=1)
def caption_font() -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans Mono from matplotlib's data, else Pillow's default font."""
    try:
        import matplotlib

        path = os.path.join(matplotlib.get_data_path(), "fonts", "ttf", "DejaVuSansMono.ttf")
        return ImageFont.truetype(path, FONT_SIZE)
    except (ImportError, OSError):
        return ImageFont.load_default(size=FONT_SIZE)


def preview_dataset(
    dataset: Dataset,
    path: str,
    n: int = 64,
    augment_cfg: ml_collections.ConfigDict | None = None,
    seed: int = 0,
) -> None:
    """Grid of the first `n` images of `dataset`, distorted by `augment_cfg` when given.

    Passing a config means "show me the augmentation", so it is applied even when the
    config's `enabled` is False (as in configs/default.py); `seed` picks the draw.
    """
    if len(dataset) == 0:
        raise ValueError("the dataset is empty; there is nothing to preview")
    images = dataset.images[:n]
    if augment_cfg is not None:
        cfg = ml_collections.ConfigDict(augment_cfg)  # a copy; also takes a FrozenConfigDict
        cfg.enabled = True
        run = jax.jit(lambda key, x: augment.augment_batch(key, x, cfg))
        warped = run(jax.random.key(seed), images.astype(np.float32) / 255.0)
        images = np.asarray(warped)
    write_grid(images, dataset.labels[:n], path, classes=dataset.classes)


def _centred_text(
    draw: ImageDraw.ImageDraw,
    font,
    parts: list,
    x: int,
    cell_w: int,
    y: int,
    colour: tuple[int, int, int],
) -> None:
    """Draw text pieces (and arrows) as one line centred in the cell."""
    arrow_w = FONT_SIZE
    widths = [arrow_w if p is _ARROW else draw.textlength(p, font=font) for p in parts]
    gap = 2 if len(parts) > 1 else 0
    cursor = x + (cell_w - sum(widths) - gap * (len(parts) - 1)) / 2
    for part, width in zip(parts, widths, strict=True):
        if part is _ARROW:
            mid = y + FONT_SIZE // 2 + 1
            draw.line([(cursor, mid), (cursor + width - 1, mid)], fill=colour, width=1)
            tip = cursor + width - 1
            draw.polygon([(tip, mid), (tip - 4, mid - 3), (tip - 4, mid + 3)], fill=colour)
        else:
            draw.text((cursor, y), part, font=font, fill=colour)
        cursor += width + gap


def _to_uint8(images: np.ndarray) -> np.ndarray:
    """[N, H, W] uint8 from uint8 or float-in-[0, 1] images with or without the channel axis."""
    images = np.asarray(images)
    if images.ndim == 4:
        if images.shape[-1] != 1:
            raise ValueError(f"expected one channel [N, H, W, 1], got shape {images.shape}")
        images = images[..., 0]
    if images.ndim != 3 or len(images) == 0:
        raise ValueError(f"expected a non-empty batch [N, H, W, 1], got shape {images.shape}")
    if images.dtype == np.uint8:
        return images
    if not np.issubdtype(images.dtype, np.floating):
        raise TypeError(f"images must be uint8 or float in [0, 1], got {images.dtype}")
    return np.round(np.clip(images, 0.0, 1.0) * 255.0).astype(np.uint8)


def _check_labels(values: np.ndarray, n: int, num_classes: int, name: str) -> np.ndarray:
    """Class indices [n] that index `classes`; a clear error rather than an IndexError."""
    if values.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) to match the images, got {values.shape}")
    if n and (values.min() < 0 or values.max() >= num_classes):
        raise ValueError(
            f"{name} must lie in 0..{num_classes - 1}, got {values.min()}..{values.max()}"
        )
    return values.astype(np.int64)
