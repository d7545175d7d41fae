"""Augmentation: exactness where it must be exact, scipy agreement, conventions, randomness."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
import scipy.ndimage as ndi
from conftest import default_config

from charjax import augment

H = W = 48


def _images(n: int, seed: int = 0) -> np.ndarray:
    """Random float32 images with exact 0s and 1s, the values most likely to escape [0, 1]."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, H, W, 1), dtype=np.float32)
    x[x < 0.3] = 0.0
    x[x > 0.8] = 1.0
    return x


def _affine(n: int, rotation=0.0, shear=0.0, zoom=(1.0, 1.0), shift=(0.0, 0.0)) -> jnp.ndarray:
    return augment.make_affine(
        jnp.full((n,), rotation),
        jnp.full((n,), shear),
        jnp.tile(jnp.asarray(zoom, jnp.float32), (n, 1)),
        jnp.tile(jnp.asarray(shift, jnp.float32), (n, 1)),
    )


def _config(**fields) -> ml_collections.ConfigDict:
    cfg = default_config().augment
    cfg.enabled = True
    for name, value in fields.items():
        cfg[name] = value
    return cfg


def _dot(row: int, col: int) -> np.ndarray:
    """One image [1, H, W, 1] with a smooth blob at (row, col), so resampling keeps its centroid."""
    rows, cols = np.mgrid[:H, :W]
    blob = np.exp(-((rows - row) ** 2 + (cols - col) ** 2) / (2 * 2.0**2))
    return blob.astype(np.float32)[None, ..., None]


def _centroid(image: np.ndarray) -> np.ndarray:
    """Intensity-weighted (row, col) relative to the image centre."""
    rows, cols = np.mgrid[:H, :W]
    m = np.asarray(image)[0, ..., 0]
    return np.array([(m * rows).sum(), (m * cols).sum()]) / m.sum() - (H - 1) / 2


def test_identity_returns_input_exactly():
    x = _images(4)
    np.testing.assert_array_equal(np.asarray(augment.warp(x, _affine(4))), x)
    eye = jnp.tile(jnp.eye(2, 3), (4, 1, 1))
    np.testing.assert_array_equal(np.asarray(augment.warp(x, eye)), x)


@pytest.mark.parametrize("shift", [(2, -3), (-5, 7), (0, 1)])
def test_integer_shift_is_zero_filled_roll(shift):
    x = _images(2)
    dr, dc = shift
    expected = np.roll(x, shift, axis=(1, 2))
    if dr > 0:
        expected[:, :dr] = 0
    elif dr < 0:
        expected[:, dr:] = 0
    if dc > 0:
        expected[:, :, :dc] = 0
    elif dc < 0:
        expected[:, :, dc:] = 0
    out = augment.warp(x, _affine(2, shift=shift))
    np.testing.assert_array_equal(np.asarray(out), expected)


def test_random_affines_match_scipy_grid_constant():
    x = _images(8, seed=1)
    cfg = _config(max_rotation=40.0, max_shear=20.0, zoom_range=(0.6, 1.5), max_shift=6.0)
    affines = np.asarray(augment.sample_affine(jax.random.key(3), 8, cfg), np.float64)
    out = np.asarray(jax.jit(augment.warp)(x, affines))
    centre = np.array([(H - 1) / 2, (W - 1) / 2])
    for i in range(8):
        matrix, t = affines[i, :, :2], affines[i, :, 2]
        expected = ndi.affine_transform(
            x[i, ..., 0].astype(np.float64),
            matrix,
            offset=t + centre - matrix @ centre,
            order=1,
            mode="grid-constant",
            cval=0.0,
        )
        np.testing.assert_allclose(out[i, ..., 0], expected, atol=1e-4)


def test_positive_rotation_turns_counter_clockwise():
    # A dot above the centre moves to the left when the glyph turns counter-clockwise.
    out = augment.warp(_dot(8, 24), _affine(1, rotation=90.0))
    np.testing.assert_allclose(_centroid(out), [-0.5, -15.5], atol=1e-3)


def test_positive_shear_slants_top_to_the_right():
    out = augment.warp(_dot(8, 24), _affine(1, shear=20.0))
    drow, dcol = _centroid(out) - _centroid(_dot(8, 24))
    assert abs(drow) < 1e-3
    np.testing.assert_allclose(dcol, 15.5 * np.tan(np.deg2rad(20.0)), atol=0.05)


def test_zoom_scales_about_the_centre_per_axis():
    before = _centroid(_dot(10, 36))
    after = _centroid(augment.warp(_dot(10, 36), _affine(1, zoom=(1.2, 0.5))))
    np.testing.assert_allclose(after, before * [1.2, 0.5], atol=0.05)


