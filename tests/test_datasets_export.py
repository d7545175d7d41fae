"""`charjax data export` writes the tutorial's layout; folder:OUT reads the same data back."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, data_config
from PIL import Image

from charjax import charset, datasets, framing
from charjax.datasets import export
from charjax.datasets.base import Dataset
from charjax.errors import DataError


def small_dataset() -> Dataset:
    return datasets.load("synthetic", data_config(framing="line", **{
        "synthetic.num_images": 124, "synthetic.seed": 1}))


def in_label_order(ds: Dataset) -> Dataset:
    return ds.subset(np.argsort(ds.labels, kind="stable"))


def test_round_trip_gives_back_the_same_images_and_labels(tmp_path):
    original = small_dataset()
    assert export.export(original, tmp_path / "out") == len(original)
    names = sorted(os.listdir(tmp_path / "out"))
    assert len(names) == len(original) and all(n.endswith(".png") for n in names)
    assert "a" in original.classes and names[0].startswith("label_")
    spec, cache = f"folder:{tmp_path / 'out'}", str(tmp_path / "c")
    # preparation 1 took a line-framed image whole: the same pixels come back
    back, skipped = datasets.load_with_skipped(spec, data_config(framing="line", preparation=1,
                                                                 cache_dir=cache))
    assert skipped == []
    expected = in_label_order(original)
    np.testing.assert_array_equal(back.labels, expected.labels)
    np.testing.assert_array_equal(back.images, expected.images)
    # today's prepares each file as `predict` does
    back = datasets.load(spec, data_config(framing="line", cache_dir=cache))
    np.testing.assert_array_equal(back.labels, expected.labels)
    np.testing.assert_array_equal(back.images[:5], [framing.prepare(
        Image.open(tmp_path / "out" / name), "line").pixels for name in names[:5]])


def test_names_are_case_safe_codes(tmp_path):
    images = np.zeros((2, 48, 48, 1), np.uint8)
    export.export(Dataset(images, np.array([10, 36], np.int32)), tmp_path / "o")
    assert sorted(os.listdir(tmp_path / "o")) == ["label_065_000000.png", "label_097_000001.png"]
    assert Image.open(tmp_path / "o" / "label_065_000000.png").mode == "L"


def test_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "keep.txt").write_text("x")
    with pytest.raises(DataError, match="not empty"):
        export.export(small_dataset(), tmp_path / "o")


def charjax(*args):
    env = {**os.environ, "CHARJAX_CACHE": os.environ["CHARJAX_CACHE"]}
    return subprocess.run([sys.executable, "-m", "charjax", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_cli_data_export_and_preview(tmp_path):
    ds = small_dataset()
    np.savez(tmp_path / "d.npz", images=ds.images[..., 0], labels=ds.labels)
    out = tmp_path / "folder"
    result = charjax("data", "export", "--dataset", f"npz:{tmp_path / 'd.npz'}", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert len(os.listdir(out)) == len(ds) and f"folder:{out}" in result.stdout
    grid = tmp_path / "grid.png"
    result = charjax("data", "preview", "--dataset", f"folder:{out}", "--out", str(grid),
                     "--n", "8")
    assert result.returncode == 0, result.stderr
    assert Image.open(grid).size[0] > 8 * 48


def test_cli_data_skip_bad_and_errors(tmp_path):
    out = tmp_path / "folder"
    export.export(small_dataset(), out)
    (out / "label_065_999999.png").write_bytes(b"")
    result = charjax("data", "export", "--dataset", f"folder:{out}", "--out", str(tmp_path / "x"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "label_065_999999.png: empty file" in result.stderr
    result = charjax("data", "export", "--dataset", f"folder:{out}", "--out", str(tmp_path / "y"),
                     "--config", "configs/default.py", "--config.data.skip_bad=True")
    assert result.returncode == 0, result.stderr
    assert "1 file(s) left out" in result.stderr and "label_065_999999.png" in result.stderr
    result = charjax("data", "--dataset", "synthetic", "--out", str(tmp_path / "z"))
    assert result.returncode == 2 and "sub-command" in result.stderr
    assert len(charset.CLASSES) == 62
