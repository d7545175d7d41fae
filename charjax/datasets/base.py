"""The one Dataset record every source returns."""

from __future__ import annotations

import dataclasses

import numpy as np

from charjax import charset


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Images uint8 [N, 48, 48, 1] (white ink on black), labels int32 [N] in charset order."""

    images: np.ndarray
    labels: np.ndarray
    classes: str = charset.CLASSES

    def __post_init__(self) -> None:
        if self.images.dtype != np.uint8 or self.images.ndim != 4 or self.images.shape[-1] != 1:
            raise ValueError(
                f"Dataset images must be uint8 [N, H, W, 1], got {self.images.dtype} "
                f"{self.images.shape}"
            )
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError(
                f"Dataset has {self.images.shape[0]} images but labels of shape "
                f"{self.labels.shape}"
            )
        if self.labels.size and (self.labels.min() < 0 or self.labels.max() >= len(self.classes)):
            raise ValueError(
                f"labels must lie in 0..{len(self.classes) - 1}, got "
                f"{self.labels.min()}..{self.labels.max()}"
            )

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def subset(self, indices: np.ndarray) -> Dataset:
        """The samples at `indices`, in that order."""
        return Dataset(self.images[indices], self.labels[indices], self.classes)
