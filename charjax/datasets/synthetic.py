"""Synthetic handwriting-like characters: the default dataset, made locally, nothing downloaded.

Every one of the 62 classes is drawn from three families of glyph sources, each with a fixed
share of the samples (_FAMILY_SHARE): pen skeletons of hand-printed forms with the alternatives
people write (hand_glyphs.py: open and closed 4, crossed 7 and Z, flagged or bare 1, single-
and double-storey a and g, ...), the single-stroke Hershey fonts, and the outline fonts that
matplotlib and Pillow ship. Pen paths are drawn afresh for every sample: wobbled by a smooth
field, each stroke a little misplaced, its ends over- or undershooting, sometimes restarted
midway as after a pen lift, with a random pen from a fine liner to a marker. Each sample then
gets its own slant, rotation, scale and aspect, a smooth elastic warp (all in one
resampling), a pen pressure that thickens and thins the stroke along its length (grey
dilation and erosion by a smooth radius field), and a scan at a lower resolution and blur.

Two framings (charjax/framing.py holds the geometry, shared with the preparation of users'
images):
  * ``fit``: as EMNIST prepares its scans, the ink is cropped, centred and scaled, aspect kept,
    until its longer side fills _FIT_BOX; size and baseline are lost, so ``o``/``O`` or
    ``l``/``I``/``1`` are as ambiguous as in real data, and each class keeps its look-alike
    forms. It is what reads real handwriting (benchmarks/RESULTS.md) and the default run's.
  * ``line``: the glyph sits in a fixed em box as in a line of text, so ``o`` is smaller
    than ``O`` and ``p`` hangs below the baseline; upper and lower case stay apart, and a
    source's look-alike glyphs are kept in one class only.

The pixels depend only on (num_images, seed, framing), GENERATOR_VERSION and the installed
fonts; each block of _CHUNK samples draws from its own seeded stream, so the blocks are drawn
in parallel on every core this process may use (charjax.parallel; CHARJAX_WORKERS=N caps it)
and the bytes are the same for any number of workers.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import os
import pathlib
import sys
import time
import zipfile
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from charjax import charset, files, parallel
from charjax import framing as framing_geometry
from charjax.datasets import sources
from charjax.datasets.base import Dataset
from charjax.datasets.hand_glyphs import HAND_GLYPHS

GENERATOR_VERSION: int = 5  # bump whenever the pixels for a given seed change
FRAMINGS: tuple[str, ...] = framing_geometry.FRAMINGS

_log = logging.getLogger("charjax.datasets.synthetic")

# Glyphs are drawn on a source canvas in a shared line geometry: every source is scaled so its
# cap height is _CAP_SRC pixels and its baseline lies on row _BASE_SRC, centred horizontally.
_SRC = 72
_CAP_SRC = 32.0
_BASE_SRC = 44.0
# Output geometry (pixels of the 48x48 frame), shared with the preparation of users' images:
# line framing keeps the cap height and baseline; fit framing scales the ink box to _FIT_BOX.
_SIZE = framing_geometry.SIZE
_LINE_CAP = framing_geometry.LINE_CAP
_LINE_BASE = framing_geometry.LINE_BASE
_LINE_SHIFT = np.array(framing_geometry.LINE_SHIFT)  # position jitter (x, y) in line framing
_FIT_BOX = framing_geometry.FIT_BOX
_MAX_THICKEN = 2.5  # output pixels: the most a stroke's radius grows
_CHUNK = 512  # samples per random stream (changing it changes the pixels: bump the version)
# A started worker process costs about as much as drawing a few chunks (its start-up), so a
# job gets one worker per this many chunks at most: a small one stays in this process.
_CHUNKS_PER_WORKER = 4
_PROGRESS_S = 10.0  # off a terminal, a progress line at most this often (none for less)
_PIXEL_BATCH = 32  # samples per batch of the per-pixel steps (any size draws the same pixels)
_HULL_DIRS = 16  # directions of the extreme points that stand in for a glyph's convex hull

# (file in matplotlib's mpl-data/fonts/ttf, or None for Pillow's default font, sampling weight).
# Sans and oblique faces weigh most: handwriting is monoline and often slanted.
_OUTLINE_FONTS: tuple[tuple[str | None, float], ...] = (
    ("DejaVuSans.ttf", 1.0),
    ("DejaVuSans-Oblique.ttf", 1.0),
    ("DejaVuSans-Bold.ttf", 0.4),
    ("DejaVuSans-BoldOblique.ttf", 0.4),
    ("DejaVuSansMono.ttf", 0.6),
    ("DejaVuSansMono-Oblique.ttf", 0.6),
    ("DejaVuSansMono-Bold.ttf", 0.3),
    ("DejaVuSansMono-BoldOblique.ttf", 0.3),
    ("DejaVuSerif.ttf", 0.3),
    ("DejaVuSerif-Italic.ttf", 0.5),
    ("DejaVuSerif-Bold.ttf", 0.2),
    ("DejaVuSerif-BoldItalic.ttf", 0.3),
    ("STIXGeneral.ttf", 0.3),
    ("STIXGeneralItalic.ttf", 0.6),
    ("STIXGeneralBol.ttf", 0.2),
    ("STIXGeneralBolIta.ttf", 0.3),
    ("cmr10.ttf", 0.3),
    ("cmss10.ttf", 1.0),
    ("cmti10.ttf", 0.6),
    ("cmtt10.ttf", 0.5),
    ("cmb10.ttf", 0.2),
    (None, 1.0),
)
# Hershey faces with Latin letters and digits, and their weights. Simplex and script faces are
# closest to handwriting; the others add serif-like shapes drawn as pen strokes. The package's
# other Latin faces repeat these (rowmans = futural, rowmand = futuram, rowmant = timesrb,
# cursive = scripts letters + futural digits); identical glyphs are kept once anyway.
_HERSHEY_FACES: tuple[tuple[str, float], ...] = (
    ("futural", 3.0),
    ("futuram", 2.0),
    ("scripts", 1.0),
    ("scriptc", 0.5),
    ("timesr", 0.5),
    ("timesi", 0.8),
    ("timesrb", 0.3),
    ("timesib", 0.4),
)
_HERSHEY_CAP, _HERSHEY_BASE = 21.0, 9.0  # Hershey units: cap line at -12, baseline at 9
# How often each kind of source draws a sample, whatever the number of glyphs in it: pen
# skeletons of hand-printed forms (hand_glyphs.py) and the single-stroke Hershey faces look
# written; outline fonts add typeset variety. A family a class lacks gives its share to the rest.
_FAMILY_SHARE: dict[str, float] = {"hand": 0.55, "hershey": 0.3, "outline": 0.15}
# Classes whose typeset forms are not how people write them draw mostly from the hand forms.
# Every font gives `1` a flag, most a foot too; people print it as school hands teach it
# (Zaner-Bloser and D'Nealian alike: one downstroke), a flag for some, a foot rarely.
_CLASS_FAMILY_SHARE: dict[str, dict[str, float]] = {
    "1": {"hand": 0.9, "hershey": 0.1, "outline": 0.0},
}
# Pairs that some sources draw (almost) the same. Where a source does, only the first class
# keeps that glyph, so line-framed classes stay separable (e.g. a bare bar is `l`, never `I`).
# The number is the shape difference (see _shape_difference) below which the pair counts as
# drawn alike; 0/O is stricter because only the width of the oval tells them apart.
_CONFUSABLE: tuple[tuple[str, str, float], ...] = (
    ("l", "I", 0.4),
    ("l", "1", 0.4),
    ("I", "1", 0.4),
    ("0", "O", 0.62),
)
# Width / height limits of a class's clean glyphs: across sources, a narrow `O` (monospace,
# some italics) reads as `0` and a wide bold `0` as `O`, so those glyphs are left out.
_ASPECT_LIMITS: dict[str, tuple[float, float]] = {"0": (0.0, 0.76), "O": (0.8, 10.0)}


def generate(num_images: int, seed: int, framing: str = "line", workers: int = 0) -> Dataset:
    """`num_images` balanced, shuffled synthetic characters; the same seed gives the same set.

    `workers`: processes drawing it (0: every core this process may use, at most
    CHARJAX_WORKERS; see charjax.parallel); the bytes do not depend on it.
    """
    return _generate(num_images, seed, framing, workers, _CHUNK)


def _generate(
    num_images: int, seed: int, framing: str, workers: int, chunk: int, here: bool = True
) -> Dataset:
    """generate() in blocks of `chunk` samples (a different `chunk` draws other pixels);
    `here=False` leaves every block to started workers (see parallel.run)."""
    _check_args(num_images, seed, framing)
    start = time.perf_counter()
    labels = _balanced_labels(num_images, seed)
    tasks = [(labels[i : i + chunk], seed, i, framing) for i in range(0, num_images, chunk)]
    count = _worker_count(workers, len(tasks)) if here else parallel.count(workers, len(tasks))
    images = np.empty((num_images, _SIZE, _SIZE, 1), np.uint8)

    def setup() -> tuple:  # built here while the workers start; they receive it
        return _bank(), framing, _class_table(framing)

    with _progress(num_images, framing) as bar:
        for index, part in parallel.run(_render_chunk, tasks, count, _adopt, setup, here):
            first = tasks[index][2]
            images[first : first + len(part), ..., 0] = part
            bar.update(len(part))
    seconds = time.perf_counter() - start
    _log.info(
        "generated %d synthetic %s-framed images in %.1f s (%.0f images/s, %d worker%s)",
        num_images,
        framing,
        seconds,
        num_images / max(seconds, 1e-9),
        count,
        "" if count == 1 else "s",
    )
    return Dataset(images, labels, charset.CLASSES)


def worker_count(num_images: int, requested: int = 0) -> int:
    """The processes generate(num_images, workers=requested) draws with (this one included)."""
    return _worker_count(requested, -(-num_images // _CHUNK))


def _worker_count(requested: int, chunks: int) -> int:
    """`requested` (0: every core), CHARJAX_WORKERS at most, and one per _CHUNKS_PER_WORKER
    blocks at most, so a small job stays in this process."""
    return parallel.count(requested, max(1, chunks // _CHUNKS_PER_WORKER))


def _progress(total: int, framing: str) -> Any:
    """Console progress as the trainer shows it (config.report.progress "auto"): a redrawn
    bar on a terminal, else a plain log line at most every _PROGRESS_S (none for less)."""
    from tqdm import tqdm

    desc = f"drawing {framing}-framed synthetic images"
    if sys.stderr is not None and sys.stderr.isatty():
        return tqdm(total=total, desc=desc, unit="img", leave=False, dynamic_ncols=True)
    return tqdm(
        total=total, desc=desc, unit="img", file=_LogLines(), mininterval=_PROGRESS_S,
        delay=_PROGRESS_S, ascii=True,
        bar_format="{desc}: {n_fmt}/{total_fmt} ({percentage:.0f}%) "
                   "[{elapsed}<{remaining}, {rate_fmt}]",
    )


class _LogLines:
    """A file for tqdm that turns each redraw into one plain log line (no \\r, no ANSI)."""

    def write(self, text: str) -> None:
        text = text.replace("\x1b[A", "").strip("\r\n ")
        if text:
            _log.info("%s", text)

    def flush(self) -> None:
        pass


def load(
    num_images: int,
    seed: int,
    framing: str = "line",
    cache_dir: str | os.PathLike | None = None,
    workers: int = 0,
) -> Dataset:
    """generate() cached in cache_dir (default: $CHARJAX_CACHE or ~/.cache/charjax)."""
    _check_args(num_images, seed, framing)
    path = cache_path(num_images, seed, framing, cache_dir)
    cached = _read_cache(path, num_images)
    if cached is not None:
        _log.info("loaded %d synthetic images from cache %s", num_images, path)
        return cached
    dataset = generate(num_images, seed, framing, workers)
    try:
        _write_cache(path, dataset)
    except OSError as error:
        _log.warning(
            "could not cache synthetic images at %s (%s); pass cache_dir or set "
            "CHARJAX_CACHE to a writable folder to avoid regenerating them",
            path,
            error,
        )
    else:
        _log.info("cached synthetic images at %s", path)
    return dataset


def config_args(data: Any) -> dict[str, Any]:
    """load()'s num_images, seed and framing from config.data (also tfds:synthetic's)."""
    return {"num_images": data.synthetic.num_images, "seed": data.synthetic.seed,
            "framing": framing_geometry.check_framing(data.framing)}


def _check_block(c: Any) -> None:
    c.integer("data.synthetic.num_images", charset.NUM_CLASSES, 62 * 800,
              f" (at least one image of each of the {charset.NUM_CLASSES} classes)")
    c.integer("data.synthetic.seed", 0, 0)
    c.integer("data.synthetic.workers", 0, 2, " (0: every core)")
    parallel.env_cap()  # a bad CHARJAX_WORKERS fails here, before any work


sources.register(sources.Source(
    "synthetic", "", "the embedded set: rendered glyphs, no download; cached on disk",
    lambda _, data: (load(**config_args(data), cache_dir=data.cache_dir or None,
                          workers=data.synthetic.workers), []),
    _check_block))


def cache_path(
    num_images: int, seed: int, framing: str, cache_dir: str | os.PathLike | None = None
) -> pathlib.Path:
    """Where load() keeps a set; the name holds everything the pixels depend on."""
    name = f"synthetic-v{GENERATOR_VERSION}-{framing}-n{num_images}-{_SIZE}px-seed{seed}.npz"
    return files.cache_dir(cache_dir) / name


def _check_args(num_images: int, seed: int, framing: str) -> None:
    """Rejects arguments that would give an unbalanced or unreproducible set."""
    if framing not in FRAMINGS:
        raise ValueError(f"framing must be one of {FRAMINGS}, got {framing!r}")
    if isinstance(num_images, bool) or not isinstance(num_images, (int, np.integer)):
        raise ValueError(f"num_images must be an integer, got {num_images!r}")
    if num_images < charset.NUM_CLASSES:
        raise ValueError(
            f"num_images must be at least {charset.NUM_CLASSES} (one per class), got {num_images}"
        )
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")


def _read_cache(path: pathlib.Path, num_images: int) -> Dataset | None:
    """The cached set, or None when it is missing or unreadable (then it is regenerated)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            dataset = Dataset(data["images"], data["labels"].astype(np.int32), str(data["classes"]))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        _log.warning("ignoring unreadable cache %s (%s); regenerating", path, error)
        return None
    if len(dataset) != num_images or dataset.classes != charset.CLASSES:
        _log.warning("ignoring cache %s: it does not match the request; regenerating", path)
        return None
    return dataset


