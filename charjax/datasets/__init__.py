"""Dataset sources, chosen by one spec string: `synthetic`, `npz:PATH`, ...

Each source returns the same `Dataset` record, so nothing downstream cares where the
images came from.
"""

from __future__ import annotations

import ml_collections

from charjax.datasets.base import Dataset
from charjax.errors import DataError

__all__ = ["Dataset", "DataError", "load", "SOURCES"]

SOURCES = ("synthetic", "npz:PATH")


def load(spec: str, data_config: ml_collections.ConfigDict | None = None) -> Dataset:
    """Loads the dataset named by `spec`; `data_config` carries per-source options."""
    kind, _, arg = spec.partition(":")
    if kind == "synthetic" and not arg:
        from charjax.datasets import synthetic

        cfg = data_config.synthetic if data_config is not None else None
        return synthetic.load(
            num_images=cfg.num_images if cfg else 62 * 200,
            seed=cfg.seed if cfg else 0,
            framing=cfg.framing if cfg else "line",
            cache_dir=(data_config.cache_dir if data_config is not None else None) or None,
        )
    if kind == "npz" and arg:
        from charjax.datasets import npz

        return npz.load(arg)
    raise DataError(f"unknown dataset spec {spec!r}; use one of: {', '.join(SOURCES)}")
