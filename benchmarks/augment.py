"""Random affine augmentation throughput: charjax's jitted warp vs the CPU ways to do it.

Times one batch of 48x48 float images, rotated, sheared, zoomed and shifted by fresh
random parameters each time (the ranges of configs/default.py's `augment` block, or of
the config given with --config):

* charjax: `augment.augment_batch` under jax.jit, parameter sampling included;
* scipy: the tutorial's way, a Python loop of `scipy.ndimage.affine_transform(order=1)`,
  one image at a time (parameters drawn and the matrix built per image, as Keras'
  ImageDataGenerator does);
* numpy: the same bilinear gather as charjax, vectorised over the batch in numpy;
* jax map_coordinates: `jax.vmap(jax.scipy.ndimage.map_coordinates)`, the plain JAX way;
* charjax + elastic: with the optional elastic distortion on.

Each figure is the median of `--repeats` timed runs after one warm-up run (which also
compiles); the methods take turns so that load from other processes hits them alike.
Before timing, the three CPU ways are checked against each other on the
same matrices, so the numbers compare equal work.

    python benchmarks/augment.py --json augment.json [--config emnist_vgg]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import scipy
import scipy.ndimage as ndi

from charjax import augment, config_files

SIZE = 48


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=1024, help="images per batch")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per method")
    parser.add_argument("--json", help="also write the figures and machine info here")
    parser.add_argument("--config", default="default", help="config whose augment ranges to use")
    args = parser.parse_args()

    cfg = config_files.load(args.config).augment
    cfg.enabled = True
    images = np.random.default_rng(0).random((args.batch, SIZE, SIZE, 1), dtype=np.float32)
    check_agreement(images[:16], cfg)

    methods = {
        "charjax": charjax_runner(images, cfg, elastic=False),
        "scipy": scipy_runner(images, cfg),
        "numpy": numpy_runner(images, cfg),
        "jax_map_coordinates": map_coordinates_runner(images, cfg),
        "charjax_elastic": charjax_runner(images, cfg, elastic=True),
    }
    seconds = median_seconds(methods, args.repeats)
    results = {f"{name}_images_per_s": args.batch / s for name, s in seconds.items()}

    print(f"batch {args.batch} of {SIZE}x{SIZE}, median of {args.repeats} runs after warm-up")
    print(f"{'method':<22}{'ms/batch':>10}{'images/s':>12}{'x scipy':>9}")
    for name, s in seconds.items():
        ratio = seconds["scipy"] / s
        print(f"{name:<22}{s * 1e3:>10.2f}{args.batch / s:>12,.0f}{ratio:>9.1f}")

    if args.json:
        report = {
            **results,
            "batch": args.batch,
            "repeats": args.repeats,
            "image_size": SIZE,
            "machine": machine_info(),
        }
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
        print(f"wrote {args.json}")


def median_seconds(methods: dict[str, Callable[[int], object]], repeats: int) -> dict[str, float]:
    """Median wall time of each `run(i)` over `repeats` calls, after one untimed warm-up.

    The methods take turns (round robin), so a burst of load from other processes on a
    shared machine slows all of them alike instead of skewing whichever ran at the time.
    """
    for run in methods.values():
        run(0)
    times: dict[str, list[float]] = {name: [] for name in methods}
    for i in range(1, repeats + 1):
        for name, run in methods.items():
            start = time.perf_counter()
            run(i)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def charjax_runner(images: np.ndarray, cfg, elastic: bool) -> Callable[[int], object]:
    """augment_batch jitted as the train step uses it, with key = fold_in(base, step)."""
    cfg = cfg.copy_and_resolve_references()
    cfg.elastic = elastic
    base = jax.random.key(0)
    step = jax.jit(lambda i, x: augment.augment_batch(jax.random.fold_in(base, i), x, cfg))
    device_images = jax.device_put(images)
    return lambda i: step(i, device_images).block_until_ready()


def scipy_runner(images: np.ndarray, cfg) -> Callable[[int], object]:
    """Per image: draw parameters, build the matrix, call scipy (the tutorial's loop)."""
    rng = np.random.default_rng(1)

    def run(_: int) -> np.ndarray:
        out = np.empty_like(images)
        for i in range(len(images)):
            out[i, ..., 0] = scipy_warp(images[i, ..., 0], numpy_affines(rng, 1, cfg)[0])
        return out

    return run


def numpy_runner(images: np.ndarray, cfg) -> Callable[[int], object]:
    """All parameters at once, then one vectorised bilinear gather over the batch."""
    rng = np.random.default_rng(2)
    return lambda _: numpy_warp(images, numpy_affines(rng, len(images), cfg))


def map_coordinates_runner(images: np.ndarray, cfg) -> Callable[[int], object]:
    """vmap of jax.scipy.ndimage.map_coordinates on charjax's sampled matrices."""

    def one(image: jnp.ndarray, affine: jnp.ndarray) -> jnp.ndarray:
        rows, cols = source_grid(affine, jnp)
        return jax.scipy.ndimage.map_coordinates(image, [rows, cols], order=1, mode="constant")

    base = jax.random.key(0)

    @jax.jit
    def step(i: int, x: jnp.ndarray) -> jnp.ndarray:
        affines = augment.sample_affine(jax.random.fold_in(base, i), x.shape[0], cfg)
        return jax.vmap(one)(x[..., 0], affines)[..., None]

    device_images = jax.device_put(images)
    return lambda i: step(i, device_images).block_until_ready()


def scipy_warp(image: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """One [H, W] image through scipy, with charjax's centred 2x3 turned into matrix + offset."""
    matrix, t = affine[:, :2], affine[:, 2]
    centre = np.array([(SIZE - 1) / 2, (SIZE - 1) / 2])
    return ndi.affine_transform(
        image, matrix, offset=t + centre - matrix @ centre, order=1, mode="grid-constant", cval=0.0
    )


def numpy_affines(rng: np.random.Generator, n: int, cfg) -> np.ndarray:
    """charjax's parameter distribution and matrix convention, in numpy (float64)."""
    rot = np.deg2rad(rng.uniform(-cfg.max_rotation, cfg.max_rotation, n))
    slant = np.tan(np.deg2rad(rng.uniform(-cfg.max_shear, cfg.max_shear, n)))
    zoom = rng.uniform(*cfg.zoom_range, (n, 2))
    shift = rng.uniform(-cfg.max_shift, cfg.max_shift, (n, 2))
    cos, sin = np.cos(rot), np.sin(rot)
    a = np.empty((n, 2, 3))
    a[:, 0, 0], a[:, 0, 1] = cos / zoom[:, 0], sin / zoom[:, 0]
    a[:, 1, 0], a[:, 1, 1] = (slant * cos - sin) / zoom[:, 1], (slant * sin + cos) / zoom[:, 1]
    a[:, :, 2] = -np.einsum("nij,nj->ni", a[:, :, :2], shift)
    return a


def source_grid(affine, xp):
    """Input (row, col) positions of every output pixel for one 2x3 affine (numpy or jnp)."""
    c = (SIZE - 1) / 2
    r, q = xp.meshgrid(xp.arange(SIZE) - c, xp.arange(SIZE) - c, indexing="ij")
    rows = affine[0, 0] * r + affine[0, 1] * q + affine[0, 2] + c
    cols = affine[1, 0] * r + affine[1, 1] * q + affine[1, 2] + c
    return rows, cols


def numpy_warp(images: np.ndarray, affines: np.ndarray) -> np.ndarray:
    """Bilinear warp of [B, H, W, 1] in numpy: four flat gathers, out-of-image weights zeroed."""
    b = len(images)
    rows, cols = source_grid(affines.transpose(1, 2, 0)[..., None, None], np)  # [B, H, W]
    r0, c0 = np.floor(rows), np.floor(cols)
    fr, fc = (rows - r0).astype(np.float32), (cols - c0).astype(np.float32)
    r0, c0 = r0.astype(np.int64), c0.astype(np.int64)
    flat = images.reshape(-1)
    base = (np.arange(b) * SIZE * SIZE)[:, None, None]
    out = np.zeros(rows.shape, np.float32)
    for dr, wr in ((0, 1 - fr), (1, fr)):
        for dc, wc in ((0, 1 - fc), (1, fc)):
            r, c = r0 + dr, c0 + dc
            inside = (r >= 0) & (r < SIZE) & (c >= 0) & (c < SIZE)
            index = base + np.clip(r, 0, SIZE - 1) * SIZE + np.clip(c, 0, SIZE - 1)
            out += np.where(inside, wr * wc, 0.0) * flat[index]
    return out[..., None]


def check_agreement(images: np.ndarray, cfg) -> None:
    """charjax, scipy and numpy give the same pixels for the same matrices (else stop)."""
    affines = numpy_affines(np.random.default_rng(3), len(images), cfg)
    ours = np.asarray(augment.warp(images, affines.astype(np.float32)))
    ref = np.stack([scipy_warp(x[..., 0], a) for x, a in zip(images, affines, strict=True)])
    ref = ref[..., None]
    for name, other in (("scipy", ref), ("numpy", numpy_warp(images, affines))):
        diff = float(np.abs(ours - other).max())
        if diff > 1e-4:
            raise SystemExit(f"charjax and {name} disagree by {diff}: the timings would mislead")


def machine_info() -> dict:
    """Enough to tell which machine and software a figure came from."""
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            model = next(
                line.split(":", 1)[1].strip() for line in f if line.startswith("model name")
            )
    except (OSError, StopIteration):
        pass
    return {
        "cpu_model": model,
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "load_average_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "jax_backend": jax.default_backend(),
        "jax_version": jax.__version__,
        "numpy_version": np.__version__,
        "scipy_version": scipy.__version__,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


if __name__ == "__main__":
    main()
