"""TensorBoard's embedding projector: penultimate-layer features, a sprite and metadata.

Written here rather than with `SummaryWriter.add_embedding`, for four reasons found in
tensorboardX 2.6.5: it appends to `projector_config.pbtxt` on every call (a resumed or
rerun training listed the same embedding twice), it print()s a warning when the folder
exists, it silently washes out uint8 thumbnails, and it writes the tensors one Python
float at a time. The layout on disk is the same one it writes, which TensorBoard reads:

    LOGDIR/projector_config.pbtxt
    LOGDIR/<step, 5 digits>/<tag>/{tensors.tsv, metadata.tsv, sprite.png}
"""

from __future__ import annotations

import glob
import logging
import math
import os
import shutil
from typing import Any

import numpy as np
from PIL import Image

from charjax import charset, files, inference

log = logging.getLogger(__name__)

MAX_SPRITE_PX = 8192  # TensorBoard's projector refuses larger sprites
CONFIG_NAME = "projector_config.pbtxt"
METADATA_HEADER = ("true", "predicted", "correct", "kind")


def max_thumbnails(size: int) -> int:
    """How many size x size thumbnails fit a square sprite of at most MAX_SPRITE_PX a side."""
    return (MAX_SPRITE_PX // size) ** 2


def sprite(images: np.ndarray) -> np.ndarray:
    """Square grayscale uint8 sprite of uint8 images [N, S, S, 1], row-major, padded below.

    The projector cuts the sprite into S-pixel cells from the top left, so the grid must
    be square (ceil(sqrt(N)) cells a side) and any padding goes at the end.
    """
    images = np.asarray(images)
    n, h, w = images.shape[:3]
    if h != w:
        raise ValueError(f"projector thumbnails must be square, got {h}x{w}")
    if n > max_thumbnails(h):
        raise ValueError(
            f"{n} thumbnails of {h} px make a sprite over {MAX_SPRITE_PX} px a side; "
            f"use at most {max_thumbnails(h)} (lower config.report.projector_max)"
        )
    side = max(1, math.ceil(math.sqrt(n)))
    cells = np.zeros((side * side, h, w), np.uint8)
    cells[:n] = images.reshape(n, h, w)
    return cells.reshape(side, side, h, w).transpose(0, 2, 1, 3).reshape(side * h, side * w)


def _kind(index: int) -> str:
    """digit / upper / lower: three colours the projector can tell apart at a glance."""
    char = charset.index_to_char(int(index))
    return "digit" if char.isdigit() else "upper" if char.isupper() else "lower"


def metadata_rows(labels: np.ndarray, predictions: np.ndarray) -> list[list[str]]:
    """One [true, predicted, correct, kind] row per image, characters not indices."""
    return [
        [charset.index_to_char(int(t)), charset.index_to_char(int(p)),
         "yes" if t == p else "no", _kind(t)]
        for t, p in zip(labels, predictions, strict=True)
    ]


def write(
    logdir: str,
    features: np.ndarray,
    images: np.ndarray,
    labels: np.ndarray,
    predictions: np.ndarray,
    step: int,
    tag: str = "validation",
) -> str:
    """Writes one embedding (replacing an earlier one at the same step and tag).

    Returns its folder. `images` are the uint8 [N, S, S, 1] thumbnails of the rows of
    `features` [N, D]; `labels` and `predictions` are class indices [N].
    """
    features = np.asarray(features, np.float32)
    n = features.shape[0]
    if features.ndim != 2 or not (len(images) == len(labels) == len(predictions) == n):
        raise ValueError(
            f"projector inputs disagree: features {features.shape}, {len(images)} images, "
            f"{len(labels)} labels, {len(predictions)} predictions"
        )
    if "/" in tag or not tag:
        raise ValueError(f"projector tag must be a non-empty name without '/', got {tag!r}")
    folder = os.path.join(logdir, f"{step:05d}", tag)
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    os.makedirs(folder)
    np.savetxt(os.path.join(folder, "tensors.tsv"), features, fmt="%.6g", delimiter="\t")
    rows = [list(METADATA_HEADER), *metadata_rows(labels, predictions)]
    files.write_text(os.path.join(folder, "metadata.tsv"),
                     "".join("\t".join(row) + "\n" for row in rows))
    Image.fromarray(sprite(images), mode="L").save(os.path.join(folder, "sprite.png"))
    write_config(logdir, images.shape[1])
    return folder


def write_config(logdir: str, thumbnail_size: int) -> None:
    """Rewrites projector_config.pbtxt from the embeddings on disk, oldest step first.

    Rebuilt from scratch every time, so it never lists an embedding twice or one that is
    gone; written to a temporary file and renamed, so TensorBoard never reads half of it.
    """
    entries = []
    for tensors in sorted(glob.glob(os.path.join(logdir, "[0-9]*", "*", "tensors.tsv"))):
        folder = os.path.dirname(tensors)
        step, tag = os.path.basename(os.path.dirname(folder)), os.path.basename(folder)
        sub = f"{step}/{tag}"
        entries.append(
            "embeddings {\n"
            f'  tensor_name: "{tag}:{step}"\n'
            f'  tensor_path: "{sub}/tensors.tsv"\n'
            f'  metadata_path: "{sub}/metadata.tsv"\n'
            "  sprite {\n"
            f'    image_path: "{sub}/sprite.png"\n'
            f"    single_image_dim: {thumbnail_size}\n"
            f"    single_image_dim: {thumbnail_size}\n"
            "  }\n"
            "}\n"
        )
    files.write_text(os.path.join(logdir, CONFIG_NAME), "".join(entries))


def penultimate_features(
    train_state: Any, images: np.ndarray, batch_size: int = 512
) -> tuple[np.ndarray, np.ndarray]:
    """(features [N, D], logits [N, 62]) of uint8 images [N, 48, 48, 1], in eval mode.

    Features are what the model sows as `intermediates/features` (the layer before the
    classifier); a model that sows nothing gets its logits used instead, with a warning.
    Runs `charjax.inference` with the evaluation weights, on this host, padded to whole
    batches so one compiled function serves them.
    """
    predictor = inference.of_state(train_state, host=True)
    if not predictor.sows_features():
        log.warning("the model sows no intermediates/features; the projector shows logits")
    logits, features = predictor.outputs(images, batch_size)
    return features, logits