def _write_cache(path: pathlib.Path, dataset: Dataset) -> None:
    """Atomic, so an interrupted run leaves no partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with files.atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, images=dataset.images, labels=dataset.labels, classes=dataset.classes)


def _balanced_labels(num_images: int, seed: int) -> np.ndarray:
    """Each class num_images // 62 or one more times, in a seeded random order."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,)))
    labels = np.arange(num_images, dtype=np.int32) % charset.NUM_CLASSES
    extra = num_images % charset.NUM_CLASSES
    # Which classes get the extra sample is random too, so no class is always favoured.
    labels[num_images - extra :] = rng.permutation(charset.NUM_CLASSES)[:extra]
    return rng.permutation(labels).astype(np.int32)


# ----------------------------------------------------------------------------- glyph sources


@dataclasses.dataclass(frozen=True)
class _Bank:
    """Every usable (source, character) glyph, rendered clean once per process.

    images: uint8 [G, S, S]; hulls: float32 [G, K, 2] extreme ink points (x, y);
    labels: int [G]; weights: float [G] (relative within a class and family);
    families: "outline", "hershey" or "hand"; groups: the font (or "hand") a glyph comes
    from, within which look-alikes are compared; strokes: per glyph, pen paths or None.
    """

    images: np.ndarray
    hulls: np.ndarray
    labels: np.ndarray
    weights: np.ndarray
    names: tuple[str, ...]
    families: tuple[str, ...]
    groups: tuple[str, ...]
    strokes: tuple[tuple[np.ndarray, ...] | None, ...]


