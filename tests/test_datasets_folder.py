"""folder:PATH — both layouts, label tokens, any image mode, caching, parallel decoding."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest
from conftest import data_config
from PIL import Image

from charjax import charset, datasets
from charjax.datasets import folder
from charjax.errors import DataError

_counter = iter(range(1, 1_000_000))


def glyph(size: tuple[int, int] = (20, 24), dark_on_light: bool = False) -> np.ndarray:
    """A distinct (never byte-identical) white-on-black blob, uint8 [H, W]."""
    rng = np.random.default_rng(next(_counter))
    h, w = size
    img = np.zeros(size, np.uint8)
    img[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = rng.integers(150, 256, (3 * h // 4 - h // 4, 1))
    return 255 - img if dark_on_light else img


def save(path, array=None, **kw) -> str:
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(glyph() if array is None else array).save(path, **kw)
    return path


def make_names_folder(root, chars="AbZ7", per_class=3) -> dict[str, str]:
    """Labelled file names in every token form; returns {file: char}."""
    made = {}
    for c in chars:
        for i in range(per_class):
            name = [f"{c}_{i:04d}.png", f"label_{ord(c)}_{i:04d}.png",
                    f"u{ord(c):04x}-{i}.png"][i % 3]
            made[save(os.path.join(root, name))] = c
    return made


def load(path, **kw):
    kw.setdefault("cache_dir", os.path.join(os.fspath(path) + "-cache"))
    return folder.load(path, **kw)


def test_label_tokens():
    assert folder.token_to_char("A") == "A"
    assert folder.token_to_char("97") == "a"
    assert folder.token_to_char("u0061") == "a"
    assert folder.token_to_char("065") == "A"
    assert folder.token_to_char("abc") is None
    assert folder.label_token("a") == "097" and folder.token_to_char("048") == "0"


def test_file_name_layout_reads_labels_in_every_form(tmp_path):
    made = make_names_folder(tmp_path / "d")
    ds, skipped = load(tmp_path / "d")
    assert skipped == []
    assert ds.images.shape == (12, 48, 48, 1) and ds.images.dtype == np.uint8
    expected = sorted(charset.char_to_index(c) for c in made.values())
    assert sorted(ds.labels.tolist()) == expected
    # a, A both present would collide on case-insensitive disks; codes keep them apart
    assert set(ds.labels.tolist()) == {charset.char_to_index(c) for c in "AbZ7"}


def test_class_folder_layout_by_character_and_by_code(tmp_path):
    root = tmp_path / "d"
    for token in ("A", "97", "u0062", "3"):  # A, a, b, 3
        for i in range(2):
            save(root / token / "nested" / f"img{i}.png")
    ds, skipped = load(root)
    assert skipped == []
    values, counts = np.unique(ds.labels, return_counts=True)
    counts = {charset.CLASSES[i]: n for i, n in zip(values, counts, strict=True)}
    assert counts == {"A": 2, "a": 2, "b": 2, "3": 2}


def test_nested_non_class_folders_use_file_names(tmp_path):
    root = tmp_path / "d"
    save(root / "train" / "A_1.png")
    save(root / "test" / "b_1.png")
    ds, _ = load(root)
    assert sorted(charset.CLASSES[i] for i in ds.labels) == ["A", "b"]


def test_custom_pattern(tmp_path):
    root = tmp_path / "d"
    save(root / "img-0001-class-A.png")
    save(root / "img-0002-class-98.png")
    ds, _ = load(root, pattern=r"img-\d+-class-(?P<label>.+)")
    assert sorted(charset.CLASSES[i] for i in ds.labels) == ["A", "b"]
    with pytest.raises(DataError, match="named group"):
        load(root, pattern=r"img-(\d+)")
    with pytest.raises(DataError, match="not a valid regex"):
        load(root, pattern=r"img-(")


def test_any_size_mode_and_polarity_becomes_48x48_white_on_black(tmp_path):
    root = tmp_path / "d"
    base = np.zeros((60, 40), np.uint8)
    base[10:50, 15:25] = 255  # a bar, white on black
    dark = 255 - base
    root.mkdir()
    Image.fromarray(dark).convert("RGB").save(root / "A_rgb.png")
    Image.fromarray(base).convert("P").save(root / "A_palette.png")
    Image.fromarray(dark).convert("1").save(root / "A_bilevel.png")
    rgba = np.zeros((60, 40, 4), np.uint8)
    rgba[10:50, 15:25] = (0, 0, 0, 255)  # black ink on a transparent sheet
    Image.fromarray(rgba).save(root / "A_rgba.png")
    Image.fromarray(base.astype(np.uint16) * 257).save(root / "A_16bit.png")
    Image.fromarray(dark).save(root / "A_jpeg.jpg", quality=95)
    Image.fromarray(dark).save(root / "A_bitmap.bmp")
    Image.fromarray(base.astype(np.float32) / 255).save(root / "A_float.tiff")
    Image.fromarray(np.kron(dark, np.ones((20, 20), np.uint8))).save(root / "A_large.png")
    ds, skipped = load(root)
    assert skipped == [] and len(ds) == 9
    for image in ds.images[..., 0]:
        assert image[24, 24] > 200, "the bar is white ink after normalisation"
        assert image[2, 2] < 30 and image[24, 4] < 30, "background is black, padding too"


def test_second_load_comes_from_the_cache_and_changes_invalidate_it(tmp_path, monkeypatch):
    make_names_folder(tmp_path / "d")
    first, _ = load(tmp_path / "d")

    def no_decoding(*args):
        raise AssertionError("decoded although the folder did not change")

    monkeypatch.setattr(folder, "decode_files", no_decoding)
    second, _ = load(tmp_path / "d")
    np.testing.assert_array_equal(first.images, second.images)
    np.testing.assert_array_equal(first.labels, second.labels)
    save(tmp_path / "d" / "q_0001.png")
    with pytest.raises(AssertionError, match="decoded although"):
        load(tmp_path / "d")


def test_parallel_decoding_matches_serial_and_reports_progress(tmp_path, monkeypatch, caplog):
    root = tmp_path / "d"
    make_names_folder(root, chars="0123456789", per_class=60)  # 600 files, 3 chunks
    serial, _ = folder.load(root, cache_dir=tmp_path / "c1", workers=1)
    monkeypatch.setattr(folder, "PROGRESS_EVERY_S", 0.0)
    with caplog.at_level(logging.INFO, logger="charjax.datasets.folder"):
        parallel, _ = folder.load(root, cache_dir=tmp_path / "c2", workers=2)
    np.testing.assert_array_equal(serial.images, parallel.images)
    np.testing.assert_array_equal(serial.labels, parallel.labels)
    progress = [r.getMessage() for r in caplog.records if "images/s, ETA" in r.getMessage()]
    assert progress, "progress lines with rate and ETA are logged"


def test_parallel_decoding_stops_on_a_bad_file(tmp_path):
    root = tmp_path / "d"
    make_names_folder(root, chars="0123456789", per_class=30)
    (root / "5_bad.png").write_bytes(b"not a png at all")
    with pytest.raises(DataError, match="5_bad.png"):
        folder.load(root, cache_dir=tmp_path / "c", workers=2)


def test_spec_dispatch_and_config_options(tmp_path):
    make_names_folder(tmp_path / "d")
    cfg = data_config(cache_dir=str(tmp_path / "c"))
    ds = datasets.load(f"folder:{tmp_path / 'd'}", cfg)
    assert len(ds) == 12
    with pytest.raises(DataError, match="no such folder"):
        datasets.load(f"folder:{tmp_path / 'missing'}", cfg)


def test_a_configured_pattern_replaces_the_built_in_one(tmp_path):
    root = tmp_path / "d"
    root.mkdir()
    for i, char in enumerate("ab"):
        Image.fromarray(np.full((48, 48), 255 * i, np.uint8)).save(root / f"x{char}.png")
    with pytest.raises(DataError, match="does not start with a label"):
        datasets.load(f"folder:{root}", data_config(cache_dir=str(tmp_path / "c")))
    ds = datasets.load(f"folder:{root}", data_config(cache_dir=str(tmp_path / "c"),
                                                     **{"folder.pattern": "x(?P<label>.)"}))
    assert sorted(ds.labels.tolist()) == [36, 37]


def test_a_mixed_layout_is_refused_naming_the_files_that_disagree(tmp_path):
    root = tmp_path / "d"
    for i in range(10):
        save(root / "A" / f"{i}.png")  # names that would read as the digits 0-9
    save(root / "B" / "0.png")
    save(root / "stray.png")
    with pytest.raises(DataError, match=r"mixed layout: .*image files at its top \(stray.png\)"):
        load(root)


def test_skip_bad_never_changes_how_a_mixed_folder_is_labelled(tmp_path):
    root = tmp_path / "d"
    for i in range(10):
        save(root / "A" / f"{i}.png")
    save(root / "B" / "0.png")
    save(root / "stray.png")
    ds, skipped = load(root, skip_bad=True)
    assert sorted(charset.CLASSES[i] for i in ds.labels) == ["A"] * 10 + ["B"]
    assert [(os.path.basename(s.path), s.kind) for s in skipped] == [("stray.png", "bad")]
    assert "class sub-folders" in skipped[0].reason


def test_a_regex_in_a_message_is_printed_as_typed(tmp_path):
    root = tmp_path / "d"
    save(root / "scan.png")
    pattern = r"(?P<label>\w)_\d+"
    with pytest.raises(DataError) as error:
        load(root, pattern=pattern)
    assert pattern in str(error.value) and "\\\\" not in str(error.value)
