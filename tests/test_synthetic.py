"""Tests for the embedded synthetic dataset: reproducible, balanced, framed as promised, cached."""

import logging
import operator
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import tiny_config
from PIL import Image, ImageDraw

from charjax import charset, parallel, validation
from charjax.datasets import hand_glyphs, synthetic
from charjax.errors import ConfigError

N = 4 * charset.NUM_CLASSES + 7  # not a multiple of 62, so the extras are exercised


@pytest.fixture(scope="module")
def line_set():
    return synthetic.generate(N, seed=3)


@pytest.fixture(scope="module")
def per_class_line():
    """16 line-framed samples of every class (enough for per-class medians)."""
    return synthetic.generate(16 * charset.NUM_CLASSES, seed=11, framing="line")


def _ink_box(images: np.ndarray, threshold: int = 128) -> np.ndarray:
    """[N, 4] (top, bottom, left, right) rows/columns holding ink above threshold."""
    ink = images[..., 0] > threshold
    rows, cols = ink.any(axis=2), ink.any(axis=1)
    index = np.arange(images.shape[1])
    return np.stack(
        [
            np.where(rows, index, 10_000).min(1),
            np.where(rows, index, -1).max(1),
            np.where(cols, index, 10_000).min(1),
            np.where(cols, index, -1).max(1),
        ],
        axis=1,
    )


def _of_class(dataset, char: str) -> np.ndarray:
    return dataset.images[dataset.labels == charset.char_to_index(char)]


def _median_height(dataset, char: str) -> float:
    top, bottom = _ink_box(_of_class(dataset, char))[:, :2].T
    return float(np.median(bottom - top))


def _median_bottom(dataset, char: str) -> float:
    return float(np.median(_ink_box(_of_class(dataset, char))[:, 1]))


def test_shape_and_dtype(line_set):
    assert line_set.images.shape == (N, charset.IMAGE_SIZE, charset.IMAGE_SIZE, 1)
    assert line_set.images.dtype == np.uint8
    assert line_set.labels.dtype == np.int32
    assert line_set.classes == charset.CLASSES


def test_same_seed_same_images(line_set):
    again = synthetic.generate(N, seed=3)
    np.testing.assert_array_equal(again.images, line_set.images)
    np.testing.assert_array_equal(again.labels, line_set.labels)


def test_other_seed_other_images(line_set):
    other = synthetic.generate(N, seed=4)
    assert not np.array_equal(other.labels, line_set.labels)
    assert not np.array_equal(other.images, line_set.images)


