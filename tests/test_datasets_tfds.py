"""tfds:NAME — our EMNIST builder on a small fake archive in the real idx format, offline.

No test here may reach the internet: sockets to the outside raise.
"""

from __future__ import annotations

import gzip
import socket
import time
import zipfile

import numpy as np
import pytest
from conftest import data_config

from charjax import charset, datasets
from charjax.datasets import tfds_emnist
from charjax.errors import DataError


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    real_connect = socket.socket.connect

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise AssertionError(f"a test tried to reach {address}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)


def idx_images(images: np.ndarray) -> bytes:
    header = np.array([2051, len(images), 28, 28], ">i4").tobytes()
    return gzip.compress(header + images.astype(np.uint8).tobytes())


def idx_labels(labels) -> bytes:
    header = np.array([2049, len(labels)], ">i4").tobytes()
    return gzip.compress(header + np.asarray(labels, np.uint8).tobytes())


def upright_glyph(k: int) -> np.ndarray:
    """An asymmetric mark: a vertical bar in the left columns and a dot whose row is k."""
    img = np.zeros((28, 28), np.uint8)
    img[4:24, 5:8] = 255
    img[2 + k % 24, 20] = 200
    return img


def write_archive(path, subsets: dict[str, dict[str, list[int]]]) -> dict:
    """gzip.zip with gzip/emnist-<subset>-<split>-{images,labels}-idx*.gz; images stored
    transposed as in the real files. Returns {(subset, split): (upright images, labels)}."""
    path.parent.mkdir(parents=True, exist_ok=True)
    truth = {}
    with zipfile.ZipFile(path, "w") as zf:
        for subset, splits in subsets.items():
            for split, labels in splits.items():
                upright = np.stack([upright_glyph(i) for i in range(len(labels))])
                images_name, labels_name = tfds_emnist.member_names(subset, split)
                zf.writestr(images_name, idx_images(upright.transpose(0, 2, 1)))
                zf.writestr(labels_name, idx_labels(labels))
                truth[subset, split] = (upright, np.asarray(labels))
    return truth


@pytest.fixture(scope="module")
def emnist_dir(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("tfds")
    truth = write_archive(data_dir / "downloads" / "manual" / "gzip.zip", {
        "byclass": {"train": [0, 10, 36, 61, 5, 20], "test": [35, 37]},
        "balanced": {"train": [36, 41, 46, 12], "test": [9]},
        "letters": {"train": [1, 26, 13], "test": [2]},
    })
    return data_dir, truth


def _load(spec, data_dir):
    return datasets.load(spec, data_config(tfds_data_dir=str(data_dir)))


def _by_dot_row(ds) -> dict[int, int]:
    """label per glyph id (the dot's row), from upright 48x48 images; -1 if not upright."""
    out = {}
    for image, label in zip(ds.images[..., 0], ds.labels, strict=True):
        small = np.asarray(image, np.float32)
        left, right = small[:, :24].sum(), small[:, 24:].sum()
        assert left > right, "the bar must stay on the left: images are transposed upright"
        row = int(np.argmax(small[:, 40]))
        out[row] = int(label)
    return out


def test_byclass_is_upright_with_identity_labels(emnist_dir, monkeypatch):
    data_dir, truth = emnist_dir
    monkeypatch.setattr(tfds_emnist, "reachable", lambda *a, **k: pytest.fail("went online"))
    ds = _load("tfds:emnist/byclass", data_dir)
    upright, train_labels = truth["byclass", "train"]
    assert len(ds) == 8 and ds.images.shape[1:] == (48, 48, 1)
    assert sorted(ds.labels.tolist()) == sorted(train_labels.tolist() + [35, 37])
    train = _load("tfds:emnist/byclass:train", data_dir)
    assert sorted(train.labels.tolist()) == sorted(train_labels.tolist())
    _by_dot_row(train)
    # the data source itself serves 28x28 upright tensors, without TensorFlow
    builder = tfds_emnist.CharjaxEmnist(config="byclass", data_dir=str(data_dir),
                                        file_format="array_record")
    source = builder.as_data_source(split="train")
    records = [source[i] for i in range(len(source))]
    by_label = {int(r["label"]): r["image"][..., 0] for r in records}
    for image, label in zip(upright, train_labels, strict=True):
        np.testing.assert_array_equal(by_label[int(label)], image)


def test_balanced_and_letters_map_into_the_62_classes(emnist_dir):
    data_dir, _ = emnist_dir
    balanced = _load("tfds:emnist/balanced:train", data_dir)
    # EMNIST balanced: 36..46 = a b d e f g h n q r t
    assert sorted(charset.CLASSES[i] for i in balanced.labels) == sorted("agtC")
    letters = _load("tfds:emnist/letters", data_dir)
    assert sorted(charset.CLASSES[i] for i in letters.labels) == sorted("AZMB")


def test_offline_without_archive_fails_fast_saying_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setattr(tfds_emnist, "reachable", lambda *a, **k: False)
    start = time.perf_counter()
    with pytest.raises(DataError) as error:
        _load("tfds:emnist/byclass", tmp_path)
    assert time.perf_counter() - start < 10
    message = str(error.value)
    assert str(tmp_path / "downloads" / "manual" / "gzip.zip") in message
    assert tfds_emnist.URL in message


def test_reachable_is_a_single_short_connection(monkeypatch):
    calls = []

    def create_connection(address, timeout):
        calls.append((address, timeout))
        raise OSError("offline")

    monkeypatch.setattr(socket, "create_connection", create_connection)
    assert tfds_emnist.reachable() is False
    assert calls == [(("biometrics.nist.gov", 443), 3.0)]


def test_corrupt_archive_and_missing_member_are_data_errors(tmp_path):
    bad = tmp_path / "a" / "downloads" / "manual" / "gzip.zip"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"PK not really a zip")
    with pytest.raises(DataError, match="corrupt archive"):
        list(tfds_emnist.read_split(str(bad), "byclass", "train"))
    other = tmp_path / "b.zip"
    write_archive(other, {"digits": {"train": [1, 2]}})
    with pytest.raises(DataError, match="no member"):
        list(tfds_emnist.read_split(str(other), "byclass", "train"))
    wrong = tmp_path / "c.zip"
    write_archive(wrong, {"letters": {"train": [0, 3]}})  # letters has no label 0
    with pytest.raises(DataError, match="label 0 is not a class of EMNIST letters"):
        list(tfds_emnist.read_split(str(wrong), "letters", "train"))


def test_unknown_name_and_bad_split(emnist_dir):
    data_dir, _ = emnist_dir
    with pytest.raises(DataError, match="unknown TFDS dataset 'mnist'"):
        _load("tfds:mnist", data_dir)
    with pytest.raises(DataError, match="bad split"):
        _load("tfds:emnist/byclass:validation", data_dir)


def test_synthetic_through_tfds_matches_the_generator(tmp_path):
    from charjax.datasets import synthetic

    cfg = data_config(tfds_data_dir=str(tmp_path), framing="fit",
                      **{"synthetic.num_images": 124, "synthetic.seed": 3})
    ds = datasets.load("tfds:synthetic", cfg)
    ref = synthetic.generate(124, 3, "fit")

    def rows(d):
        return sorted(zip(d.labels.tolist(), (x.tobytes() for x in d.images), strict=True))

    assert rows(ds) == rows(ref)