_BANK: list[_Bank] = []  # this process's glyph bank, once built or adopted
_TABLES: dict[str, tuple[tuple[np.ndarray, np.ndarray], ...]] = {}  # _class_table's, by framing


def _bank() -> _Bank:
    """The glyph bank: built on first use (a second or two), kept for the life of the process."""
    if not _BANK:
        _BANK.append(_build_bank())
    return _BANK[0]


def _adopt(bank: _Bank, framing: str, table: tuple[tuple[np.ndarray, np.ndarray], ...]) -> None:
    """A worker process takes the bank and class table its parent built (parallel.run's
    initializer): the same arrays, so the same pixels, without building them again."""
    _BANK[:] = [bank]
    _TABLES[framing] = table


def _build_bank() -> _Bank:
    """Every usable glyph, rendered clean."""
    entries = _outline_entries() + _hershey_entries() + _hand_entries()
    entries = [e for e in entries if _aspect_allowed(e)]
    images = np.stack([e["image"] for e in entries])
    hulls = np.stack([_hull(e["image"] > 96) for e in entries]).astype(np.float32)
    return _Bank(
        images=images,
        hulls=hulls,
        labels=np.array([e["label"] for e in entries]),
        weights=np.array([e["weight"] for e in entries], np.float64),
        names=tuple(e["name"] for e in entries),
        families=tuple(e["family"] for e in entries),
        groups=tuple(e.get("group", e["name"]) for e in entries),
        strokes=tuple(e["strokes"] for e in entries),
    )


def _class_table(framing: str) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """_build_class_table(framing), built once per process (or adopted, see _adopt)."""
    if framing not in _TABLES:
        _TABLES[framing] = _build_class_table(framing)
    return _TABLES[framing]


def _build_class_table(framing: str) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """Per class, the glyph indices a framing draws from and their sampling probabilities.

    Line framing leaves out a group's glyph that looks like its partner in a _CONFUSABLE
    pair, so the classes stay separable by size and position. Fit framing keeps them: a
    bare bar is an `l`, an `I` or a `1` in real handwriting too.
    """
    bank = _bank()
    keep = np.ones(len(bank.labels), bool)
    if framing == "line":
        keep[_confusable_glyphs(bank)] = False
    families = np.array(bank.families)
    table = []
    for label in range(charset.NUM_CLASSES):
        index = np.flatnonzero((bank.labels == label) & keep)
        if index.size == 0:
            raise RuntimeError(f"no glyph source can draw {charset.CLASSES[label]!r}")
        prob = np.zeros(index.size)
        shares = _CLASS_FAMILY_SHARE.get(charset.CLASSES[label], _FAMILY_SHARE)
        for family, share in shares.items():
            member = families[index] == family
            if member.any():
                weights = bank.weights[index[member]]
                prob[member] = share * weights / weights.sum()
        table.append((index, prob / prob.sum()))
    return tuple(table)


def _outline_entries() -> list[dict]:
    """Clean renders of every outline font that really has all 62 characters."""
    entries = []
    for file_name, weight in _OUTLINE_FONTS:
        font = _open_font(file_name)
        if font is None:
            continue
        name = file_name or "pillow-default"
        for label, char in enumerate(charset.CLASSES):
            image = _render_outline(font, char)
            entries.append(
                dict(
                    name=name,
                    family="outline",
                    label=label,
                    weight=weight,
                    image=image,
                    strokes=None,
                )
            )
    return entries


def _open_font(file_name: str | None) -> ImageFont.FreeTypeFont | None:
    """The font at a size where its cap height is _CAP_SRC pixels; None if it lacks a class."""
    try:
        if file_name is None:
            font = ImageFont.load_default(size=100)
            path = None
        else:
            import matplotlib

            path = pathlib.Path(matplotlib.get_data_path(), "fonts", "ttf", file_name)
            font = ImageFont.truetype(str(path), 100)
    except (OSError, ImportError) as error:
        _log.debug("skipping font %s: %s", file_name, error)
        return None
    if not isinstance(font, ImageFont.FreeTypeFont) or not _covers_classes(font, path):
        _log.debug("skipping font %s: it does not draw all of 0-9A-Za-z", file_name)
        return None
    cap = -font.getbbox("H", anchor="ls")[1]
    return font.font_variant(size=100 * _CAP_SRC / cap)


def _covers_classes(font: ImageFont.FreeTypeFont, path: pathlib.Path | None) -> bool:
    """True when the font maps every class to its own non-empty glyph (no fallback boxes)."""
    if path is not None:
        from matplotlib import ft2font

        face = ft2font.FT2Font(str(path))
        if any(face.get_char_index(ord(char)) == 0 for char in charset.CLASSES):
            return False
    masks = {bytes(font.getmask(char)) for char in charset.CLASSES}
    return len(masks) == charset.NUM_CLASSES and all(
        font.getbbox(char)[2] > font.getbbox(char)[0] for char in charset.CLASSES
    )


def _render_outline(font: ImageFont.FreeTypeFont, char: str) -> np.ndarray:
    """uint8 [S, S]: the glyph on the shared baseline, its ink box centred horizontally."""
    left, _, right, _ = font.getbbox(char, anchor="ls")
    image = Image.new("L", (_SRC, _SRC), 0)
    x = _SRC / 2 - (left + right) / 2
    ImageDraw.Draw(image).text((x, _BASE_SRC), char, fill=255, font=font, anchor="ls")
    return np.asarray(image)


