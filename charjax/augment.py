"""Random affine (and optional elastic) augmentation of character images, in pure JAX.

Everything here is a pure function of a PRNG key and static config values, so it runs
inside the jitted train step and a resumed run draws the same distortions as an
uninterrupted one (the key is `jax.random.fold_in(base_key, step)`).

Conventions (all coordinates are pixels in (row, col) order, rows pointing down):

* An affine is a 2x3 matrix ``[A | t]`` that maps an OUTPUT pixel to the INPUT position it
  samples, measured from the image centre ``c = ((H - 1) / 2, (W - 1) / 2)``::

      src = A @ (dst - c) + t + c

  Mapping output to input (not the other way) gives every output pixel exactly one value
  with no holes. The same warp in `scipy.ndimage.affine_transform` terms is
  ``matrix=A, offset=t + c - A @ c, order=1, mode='grid-constant', cval=0``.
* What the random parameters mean, seen on screen: positive rotation turns the glyph
  counter-clockwise; positive shear slants it like italics (the top moves right); zoom > 1
  enlarges it about the centre; positive shift moves it down / right.
* Pixels that sample outside the input read background 0 (white ink on black), and
  bilinear interpolation blends ink with that background at the border.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np


@jax.jit
def make_affine(
    rotation: jnp.ndarray,
    shear: jnp.ndarray,
    zoom: jnp.ndarray,
    shift: jnp.ndarray,
) -> jnp.ndarray:
    """Output->input affines [n, 2, 3] for glyphs zoomed, sheared, rotated, then shifted.

    rotation and shear are [n] in degrees, zoom [n, 2] and shift [n, 2] in (row, col).
    The forward (input->output) map is ``R @ S @ Z`` about the centre plus the shift, so
    the sampling matrix is its inverse: ``A = Z^-1 S^-1 R^-1`` and ``t = -A @ shift``.
    All zeros with zoom 1 gives the exact identity.
    """
    rotation = jnp.deg2rad(jnp.asarray(rotation, jnp.float32))
    slant = jnp.tan(jnp.deg2rad(jnp.asarray(shear, jnp.float32)))
    zoom = jnp.asarray(zoom, jnp.float32)
    shift = jnp.asarray(shift, jnp.float32)
    cos, sin = jnp.cos(rotation), jnp.sin(rotation)
    # Written out rather than as batched 2x2 matmuls, which cost more than the warp on CPU.
    # R^-1 = [[cos, sin], [-sin, cos]] undoes the on-screen counter-clockwise rotation;
    # S^-1 = [[1, 0], [slant, 1]] undoes the slant (forward: col -= slant * row, and rows
    # above the centre are negative, so the top moves right).
    a00, a01 = cos / zoom[:, 0], sin / zoom[:, 0]
    a10, a11 = (slant * cos - sin) / zoom[:, 1], (slant * sin + cos) / zoom[:, 1]
    t0 = -(a00 * shift[:, 0] + a01 * shift[:, 1])
    t1 = -(a10 * shift[:, 0] + a11 * shift[:, 1])
    return jnp.stack([jnp.stack([a00, a01, t0], -1), jnp.stack([a10, a11, t1], -1)], -2)


def sample_affine(key: jax.Array, n: int, cfg: ml_collections.ConfigDict) -> jnp.ndarray:
    """Random output->input affines [n, 2, 3]; identity for images not picked by `cfg.prob`."""
    return _sample_affine(key, n, _settings(cfg))[0]


@jax.jit
def warp(images: jnp.ndarray, affines: jnp.ndarray) -> jnp.ndarray:
    """Apply per-image affines [B, 2, 3] to float images [B, H, W, C] with bilinear sampling.

    Returns the same shape and dtype; outside the input reads 0.
    """
    _check_images(images)
    rows, cols = _source_grid(affines, images.shape[1], images.shape[2])
    return _resample(images, rows, cols)


def augment_batch(
    key: jax.Array, images: jnp.ndarray, cfg: ml_collections.ConfigDict
) -> jnp.ndarray:
    """Randomly distort a batch of float images [B, H, W, C] in [0, 1]: the train-step entry.

    `cfg` fields are read at trace time (static), so the train step can call this
    unconditionally: with `cfg.enabled` False it returns `images` untouched and costs
    nothing. Elastic distortion, when on, is added to the affine's sampling positions, so
    one bilinear pass does both and it touches the same images `cfg.prob` picked.
    """
    _check_images(images)
    if not cfg.enabled:
        return images
    return _augment(key, images, _settings(cfg))


class _Settings(NamedTuple):
    """The config's values as plain hashable Python, so they can be a static jit argument."""

    prob: float
    max_shift: float
    max_rotation: float
    max_shear: float
    zoom_range: tuple[float, float]
    elastic: bool
    elastic_alpha: float
    elastic_sigma: float