def test_classes_balanced_and_shuffled(line_set):
    counts = np.bincount(line_set.labels, minlength=charset.NUM_CLASSES)
    assert set(counts) == {N // charset.NUM_CLASSES, N // charset.NUM_CLASSES + 1}
    assert counts.sum() == N
    assert np.mean(np.diff(line_set.labels) == 1) < 0.2  # not in class order


def test_images_are_distinct(line_set):
    flat = line_set.images.reshape(len(line_set), -1)
    assert len(np.unique(flat, axis=0)) == len(line_set)


@pytest.mark.parametrize("framing", synthetic.FRAMINGS)
def test_white_ink_on_black(framing):
    images = synthetic.generate(2 * charset.NUM_CLASSES, seed=5, framing=framing).images
    border = np.concatenate(
        [images[:, 0], images[:, -1], images[:, :, 0], images[:, :, -1]], axis=1
    )
    assert border.mean() < 3
    ink = (images > 128).mean(axis=(1, 2, 3))
    assert ink.min() > 0.01, "every image needs visible ink"
    assert np.median(ink) < 0.35, "ink should be the minority of pixels"
    assert images.max(axis=(1, 2, 3)).min() > 200


def test_line_framing_keeps_letter_size(per_class_line):
    assert _median_height(per_class_line, "o") < 0.85 * _median_height(per_class_line, "O")
    assert _median_height(per_class_line, "x") < 0.85 * _median_height(per_class_line, "X")


def test_line_framing_keeps_descenders(per_class_line):
    def bottom(char: str) -> float:
        return _median_bottom(per_class_line, char)

    assert bottom("p") > bottom("o") + 3
    assert bottom("g") > bottom("a") + 3
    assert abs(bottom("o") - bottom("O")) < 2.5  # both sit on the baseline


def test_fit_framing_fills_and_centres_the_box():
    images = synthetic.generate(3 * charset.NUM_CLASSES, seed=7, framing="fit").images
    top, bottom, left, right = _ink_box(images).T
    longer = np.maximum(bottom - top, right - left) + 1
    # EMNIST's box is about 22 of 28 pixels at half intensity; scaled to 48 that is ~38.
    assert 34 <= np.median(longer) <= 42
    centre = (charset.IMAGE_SIZE - 1) / 2
    # The centre is of all the ink, faint pressure-thinned strokes included (a quarter of full
    # intensity): at half intensity a faint stem or bar can drop out and shift a box.
    top, bottom, left, right = _ink_box(images, threshold=64).T
    for offset in ((top + bottom) / 2 - centre, (left + right) / 2 - centre):
        assert np.percentile(np.abs(offset), 90) <= 2
        assert np.abs(offset).max() <= 4


@pytest.mark.parametrize("framing", synthetic.FRAMINGS)
def test_every_class_has_many_sources(framing):
    table = synthetic._class_table(framing)
    assert len(table) == charset.NUM_CLASSES
    assert min(len(index) for index, _ in table) >= 10
    for _, prob in table:
        np.testing.assert_allclose(prob.sum(), 1.0)


def test_fonts_without_the_characters_are_skipped():
    assert synthetic._open_font("DejaVuSans.ttf") is not None
    assert synthetic._open_font("STIXNonUni.ttf") is None  # symbols only
    assert synthetic._open_font("LastResortHE-Regular.ttf") is None  # one box for every char


def _sources_of(framing: str, char: str) -> set[str]:
    bank = synthetic._bank()
    index, _ = synthetic._class_table(framing)[charset.char_to_index(char)]
    return {bank.names[i] for i in index}


def test_line_framing_keeps_look_alikes_in_one_class():
    assert "DejaVuSans.ttf" in _sources_of("line", "l")
    assert "DejaVuSans.ttf" not in _sources_of("line", "I")  # its I is the same bare bar as its l
    assert "hand-I0" not in _sources_of("line", "I")  # the bare hand-printed I, likewise
    assert "hand-10" not in _sources_of("line", "1")


def test_fit_framing_keeps_look_alikes_in_every_class():
    # A bare bar is an l, an I or a 1 in real handwriting: each class keeps its own.
    for name, char in (("DejaVuSans.ttf", "I"), ("hand-I0", "I"), ("hand-10", "1")):
        assert name in _sources_of("fit", char)


def test_hand_forms_cover_every_class_and_stay_in_the_line_box():
    assert set(hand_glyphs.HAND_GLYPHS) == set(charset.CLASSES)
    for char, forms in hand_glyphs.HAND_GLYPHS.items():
        for spec, weight in forms:
            assert weight > 0
            points = np.concatenate(synthetic._parse_hand(spec))
            assert points[:, 1].min() >= -13 and points[:, 1].max() <= 17.5, char
            assert np.abs(points[:, 0]).max() <= 10, char


def test_family_shares_follow_the_table():
    bank = synthetic._bank()
    table = synthetic._class_table("fit")
    labels = np.repeat(np.arange(charset.NUM_CLASSES), 200)
    glyph = synthetic._pick_glyphs(table, labels, np.random.default_rng(0))
    families = np.array(bank.families)[glyph]
    special = np.isin(labels, [charset.char_to_index(c) for c in synthetic._CLASS_FAMILY_SHARE])
    for family, share in synthetic._FAMILY_SHARE.items():
        assert abs(np.mean(families[~special] == family) - share) < 0.03, family
    for char, shares in synthetic._CLASS_FAMILY_SHARE.items():
        mine = families[labels == charset.char_to_index(char)]
        for family, share in shares.items():
            assert abs(np.mean(mine == family) - share) < 0.08, (char, family)


def _bare_bar_share(char: str) -> float:
    """How much of a class's fit-framed sampling weight goes to glyphs that are a bare bar."""
    bank = synthetic._bank()
    bar = bank.images[bank.names.index("hand-l0")]
    index, prob = synthetic._class_table("fit")[charset.char_to_index(char)]
    bare = [synthetic._shape_difference(bank.images[g], bar) < 0.4 for g in index]
    return float(prob[np.array(bare)].sum())


def test_a_bare_downstroke_is_drawn_most_often_as_a_one():
    # People print 1 as a bare stroke; l often gets a tail and I its bars. A balanced set
    # reads a bare stroke as whichever class draws it most, which must be the 1.
    ones = _bare_bar_share("1")
    assert ones > 0.45
    assert ones > _bare_bar_share("l") + 0.05
    assert ones > _bare_bar_share("I") + 0.05


def test_thicken_grows_and_erosion_thins():
    images = np.zeros((2, charset.IMAGE_SIZE, charset.IMAGE_SIZE), np.float32)
    images[:, 10:38, 22:26] = 1.0  # a bar four pixels wide
    radius = np.stack([np.full((48, 48), 1.5), np.full((48, 48), -1.0)]).astype(np.float32)
    out = synthetic._thicken(images, radius)
    assert out[0].sum() > images[0].sum() * 1.4
    assert out[1].sum() < images[1].sum() * 0.8
    assert out[1, 20, 23:25].min() > 0.99  # the core of the bar survives one step of erosion


def test_lower_resolution_keeps_the_ink_and_softens_it():
    images = np.zeros((1, charset.IMAGE_SIZE, charset.IMAGE_SIZE), np.float32)
    images[0, 8:40, 20:23] = 1.0
    out = synthetic._lower_resolution(images.copy(), np.array([24]))
    assert abs(out.sum() - images.sum()) < 0.05 * images.sum()
    assert 0 < out.max() <= 1.0 + 1e-5
    assert np.count_nonzero(out > 0.05) > np.count_nonzero(images)  # edges spread


def test_generation_is_fast_enough():
    synthetic.generate(charset.NUM_CLASSES, seed=0, framing="fit")  # builds the glyph bank
    start = time.perf_counter()
    synthetic.generate(10 * charset.NUM_CLASSES, seed=1, framing="fit")
    rate = 10 * charset.NUM_CLASSES / (time.perf_counter() - start)
    # >= 2,000 images/s on a quiet 2-core machine; this only catches an order-of-magnitude slip.
    assert rate > 200


def test_load_caches_and_reuses(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="charjax.datasets.synthetic")
    first = synthetic.load(N, seed=2, framing="fit", cache_dir=tmp_path)
    path = synthetic.cache_path(N, 2, "fit", tmp_path)
    assert path.is_file()
    assert str(path) in caplog.text
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary files left

    def fail(*args, **kwargs):
        raise AssertionError("load() regenerated instead of reading the cache")

    monkeypatch.setattr(synthetic, "generate", fail)
    second = synthetic.load(N, seed=2, framing="fit", cache_dir=tmp_path)
    np.testing.assert_array_equal(second.images, first.images)
    np.testing.assert_array_equal(second.labels, first.labels)


def test_cache_key_separates_requests(tmp_path):
    paths = {
        synthetic.cache_path(124, 0, "line", tmp_path),
        synthetic.cache_path(124, 0, "fit", tmp_path),
        synthetic.cache_path(124, 1, "line", tmp_path),
        synthetic.cache_path(186, 0, "line", tmp_path),
    }
    assert len(paths) == 4
    assert all(f"v{synthetic.GENERATOR_VERSION}" in p.name for p in paths)


def test_cache_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("CHARJAX_CACHE", str(tmp_path))
    assert synthetic.cache_path(124, 0, "line").parent == tmp_path


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_damaged_cache_is_regenerated(tmp_path, damage):
    expected = synthetic.load(124, seed=0, cache_dir=tmp_path)
    path = synthetic.cache_path(124, 0, "line", tmp_path)
    good = path.read_bytes()
    path.write_bytes(b"not an npz file" if damage == "garbage" else good[: len(good) // 2])
    dataset = synthetic.load(124, seed=0, cache_dir=tmp_path)
    np.testing.assert_array_equal(dataset.images, expected.images)
    with np.load(path) as rewritten:  # the damaged file was replaced by a whole one
        np.testing.assert_array_equal(rewritten["images"], expected.images)


def test_unwritable_cache_still_returns_the_set(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    dataset = synthetic.load(124, seed=0, cache_dir=blocker / "cache")
    assert len(dataset) == 124
    assert "could not cache" in caplog.text


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(num_images=124, seed=0, framing="centred"), "framing"),
        (dict(num_images=61, seed=0), "at least 62"),
        (dict(num_images=124, seed=-1), "seed"),
        (dict(num_images=124.0, seed=0), "integer"),
        (dict(num_images=124, seed=0, workers=-1), "workers"),
        (dict(num_images=124, seed=0, workers=1.5), "workers"),
    ],
)
def test_bad_arguments_raise(kwargs, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        synthetic.generate(**kwargs)
    with pytest.raises(ValueError, match=message):
        synthetic.load(**kwargs, cache_dir=tmp_path)
    assert not any(tmp_path.iterdir())


def test_worker_processes_draw_the_same_bytes(caplog):
    caplog.set_level(logging.INFO)
    # Small blocks, so the set is several tasks; here=False leaves all of them to the two
    # started worker processes (which receive the glyph bank this process built).
    alone = synthetic._generate(300, 4, "fit", workers=1, chunk=16)
    pooled = synthetic._generate(300, 4, "fit", workers=2, chunk=16, here=False)
    np.testing.assert_array_equal(pooled.images, alone.images)
    np.testing.assert_array_equal(pooled.labels, alone.labels)
    assert "finishing their tasks here" not in caplog.text  # the workers did the drawing
    assert "images/s, 2 workers)" in caplog.text and "images/s, 1 worker)" in caplog.text


def test_a_failing_task_fails_the_run():
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        list(parallel.run(operator.truediv, [(1, 1), (1, 0), (2, 1)], 2, here=False))



def test_a_script_without_the_main_guard_still_finishes(tmp_path):
    # Spawned workers re-run such a script and stop at start-up; the tasks (here large
    # ones) must not be stuck in the pipe to a worker that never reads them.
    script = tmp_path / "unguarded.py"
    script.write_text(
        "from charjax import parallel\n"
        "print(sorted(parallel.run(len, [(bytes(300_000),)] * 4, 2)))\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == str([(i, 300_000) for i in range(4)])

@pytest.mark.parametrize(
    "env, requested, num_images, expected",
    [
        ("", 0, 62 * 2400, 6),  # auto: every core this process may use
        ("", 3, 62 * 2400, 3),
        ("2", 0, 62 * 2400, 2),  # CHARJAX_WORKERS caps auto ...
        ("2", 4, 62 * 2400, 2),  # ... and an explicit request
        ("8", 3, 62 * 2400, 3),
        ("", 0, 16 * 62, 1),  # two blocks: not worth starting a process
        ("", 0, 512 * 8, 2),  # one worker per four blocks at most
    ],
)
def test_worker_count(monkeypatch, env, requested, num_images, expected):
    monkeypatch.setattr(parallel, "cores", lambda: 6)
    monkeypatch.setenv(parallel.ENV, env)
    assert synthetic.worker_count(num_images, requested) == expected


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_a_bad_worker_cap_is_one_line(monkeypatch, value):
    monkeypatch.setenv(parallel.ENV, value)
    for call in (lambda: synthetic.generate(124, seed=0),
                 lambda: validation.check_config(tiny_config())):
        with pytest.raises(ConfigError, match=parallel.ENV) as error:
            call()
        assert "\n" not in str(error.value)


def test_the_workers_field_is_checked():
    config = tiny_config()
    config.data.synthetic.workers = -1
    with pytest.raises(ConfigError, match="data.synthetic.workers"):
        validation.check_config(config)


def test_pixel_batches_do_not_change_the_pixels(monkeypatch):
    whole = synthetic._render_chunk(np.arange(150) % 62, 1, 0, "fit")
    monkeypatch.setattr(synthetic, "_PIXEL_BATCH", 7)
    np.testing.assert_array_equal(synthetic._render_chunk(np.arange(150) % 62, 1, 0, "fit"), whole)


def _jitter_one_by_one(glyphs, amplitudes, overshoots, lifts, rng):
    """_jitter as a plain loop over glyphs and strokes: what the chunk-wide arithmetic must
    reproduce bit for bit (it keeps the pixels of every set drawn before it)."""
    out = []
    for paths, amplitude, overshoot, lift in zip(
        glyphs, amplitudes, overshoots, lifts, strict=True
    ):
        points = np.concatenate(paths)
        k = rng.normal(0.0, 1.0, (2, 2, 2)) * (2 * np.pi / 40.0)
        phase = rng.uniform(0, 2 * np.pi, (2, 2))
        waves = np.sin(np.einsum("pc,awc->paw", points, k) + phase)
        moved = points + amplitude * waves.mean(axis=2)
        strokes, start = [], 0
        for path in paths:
            stroke = moved[start : start + len(path)]
            start += len(path)
            angle = rng.normal(0.0, 0.05)
            cos, sin = np.cos(angle), np.sin(angle)
            centre = stroke.mean(axis=0)
            turned = (stroke - centre) @ np.array([[cos, sin], [-sin, cos]])
            stroke = turned * np.exp(rng.normal(0.0, 0.05)) + centre + rng.normal(0.0, 0.6, 2)
            amounts = overshoot * rng.normal(0.0, 1.0, 2)
            if len(stroke) >= 2:
                stroke = stroke.copy()
                for end, inner, amount in ((0, 1, amounts[0]), (-1, -2, amounts[1])):
                    step = stroke[end] - stroke[inner]
                    length = float(np.hypot(*step))
                    if length > 1e-6:
                        move = max(float(amount), -0.7 * length)
                        stroke[end] = stroke[end] + step / length * move
            strokes.append(stroke)
        if lift:
            longest = max(range(len(strokes)), key=lambda i: len(strokes[i]))
            stroke = strokes[longest]
            if len(stroke) >= 6:
                cut = int(rng.integers(2, len(stroke) - 2))
                second = stroke[cut - 1 :] + rng.normal(0.0, 1.0, 2)
                strokes[longest : longest + 1] = [stroke[:cut], second]
        out.append(strokes)
    return out


def test_chunk_wide_jitter_matches_the_plain_loop():
    bank = synthetic._bank()
    drawn = [g for g in range(len(bank.strokes)) if bank.strokes[g] is not None]
    pick = np.random.default_rng(0).choice(drawn, 300)
    glyphs = [bank.strokes[g] for g in pick]
    glyphs.append((np.array([[30.0, 30.0]]), np.array([[1.0, 2.0], [1.0, 2.0]])))  # a dot
    knobs = np.random.default_rng(1)
    args = (knobs.uniform(0.4, 1.8, 301), knobs.uniform(0, 2, 301), knobs.uniform(size=301) < 0.5)
    ours = synthetic._jitter(glyphs, *args, np.random.default_rng(2))
    plain = _jitter_one_by_one(glyphs, *args, np.random.default_rng(2))
    assert len(ours) == len(plain)
    for mine, theirs in zip(ours, plain, strict=True):
        assert len(mine) == len(theirs)
        for a, b in zip(mine, theirs, strict=True):
            np.testing.assert_array_equal(a, b)


def test_curved_lines_match_pillows():
    rng = np.random.default_rng(0)
    for width in range(1, 11):
        for length in (2, 3, 12, 40):
            turns = rng.normal(0, 0.6, length).cumsum()
            steps = np.stack([np.cos(turns), np.sin(turns)], 1) * rng.uniform(0.5, 4, (length, 1))
            steps[length // 2 :: 3] = steps[length // 2 - 1]  # some straight runs
            points = (20 + steps.cumsum(axis=0)).tolist()
            ours, pillows = Image.new("L", (72, 72)), Image.new("L", (72, 72))
            synthetic._curved_line(ImageDraw.Draw(ours), points, width)
            ImageDraw.Draw(pillows).line(
                [tuple(p) for p in points], fill=255, width=width, joint="curve"
            )
            assert ours.tobytes() == pillows.tobytes(), (width, length)