def _hershey_entries() -> list[dict]:
    """Pen paths of the Hershey faces (source pixels), skipping glyphs another face has."""
    from HersheyFonts import HersheyFonts

    entries, seen = [], set()
    fonts = HersheyFonts()  # one reader: it lists the package's font archive once
    for face, weight in _HERSHEY_FACES:
        fonts.load_default_font(face)
        glyphs = fonts.all_glyphs
        for label, char in enumerate(charset.CLASSES):
            glyph = glyphs.get(char)
            if glyph is None or not glyph.strokes:
                continue
            key = (label, repr(glyph.strokes))  # faces may share glyphs (see _HERSHEY_FACES)
            if key in seen:
                continue
            seen.add(key)
            strokes = _hershey_paths(glyph.strokes)
            image = _draw_paths([strokes], [3.0], cols=1)[0]
            entries.append(
                dict(
                    name=face,
                    family="hershey",
                    label=label,
                    weight=weight,
                    image=image,
                    strokes=strokes,
                )
            )
    return entries


def _hand_entries() -> list[dict]:
    """Pen paths of the hand-printed forms in hand_glyphs.HAND_GLYPHS, one entry per form."""
    entries = []
    for char, variants in HAND_GLYPHS.items():
        for number, (spec, weight) in enumerate(variants):
            strokes = _hershey_paths(_parse_hand(spec))
            image = _draw_paths([strokes], [3.0], cols=1)[0]
            entries.append(
                dict(
                    name=f"hand-{char}{number}",
                    family="hand",
                    group="hand",
                    label=charset.char_to_index(char),
                    weight=weight,
                    image=image,
                    strokes=strokes,
                )
            )
    return entries


def _parse_hand(spec: str) -> list[np.ndarray]:
    """Strokes ([n, 2] points) from the hand_glyphs notation, curves smoothed."""
    strokes = []
    for stroke in spec.split(";"):
        pieces, piece = [], []
        for token in stroke.split():
            point = tuple(float(v) for v in token.rstrip("!").split(","))
            piece.append(point)
            if token.endswith("!"):
                pieces.append(piece)
                piece = [point]
        pieces.append(piece)
        strokes.append(np.concatenate([_smooth(np.array(p)) for p in pieces if len(p) > 1]))
    return strokes


def _smooth(points: np.ndarray, per_segment: int = 6) -> np.ndarray:
    """A Catmull-Rom curve through the points (straight when there are only two)."""
    padded = np.concatenate([points[:1], points, points[-1:]])
    t = np.arange(per_segment)[:, None] / per_segment
    out = []
    for p0, p1, p2, p3 in zip(padded[:-3], padded[1:-2], padded[2:-1], padded[3:], strict=True):
        out.append(
            0.5
            * (
                2 * p1
                + (p2 - p0) * t
                + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2
                + (3 * p1 - p0 - 3 * p2 + p3) * t**3
            )
        )
    return np.concatenate(out + [points[-1:]])


def _hershey_paths(strokes: list) -> tuple[np.ndarray, ...]:
    """Hershey strokes in source pixels, ink box centred, with long segments subdivided.

    Subdividing lets the smooth jitter bend straight lines, as a hand would.
    """
    scale = _CAP_SRC / _HERSHEY_CAP
    points = np.concatenate([np.asarray(s, np.float64) for s in strokes])
    centre_x = (points[:, 0].min() + points[:, 0].max()) / 2
    paths = []
    for stroke in strokes:
        xy = np.asarray(stroke, np.float64)
        x = _SRC / 2 + (xy[:, 0] - centre_x) * scale
        y = _BASE_SRC + (xy[:, 1] - _HERSHEY_BASE) * scale
        paths.append(_subdivide(np.stack([x, y], axis=1), max_step=3.0))
    return tuple(paths)


def _subdivide(xy: np.ndarray, max_step: float) -> np.ndarray:
    """The polyline with extra points so no segment is longer than max_step."""
    if len(xy) < 2:
        return xy
    step = xy[1:] - xy[:-1]
    n = np.maximum(1, np.ceil(np.hypot(step[:, 0], step[:, 1]) / max_step).astype(np.int64))
    # Segment i gets points a + (b - a) * k / n[i] for k = 1 .. n[i].
    k = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n) + 1
    t = (k / np.repeat(n, n))[:, None]
    return np.concatenate([xy[:1], np.repeat(xy[:-1], n, axis=0) + np.repeat(step, n, axis=0) * t])


def _draw_paths(
    glyphs: list[tuple[np.ndarray, ...]], widths: list[float], cols: int = 16
) -> np.ndarray:
    """uint8 [N, S, S]: each glyph's paths drawn with its pen width and round ends.

    All glyphs go on one tiled canvas, which is much faster than one image each.
    """
    rows = -(-len(glyphs) // cols)
    canvas = Image.new("L", (cols * _SRC, rows * _SRC), 0)
    draw = ImageDraw.Draw(canvas)
    for i, (paths, width) in enumerate(zip(glyphs, widths, strict=True)):
        dy, dx = divmod(i, cols)
        offset = np.array([dx * _SRC, dy * _SRC])
        pen = max(1, int(round(width)))
        radius = width / 2
        for path in paths:
            xy = path + offset
            if len(xy) > 1:
                _curved_line(draw, xy.tolist(), pen)
            for x, y in (xy[0], xy[-1]):
                draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=255)
    # A touch of blur stands in for anti-aliasing, which ImageDraw.line lacks.
    canvas = canvas.filter(ImageFilter.BoxBlur(0.6))
    tiles = np.asarray(canvas).reshape(rows, _SRC, cols, _SRC).transpose(0, 2, 1, 3)
    return tiles.reshape(rows * cols, _SRC, _SRC)[: len(glyphs)]


def _curved_line(draw: ImageDraw.ImageDraw, points: list[list[float]], width: int) -> None:
    """`draw.line(points, 255, width, joint="curve")`, the same pixels, in less time.

    Pillow rounds each inner vertex of a line wider than 4 pixels with a pie slice, found
    by a Python loop that costs more than the drawing; this is that loop, step for step as
    Pillow computes it, with each segment's direction computed once, not twice (a test
    holds it to Pillow's own).
    """
    if width > 8:  # Pillow then also covers gaps with extra lines: let it do all of it
        draw.line([tuple(p) for p in points], fill=255, width=width, joint="curve")
        return
    draw.line([tuple(p) for p in points], fill=255, width=width)
    if width <= 4:
        return
    # The direction of each segment in degrees, as Pillow measures it.
    angles = [
        math.degrees(math.atan2(x1 - x0, y0 - y1)) % 360
        for (x0, y0), (x1, y1) in zip(points[:-1], points[1:], strict=True)
    ]
    half = width / 2
    for (x, y), before, after in zip(points[1:-1], angles[:-1], angles[1:], strict=True):
        if before == after:
            continue  # a straight line needs no joint
        flipped = (after > before and after - 180 > before) or (
            after < before and after + 180 > before
        )
        start, end = (after + 90, before + 90) if flipped else (before - 90, after - 90)
        box = [(x - half + 1, y - half + 1), (x + half - 1, y + half - 1)]
        draw.pieslice(box, start - 90, end - 90, fill=255)


def _hull(mask: np.ndarray) -> np.ndarray:
    """[K, 2] ink points extreme in K directions: a cheap stand-in for the convex hull."""
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        return np.full((_HULL_DIRS, 2), _SRC / 2)
    return _extreme_points(np.stack([xs, ys], axis=1).astype(np.float64))


def _extreme_points(points: np.ndarray) -> np.ndarray:
    """[K, 2]: for each of K evenly spaced directions, the point furthest along it."""
    return points[np.argmax(points @ _hull_directions().T, axis=0)]


