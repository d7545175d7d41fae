"""Dataset sources, chosen by one spec string (config.data.source, or --dataset):

    synthetic               generated locally (charjax.datasets.synthetic), cached as .npz
    npz:PATH                arrays: images uint8 [N,H,W], labels [N], optional classes
    folder:PATH             labelled image files or one sub-folder per class (datasets.folder)
    tfds:NAME[:SPLIT]       TFDS array_record, prepared without TensorFlow: NAME is
                            emnist/byclass|bymerge|balanced|letters|digits|mnist or synthetic;
                            SPLIT is TFDS split syntax (default: every split, e.g. train+test)

Each source returns the same `Dataset` record, so nothing downstream cares where the
images came from. Files a source leaves out are returned by `load_with_skipped`; the
trainer's entry point is `load_for_training`, which also writes them to the workdir.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

import numpy as np

from charjax import charset, framing
from charjax.datasets import skipped as skipped_lib
from charjax.datasets.base import Dataset
from charjax.datasets.skipped import Skipped
from charjax.errors import DataError

__all__ = [
    "Dataset", "DataError", "Skipped", "SOURCES", "load", "load_with_skipped",
    "load_for_training", "require_classes", "write_skipped",
]

SOURCES = ("synthetic", "npz:PATH", "folder:PATH", "tfds:NAME[:SPLIT]")

if TYPE_CHECKING:  # only for annotations: the generator's worker processes skip the import
    import ml_collections

_log = logging.getLogger("charjax.datasets")


def _synthetic_args(data_config: ml_collections.ConfigDict) -> dict[str, Any]:
    synthetic = data_config.synthetic
    return {"num_images": synthetic.num_images, "seed": synthetic.seed,
            "framing": framing.check_framing(data_config.framing)}


def load_with_skipped(
    spec: str, data_config: ml_collections.ConfigDict
) -> tuple[Dataset, list[Skipped]]:
    """Loads the dataset named by `spec`, and every file it left out (with kind and reason).

    `data_config` is config.data: how to generate, read and cache the source.
    """
    kind, _, arg = spec.partition(":")
    cache_dir = data_config.cache_dir or None
    if kind == "synthetic" and not arg:
        from charjax.datasets import synthetic

        return synthetic.load(**_synthetic_args(data_config), cache_dir=cache_dir,
                              workers=data_config.synthetic.workers), []
    if kind == "npz" and arg:
        from charjax.datasets import npz

        return npz.load(arg), []
    if kind == "folder" and arg:
        from charjax.datasets import folder

        return folder.load(
            arg,
            pattern=data_config.folder.pattern or folder.DEFAULT_PATTERN,
            skip_bad=data_config.skip_bad,
            cache_dir=cache_dir,
            framing=framing.check_framing(data_config.framing),
        )
    if kind == "tfds" and arg:
        from charjax.datasets import tfds_source

        name, _, split = arg.partition(":")
        return tfds_source.load(
            name, split or None, data_dir=data_config.tfds_data_dir or None,
            synthetic_args=_synthetic_args(data_config),
        ), []
    raise DataError(f"unknown dataset spec {spec!r}; use one of: {', '.join(SOURCES)}")


def load(spec: str, data_config: ml_collections.ConfigDict) -> Dataset:
    """The dataset named by `spec`; files left out are logged (see `load_with_skipped`)."""
    return load_with_skipped(spec, data_config)[0]


def require_classes(dataset: Dataset, spec: str, minimum: int = 2) -> None:
    """Raises a DataError when `dataset` has fewer than `minimum` classes (training needs 2)."""
    present = np.unique(dataset.labels)
    if len(present) < minimum:
        found = "".join(charset.CLASSES[i] for i in present) or "none"
        raise DataError(
            f"{spec}: holds {len(present)} class(es) ({found}); a classifier needs at least "
            f"{minimum}. Add images of other characters"
        )


def write_skipped(skipped: list[Skipped], workdir: str | os.PathLike) -> str | None:
    """Writes WORKDIR/skipped_files.txt when anything was left out; returns its path."""
    return skipped_lib.write(skipped, workdir)


def load_for_training(
    data_config: ml_collections.ConfigDict, workdir: str | os.PathLike
) -> Dataset:
    """What the trainer calls: load config.data.source, record what was left out in
    WORKDIR/skipped_files.txt, and refuse data a classifier cannot learn from (< 2 classes)."""
    spec = data_config.source
    dataset, skipped = load_with_skipped(spec, data_config)
    where = write_skipped(skipped, workdir)
    if where:
        _log.warning("%s: %d file(s) left out, listed in %s", spec, len(skipped), where)
    require_classes(dataset, spec)
    return dataset
