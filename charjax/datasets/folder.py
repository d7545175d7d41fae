"""`folder:PATH` — a folder of labelled character images, decoded on all cores and cached.

Two layouts, decided once from what the folder's top level holds, before any file is read:

* **Labelled file names** (the tutorial's; PATH has no sub-folder named like a class):
  images anywhere under PATH whose name carries
  the label, e.g. ``A_0001.png``, ``a_0002.jpg``, ``label_97_0003.png``, ``u0061_0004.png``.
  The label is read with the regex ``data.folder.pattern``, which must have a named group
  ``label`` and is matched (``re.fullmatch``) against the file name without its extension.
  The default, DEFAULT_PATTERN, takes the first token of the name, before ``_``, ``-``,
  ``.`` or a space, after an optional ``label_`` prefix.
* **One sub-folder per class**: PATH holds no image files itself and every sub-folder
  name is a label token (``A/``, ``a/``, ``97/``, ``u0061/``); its images may have any name
  and may sit in deeper folders.
* Anything else (class sub-folders *and* images at the top, or *and* other folders) is a
  **mixed** layout: a DataError naming the files that disagree. With ``skip_bad`` it is
  read as one sub-folder per class and those files are left out as bad, so skip_bad
  never changes how the other files are labelled.

A label token is one character of the charset (``A``), or — because ``a`` and ``A``
collide on case-insensitive file systems (macOS, Windows) — its character code: two or
three decimal digits (``97``) or ``u`` and four hex digits (``u0061``). So a digit label
is always written as the single character (``7_0001.png``); ``07`` means code 7 and is
rejected as outside the charset. `charjax data export` writes ``label_<code>_<n>.png``
with a three-digit code (``label_097_000001.png``), so names sort in charset order.

Images: anything Pillow reads, any size or mode, prepared by `charjax.framing.prepare`
exactly as `charjax predict` prepares a user's image (as data.preparation says). Files are
considered images by extension (Pillow's registered ones); other files (README.txt,
labels.csv) are left out with a warning, hidden files and folders (``.DS_Store``, ``.git``)
quietly.

Bad data, each a defined outcome (data.skip_bad=False stops with one DataError naming the
file; True leaves the file out and lists it, see `charjax.datasets.skipped`):
  zero-byte, truncated or unreadable files, text named .png, formats Pillow cannot read,
  images over `imageio.MAX_PIXELS` (decompression bombs, refused from the header), labels
  outside the charset, names the pattern does not match, dangling or looping symlinks.
Always, whatever skip_bad says:
  * an empty folder, or one with no usable image, is a DataError;
  * byte-identical files with the same label: the first (in sorted path order) is kept,
    the copies are left out as ``duplicate`` — they would otherwise leak the same sample
    into train and test. Identical bytes under *different* labels are ``bad``: every copy
    is left out, since at least one label is wrong;
  * a symlinked folder reached a second time (a loop) is not walked again (``ignored``);
  * one class only loads (evaluation may want it) with a warning; training refuses it,
    see `charjax.datasets.require_classes`.

The decoded set is cached as .npz (atomic write) under the cache dir, keyed by a hash of
the relative paths, sizes and mtimes of the files, the pattern, framing and preparation;
a second load of an unchanged folder reads that file and decodes nothing.
"""

from __future__ import annotations

import concurrent.futures
import errno
import hashlib
import logging
import multiprocessing
import os
import re
import stat
import time
from typing import Any, NamedTuple

import numpy as np
from PIL import Image

from charjax import charset, files, imageio
from charjax import framing as framing_lib
from charjax.datasets import sources
from charjax.datasets.base import Dataset
from charjax.datasets.skipped import Skipped, summarize
from charjax.errors import ConfigError, DataError

DEFAULT_PATTERN = r"(?:label_)?(?P<label>u[0-9A-Fa-f]{4}|[0-9]{2,3}|[0-9A-Za-z])(?:[_\-. ].*)?"
CACHE_VERSION = 1
CHUNK = 256  # paths per worker task: amortises the pickling and scheduling per file
PROGRESS_EVERY_S = 5.0
PARALLEL_MIN_FILES = 2000  # below this, starting worker processes costs more than it saves
# Image formats people use that Pillow cannot decode: a clear "unsupported" instead of "ignored".
UNSUPPORTED_EXTENSIONS = frozenset(
    {".svg", ".svgz", ".heic", ".heif", ".jxl", ".raw", ".cr2", ".nef", ".arw", ".dng", ".xcf",
     ".psb", ".ai", ".eps", ".pdf"}
) - frozenset(Image.registered_extensions())