@functools.cache
def _hull_directions() -> np.ndarray:
    """[K, 2] unit vectors of _extreme_points' directions."""
    angles = np.linspace(0, 2 * np.pi, _HULL_DIRS, endpoint=False)
    return np.stack([np.cos(angles), np.sin(angles)], axis=1)


def _confusable_glyphs(bank: _Bank) -> np.ndarray:
    """Indices of glyphs of a _CONFUSABLE pair's second class that a glyph of the first class
    in the same group (font, or the hand forms) draws alike."""
    groups = np.array(bank.groups)
    dropped = set()
    for keep, drop, threshold in _CONFUSABLE:
        keep_label, drop_label = charset.char_to_index(keep), charset.char_to_index(drop)
        for group in np.unique(groups):
            same = groups == group
            keepers = np.flatnonzero(same & (bank.labels == keep_label))
            for d in np.flatnonzero(same & (bank.labels == drop_label)):
                if any(
                    _shape_difference(bank.images[k], bank.images[d]) < threshold for k in keepers
                ):
                    dropped.add(int(d))
    if dropped:
        _log.debug("glyphs left out as look-alikes: %s", sorted(bank.names[i] for i in dropped))
    return np.array(sorted(dropped), np.int64)


def _aspect_allowed(entry: dict) -> bool:
    """False for a glyph whose width / height falls outside its class's _ASPECT_LIMITS."""
    low, high = _ASPECT_LIMITS.get(charset.CLASSES[entry["label"]], (0.0, np.inf))
    ys, xs = np.nonzero(entry["image"] > 96)
    aspect = (np.ptp(xs) + 1) / (np.ptp(ys) + 1)
    return bool(low <= aspect <= high)


def _shape_difference(a: np.ndarray, b: np.ndarray) -> float:
    """How unlike two glyphs look once size is ignored and detail is blurred away.

    Both ink boxes are scaled to the same longer side (aspect kept), blurred, and the largest
    pixel difference is taken at the best small shift: 0 for the same shape, near 1 for a
    feature (a flag, a serif, a wider bowl) that one has and the other lacks.
    """
    x, y = _normalised_shape(a), _normalised_shape(b)
    return min(float(np.abs(x - np.roll(y, shift, axis=1)).max()) for shift in range(-2, 3))


