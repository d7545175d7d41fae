"""Dataset sources, chosen by one spec string (config.data.source, or --dataset): each is a
module that registers itself (charjax/datasets/sources.py; `charjax --help` lists them) and
returns the same `Dataset` record, so nothing downstream cares where the images came from.
Files a source leaves out are returned by `load_with_skipped`; the trainer calls
`load_for_training`.
"""

from __future__ import annotations

import importlib
import logging
import os
from typing import TYPE_CHECKING

import numpy as np

from charjax import charset
from charjax.datasets import skipped as skipped_lib
from charjax.datasets import sources
from charjax.datasets.base import Dataset
from charjax.datasets.skipped import Skipped
from charjax.errors import DataError

__all__ = [
    "Dataset", "DataError", "Skipped", "load", "load_with_skipped", "load_for_training",
    "require_classes", "write_skipped",
]

if TYPE_CHECKING:  # only for annotations: the generator's worker processes skip the import
    import ml_collections

# The built-in sources, in the order help and errors list them; each registers on import.
for _module in ("synthetic", "npz", "folder", "tfds_source"):
    importlib.import_module(f"charjax.datasets.{_module}")

_log = logging.getLogger("charjax.datasets")


def load_with_skipped(
    spec: str, data_config: ml_collections.ConfigDict
) -> tuple[Dataset, list[Skipped]]:
    """Loads the dataset named by `spec`, and every file it left out (with kind and reason).

    `data_config` is config.data: how to generate, read and cache the source.
    """
    found = sources.find(spec)
    if found is None:
        raise DataError(f"unknown dataset spec {spec!r}; use one of: {sources.usages()}")
    source, arg = found
    return source.load(arg, data_config)


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
    data_config: ml_collections.ConfigDict, workdir: str | os.PathLike | None = None
) -> tuple[Dataset, list[Skipped]]:
    """What the trainer calls: config.data.source and the files it left out, refusing data a
    classifier cannot learn from (< 2 classes). With `workdir`, the files left out are
    listed in WORKDIR/skipped_files.txt at once (the trainer lists them once it writes)."""
    spec = data_config.source
    dataset, skipped = load_with_skipped(spec, data_config)
    where = write_skipped(skipped, workdir) if workdir is not None else None
    if where:
        _log.warning("%s: %d file(s) left out, listed in %s", spec, len(skipped), where)
    require_classes(dataset, spec)
    return dataset, skipped
