"""Split a Dataset into train/validation/test and feed it to the device.

The whole set fits on any device here (48x48 uint8 is 2.3 KB an image), so it is
placed there once; batches are then gathered on device by permuted indices inside
the jitted step, and the host never touches a batch.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from charjax.datasets.base import Dataset


@dataclasses.dataclass(frozen=True)
class Splits:
    train: Dataset
    validation: Dataset
    test: Dataset


def _split_counts(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int]:
    """Validation and test counts of one class of n samples, leaving at least one for training."""
    n_val = int(round(n * val_fraction))
    n_test = int(round(n * test_fraction))
    while n_val + n_test >= n and (n_val or n_test):
        if n_test >= n_val and n_test:
            n_test -= 1
        else:
            n_val -= 1
    return n_val, n_test


def stratified_split(
    dataset: Dataset, val_fraction: float, test_fraction: float, seed: int
) -> Splits:
    """Splits every class by the same ratios, shuffled by `seed`; each split is shuffled too."""
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(
            f"val_fraction ({val_fraction}) and test_fraction ({test_fraction}) must be in [0, 1) "
            "and sum to less than 1"
        )
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {"train": [], "validation": [], "test": []}
    for label in np.unique(dataset.labels):
        idx = rng.permutation(np.flatnonzero(dataset.labels == label))
        n_val, n_test = _split_counts(len(idx), val_fraction, test_fraction)
        parts["validation"].append(idx[:n_val])
        parts["test"].append(idx[n_val : n_val + n_test])
        parts["train"].append(idx[n_val + n_test :])
    subsets = {}
    for name, chunks in parts.items():
        idx = np.concatenate(chunks) if chunks else np.zeros((0,), np.int64)
        subsets[name] = dataset.subset(rng.permutation(idx))
    return Splits(**subsets)


def host_arrays(dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images and int32 labels, ready to be placed on the devices once."""
    return dataset.images, dataset.labels.astype(np.int32)


def to_device(dataset: Dataset) -> tuple[jax.Array, jax.Array]:
    """Places the uint8 images and int32 labels on the default device, once."""
    return jnp.asarray(dataset.images), jnp.asarray(dataset.labels.astype(np.int32))


def normalize(images: jax.Array) -> jax.Array:
    """uint8 [0, 255] -> float32 [0, 1]; the model's input convention."""
    return images.astype(jnp.float32) * (1.0 / 255.0)


def epoch_permutation(key: jax.Array, epoch: int, num_examples: int) -> jax.Array:
    """The training order of one epoch, a pure function of (key, epoch).

    Keyed by the epoch number rather than by how many epochs this process has run, so a
    resumed run sees exactly the order an uninterrupted one would.
    """
    return jax.random.permutation(jax.random.fold_in(key, epoch), num_examples)


def padded_batches(num_examples: int, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Index and mask arrays [num_batches, batch_size] covering every example exactly once.

    The last batch is padded with index 0 and mask False, so one compiled eval step
    serves all batches and no sample is counted twice or lost.
    """
    num_batches = max(1, -(-num_examples // batch_size))
    flat = np.arange(num_batches * batch_size)
    mask = flat < num_examples
    flat = np.where(mask, flat, 0)
    return flat.reshape(num_batches, batch_size), mask.reshape(num_batches, batch_size)
