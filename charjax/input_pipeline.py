"""Split a Dataset into train/validation/test and feed it to the device.

The whole set fits on any device here (48x48 uint8 is 2.3 KB an image), so it is
placed there once; batches are then gathered on device by permuted indices inside
the jitted step, and the host never touches a batch.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from charjax.datasets.base import Dataset
from charjax.errors import ConfigError


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


def _largest_remainder(total: int, sizes: np.ndarray) -> np.ndarray:
    """`total` shared among classes in proportion to `sizes`, in whole images: each gets the
    floor of its share, and the images left go to the largest remainders (ties: lower class)."""
    quota = total * sizes / sizes.sum()
    counts = np.floor(quota).astype(np.int64)
    order = np.argsort(-(quota - counts), kind="stable")
    counts[order[: total - counts.sum()]] += 1
    return counts


def _counts_per_class(sizes: np.ndarray, val_count: int, test_count: int) -> np.ndarray:
    """[classes, 2] validation and test images per class, exactly `val_count` and
    `test_count` in all, each class keeping at least one training image."""
    none = np.zeros(len(sizes), np.int64)
    held = _largest_remainder(val_count + test_count, sizes) if val_count + test_count else none
    if val_count < 0 or test_count < 0 or (held >= sizes).any():
        raise ConfigError(
            f"--config.data.val_count={val_count} and --config.data.test_count={test_count}: "
            f"must be >= 0 and leave each class at least one training image ({int(sizes.sum())} "
            f"images in {len(sizes)} classes, the smallest {int(sizes.min())}); hold out fewer"
        )
    val = _largest_remainder(val_count, held.astype(np.float64)) if val_count else none
    return np.stack([val, held - val], axis=1)


def stratified_split(
    dataset: Dataset,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    val_count: int | None = None,
    test_count: int | None = None,
) -> Splits:
    """Splits every class by the same ratios, shuffled by `seed`; each split is shuffled too.

    With `val_count` and `test_count` the splits hold exactly that many images instead,
    each class contributing in proportion to its size (largest remainder), so they stay
    stratified; the fractions are then unused.
    """
    by_count = val_count is not None or test_count is not None
    if by_count and (val_count is None or test_count is None):
        raise ConfigError("--config.data.val_count and --config.data.test_count: set both (a "
                          "split by counts) or neither (by fractions)")
    if not by_count and not (
        0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1
    ):
        raise ValueError(
            f"val_fraction ({val_fraction}) and test_fraction ({test_fraction}) must be in [0, 1) "
            "and sum to less than 1"
        )
    rng = np.random.default_rng(seed)
    classes = np.unique(dataset.labels)
    members = [np.flatnonzero(dataset.labels == label) for label in classes]
    if by_count:
        sizes = np.array([len(m) for m in members], np.float64)
        held = _counts_per_class(sizes, val_count, test_count)
    else:
        held = [_split_counts(len(m), val_fraction, test_fraction) for m in members]
    parts: dict[str, list[np.ndarray]] = {"train": [], "validation": [], "test": []}
    for idx, (n_val, n_test) in zip(members, held, strict=True):
        idx = rng.permutation(idx)
        parts["validation"].append(idx[:n_val])
        parts["test"].append(idx[n_val : n_val + n_test])
        parts["train"].append(idx[n_val + n_test :])
    subsets = {}
    for name, chunks in parts.items():
        idx = np.concatenate(chunks) if chunks else np.zeros((0,), np.int64)
        subsets[name] = dataset.subset(rng.permutation(idx))
    return Splits(**subsets)


def split(dataset: Dataset, data_config: ml_collections.ConfigDict) -> Splits:
    """`stratified_split` as `config.data` asks: by counts when they are set, else by fractions."""
    return stratified_split(
        dataset, data_config.val_fraction, data_config.test_fraction, data_config.split_seed,
        data_config.val_count, data_config.test_count,
    )


def with_training_mix(splits: Splits, extra: Dataset, seed: int) -> Splits:
    """`splits` with `extra`'s images added to the training split only, shuffled in by
    `seed`: batches then mix both sources in proportion to their sizes, while validation
    and test (which choose and score the weights) stay from the run's own data."""
    train = Dataset(
        np.concatenate([splits.train.images, extra.images]),
        np.concatenate([splits.train.labels, extra.labels.astype(splits.train.labels.dtype)]),
        splits.train.classes,
    )
    order = np.random.default_rng(seed).permutation(len(train))
    return dataclasses.replace(splits, train=train.subset(order))


def host_arrays(dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images and int32 labels, ready to be placed on the devices once."""
    return dataset.images, dataset.labels.astype(np.int32)


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
