"""EMNIST as a TFDS dataset prepared without TensorFlow: `tfds:emnist/<subset>`.

TFDS's own `emnist` builder needs TensorFlow to prepare (tf.io.gfile, tf PNG encoding), so
this is a small builder of ours over the same archive
(https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip, 561,753,746 bytes). It reads the
idx files straight out of the zip with gzip + numpy, transposes the images upright (the
raw files store each glyph transposed), maps the labels into charjax's 62 classes and
writes array_record, which `tfds.data_source` / `builder.as_data_source()` serve without TF.

Subsets and how their labels map into the charset (0-9, A-Z, a-z):
  byclass   62 classes, identity.
  bymerge,  47 classes: 0-9, A-Z, then the 11 lower-case letters whose shape differs from
  balanced  the capital (a b d e f g h n q r t); c, i, j, k, l, m, o, p, s, u, v, w, x, y, z
            are merged into their capitals by EMNIST, so those images carry the capital.
  letters   EMNIST labels 1-26 are case-merged letters; they map to the capitals A-Z, so a
            model trained on them never predicts lower case.
  digits,   10 classes, 0-9.
  mnist

The archive comes from TFDS's download manager (checksum-verified), or from
`<data_dir>/downloads/manual/gzip.zip` for offline machines. `ensure_prepared` checks
that file first and the network with one short connection, so an offline machine fails
in seconds with a message saying where to put the archive, instead of TFDS's minutes of
retries.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import socket
import string
import urllib.parse
import zipfile
from collections.abc import Iterator

import numpy as np
import tensorflow_datasets as tfds

from charjax import charset
from charjax.errors import DataError

URL = "https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip"
ARCHIVE_NAME = "gzip.zip"
ARCHIVE_SIZE = 561_753_746
ARCHIVE_SHA256 = "fb9bb67e33772a9cc0b895e4ecf36d2cf35be8b709693c3564cea2a019fcda8e"
SIDE = 28
_MERGED = string.digits + string.ascii_uppercase + "abdefghnqrt"
# EMNIST label -> character, per subset. Letters' label 0 is unused ("N/A" in its mapping).
LABEL_CHARS: dict[str, str] = {
    "byclass": charset.CLASSES,
    "bymerge": _MERGED,
    "balanced": _MERGED,
    "letters": "\0" + string.ascii_uppercase,
    "digits": string.digits,
    "mnist": string.digits,
}
_IMAGES_MAGIC, _LABELS_MAGIC = 2051, 2049
_BLOCK = 8192  # images read and yielded per block, so a subset never sits in memory twice

_log = logging.getLogger("charjax.datasets.tfds_emnist")


class CharjaxEmnist(tfds.core.GeneratorBasedBuilder):
    """EMNIST, upright, labels in charjax's 62-class order; prepared with numpy only."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Upright 28x28 uint8 tensors, labels mapped to 0-9A-Za-z."}
    BUILDER_CONFIGS = [tfds.core.BuilderConfig(name=name) for name in LABEL_CHARS]
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        f"Download {URL} ({ARCHIVE_SIZE:,} bytes) and put it in the manual dir as "
        f"{ARCHIVE_NAME}: <data_dir>/downloads/manual/{ARCHIVE_NAME}."
    )

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description="EMNIST (Cohen et al. 2017), transposed upright, labels in 0-9A-Za-z.",
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Tensor(shape=(SIDE, SIDE, 1), dtype=np.uint8),
                "label": tfds.features.ClassLabel(names=list(charset.CLASSES)),
            }),
            supervised_keys=("image", "label"),
            homepage="https://www.nist.gov/itl/products-and-services/emnist-dataset",
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict:
        archive = manual_archive(dl_manager)
        if archive is None:
            archive = os.fspath(dl_manager.download(URL))
        return {
            split: self._generate_examples(archive, split) for split in ("train", "test")
        }

    def _generate_examples(self, archive: str, split: str) -> Iterator[tuple[int, dict]]:
        key = 0
        for images, labels in read_split(archive, self.builder_config.name, split):
            for image, label in zip(images, labels, strict=True):
                yield key, {"image": image[..., None], "label": int(label)}
                key += 1


def manual_archive(dl_manager: tfds.download.DownloadManager) -> str | None:
    """`<manual_dir>/gzip.zip` if it is there (checked when its size says it is the real one)."""
    try:
        path = os.fspath(dl_manager.manual_dir / ARCHIVE_NAME)
    except AssertionError:  # the manual dir is missing or empty
        return None
    if not os.path.isfile(path):
        return None
    verify_archive(path)
    return path