def _normalised_shape(image: np.ndarray) -> np.ndarray:
    """float [48, 48]: the ink box scaled to 36 pixels on its longer side, centred, blurred."""
    ys, xs = np.nonzero(image > 96)
    crop = Image.fromarray(image[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1])
    factor = 36 / max(crop.size)
    crop = crop.resize(
        (max(1, round(crop.size[0] * factor)), max(1, round(crop.size[1] * factor))),
        Image.BILINEAR,
    )
    canvas = Image.new("L", (48, 48), 0)
    canvas.paste(crop, ((48 - crop.size[0]) // 2, (48 - crop.size[1]) // 2))
    blurred = np.asarray(canvas.filter(ImageFilter.GaussianBlur(1.5)), np.float64)
    return blurred / max(blurred.max(), 1.0)


# ----------------------------------------------------------------------------- per-sample work


def _render_chunk(labels: np.ndarray, seed: int, start: int, framing: str) -> np.ndarray:
    """uint8 [n, SIZE, SIZE] for the samples starting at index `start` of the set."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1, start)))
    bank = _bank()
    n = len(labels)
    glyph = _pick_glyphs(_class_table(framing), labels, rng)
    style = _draw_style(rng, n, framing)
    outline = np.array([bank.strokes[g] is None for g in glyph])
    # Outline glyphs have no pen of their own: their strokes may also be thinned.
    style["thicken"] = np.where(outline, style["thicken"] - style["thin"], style["thicken"])
    sources, hulls, pen = _sources(bank, glyph, style, rng)
    matrix, offset, scale = _placement(hulls, pen, style, framing)
    field = _smooth_field(rng, n, 2, 5) * style["elastic"][:, None, None, None]
    field -= field.mean(axis=(2, 3), keepdims=True)
    # Pen pressure: the stroke's radius changes smoothly along the glyph.
    pressure = _smooth_field(rng, n, 1, 3)[:, 0] * style["pressure"][:, None, None]
    radius = (style["thicken"][:, None, None] + pressure) * scale[:, None, None]
    out = np.empty((n, _SIZE, _SIZE), np.uint8)
    # Every step from here on works on each sample alone, so it runs on small batches that
    # stay in the CPU's cache; the pixels are the same as in one batch.
    for i in range(0, n, _PIXEL_BATCH):
        s = slice(i, i + _PIXEL_BATCH)
        out[s] = _finish(sources[s], matrix[s], offset[s], field[s], radius[s],
                         {key: value[s] for key, value in style.items()}, framing)
    return out


def _finish(
    sources: np.ndarray,
    matrix: np.ndarray,
    offset: np.ndarray,
    field: np.ndarray,
    radius: np.ndarray,
    style: dict[str, np.ndarray],
    framing: str,
) -> np.ndarray:
    """uint8 [n, SIZE, SIZE]: the sources resampled, thickened, framed, scanned and blurred."""
    images = _warp(sources, matrix, offset, field)
    images = _thicken(images, radius)
    if framing == "fit":
        images = _refit(images, style["shift"] * 0.25)
    images = _lower_resolution(images, style["resolution"])
    images = _blur(images, style["blur"])
    # Like EMNIST, every image's darkest stroke core reaches full white.
    peak = np.maximum(images.max(axis=(1, 2)), 1e-6)
    images = np.clip(images * (style["gain"] / peak)[:, None, None], 0.0, 1.0)
    return np.round(images * 255).astype(np.uint8)


def render_styled(
    labels: np.ndarray,
    rng: np.random.Generator,
    framing: str = "line",
    style: dict[str, np.ndarray | float] | None = None,
    glyph: np.ndarray | None = None,
    table_framing: str | None = None,
) -> np.ndarray:
    """uint8 [n, SIZE, SIZE]: samples drawn as `_render_chunk` draws them, with a writer's hand.

    A hook for drawing one writer (one pen, one slant, one form per character) or the
    characters of one word: `style` overrides knobs of `_draw_style` (a scalar is shared by
    every sample), `glyph` fixes the bank glyph of each sample (see `writer_glyphs`), and
    `table_framing` picks which framing's glyph table forms are drawn from (e.g. "fit"'s,
    which keeps the look-alike forms, while placing them on a line).
    """
    bank = _bank()
    n = len(labels)
    if glyph is None:
        glyph = _pick_glyphs(_class_table(table_framing or framing), labels, rng)
    drawn = _draw_style(rng, n, framing)
    for key, value in (style or {}).items():
        drawn[key] = np.broadcast_to(np.asarray(value), (n, *drawn[key].shape[1:])).copy()
    outline = np.array([bank.strokes[g] is None for g in glyph])
    drawn["thicken"] = np.where(outline, drawn["thicken"] - drawn["thin"], drawn["thicken"])
    sources, hulls, pen = _sources(bank, glyph, drawn, rng)
    matrix, offset, scale = _placement(hulls, pen, drawn, framing)
    field = _smooth_field(rng, n, 2, 5) * drawn["elastic"][:, None, None, None]
    images = _warp(sources, matrix, offset, field - field.mean(axis=(2, 3), keepdims=True))
    pressure = _smooth_field(rng, n, 1, 3)[:, 0] * drawn["pressure"][:, None, None]
    images = _thicken(images, (drawn["thicken"][:, None, None] + pressure) * scale[:, None, None])
    if framing == "fit":
        images = _refit(images, drawn["shift"] * 0.25)
    images = _lower_resolution(images, drawn["resolution"])
    images = _blur(images, drawn["blur"])
    peak = np.maximum(images.max(axis=(1, 2)), 1e-6)
    images = np.clip(images * (drawn["gain"] / peak)[:, None, None], 0.0, 1.0)
    return np.round(images * 255).astype(np.uint8)


def writer_glyphs(writer_seed: int, framing: str = "fit") -> np.ndarray:
    """int [62]: one writer's form of each class (a bank glyph index), fixed by the seed."""
    rng = np.random.default_rng(np.random.SeedSequence(writer_seed, spawn_key=(2,)))
    return _pick_glyphs(_class_table(framing), np.arange(charset.NUM_CLASSES), rng)


def writer_style(writer_seed: int, framing: str = "fit") -> dict[str, float]:
    """One writer's pen, slant and habits, fixed by the seed (overrides for render_styled)."""
    rng = np.random.default_rng(np.random.SeedSequence(writer_seed, spawn_key=(3,)))
    one = _draw_style(rng, 1, framing)
    keys = ("shear", "pen", "thicken", "thin", "pressure", "wobble", "overshoot", "aspect")
    return {key: float(one[key][0]) for key in keys}


def _pick_glyphs(
    table: tuple[tuple[np.ndarray, np.ndarray], ...], labels: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """A glyph index per sample, drawn from its class's sources by probability."""
    glyph = np.empty(len(labels), np.int64)
    for label in range(charset.NUM_CLASSES):
        where = np.flatnonzero(labels == label)
        if where.size:
            index, prob = table[label]
            glyph[where] = rng.choice(index, size=where.size, p=prob)
    return glyph


def _draw_style(rng: np.random.Generator, n: int, framing: str) -> dict[str, np.ndarray]:
    """Per-sample writing style; every knob drawn in a fixed order for reproducibility.

    Line framing is milder (it must stay separable, e.g. a narrow `0` against a round `O`
    needs a small aspect jitter); fit framing, meant for transfer to real handwriting, is wilder:
    pens from a fine liner to a marker, uneven pressure, sloppier strokes.
    """
    wild = framing == "fit"
    return dict(
        rotation=np.clip(rng.normal(0.0, 0.1 if wild else 0.06, n), -0.3, 0.3),  # radians
        shear=np.clip(rng.normal(0.08, 0.22 if wild else 0.12, n), -0.45, 0.6),  # + leans right
        scale=np.exp(np.clip(rng.normal(0.0, 0.05, n), -0.1, 0.1)),
        aspect=np.exp(np.clip(rng.normal(0.0, 0.1 if wild else 0.05, n), -0.22, 0.22)),
        shift=rng.normal(0.0, 1.0, (n, 2)),
        # Pen width, source pixels (cap height 32): log-uniform, so thin and thick pens alike.
        pen=np.exp(rng.uniform(np.log(1.8), np.log(7.5 if wild else 3.6), n)),
        thicken=rng.uniform(0.0, 0.8, n),  # extra stroke radius, source pixels
        thin=rng.uniform(0.0, 0.9 if wild else 0.0, n),  # outline glyphs: radius taken off
        pressure=rng.uniform(0.0, 0.9 if wild else 0.3, n),  # radius change along the stroke
        blur=rng.uniform(0.6, 1.1, n),  # output pixels
        gain=rng.uniform(1.0, 1.15, n),
        elastic=rng.uniform(0.3, 2.0, n) if wild else rng.uniform(0.2, 1.2, n),  # output px
        wobble=rng.uniform(0.6, 1.8, n) if wild else rng.uniform(0.4, 1.2, n),  # source px
        overshoot=rng.uniform(0.0, 2.0 if wild else 0.8, n),  # stroke-end error, source px
        lift=rng.uniform(0.0, 1.0, n) < (0.25 if wild else 0.0),  # a stroke restarted midway
        # Side (pixels) of the scan an image is resized from, as real sets are (EMNIST: 28);
        # 0 keeps the full resolution.
        resolution=np.where(
            rng.uniform(0.0, 1.0, n) < (0.5 if wild else 0.0), rng.integers(20, 40, n), 0
        ),
    )


def _sources(
    bank: _Bank, glyph: np.ndarray, style: dict[str, np.ndarray], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source canvases uint8 [n, S, S], hull points [n, K, 2] and pen radius [n] per sample.

    Outline glyphs come from the bank; pen glyphs are drawn afresh with jittered paths.
    """
    sources = bank.images[glyph]
    hulls = bank.hulls[glyph].copy()
    pen = np.zeros(len(glyph))
    drawn = np.flatnonzero([bank.strokes[g] is not None for g in glyph])
    if drawn.size:
        paths = _jitter(
            [bank.strokes[glyph[i]] for i in drawn],
            style["wobble"][drawn],
            style["overshoot"][drawn],
            style["lift"][drawn],
            rng,
        )
        widths = style["pen"][drawn]
        sources[drawn] = _draw_paths(paths, list(widths))
        hulls[drawn] = [_extreme_points(np.concatenate(p)) for p in paths]
        pen[drawn] = widths / 2
    return sources, hulls, pen


def _jitter(
    glyphs: list[tuple[np.ndarray, ...]],
    amplitudes: np.ndarray,
    overshoots: np.ndarray,
    lifts: np.ndarray,
    rng: np.random.Generator,
) -> list[list[np.ndarray]]:
    """Each glyph's pen paths moved by a smooth random field, then each stroke misplaced.

    The field is a sum of two random long-wavelength waves per axis, so nearby points move
    together (curves stay smooth) while the shape wobbles like a hand-drawn one. Each stroke
    is then turned, resized and moved a little about its centre, as a hand misplaces it, its
    ends over- or undershoot, and with `lifts` one stroke is restarted a little off its track,
    as when the pen leaves the paper midway.

    The random numbers are drawn glyph by glyph, in the order a glyph-by-glyph loop once drew
    them; the arithmetic after the wave field runs on every stroke of the chunk at once.
    """
    moved, draws, cuts = [], [], []
    for paths, amplitude, lift in zip(glyphs, amplitudes, lifts, strict=True):
        points = np.concatenate(paths)
        k = rng.normal(0.0, 1.0, (2, 2, 2)) * (2 * np.pi / 40.0)  # [axis, wave, xy] vectors
        phase = rng.uniform(0, 2 * np.pi, (2, 2))
        waves = np.sin(np.einsum("pc,awc->paw", points, k) + phase)  # [points, axis, wave]
        moved.append(points + amplitude * ((waves[..., 0] + waves[..., 1]) / 2))  # their mean
        # Per stroke: turn, resize, shift (x, y), error at the first and at the last end.
        draws.append(rng.standard_normal((len(paths), 6)))
        cut = None
        if lift:
            longest = max(range(len(paths)), key=lambda i: len(paths[i]))
            if len(paths[longest]) >= 6:
                where = int(rng.integers(2, len(paths[longest]) - 2))
                cut = (longest, where, rng.normal(0.0, 1.0, 2))
        cuts.append(cut)
    lengths = np.array([len(path) for paths in glyphs for path in paths])
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    spans = list(zip(starts, starts + lengths, strict=True))
    points = np.concatenate(moved)
    z = np.concatenate(draws)
    # `0.0 + scale * z` is Generator.normal's own arithmetic, so the numbers are the same.
    angle = 0.0 + 0.05 * z[:, 0]
    cos, sin = np.cos(angle), np.sin(angle)
    rotations = np.stack([np.stack([cos, sin], -1), np.stack([-sin, cos], -1)], -2)
    centres = np.stack([np.add.reduce(points[a:b], axis=0) for a, b in spans]) / lengths[:, None]
    centred = points - np.repeat(centres, lengths, axis=0)
    strokes = np.empty_like(centred)
    for i, (a, b) in enumerate(spans):
        np.matmul(centred[a:b], rotations[i], out=strokes[a:b])
    strokes *= np.repeat(np.exp(0.0 + 0.05 * z[:, 1]), lengths)[:, None]
    strokes += np.repeat(centres, lengths, axis=0)
    strokes += np.repeat(0.0 + 0.6 * z[:, 2:4], lengths, axis=0)
    per_stroke = np.repeat(overshoots, [len(paths) for paths in glyphs])
    _overshoot(strokes, starts, lengths, per_stroke[:, None] * (0.0 + z[:, 4:6]))
    out, first = [], 0
    for paths, cut in zip(glyphs, cuts, strict=True):
        mine = [strokes[a:b] for a, b in spans[first : first + len(paths)]]
        first += len(paths)
        if cut is not None:
            longest, where, shift = cut
            stroke = mine[longest]
            mine[longest : longest + 1] = [stroke[:where], stroke[where - 1 :] + shift]
        out.append(mine)
    return out


def _overshoot(
    points: np.ndarray, starts: np.ndarray, lengths: np.ndarray, amounts: np.ndarray
) -> None:
    """Lengthens (or shortens) the first and then the last segment of each stroke of two or
    more points by `amounts` [strokes, 2], in place."""
    keep = lengths >= 2
    for end, inner, amount in (
        (starts, starts + 1, amounts[:, 0]),
        (starts + lengths - 1, starts + lengths - 2, amounts[:, 1]),
    ):
        end, inner, amount = end[keep], inner[keep], amount[keep]
        step = points[end] - points[inner]
        length = np.hypot(step[:, 0].copy(), step[:, 1].copy())
        moves = length > 1e-6  # a segment of no length has no direction to move along
        end, step, length, amount = end[moves], step[moves], length[moves], amount[moves]
        move = np.maximum(amount, -0.7 * length)  # shorten by 70 % at most
        points[end] = points[end] + step / length[:, None] * move[:, None]


def _placement(
    hulls: np.ndarray, pen: np.ndarray, style: dict[str, np.ndarray], framing: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The affine map source -> output (matrix [n,2,2], offset [n,2]) and its linear scale [n].

    One map composes slant, rotation, aspect, scale and the framing's placement, so each
    image is resampled exactly once.
    """
    cos, sin = np.cos(style["rotation"]), np.sin(style["rotation"])
    rotate = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)
    n = len(pen)
    shear = np.tile(np.eye(2), (n, 1, 1))
    shear[:, 0, 1] = -style["shear"]  # x moves right as y goes up (y points down)
    stretch = np.zeros((n, 2, 2))
    stretch[:, 0, 0] = np.sqrt(style["aspect"])
    stretch[:, 1, 1] = 1 / np.sqrt(style["aspect"])
    matrix = rotate @ shear @ stretch * style["scale"][:, None, None]
    if framing == "line":
        return _place_line(matrix * (_LINE_CAP / _CAP_SRC), hulls, pen, style)
    return _place_fit(matrix, hulls, pen, style)


def _ink_box(
    matrix: np.ndarray, hulls: np.ndarray, pen: np.ndarray, style: dict[str, np.ndarray]
) -> np.ndarray:
    """[n, 4] (x0, y0, x1, y1) of the mapped ink, strokes' radius included, offset excluded."""
    points = np.einsum("nij,nkj->nki", matrix, hulls)
    radius = (pen + style["thicken"] + 0.5) * _linear_scale(matrix)
    lo = points.min(axis=1) - radius[:, None]
    hi = points.max(axis=1) + radius[:, None]
    return np.concatenate([lo, hi], axis=1)


def _linear_scale(matrix: np.ndarray) -> np.ndarray:
    """Mean length scale of each linear map."""
    return np.sqrt(np.abs(np.linalg.det(matrix)))


def _place_line(
    matrix: np.ndarray, hulls: np.ndarray, pen: np.ndarray, style: dict[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keeps the baseline and cap height; nudges (or shrinks) a glyph only to stay in frame."""
    pivot_src = np.array([_SRC / 2, _BASE_SRC - _CAP_SRC / 2])
    pivot_out = np.array([(_SIZE - 1) / 2, _LINE_BASE - _LINE_CAP / 2])
    pivot_out = pivot_out + style["shift"] * _LINE_SHIFT
    box = _ink_box(matrix, hulls - pivot_src, pen, style)
    lo_limit, hi_limit = 0.5, _SIZE - 1.5
    span = np.maximum(box[:, 2] - box[:, 0], box[:, 3] - box[:, 1])
    shrink = np.minimum(1.0, (hi_limit - lo_limit) / span)
    matrix = matrix * shrink[:, None, None]
    box = box * shrink[:, None]
    centre = pivot_out.copy()
    for axis in (0, 1):
        lo = centre[:, axis] + box[:, axis]
        hi = centre[:, axis] + box[:, axis + 2]
        centre[:, axis] += np.maximum(lo_limit - lo, 0) - np.maximum(hi - hi_limit, 0)
    offset = centre - np.einsum("nij,j->ni", matrix, pivot_src)
    return matrix, offset, _linear_scale(matrix)


def _place_fit(
    matrix: np.ndarray, hulls: np.ndarray, pen: np.ndarray, style: dict[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scales the ink box to _FIT_BOX on its longer side and centres it, as EMNIST does."""
    box = _ink_box(matrix, hulls, pen, style)
    size = np.maximum(box[:, 2] - box[:, 0], box[:, 3] - box[:, 1])
    matrix = matrix * (_FIT_BOX / size)[:, None, None]
    box = box * (_FIT_BOX / size)[:, None]
    centre = (box[:, :2] + box[:, 2:]) / 2
    offset = (_SIZE - 1) / 2 + style["shift"] * 0.25 - centre
    return matrix, offset, _linear_scale(matrix)


def _smooth_field(rng: np.random.Generator, n: int, channels: int, knots: int) -> np.ndarray:
    """float32 [n, channels, SIZE, SIZE]: smooth random values of about unit size.

    Random values on a coarse knots x knots grid, spread with Gaussian bumps: cheap and smooth.
    """
    coarse = rng.normal(0.0, 1.0, (n, channels, knots, knots)).astype(np.float32)
    pos = np.arange(_SIZE)[:, None]
    centres = np.linspace(0, _SIZE - 1, knots)[None, :]
    spread = np.exp(-0.5 * ((pos - centres) / (_SIZE / knots * 0.8)) ** 2)
    spread /= np.sqrt((spread**2).sum(axis=1, keepdims=True))
    spread = spread.astype(np.float32)
    return spread @ coarse @ spread.T


def _warp(
    sources: np.ndarray, matrix: np.ndarray, offset: np.ndarray, field: np.ndarray
) -> np.ndarray:
    """float32 [n, SIZE, SIZE] (source units): each source sampled bilinearly through its
    inverse map."""
    n = len(sources)
    inverse = np.linalg.inv(matrix).astype(np.float32)[:, :, :, None, None]
    grid = np.arange(_SIZE, dtype=np.float32)
    out_x = grid[None, None, :] + field[:, 0] - offset[:, 0, None, None].astype(np.float32)
    out_y = grid[None, :, None] + field[:, 1] - offset[:, 1, None, None].astype(np.float32)
    x = np.clip(inverse[:, 0, 0] * out_x + inverse[:, 0, 1] * out_y, 0, _SRC - 1.001)
    y = np.clip(inverse[:, 1, 0] * out_x + inverse[:, 1, 1] * out_y, 0, _SRC - 1.001)
    x0, y0 = x.astype(np.intp), y.astype(np.intp)  # floor: coordinates are non-negative
    fx, fy = x - x0, y - y0
    flat = sources.reshape(-1)
    base = (np.arange(n, dtype=np.intp) * (_SRC * _SRC))[:, None, None] + y0 * _SRC + x0

    def corner(step: int) -> np.ndarray:
        return flat.take(base + step).astype(np.float32)

    top = _lerp(corner(0), corner(1), fx)
    bottom = _lerp(corner(_SRC), corner(_SRC + 1), fx)
    return _lerp(top, bottom, fy)


def _lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Linear interpolation from a (t = 0) to b (t = 1)."""
    return a + (b - a) * t


def _thicken(images: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """Grey dilation (radius > 0) or erosion (radius < 0, at most one pixel) by a fractional
    radius per pixel [n, SIZE, SIZE], alternating square and cross steps."""
    radius = np.minimum(radius, _MAX_THICKEN).astype(np.float32)
    out = images.copy()
    current = images
    for step in range(int(np.ceil(radius.max(initial=0.0)))):
        grown = _dilate(current, square=step % 2 == 0)
        out += np.clip(radius - step, 0.0, 1.0) * (grown - current)
        current = grown
    shrink = np.clip(-radius, 0.0, 1.0)
    if shrink.max(initial=0.0) > 0:
        out -= shrink * (images - _erode(images))
    return out


def _erode(images: np.ndarray) -> np.ndarray:
    """One step of grey erosion by the 4-neighbour cross."""
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1)))
    rows = np.minimum(np.minimum(padded[:, 1:-1, :-2], padded[:, 1:-1, 2:]), images)
    return np.minimum(rows, np.minimum(padded[:, :-2, 1:-1], padded[:, 2:, 1:-1]))


def _dilate(images: np.ndarray, square: bool) -> np.ndarray:
    """One step of 3x3 grey dilation (square) or its 4-neighbour cross."""
    rows = images.copy()
    np.maximum(rows[:, :, 1:], images[:, :, :-1], out=rows[:, :, 1:])
    np.maximum(rows[:, :, :-1], images[:, :, 1:], out=rows[:, :, :-1])
    source = rows if square else images
    out = rows.copy()
    np.maximum(out[:, 1:], source[:, :-1], out=out[:, 1:])
    np.maximum(out[:, :-1], source[:, 1:], out=out[:, :-1])
    return out


def _refit(images: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Crop to the ink, keep the aspect, centre and scale the longer side to _FIT_BOX: what
    EMNIST did to its scans, done on the pixels (the analytic placement only approximates the
    ink box once warp and pressure have moved the strokes). `shift` [n, 2] nudges the centre."""
    n = len(images)
    ink = images > 0.5 * images.max(axis=(1, 2), keepdims=True)
    index = np.arange(_SIZE)
    boxes = []
    for axis in (1, 2):  # x: columns holding ink; y: rows holding ink
        present = ink.any(axis=axis)
        low = np.where(present, index, _SIZE).min(axis=1)
        high = np.where(present, index, -1).max(axis=1)
        boxes.append((low, high))
    (x0, x1), (y0, y1) = boxes
    longer = np.maximum(x1 - x0, y1 - y0) + 1.0
    scale = np.clip(_FIT_BOX / np.maximum(longer, 1.0), 0.7, 1.4)
    out_pos = index - (_SIZE - 1) / 2
    matrices = []
    for axis, (low, high) in enumerate(((x0, x1), (y0, y1))):
        centre = (low + high) / 2 - shift[:, axis] / scale
        source = centre[:, None] + out_pos[None, :] / scale[:, None]  # [n, SIZE]
        below = np.floor(source).astype(np.intp)
        frac = (source - below).astype(np.float32)
        matrix = np.zeros((n, _SIZE, _SIZE), np.float32)
        rows = np.broadcast_to(np.arange(_SIZE), (n, _SIZE))
        batch = np.broadcast_to(np.arange(n)[:, None], (n, _SIZE))
        for column, weight in ((below, 1 - frac), (below + 1, frac)):
            inside = (column >= 0) & (column < _SIZE)
            matrix[batch[inside], rows[inside], column[inside]] += weight[inside]
        matrices.append(matrix)
    along_x, along_y = matrices
    return along_y @ images @ along_x.transpose(0, 2, 1)


def _lower_resolution(images: np.ndarray, sides: np.ndarray) -> np.ndarray:
    """Each image with side > 0 box-averaged down to side x side pixels and resized back
    bilinearly, as an image scanned or stored at that size reaches the model."""
    out = images
    for side in np.unique(sides[sides > 0]):
        where = np.flatnonzero(sides == side)
        through = _resize_matrix(_SIZE, int(side)) @ _resize_matrix(int(side), _SIZE)
        out[where] = through @ images[where] @ through.T
    return out


@functools.cache
def _resize_matrix(size: int, source: int) -> np.ndarray:
    """float32 [size, source]: 1-D resampling, box average when shrinking, else bilinear."""
    matrix = np.zeros((size, source), np.float32)
    ratio = source / size
    if ratio > 1:
        edges = np.arange(size + 1) * ratio
        for i in range(size):
            for j in range(int(edges[i]), int(np.ceil(edges[i + 1]))):
                matrix[i, j] = min(edges[i + 1], j + 1) - max(edges[i], j)
        return matrix / ratio
    centres = np.clip((np.arange(size) + 0.5) * ratio - 0.5, 0, source - 1)
    low = np.floor(centres).astype(int)
    high = np.minimum(low + 1, source - 1)
    frac = (centres - low).astype(np.float32)
    matrix[np.arange(size), low] += 1 - frac
    matrix[np.arange(size), high] += frac
    return matrix


def _blur(images: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Separable Gaussian blur with a per-sample sigma (pixels), 5 taps."""
    taps = np.arange(-2, 3)
    kernel = np.exp(-0.5 * (taps[None, :] / sigma[:, None]) ** 2)
    kernel = (kernel / kernel.sum(axis=1, keepdims=True)).astype(np.float32)
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2)))
    rows = sum(kernel[:, j, None, None] * padded[:, :, j : j + _SIZE] for j in range(5))
    return sum(kernel[:, j, None, None] * rows[:, j : j + _SIZE, :] for j in range(5))