_log = logging.getLogger("charjax.datasets.folder")
_TOKEN = re.compile(r"u[0-9A-Fa-f]{4}|[0-9]{2,3}|.", re.DOTALL)


class _File(NamedTuple):
    rel: str
    size: int
    mtime_ns: int


class _Scan(NamedTuple):
    files: list[_File]  # image candidates, sorted by relative path
    skipped: list[Skipped]  # bad or ignored entries found while walking
    layout: str  # "names", "classes" or "mixed" (see _layout)
    top_images: list[str]  # image files at the top level, sorted
    other_dirs: list[str]  # top-level folders whose names are not label tokens, sorted


def token_to_char(token: str) -> str | None:
    """'A' -> 'A', '97' -> 'a', 'u0061' -> 'a'; None for anything that is not a label token."""
    if not _TOKEN.fullmatch(token):
        return None
    if len(token) == 1:
        return token
    return chr(int(token[1:], 16) if token[0] in "uU" else int(token))


def label_token(char: str) -> str:
    """The case-safe token `export` writes: the decimal code, 3 digits ('a' -> '097'), so
    names sort in charset order (digits 048-057, A-Z 065-090, a-z 097-122)."""
    return f"{ord(char):03d}"


def load(
    path: str | os.PathLike,
    pattern: str = DEFAULT_PATTERN,
    skip_bad: bool = False,
    cache_dir: str | os.PathLike | None = None,
    workers: int | None = None,
    framing: str = "line",
    preparation: int = framing_lib.PREPARATION,
) -> tuple[Dataset, list[Skipped]]:
    """Loads a labelled image folder; returns the Dataset and every file left out, with why.

    `workers`: decoding processes (default: the cores this process may use; 1 = in-process).
    `framing`, `preparation` (config.data): how `charjax.framing.prepare` frames each image.
    """
    root = os.path.expanduser(os.fspath(path))
    regex = _compile(pattern)
    if not os.path.exists(root):
        raise DataError(f"{root}: no such folder (folder:PATH wants a folder of images)")
    if not os.path.isdir(root):
        raise DataError(f"{root}: is a file, not a folder (for an .npz file use npz:{root})")
    start = time.perf_counter()
    scan = _scan(root)
    if scan.layout == "mixed" and not skip_bad:
        raise DataError(_mixed_message(root, scan))
    labels, skipped = _label_files(root, scan, regex, pattern)
    _fail_on_bad(skipped, skip_bad)

    key = _cache_key(scan, f"{pattern} {framing} p{preparation}")
    cache_file = _cache_path(root, key, cache_dir)
    cached = _read_cache(cache_file, root)
    if cached is not None:
        dataset, skipped = cached
        _fail_on_bad(skipped, skip_bad)
        _log.info("%s: %d images from cache %s in %.2f s", root, len(dataset), cache_file,
                  time.perf_counter() - start)
    else:
        files = [f.rel for f, label in zip(scan.files, labels, strict=True) if label >= 0]
        keep = np.array([label >= 0 for label in labels], bool)
        images, digests, errors = _decode_all(root, files, skip_bad, workers,
                                              (framing, preparation))
        skipped += [Skipped(os.path.join(root, files[i]), "bad", e) for i, e in errors.items()]
        dataset, dup_skipped = _assemble(
            root, files, images, np.asarray(labels, np.int32)[keep], digests, errors
        )
        skipped += dup_skipped
        _fail_on_bad(skipped, skip_bad)
        skipped.sort(key=lambda s: s.path)
        _check_not_empty(root, dataset, scan, skipped)
        _write_cache(cache_file, root, dataset, skipped)
        seconds = time.perf_counter() - start
        _log.info("%s: decoded %d images in %.1f s (%.0f images/s); cached at %s", root,
                  len(dataset), seconds, len(files) / max(seconds, 1e-9), cache_file)
    summarize(skipped, root)
    _warn_classes(root, dataset)
    return dataset, skipped


