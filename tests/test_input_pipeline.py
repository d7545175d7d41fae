import jax
import numpy as np
import pytest

from charjax import input_pipeline
from charjax.datasets.base import Dataset


def _dataset(per_class=(50, 20, 7)) -> Dataset:
    labels = np.concatenate([np.full(n, c) for c, n in enumerate(per_class)]).astype(np.int32)
    images = np.arange(len(labels) * 48 * 48, dtype=np.int64).reshape(-1, 48, 48, 1) % 251
    images[:, 0, 0, 0] = np.arange(len(labels))  # make each image identifiable
    return Dataset(images.astype(np.uint8), labels)


def test_split_is_stratified_disjoint_and_complete():
    ds = _dataset()
    s = input_pipeline.stratified_split(ds, 0.2, 0.2, seed=0)
    assert len(s.train) + len(s.validation) + len(s.test) == len(ds)
    ids = [set(x.images[:, 0, 0, 0].tolist()) for x in (s.train, s.validation, s.test)]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert np.bincount(s.validation.labels, minlength=3).tolist() == [10, 4, 1]
    assert np.bincount(s.test.labels, minlength=3).tolist() == [10, 4, 1]


def test_split_depends_on_seed_only():
    ds = _dataset()
    a = input_pipeline.stratified_split(ds, 0.2, 0.1, seed=1)
    b = input_pipeline.stratified_split(ds, 0.2, 0.1, seed=1)
    c = input_pipeline.stratified_split(ds, 0.2, 0.1, seed=2)
    np.testing.assert_array_equal(a.train.images, b.train.images)
    assert not np.array_equal(a.train.images, c.train.images)


def test_every_class_keeps_a_training_sample():
    s = input_pipeline.stratified_split(_dataset((2, 1)), 0.45, 0.45, seed=0)
    assert set(s.train.labels.tolist()) == {0, 1}


@pytest.mark.parametrize("val,test", [(-0.1, 0.1), (0.6, 0.5), (1.0, 0.0)])
def test_bad_fractions(val, test):
    with pytest.raises(ValueError, match="fraction"):
        input_pipeline.stratified_split(_dataset(), val, test, seed=0)


def test_padded_batches_cover_every_example_once():
    index, mask = input_pipeline.padded_batches(10, 4)
    assert index.shape == mask.shape == (3, 4)
    assert sorted(index[mask].tolist()) == list(range(10))
    assert mask.sum() == 10


def test_epoch_permutation_is_keyed_by_epoch():
    key = jax.random.key(0)
    a = input_pipeline.epoch_permutation(key, 3, 100)
    b = input_pipeline.epoch_permutation(key, 3, 100)
    c = input_pipeline.epoch_permutation(key, 4, 100)
    assert sorted(np.asarray(a).tolist()) == list(range(100))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_normalize_range():
    x = np.array([0, 128, 255], np.uint8)
    y = np.asarray(input_pipeline.normalize(x))
    assert y.dtype == np.float32 and y[0] == 0.0 and y[-1] == 1.0


def test_training_mix_joins_the_training_split_only():
    splits = input_pipeline.stratified_split(_dataset(), 0.2, 0.2, seed=0)
    extra = Dataset(np.full((9, 48, 48, 1), 255, np.uint8), np.full(9, 2, np.int32))
    mixed = input_pipeline.with_training_mix(splits, extra, seed=0)
    assert len(mixed.train) == len(splits.train) + 9
    assert np.bincount(mixed.train.labels).tolist() == (
        np.bincount(splits.train.labels) + [0, 0, 9]).tolist()
    # shuffled in, not appended: the extra images do not all sit at the end
    is_extra = (mixed.train.images == 255).all(axis=(1, 2, 3))
    assert is_extra.sum() == 9 and not is_extra[-9:].all()
    np.testing.assert_array_equal(mixed.validation.images, splits.validation.images)
    np.testing.assert_array_equal(mixed.test.labels, splits.test.labels)