def _settings(cfg: ml_collections.ConfigDict) -> _Settings:
    """Validated settings; fails with the field's name, not later with NaNs or a trace error."""
    s = _Settings(
        prob=float(cfg.prob),
        max_shift=float(cfg.max_shift),
        max_rotation=float(cfg.max_rotation),
        max_shear=float(cfg.max_shear),
        zoom_range=tuple(float(z) for z in cfg.zoom_range),
        elastic=bool(cfg.elastic),
        elastic_alpha=float(cfg.elastic_alpha),
        elastic_sigma=float(cfg.elastic_sigma),
    )
    if not 0.0 <= s.prob <= 1.0:
        raise ValueError(f"augment.prob must lie in [0, 1], got {s.prob}")
    for name in ("max_shift", "max_rotation", "max_shear"):
        if getattr(s, name) < 0:
            raise ValueError(
                f"augment.{name} must be >= 0 (it is a +/- range), got {getattr(s, name)}"
            )
    if s.max_shear >= 90:
        raise ValueError(f"augment.max_shear is in degrees and must be < 90, got {s.max_shear}")
    if len(s.zoom_range) != 2 or not 0 < s.zoom_range[0] <= s.zoom_range[1]:
        raise ValueError(
            "augment.zoom_range must be (low, high) with 0 < low <= high, e.g. (0.9, 1.1); "
            f"got {cfg.zoom_range}"
        )
    if s.elastic and (s.elastic_sigma <= 0 or s.elastic_alpha < 0):
        raise ValueError(
            "augment.elastic_sigma must be > 0 and augment.elastic_alpha >= 0, got "
            f"sigma={s.elastic_sigma}, alpha={s.elastic_alpha}"
        )
    return s


def _check_images(images: jnp.ndarray) -> None:
    """Integer images would be silently truncated by the interpolation, so refuse them."""
    if images.ndim != 4:
        raise ValueError(f"expected images [B, H, W, C], got shape {images.shape}")
    if not jnp.issubdtype(images.dtype, jnp.floating):
        raise TypeError(
            f"augment expects float images in [0, 1], got {images.dtype}; "
            "convert first, e.g. images.astype(jnp.float32) / 255"
        )


@functools.partial(jax.jit, static_argnames=("settings",))
def _augment(key: jax.Array, images: jnp.ndarray, settings: _Settings) -> jnp.ndarray:
    """augment_batch's work, jitted on its own so eager callers (tests, previews) compile once."""
    n, h, w = images.shape[:3]
    affine_key, elastic_key = jax.random.split(key)
    affines, picked = _sample_affine(affine_key, n, settings)
    rows, cols = _source_grid(affines, h, w)
    if settings.elastic:
        d_rows, d_cols = _elastic_displacement(
            elastic_key, n, h, w, settings.elastic_alpha, settings.elastic_sigma
        )
        weight = picked.astype(jnp.float32)[:, None, None]
        rows, cols = rows + weight * d_rows, cols + weight * d_cols
    return _resample(images, rows, cols)


@functools.partial(jax.jit, static_argnames=("n", "settings"))
def _sample_affine(key: jax.Array, n: int, settings: _Settings) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Affines [n, 2, 3] plus the bool mask [n] of images `prob` picked for distortion."""
    k_pick, k_rot, k_shear, k_zoom, k_shift = jax.random.split(key, 5)

    def symmetric(k: jax.Array, bound: float, shape: tuple[int, ...]) -> jnp.ndarray:
        return jax.random.uniform(k, shape, jnp.float32, -bound, bound)

    picked = jax.random.uniform(k_pick, (n,)) < settings.prob
    low, high = settings.zoom_range
    zoom = jax.random.uniform(k_zoom, (n, 2), jnp.float32, low, high)
    # Unpicked images get exactly zero parameters, hence an exact identity matrix.
    keep = picked[:, None]
    affines = make_affine(
        jnp.where(picked, symmetric(k_rot, settings.max_rotation, (n,)), 0.0),
        jnp.where(picked, symmetric(k_shear, settings.max_shear, (n,)), 0.0),
        jnp.where(keep, zoom, 1.0),
        jnp.where(keep, symmetric(k_shift, settings.max_shift, (n, 2)), 0.0),
    )
    return affines, picked


def _source_grid(affines: jnp.ndarray, h: int, w: int) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Input (row, col) positions [B, H, W] that every output pixel samples."""
    affines = jnp.asarray(affines, jnp.float32)
    cr, cc = (h - 1) / 2.0, (w - 1) / 2.0
    r = (jnp.arange(h, dtype=jnp.float32) - cr)[None, :, None]
    c = (jnp.arange(w, dtype=jnp.float32) - cc)[None, None, :]
    m = affines[:, :, :, None, None]
    rows = m[:, 0, 0] * r + m[:, 0, 1] * c + m[:, 0, 2] + cr
    cols = m[:, 1, 0] * r + m[:, 1, 1] * c + m[:, 1, 2] + cc
    return rows, cols


def _resample(images: jnp.ndarray, rows: jnp.ndarray, cols: jnp.ndarray) -> jnp.ndarray:
    """Bilinear samples of each image at its own positions, one image per vmap lane."""
    out = jax.vmap(_bilinear)(images.astype(jnp.float32), rows, cols)
    return out.astype(images.dtype)