def _load_source(path: str, data: Any) -> tuple[Dataset, list[Skipped]]:
    return load(path, pattern=data.folder.pattern or DEFAULT_PATTERN, skip_bad=data.skip_bad,
                cache_dir=data.cache_dir or None, framing=framing_lib.check_framing(data.framing),
                preparation=framing_lib.check_preparation(data.preparation))


def _check_block(c: Any) -> None:
    try:  # data.folder.pattern: empty (the built-in one) or a regex with a `label` group
        _compile(c.text("data.folder.pattern") or DEFAULT_PATTERN)
    except DataError as e:
        raise ConfigError(f"--config.{e}; fix it, or leave it empty for the built-in one") from None


sources.register(sources.Source(
    "folder", "PATH", "image files labelled by name (A_0001.png, label_097_0001.png) or by "
    "sub-folder (A/, 097/)", _load_source, _check_block))


# ----------------------------------------------------------------------------- scanning


def _compile(pattern: str) -> re.Pattern:
    try:
        regex = re.compile(pattern)
    except re.error as e:
        raise DataError(f"data.folder.pattern {pattern} is not a valid regex: {e}") from None
    if "label" not in regex.groupindex:
        raise DataError(
            f"data.folder.pattern {pattern} needs a named group (?P<label>...) around the "
            "label token"
        )
    return regex


def _scan(root: str) -> _Scan:
    """Walks `root` (following symlinks, never twice into one folder); sorted image candidates."""
    image_exts = frozenset(Image.registered_extensions())
    files: list[_File] = []
    skipped: list[Skipped] = []
    seen: dict[tuple[int, int], str] = {}
    top_dirs: list[str] = []
    top_images: list[str] = []
    stack = [""]
    root_stat = os.stat(root)
    seen[(root_stat.st_dev, root_stat.st_ino)] = "."
    while stack:
        rel_dir = stack.pop()
        try:
            entries = list(os.scandir(os.path.join(root, rel_dir)))
        except OSError as e:
            skipped.append(Skipped(os.path.join(root, rel_dir), "bad",
                                   f"cannot list folder ({e.strerror or e})"))
            continue
        prefix = rel_dir + os.sep if rel_dir else ""
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                continue
            rel = prefix + name
            try:
                st = entry.stat()  # follows symlinks
            except OSError as e:
                reason = ("symlink loop" if e.errno == errno.ELOOP else "dangling symlink"
                          if entry.is_symlink() else f"cannot stat ({e.strerror or e})")
                skipped.append(Skipped(entry.path, "bad", reason))
                continue
            if stat.S_ISDIR(st.st_mode):
                ident = (st.st_dev, st.st_ino)
                if ident in seen:
                    skipped.append(Skipped(entry.path, "ignored",
                                           f"folder already read as {seen[ident]} (symlink loop "
                                           "or second link); not read again"))
                    continue
                seen[ident] = rel
                stack.append(rel)
                if not rel_dir:
                    top_dirs.append(name)
                continue
            dot = name.rfind(".")
            ext = name[dot:].lower() if dot > 0 else ""
            if ext in image_exts:
                files.append(_File(rel, st.st_size, st.st_mtime_ns))
                if not rel_dir:
                    top_images.append(name)
            elif ext in UNSUPPORTED_EXTENSIONS:
                skipped.append(Skipped(entry.path, "bad", f"unsupported image format {ext}; "
                                       "convert it to PNG"))
            else:
                skipped.append(Skipped(entry.path, "ignored",
                                       "not an image file (by its extension)"))
    files.sort()
    other_dirs = sorted(d for d in top_dirs if token_to_char(d) is None)
    layout = _layout(len(top_dirs) - len(other_dirs), bool(top_images), bool(other_dirs))
    return _Scan(files, skipped, layout, sorted(top_images), other_dirs)


def _layout(class_dirs: int, top_images: bool, other_dirs: bool) -> str:
    """The folder's layout, decided once from its top level, before any file is read.

    Class sub-folders alone: "classes". No class sub-folder: "names". Both class folders
    and images at the top (or folders that are not class names): "mixed", which is refused
    unless skip_bad, and then read as "classes" with the disagreeing files left out, so
    skip_bad never changes how the other files are labelled.
    """
    if not class_dirs:
        return "names"
    return "mixed" if top_images or other_dirs else "classes"