def verify_archive(path: str) -> None:
    """The official archive must match its sha256; another one (a test's) is used as it is."""
    size = os.path.getsize(path)
    if size != ARCHIVE_SIZE:
        _log.warning("%s is %d bytes, not the official %d; using it as it is", path, size,
                     ARCHIVE_SIZE)
        return
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    if digest.hexdigest() != ARCHIVE_SHA256:
        raise DataError(f"{path}: sha256 {digest.hexdigest()} is not the official archive's "
                        f"{ARCHIVE_SHA256}; delete it and download {URL} again")


def member_names(subset: str, split: str) -> tuple[str, str]:
    """Paths of the images and labels idx files inside gzip.zip."""
    stem = f"gzip/emnist-{subset}-{split}"
    return f"{stem}-images-idx3-ubyte.gz", f"{stem}-labels-idx1-ubyte.gz"


def read_split(archive: str, subset: str, split: str) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Blocks of (upright images uint8 [k, 28, 28], charset labels int [k]) from the archive."""
    images_name, labels_name = member_names(subset, split)
    table = np.array([charset.CLASSES.find(c) for c in LABEL_CHARS[subset]])
    try:
        with zipfile.ZipFile(archive) as zf:
            with zf.open(labels_name) as raw, gzip.open(raw) as f:
                n = _read_header(f, _LABELS_MAGIC, 1, f"{archive}:{labels_name}")[0]
                labels = np.frombuffer(f.read(n), np.uint8)
            if len(labels) != n:
                raise DataError(f"{archive}:{labels_name}: {len(labels)} labels, header says {n}")
            known = np.append(table, -1)[np.minimum(labels, len(table))] >= 0
            if not known.all():
                raise DataError(f"{archive}:{labels_name}: label {int(labels[~known][0])} is not "
                                f"a class of EMNIST {subset}")
            with zf.open(images_name) as raw, gzip.open(raw) as f:
                count, rows, cols = _read_header(f, _IMAGES_MAGIC, 3, f"{archive}:{images_name}")
                if (count, rows, cols) != (n, SIDE, SIDE):
                    raise DataError(f"{archive}:{images_name}: header says {count}x{rows}x{cols}, "
                                    f"expected {n}x{SIDE}x{SIDE} to match the labels")
                for start in range(0, n, _BLOCK):
                    k = min(_BLOCK, n - start)
                    data = f.read(k * SIDE * SIDE)
                    if len(data) != k * SIDE * SIDE:
                        raise DataError(f"{archive}:{images_name}: truncated at image {start}")
                    block = np.frombuffer(data, np.uint8).reshape(k, SIDE, SIDE)
                    yield block.transpose(0, 2, 1), table[labels[start : start + k]]
    except KeyError as e:
        raise DataError(f"{archive}: no member {e} — not the EMNIST gzip.zip archive") from None
    except (zipfile.BadZipFile, gzip.BadGzipFile, EOFError, OSError) as e:
        raise DataError(f"{archive}: corrupt archive ({e}); delete it and download {URL} "
                        "again") from None


def _read_header(f, magic: int, dims: int, name: str) -> tuple[int, ...]:
    header = np.frombuffer(f.read(4 * (dims + 1)), ">i4")
    if len(header) != dims + 1 or header[0] != magic:
        raise DataError(f"{name}: not an idx file (magic {header[:1]}, expected {magic})")
    return tuple(int(v) for v in header[1:])


def reachable(url: str = URL, timeout: float = 3.0) -> bool:
    """One TCP connection to the URL's host: a cheap "are we online" before a big download."""
    parts = urllib.parse.urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def ensure_prepared(builder: CharjaxEmnist, data_dir: str) -> None:
    """Prepares the subset once; offline with no archive it fails fast, saying what to do."""
    if builder.is_prepared():
        return
    manual_dir = os.path.join(data_dir, "downloads", "manual")
    manual = os.path.join(manual_dir, ARCHIVE_NAME)
    if not os.path.isfile(manual) and not reachable():
        raise DataError(
            f"EMNIST is not prepared in {data_dir} and {URL} cannot be reached. On a machine "
            f"with internet, download it ({ARCHIVE_SIZE / 1e6:.0f} MB, sha256 "
            f"{ARCHIVE_SHA256[:12]}...) and copy it to {manual}, then rerun; or set "
            "--config.data.tfds_data_dir to a folder that holds it"
        )
    _log.info("preparing EMNIST %s in %s (array_record; once)", builder.builder_config.name,
              data_dir)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=manual_dir),
    )