def _bilinear(image: jnp.ndarray, rows: jnp.ndarray, cols: jnp.ndarray) -> jnp.ndarray:
    """Sample one image [H, W, C] at float positions [H', W'] -> [H', W', C], zero outside.

    The four neighbours come from flat scalar gathers with indices clipped into range (so
    no bounds checks), and a neighbour outside the image gets weight 0 instead of a masked
    value; XLA fuses all of it, coordinates included, into one loop. That is ~10% faster
    than `jax.scipy.ndimage.map_coordinates` on 2 CPU cores (the big win over the 27k img/s
    in API-NOTES is elsewhere: no per-image matrix products), and integer positions give
    weights of exactly 1 and 0, so identity and whole-pixel shifts copy pixels bit-exactly.
    Gathering 2- or 2x2-pixel slices instead looked cheaper but ran 6x slower on XLA:CPU.
    """
    h, w, ch = image.shape
    r_floor, c_floor = jnp.floor(rows), jnp.floor(cols)
    fr, fc = rows - r_floor, cols - c_floor
    r0, c0 = r_floor.astype(jnp.int32), c_floor.astype(jnp.int32)
    r1, c1 = r0 + 1, c0 + 1

    def inside(i: jnp.ndarray, size: int) -> jnp.ndarray:
        return ((i >= 0) & (i < size)).astype(jnp.float32)

    w_r0, w_r1 = (1.0 - fr) * inside(r0, h), fr * inside(r1, h)
    w_c0, w_c1 = (1.0 - fc) * inside(c0, w), fc * inside(c1, w)
    row0, row1 = jnp.clip(r0, 0, h - 1) * w, jnp.clip(r1, 0, h - 1) * w
    col0, col1 = jnp.clip(c0, 0, w - 1), jnp.clip(c1, 0, w - 1)
    flat = image.reshape(h * w, ch)

    def pixel(index: jnp.ndarray) -> jnp.ndarray:
        return flat.at[index].get(mode="promise_in_bounds")

    top = w_c0[..., None] * pixel(row0 + col0) + w_c1[..., None] * pixel(row0 + col1)
    bottom = w_c0[..., None] * pixel(row1 + col0) + w_c1[..., None] * pixel(row1 + col1)
    return w_r0[..., None] * top + w_r1[..., None] * bottom


def _elastic_displacement(
    key: jax.Array, n: int, h: int, w: int, alpha: float, sigma: float
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Simard et al. (2003) displacement fields (rows, cols) [n, H, W] in pixels.

    Simard smooths uniform(-1, 1) noise per pixel with a Gaussian of std `sigma` and scales
    it by `alpha`: ``alpha * G_h @ noise @ G_w^T``. Drawing 2 * H * W uniforms per image and
    two 48x48 matrix products took ~100 ms per 1024 images on 2 CPU cores, 10-20x the warp.
    With the SVD ``G = U S V^T``, the entries of ``V^T noise V`` are uncorrelated with the
    noise's variance, and a Gaussian has only ~12 singular values that matter, so a k x k
    uniform(-1, 1) matrix of coefficients in that basis gives a field with the same
    covariance as Simard's (and, by the central limit theorem, practically the same
    distribution) at a fraction of the cost.
    """
    basis_h, basis_w = _smoothing_basis(h, sigma), _smoothing_basis(w, sigma)
    # (rows|cols, image) leading, alpha folded into a constant, and drawn flat: on CPU the
    # [n, 2, ...] layout ran ~3x slower, and jax 0.10's partitionable threefry compiles a
    # rank-4 draw ~10x slower (4 s) and runs it ~8x slower than the same numbers as a vector.
    shape = (2, n, basis_h.shape[1], basis_w.shape[1])
    coeffs = jax.random.uniform(key, (math.prod(shape),), jnp.float32, -1.0, 1.0).reshape(shape)
    field = jnp.matmul(jnp.matmul((alpha * basis_h).astype(np.float32), coeffs), basis_w.T)
    return field[0], field[1]


@functools.lru_cache(maxsize=8)
def _smoothing_basis(size: int, sigma: float, kept_energy: float = 1.0 - 1e-6) -> np.ndarray:
    """``U_k S_k`` [size, k] of the Gaussian smoothing matrix, k just big enough to matter.

    Built with numpy at trace time, so it enters the compiled graph as a constant.
    """
    u, s, _ = np.linalg.svd(_gaussian_matrix(size, sigma))
    k = int(np.searchsorted(np.cumsum(s**2) / np.sum(s**2), kept_energy)) + 1
    return (u[:, :k] * s[:k]).astype(np.float32)


def _gaussian_matrix(size: int, sigma: float) -> np.ndarray:
    """[size, size + 2r] Gaussian smoothing from a noise grid with an r = 4 sigma margin.

    Smoothing noise that extends past the image keeps the field statistically the same
    everywhere; truncating at the border would make it weaker (zero padding) or stronger
    (renormalised) near the edges.
    """
    radius = math.ceil(4 * sigma)
    dist = np.arange(size, dtype=np.float64)[:, None] - np.arange(-radius, size + radius)[None, :]
    g = np.exp(-0.5 * (dist / sigma) ** 2)
    g[np.abs(dist) > radius] = 0.0
    return g / g.sum(axis=1, keepdims=True)