def _mixed_message(root: str, scan: _Scan) -> str:
    def listed(names: list[str], suffix: str = "") -> str:
        shown = ", ".join(n + suffix for n in names[:3])
        return shown + (f" and {len(names) - 3} more" if len(names) > 3 else "")

    parts = []
    if scan.top_images:
        parts.append(f"image files at its top ({listed(scan.top_images)})")
    if scan.other_dirs:
        parts.append(f"folders that are not class names ({listed(scan.other_dirs, '/')})")
    return (
        f"{root}: mixed layout: class sub-folders (one per character) but also "
        f"{' and '.join(parts)}, which would be labelled another way; move those into their "
        "class folders or out of the folder, or pass --config.data.skip_bad=True to leave "
        "them out")


def _label_files(
    root: str, scan: _Scan, regex: re.Pattern, pattern: str
) -> tuple[list[int], list[Skipped]]:
    """Class index per candidate file (-1 where the label is bad) and the skipped so far."""
    skipped = list(scan.skipped)
    labels = []
    index = {c: i for i, c in enumerate(charset.CLASSES)}
    for f in scan.files:
        if scan.layout == "mixed" and os.sep not in f.rel:
            skipped.append(Skipped(os.path.join(root, f.rel), "bad",
                                   "an image at the top of a folder of class sub-folders "
                                   "(mixed layout); move it into its class folder"))
            labels.append(-1)
            continue
        if scan.layout in ("classes", "mixed"):
            token, where = f.rel.split(os.sep, 1)[0], "folder name"
        else:
            name = f.rel[f.rel.rfind(os.sep) + 1 :]
            stem = name[: name.rfind(".")] if name.rfind(".") > 0 else name
            match = regex.fullmatch(stem)
            token = match.group("label") if match else None
            where = "file name"
            if token is None:
                skipped.append(Skipped(os.path.join(root, f.rel), "bad", _no_match_hint(
                    stem, pattern)))
                labels.append(-1)
                continue
        char = token if len(token) == 1 else token_to_char(token)
        if char is None or char not in index:
            shown = f"{token!r}" + (f" (= {char!r})" if char and char != token else "")
            skipped.append(Skipped(os.path.join(root, f.rel), "bad",
                                   f"label {shown} from the {where} is not one of the "
                                   f"{charset.NUM_CLASSES} classes 0-9 A-Z a-z" +
                                   ("; a 2-3 digit label is a character code (65 = 'A'), "
                                    "write a digit as one character" if token.isdigit() else "")))
            labels.append(-1)
            continue
        labels.append(index[char])
    return labels, skipped


def _no_match_hint(stem: str, pattern: str) -> str:
    if pattern == DEFAULT_PATTERN:
        return (f"file name {stem!r} does not start with a label (one of the "
                f"{charset.NUM_CLASSES} characters 0-9 A-Z a-z, or its code); name files like "
                "A_0001.png, label_97_0001.png or u0061_0001.png, put them in one sub-folder "
                "per class, or set --config.data.folder.pattern")
    # The pattern as typed, not its repr: a repr doubles every backslash.
    return (f"file name {stem!r} does not match the label pattern {pattern} "
            "(data.folder.pattern); fix the name or the pattern")


def _fail_on_bad(skipped: list[Skipped], skip_bad: bool) -> None:
    bad = sorted((s for s in skipped if s.kind == "bad"), key=lambda s: s.path)
    if bad and not skip_bad:
        more = f" ({len(bad) - 1} more bad file(s) found so far)" if len(bad) > 1 else ""
        raise DataError(
            f"{bad[0].path}: {bad[0].reason}{more}. Fix or remove it, or pass "
            "--config.data.skip_bad=True to leave bad files out (they are listed in "
            "WORKDIR/skipped_files.txt)"
        )


# ----------------------------------------------------------------------------- decoding


