"""npz:PATH — the shared file's format loads; every malformed file is one DataError."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import data_config

from charjax import charset, datasets
from charjax.errors import DataError


def _npz(tmp_path, **arrays) -> str:
    path = tmp_path / "data.npz"
    np.savez(path, **arrays)
    return f"npz:{path}"


def test_loads_resizes_and_maps_classes_by_character(tmp_path):
    images = np.zeros((3, 28, 28), np.uint8)
    images[:, 10:18, 12:16] = 255
    spec = _npz(tmp_path, images=images, labels=np.array([0, 1, 2], np.uint8), classes="abZ")
    ds = datasets.load(spec, data_config())
    assert ds.images.shape == (3, 48, 48, 1) and ds.images.dtype == np.uint8
    assert [charset.CLASSES[i] for i in ds.labels] == ["a", "b", "Z"]
    assert ds.images[:, 24, 24, 0].min() > 200


U8 = np.zeros((2, 28, 28), np.uint8)
BAD = {
    "wrong keys": (dict(x=U8, y=np.zeros(2, int)), "missing key"),
    "float images": (dict(images=U8.astype(np.float32), labels=np.zeros(2, int)), "uint8"),
    "flat images": (dict(images=np.zeros((2, 784), np.uint8), labels=np.zeros(2, int)),
                    "[N, H, W]"),
    "rgb images": (dict(images=np.zeros((2, 28, 28, 3), np.uint8), labels=np.zeros(2, int)),
                   "[N, H, W]"),
    "float labels": (dict(images=U8, labels=np.zeros(2, np.float32)), "'labels' must be integers"),
    "label count": (dict(images=U8, labels=np.zeros(3, int)), "matching 2 images"),
    "labels out of range": (dict(images=U8, labels=np.array([0, 62])), "0..61"),
    "negative labels": (dict(images=U8, labels=np.array([0, -1])), "0..61"),
    "no images": (dict(images=np.zeros((0, 28, 28), np.uint8), labels=np.zeros(0, int)),
                  "holds no images"),
    "class outside charset": (dict(images=U8, labels=np.array([0, 1]), classes="a#"),
                              "outside the charset"),
    "label beyond classes": (dict(images=U8, labels=np.array([0, 2]), classes="ab"),
                             "no entry in 'classes'"),
    "classes as array": (dict(images=U8, labels=np.array([0, 1]), classes=np.array(["a", "b"])),
                         "one string"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_malformed_npz_is_one_data_error(tmp_path, case):
    arrays, fragment = BAD[case]
    spec = _npz(tmp_path, **arrays)
    with pytest.raises(DataError) as error:
        datasets.load(spec, data_config())
    assert fragment in str(error.value) and str(tmp_path / "data.npz") in str(error.value)


def test_not_an_npz_and_pickled_objects(tmp_path):
    (tmp_path / "fake.npz").write_text("hello")
    with pytest.raises(DataError, match="is a text file .*'hello'.*np.savez"):
        datasets.load(f"npz:{tmp_path / 'fake.npz'}", data_config())
    np.savez(tmp_path / "obj.npz", images=np.array([object()]), labels=np.zeros(1, int))
    with pytest.raises(DataError, match="not a readable .npz"):
        datasets.load(f"npz:{tmp_path / 'obj.npz'}", data_config())
    with pytest.raises(DataError, match="no such file"):
        datasets.load(f"npz:{tmp_path / 'missing.npz'}", data_config())
