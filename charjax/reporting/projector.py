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

import functools
import glob
import logging
import math
import os
import shutil
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from charjax import charset, input_pipeline

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
    with open(os.path.join(folder, "metadata.tsv"), "w", encoding="utf-8") as f:
        for row in [list(METADATA_HEADER), *metadata_rows(labels, predictions)]:
            f.write("\t".join(row) + "\n")
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
    path = os.path.join(logdir, CONFIG_NAME)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write("".join(entries))
    os.replace(path + ".tmp", path)


def host_variables(state: Any) -> dict:
    """The weights evaluation uses (and batch statistics), copied to host memory.

    `eval_params()` where the state has it (the moving average of the weights when
    training keeps one), so the projector shows the model the metrics describe. On the
    host, a state replicated over the devices of many hosts can be run by this host alone:
    only process 0 reports, and a jitted call on the global arrays would wait for the
    other processes to join it.
    """
    params = state.eval_params() if hasattr(state, "eval_params") else state.params
    variables = {"params": params}
    if getattr(state, "batch_stats", None):
        variables["batch_stats"] = state.batch_stats
    return jax.device_get(variables)


def _sown_features(intermediates: Any) -> jax.Array | None:
    """The last value sown under a 'features' name anywhere in the intermediates."""
    found = None
    for path, leaf in jax.tree_util.tree_flatten_with_path(intermediates)[0]:
        names = [getattr(k, "key", None) for k in path]
        if "features" in names:
            found = leaf
    return found


def _apply(apply_fn: Callable, variables: dict, images: jax.Array) -> tuple[Any, Any]:
    """(logits, sown intermediates) in eval mode, for uint8 images."""
    logits, mutated = apply_fn(variables, input_pipeline.normalize(images), train=False,
                               mutable=["intermediates"])
    return logits, mutated.get("intermediates", {})


@functools.partial(jax.jit, static_argnums=0)
def _forward_batch(
    apply_fn: Callable, variables: dict, images: jax.Array
) -> tuple[jax.Array, jax.Array]:
    logits, intermediates = _apply(apply_fn, variables, images)
    features = _sown_features(intermediates)
    if features is None:  # a model that sows nothing: the logits are the next best view
        features = logits
    return features.reshape(features.shape[0], -1).astype(jnp.float32), logits


def penultimate_features(
    state: Any, images: np.ndarray, batch_size: int = 512
) -> tuple[np.ndarray, np.ndarray]:
    """(features [N, D], logits [N, 62]) of uint8 images [N, 48, 48, 1], in eval mode.

    Features are what the model sows as `intermediates/features` (the layer before the
    classifier); a model that sows nothing gets its logits used instead, with a warning.
    Runs on this host's default device from a host copy of the weights (see
    `host_variables`), padded to whole batches so one compiled function serves them all.
    """
    variables = host_variables(state)
    probe = jax.ShapeDtypeStruct((1, *images.shape[1:]), jnp.uint8)
    _, sown = jax.eval_shape(functools.partial(_apply, state.apply_fn), variables, probe)
    if _sown_features(sown) is None:
        log.warning("the model sows no intermediates/features; the projector shows logits")
    index, mask = input_pipeline.padded_batches(len(images), batch_size)
    features, logits = [], []
    for idx in index:
        f, lg = _forward_batch(state.apply_fn, variables, jnp.asarray(images[idx]))
        features.append(np.asarray(f))
        logits.append(np.asarray(lg))
    keep = mask.reshape(-1)
    return np.concatenate(features)[keep], np.concatenate(logits)[keep]