def decode_files(
    paths: list[str], how: tuple[str, int] = ("line", framing_lib.PREPARATION)
) -> tuple[np.ndarray, list[bytes], dict[int, str]]:
    """Worker task: images uint8 [k, 48, 48, 1], a content digest and an error per failed file."""
    # Preparation 1 decoded a line-framed JPEG gray and frame-sized (Pillow's draft).
    draft = ("L", charset.IMAGE_SIZE) if how == ("line", 1) else (None, 1024)
    images = np.zeros((len(paths), *charset.IMAGE_SHAPE), np.uint8)
    digests = [b""] * len(paths)
    errors: dict[int, str] = {}
    for i, path in enumerate(paths):
        try:
            with open(path, "rb") as f:
                data = f.read()
            digests[i] = hashlib.blake2b(data, digest_size=16).digest()
            picture = imageio.open_picture(data, path, draft)
            images[i] = framing_lib.prepare(picture, *how).pixels
        except (DataError, ValueError) as e:
            errors[i] = str(e).removeprefix(f"{path}: ")
        except OSError as e:
            errors[i] = f"cannot read ({e.strerror or e})"
    return images, digests, errors


def _log_progress(done: int, total: int, seconds: float) -> None:
    """The one place progress is reported (a progress bar may replace this line later)."""
    rate = done / max(seconds, 1e-9)
    eta = (total - done) / rate if rate > 0 else float("inf")
    _log.info("decoded %d/%d images (%.0f images/s, ETA %.0f s)", done, total, rate, eta)


