"""Bad data: every case has one defined outcome, tested both ways.

Default: one DataError naming the file and the reason. data.skip_bad=True: the good files
load and the bad one is returned as skipped, with its reason — never a silent drop.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import struct
import zlib

import numpy as np
import pytest
from conftest import data_config
from PIL import Image
from test_datasets_folder import glyph, save

from charjax import charset, datasets
from charjax.datasets import folder, skipped
from charjax.errors import DataError


def png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A few hundred bytes whose header claims 10 gigapixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
            + png_chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + png_chunk(b"IEND", b""))


def noisy() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (64, 64), dtype=np.uint8)


def _write(path, data: bytes) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return os.fspath(path)


def _bad_header(root):
    data = bytearray(png_bytes(glyph()))
    data[18] ^= 0xFF  # inside IHDR: its CRC no longer matches
    return _write(root / "A_0005.png", bytes(data))


def _conflicting_duplicate(root):
    return _write(root / "b_0009.png", (root / "A_0001.png").read_bytes())


def _symlink_loop(root):
    os.symlink("A_loop.png", root / "A_loop.png")
    return os.fspath(root / "A_loop.png")


def _dangling(root):
    os.symlink("gone.png", root / "A_0007.png")
    return os.fspath(root / "A_0007.png")


# name: (make the bad entry in a folder of good A/b files -> its path, reason fragment)
CASES = {
    "zero-byte file": (lambda r: _write(r / "A_0002.png", b""), "empty file"),
    "truncated png": (lambda r: _write(r / "A_0003.png", png_bytes(noisy())[:300]),
                      "truncated"),
    "text named .png": (lambda r: _write(r / "A_0004.png", b"hello, I am text\n" * 20),
                        "not a readable image"),
    "png with a corrupt header": (_bad_header, "corrupt header"),
    "unsupported format": (lambda r: _write(r / "A_0006.svg", b"<svg></svg>"),
                           "unsupported image format .svg"),
    "label outside the charset": (lambda r: save(r / "label_35_0001.png"),
                                  "is not one of the 62 classes"),
    "label outside the charset, hex code": (lambda r: save(r / "u00e9_0001.png"),
                                            "is not one of the 62 classes"),
    "two-digit digit label": (lambda r: save(r / "07_0001.png"), "character code"),
    "name matching no pattern": (lambda r: save(r / "scan0001.png"),
                                 "does not start with a label"),
    "decompression bomb": (lambda r: _write(r / "A_0008.png", bomb_png()), "too large"),
    "symlink loop": (_symlink_loop, "symlink loop"),
    "dangling symlink": (_dangling, "dangling symlink"),
    "same bytes under two labels": (_conflicting_duplicate, "same bytes"),
}


def good_folder(root) -> None:
    for name in ("A_0001.png", "A_0010.png", "b_0001.png", "b_0002.png"):
        save(root / name)


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_file_stops_the_load_naming_file_and_reason(tmp_path, case):
    make, fragment = CASES[case]
    root = tmp_path / "d"
    good_folder(root)
    bad_path = make(root)
    with pytest.raises(DataError) as error:
        folder.load(root, cache_dir=tmp_path / "c")
    message = str(error.value)
    assert fragment in message and "skip_bad" in message and bad_path in message


@pytest.mark.parametrize("case", sorted(CASES))
def test_skip_bad_leaves_the_file_out_and_lists_it(tmp_path, case):
    make, fragment = CASES[case]
    root = tmp_path / "d"
    good_folder(root)
    bad_path = make(root)
    ds, left_out = folder.load(root, skip_bad=True, cache_dir=tmp_path / "c")
    bad = {s.path: s.reason for s in left_out if s.kind == "bad"}
    assert bad_path in bad and fragment in bad[bad_path]
    expected = 4 - (case == "same bytes under two labels")  # both copies go
    assert len(ds) == expected
    # the cached second load reports the same, and without skip_bad still refuses
    again, left_again = folder.load(root, skip_bad=True, cache_dir=tmp_path / "c")
    assert left_again == left_out and len(again) == expected
    with pytest.raises(DataError, match="skip_bad"):
        folder.load(root, cache_dir=tmp_path / "c")


def test_class_folder_outside_the_charset(tmp_path):
    root = tmp_path / "d"
    for token in ("A", "b", "#"):
        save(root / token / "x.png")
    with pytest.raises(DataError, match=r"'#' from the folder name is not one of"):
        folder.load(root, cache_dir=tmp_path / "c")
    ds, left_out = folder.load(root, skip_bad=True, cache_dir=tmp_path / "c")
    assert len(ds) == 2 and [s.path for s in left_out] == [os.path.join(root, "#", "x.png")]


def test_empty_folder_and_no_usable_image(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="the folder is empty"):
        folder.load(tmp_path / "empty", cache_dir=tmp_path / "c")
    _write(tmp_path / "docs" / "README.txt", b"hi")
    with pytest.raises(DataError, match="no usable image"):
        folder.load(tmp_path / "docs", skip_bad=True, cache_dir=tmp_path / "c")
    _write(tmp_path / "allbad" / "A_1.png", b"")
    with pytest.raises(DataError, match="no usable image"):
        folder.load(tmp_path / "allbad", skip_bad=True, cache_dir=tmp_path / "c")


def test_not_a_folder(tmp_path):
    path = save(tmp_path / "A_1.png")
    with pytest.raises(DataError, match="is a file, not a folder"):
        folder.load(path)
    with pytest.raises(DataError, match="no such folder"):
        folder.load(tmp_path / "nope")


def test_duplicates_with_the_same_label_keep_the_first(tmp_path):
    root = tmp_path / "d"
    good_folder(root)
    shutil.copy(root / "A_0001.png", root / "A_0002.png")
    ds, left_out = folder.load(root, cache_dir=tmp_path / "c")  # not an error
    assert len(ds) == 4
    assert [(s.path, s.kind) for s in left_out] == [(os.path.join(root, "A_0002.png"),
                                                    "duplicate")]
    assert os.path.join(root, "A_0001.png") in left_out[0].reason


def test_one_class_loads_but_training_refuses_it(tmp_path, caplog):
    root = tmp_path / "d"
    for i in range(3):
        save(root / f"A_{i}.png")
    with caplog.at_level(logging.WARNING, logger="charjax"):
        ds, _ = folder.load(root, cache_dir=tmp_path / "c")
    assert len(ds) == 3 and "one class" in caplog.text
    with pytest.raises(DataError, match="at least 2"):
        datasets.require_classes(ds, f"folder:{root}")
    with pytest.raises(DataError, match="at least 2"):
        datasets.load_for_training(
            data_config(source=f"folder:{root}", cache_dir=str(tmp_path / "c")), tmp_path / "w")


def test_load_for_training_writes_the_skipped_list(tmp_path):
    root = tmp_path / "d"
    good_folder(root)
    _write(root / "A_0002.png", b"")
    _write(root / "notes.txt", b"x")
    cfg = data_config(source=f"folder:{root}", skip_bad=True, cache_dir=str(tmp_path / "c"))
    ds, left_out = datasets.load_for_training(cfg, tmp_path / "w")
    assert len(ds) == 4 and len(left_out) == 2
    lines = (tmp_path / "w" / skipped.SKIPPED_FILE).read_text().splitlines()
    assert lines[0].startswith("#")
    rows = sorted(line.split("\t")[:2] for line in lines[1:])
    assert rows == [["bad", os.path.join(root, "A_0002.png")],
                    ["ignored", os.path.join(root, "notes.txt")]]


def test_symlinked_folder_loop_is_read_once(tmp_path):
    root = tmp_path / "d"
    good_folder(root / "A")
    os.symlink("..", root / "A" / "up")  # d/A/up -> d: a loop
    ds, left_out = folder.load(root, cache_dir=tmp_path / "c")
    assert len(ds) == 4
    assert [s.kind for s in left_out] == ["ignored"] and "symlink loop" in left_out[0].reason


def test_hidden_files_are_ignored_and_other_files_listed(tmp_path, caplog):
    root = tmp_path / "d"
    good_folder(root)
    _write(root / ".DS_Store", b"\0\0")
    _write(root / "._A_0001.png", b"AppleDouble")  # macOS metadata, not an image
    _write(root / "labels.csv", b"a,b")
    with caplog.at_level(logging.WARNING, logger="charjax"):
        ds, left_out = folder.load(root, cache_dir=tmp_path / "c")
    assert len(ds) == 4
    assert [(os.path.basename(s.path), s.kind) for s in left_out] == [("labels.csv", "ignored")]
    assert "labels.csv" in caplog.text


def test_a_jpeg_named_png_is_fine(tmp_path):
    root = tmp_path / "d"
    good_folder(root)
    Image.fromarray(glyph()).save(root / "A_0003.png", format="JPEG")
    ds, left_out = folder.load(root, cache_dir=tmp_path / "c")
    assert len(ds) == 5 and not left_out


def test_bad_npz_and_bad_tfds_names_are_data_errors(tmp_path):
    np.savez(tmp_path / "x.npz", pictures=np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(DataError, match="missing key"):
        datasets.load(f"npz:{tmp_path / 'x.npz'}", data_config())
    with pytest.raises(DataError, match="unknown TFDS dataset 'emnist/byfoo'"):
        datasets.load("tfds:emnist/byfoo", data_config())
    with pytest.raises(DataError, match="unknown dataset spec"):
        datasets.load("folderz:/x", data_config())
    assert charset.NUM_CLASSES == 62
