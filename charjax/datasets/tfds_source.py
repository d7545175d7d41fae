"""`tfds:NAME[:SPLIT]` — read a TFDS array_record data source into a Dataset, no TensorFlow.

Only builders of ours are known (TFDS's own image builders need TensorFlow to prepare):
`emnist/<subset>` (charjax.datasets.tfds_emnist) and `synthetic` (tfds_synthetic). The data
dir is data.tfds_data_dir, else $TFDS_DATA_DIR, else ~/tensorflow_datasets, TFDS's default.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import numpy as np

from charjax import charset
from charjax.datasets import sources, synthetic
from charjax.datasets.base import Dataset
from charjax.datasets.npz import resize_images
from charjax.errors import DataError

EMNIST_SUBSETS = ("byclass", "bymerge", "balanced", "letters", "digits", "mnist")
KNOWN = tuple(f"emnist/{s}" for s in EMNIST_SUBSETS) + ("synthetic",)
_READ_BATCH = 4096

_log = logging.getLogger("charjax.datasets.tfds")


def default_data_dir() -> str:
    return os.environ.get("TFDS_DATA_DIR") or os.path.join("~", "tensorflow_datasets")


def load(
    name: str,
    split: str | None,
    data_dir: str | None = None,
    synthetic_args: dict[str, Any] | None = None,
) -> Dataset:
    """Prepares `name` if needed (once) and reads `split` (default: every split) into memory.

    `synthetic_args`: num_images, seed and framing of `synthetic` (config.data.synthetic).
    """
    if name not in KNOWN:
        raise DataError(f"unknown TFDS dataset {name!r}; charjax knows: {', '.join(KNOWN)} "
                        "(for anything else, export it to a folder or an .npz)")
    data_dir = os.path.abspath(os.path.expanduser(data_dir or default_data_dir()))
    builder = _builder(name, data_dir, synthetic_args)
    split = split or "+".join(sorted(builder.info.splits))
    try:
        source = builder.as_data_source(split=split)
    except (ValueError, KeyError) as e:
        raise DataError(f"tfds:{name}: bad split {split!r} ({e}); splits are "
                        f"{sorted(builder.info.splits)}, e.g. train or train[:10%]+test") from None
    start = time.perf_counter()
    images, labels = _read_all(source, tuple(builder.info.features["image"].shape))
    _log.info("tfds:%s:%s: read %d images from %s in %.1f s", name, split, len(labels),
              builder.data_dir, time.perf_counter() - start)
    return Dataset(resize_images(images[..., 0]), labels)


def _load_source(arg: str, data: Any) -> tuple[Dataset, list]:
    name, _, split = arg.partition(":")
    return load(name, split or None, data_dir=data.tfds_data_dir or None,
                synthetic_args=synthetic.config_args(data)), []


sources.register(sources.Source(
    "tfds", "NAME[:SPLIT]", f"our own TFDS builders, no TensorFlow: NAME is one of "
    f"{', '.join(KNOWN)}; SPLIT in TFDS syntax (default: every split)", _load_source,
    lambda c: c.text("data.tfds_data_dir")))


def _builder(name: str, data_dir: str, synthetic_args: dict[str, Any] | None):
    if name.startswith("emnist/"):
        from charjax.datasets import tfds_emnist

        builder = tfds_emnist.CharjaxEmnist(
            config=name.split("/", 1)[1], data_dir=data_dir, file_format="array_record"
        )
        tfds_emnist.ensure_prepared(builder, data_dir)
        return builder
    from charjax.datasets import tfds_synthetic

    if synthetic_args is None:
        raise DataError("tfds:synthetic needs its size, seed and framing (config.data.synthetic)")
    num_images = synthetic_args["num_images"]
    builder = tfds_synthetic.CharjaxSynthetic(
        config=tfds_synthetic.make_config(**synthetic_args),
        data_dir=data_dir, file_format="array_record",
    )
    if not builder.is_prepared():
        _log.info("preparing tfds:synthetic (%d images) in %s", num_images, data_dir)
        try:
            builder.download_and_prepare()
        except ValueError as e:  # synthetic.generate rejects the arguments
            raise DataError(f"tfds:synthetic: {e}") from None
    return builder


def _read_all(source, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    n = len(source)
    images = np.empty((n, *shape), np.uint8)
    labels = np.empty((n,), np.int32)
    for start in range(0, n, _READ_BATCH):
        records = source.__getitems__(list(range(start, min(n, start + _READ_BATCH))))
        for i, record in enumerate(records, start):
            images[i] = record["image"]
            labels[i] = record["label"]
    if n and (labels.min() < 0 or labels.max() >= charset.NUM_CLASSES):
        raise DataError(f"{source}: labels outside 0..{charset.NUM_CLASSES - 1}")
    return images, labels