def _worker_count(workers: int | None, n_files: int) -> int:
    if workers is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        workers = 1 if n_files < PARALLEL_MIN_FILES else (cores or 1)
    return max(1, min(workers, -(-n_files // CHUNK) if n_files else 1))


def _decode_all(
    root: str, files: list[str], skip_bad: bool, workers: int | None, how: tuple[str, int]
) -> tuple[np.ndarray, list[bytes], dict[int, str]]:
    """Decodes every file in chunks; stops at the first bad one unless skip_bad."""
    n = len(files)
    images = np.zeros((n, *charset.IMAGE_SHAPE), np.uint8)
    digests: list[bytes] = [b""] * n
    errors: dict[int, str] = {}
    chunks = [
        (s, [os.path.join(root, f) for f in files[s : s + CHUNK]]) for s in range(0, n, CHUNK)
    ]
    start = last = time.perf_counter()
    done = 0

    def take(offset: int, result: tuple[np.ndarray, list[bytes], dict[int, str]]) -> None:
        nonlocal done, last
        chunk_images, chunk_digests, chunk_errors = result
        images[offset : offset + len(chunk_images)] = chunk_images
        digests[offset : offset + len(chunk_digests)] = chunk_digests
        errors.update({offset + i: e for i, e in chunk_errors.items()})
        done += len(chunk_images)
        now = time.perf_counter()
        if now - last >= PROGRESS_EVERY_S and done < n:
            _log_progress(done, n, now - start)
            last = now

    def check() -> None:
        if errors and not skip_bad:
            first = min(errors)
            _fail_on_bad([Skipped(os.path.join(root, files[first]), "bad", errors[first])], False)

    count = _worker_count(workers, n)
    if count == 1:
        for offset, paths in chunks:
            take(offset, decode_files(paths, how))
            check()
        return images, digests, errors
    # spawn, not fork: the parent may already run JAX's threads, which fork would copy mid-lock.
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(count, mp_context=context) as pool:
        futures = {pool.submit(decode_files, paths, how): offset for offset, paths in chunks}
        try:
            for future in concurrent.futures.as_completed(futures):
                take(futures[future], future.result())
                check()
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    return images, digests, errors


def _assemble(
    root: str,
    files: list[str],
    images: np.ndarray,
    labels: np.ndarray,
    digests: list[bytes],
    errors: dict[int, str],
) -> tuple[Dataset, list[Skipped]]:
    """Drops failed files and duplicates (see the module docstring); the Dataset in path order."""
    keep = np.ones(len(files), bool)
    keep[list(errors)] = False
    skipped: list[Skipped] = []
    first_of: dict[bytes, int] = {}
    conflicted: dict[int, int] = {}  # first copy -> a differently labelled copy
    for i, digest in enumerate(digests):
        if not keep[i]:
            continue
        if digest not in first_of:
            first_of[digest] = i
            continue
        j = first_of[digest]
        keep[i] = False
        same = labels[i] == labels[j]
        if same:
            skipped.append(Skipped(os.path.join(root, files[i]), "duplicate",
                                   f"same bytes as {os.path.join(root, files[j])}; kept that one"))
        else:
            conflicted.setdefault(j, i)
            skipped.append(Skipped(
                os.path.join(root, files[i]), "bad",
                f"same bytes as {os.path.join(root, files[j])} but labelled "
                f"{charset.CLASSES[labels[i]]!r}, not {charset.CLASSES[labels[j]]!r}"))
    for j, i in sorted(conflicted.items()):
        keep[j] = False
        skipped.append(Skipped(
            os.path.join(root, files[j]), "bad",
            f"same bytes as {os.path.join(root, files[i])} but labelled "
            f"{charset.CLASSES[labels[j]]!r}, not {charset.CLASSES[labels[i]]!r}"))
    return Dataset(images[keep], labels[keep]), skipped


def _check_not_empty(root: str, dataset: Dataset, scan: _Scan, skipped: list[Skipped]) -> None:
    if len(dataset):
        return
    if not scan.files and not skipped:
        raise DataError(f"{root}: the folder is empty; put labelled images in it "
                        "(e.g. A_0001.png, or one sub-folder per class)")
    raise DataError(
        f"{root}: no usable image among {len(scan.files)} image file(s) "
        f"({len(skipped)} left out, e.g. {skipped[0].path}: {skipped[0].reason})"
        if skipped else f"{root}: no usable image"
    )


def _warn_classes(root: str, dataset: Dataset) -> None:
    present = np.unique(dataset.labels)
    if len(present) == 1:
        _log.warning("%s: every image is one class (%r); fine to evaluate on, but training "
                     "needs at least 2 classes", root, charset.CLASSES[present[0]])


# ----------------------------------------------------------------------------- cache


def _cache_key(scan: _Scan, pattern: str) -> str:
    h = hashlib.sha256()
    h.update(f"v{CACHE_VERSION} {charset.IMAGE_SIZE} "
             f"{charset.CLASSES} {scan.layout} {pattern}\n".encode())
    for f in scan.files:
        h.update(f"{f.rel}\0{f.size}\0{f.mtime_ns}\n".encode("utf-8", "surrogateescape"))
    for s in scan.skipped:
        h.update(f"{s.path}\0{s.kind}\0{s.reason}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()[:32]


def _cache_path(root: str, key: str, cache_dir: str | os.PathLike | None) -> str:
    where = files.cache_dir(cache_dir)
    tag = hashlib.sha256(os.path.realpath(root).encode("utf-8", "surrogateescape")).hexdigest()
    return os.path.join(where, "folders", f"{tag[:12]}-{key}.npz")


def _read_cache(path: str, root: str) -> tuple[Dataset, list[Skipped]] | None:
    if not os.path.isfile(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            dataset = Dataset(data["images"], data["labels"].astype(np.int32))
            skipped = [
                Skipped(os.path.join(root, p), str(k), str(r))
                for p, k, r in zip(data["skipped_rel"], data["skipped_kind"],
                                   data["skipped_reason"], strict=True)
            ]
    except (OSError, ValueError, KeyError, EOFError) as e:
        _log.warning("ignoring unreadable cache %s (%s); decoding again", path, e)
        return None
    return dataset, skipped


def _write_cache(path: str, root: str, dataset: Dataset, skipped: list[Skipped]) -> None:
    """Atomic (temp file + rename); older caches of the same folder are removed."""
    directory = os.path.dirname(path)
    rel = [os.path.relpath(s.path, root) for s in skipped]
    try:
        os.makedirs(directory, exist_ok=True)
        with files.atomic_path(path, suffix=".npz") as tmp:
            np.savez(tmp, images=dataset.images, labels=dataset.labels,
                     skipped_rel=np.array(rel, dtype=str),
                     skipped_kind=np.array([s.kind for s in skipped], dtype=str),
                     skipped_reason=np.array([s.reason for s in skipped], dtype=str))
    except OSError as e:
        _log.warning("cannot write the folder cache in %s (%s); the next load decodes again",
                     directory, e)
        return
    prefix = os.path.basename(path).split("-", 1)[0] + "-"
    for name in os.listdir(directory):
        if name.startswith(prefix) and name != os.path.basename(path):
            try:
                os.unlink(os.path.join(directory, name))
            except OSError:
                pass