def test_sampled_parameters_stay_in_their_ranges():
    cfg = _config(max_shear=0.0, zoom_range=(1.0, 1.0), max_rotation=15.0, max_shift=2.0)
    a = np.asarray(augment.sample_affine(jax.random.key(0), 1000, cfg))
    angles = np.degrees(np.arctan2(a[:, 0, 1], a[:, 0, 0]))  # rotation-only A = R^-1
    assert np.abs(angles).max() <= 15.0 + 1e-4 and np.abs(angles).max() > 14.0
    shifts = -np.einsum("nji,nj->ni", a[:, :, :2], a[:, :, 2])  # R^-1 is orthogonal
    assert np.abs(shifts).max() <= 2.0 + 1e-4 and np.abs(shifts).max() > 1.9


def test_prob_picks_about_that_fraction():
    a = np.asarray(augment.sample_affine(jax.random.key(1), 1000, _config(prob=0.3)))
    untouched = np.all(a == np.eye(2, 3, dtype=np.float32), axis=(1, 2)).mean()
    assert 0.63 < untouched < 0.77


@pytest.mark.parametrize("elastic", [False, True])
def test_prob_zero_is_identity(elastic):
    cfg = _config(prob=0.0, elastic=elastic)
    a = augment.sample_affine(jax.random.key(0), 8, cfg)
    np.testing.assert_array_equal(np.asarray(a), np.tile(np.eye(2, 3), (8, 1, 1)))
    x = _images(8)
    np.testing.assert_array_equal(np.asarray(augment.augment_batch(jax.random.key(0), x, cfg)), x)


def test_disabled_returns_the_same_array():
    x = jnp.asarray(_images(2))
    off = default_config(**{"augment.enabled": False}).augment
    assert augment.augment_batch(jax.random.key(0), x, off) is x


@pytest.mark.parametrize("elastic", [False, True])
def test_same_key_same_output_other_key_different(elastic):
    cfg = _config(elastic=elastic)
    x = _images(8)
    base = jax.random.key(42)
    first = np.asarray(augment.augment_batch(jax.random.fold_in(base, 7), x, cfg))
    again = np.asarray(augment.augment_batch(jax.random.fold_in(base, 7), x, cfg))
    other = np.asarray(augment.augment_batch(jax.random.fold_in(base, 8), x, cfg))
    np.testing.assert_array_equal(first, again)
    assert np.abs(first - other).max() > 0.1


def test_inside_jit_with_a_folded_key_matches_outside():
    cfg = _config(elastic=True)
    base = jax.random.key(1)
    step = jax.jit(lambda i, x: augment.augment_batch(jax.random.fold_in(base, i), x, cfg))
    x = _images(8)
    inside = step(3, x)
    outside = augment.augment_batch(jax.random.fold_in(base, 3), x, cfg)
    np.testing.assert_allclose(np.asarray(inside), np.asarray(outside), atol=1e-5)


@pytest.mark.parametrize(
    ("dtype", "elastic"), [(jnp.float32, False), (jnp.bfloat16, True), (jnp.float16, False)]
)
def test_keeps_shape_dtype_and_range(dtype, elastic):
    x = jnp.asarray(_images(8), dtype)
    out = augment.augment_batch(jax.random.key(5), x, _config(elastic=elastic))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_elastic_with_zero_alpha_equals_the_affine_alone():
    x = _images(8)
    key = jax.random.key(9)
    plain = augment.augment_batch(key, x, _config())
    still = augment.augment_batch(key, x, _config(elastic=True, elastic_alpha=0.0))
    np.testing.assert_array_equal(np.asarray(plain), np.asarray(still))
    bent = augment.augment_batch(key, x, _config(elastic=True))
    assert np.abs(np.asarray(bent) - np.asarray(plain)).max() > 0.1


def test_elastic_field_has_simards_variance():
    """Same per-pixel spread as smoothing uniform(-1, 1) noise over an unbounded grid."""
    alpha, sigma = 10.0, 3.0
    rows, cols = augment._elastic_displacement(jax.random.key(0), 400, H, W, alpha, sigma)
    radius = int(np.ceil(4 * sigma))
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    kernel /= kernel.sum()
    expected_std = alpha * np.sqrt(1 / 3) * (kernel**2).sum()  # 2-D: (sum k^2)^2, then sqrt
    for field in (rows, cols):
        np.testing.assert_allclose(float(jnp.std(field)), expected_std, rtol=0.05)


def test_rejects_bad_input_with_clear_errors():
    with pytest.raises(TypeError, match="float images"):
        augment.warp(np.zeros((1, H, W, 1), np.uint8), _affine(1))
    with pytest.raises(ValueError, match="zoom_range"):
        augment.sample_affine(jax.random.key(0), 1, _config(zoom_range=(1.1, 0.9)))
    with pytest.raises(ValueError, match="prob"):
        augment.sample_affine(jax.random.key(0), 1, _config(prob=1.5))
