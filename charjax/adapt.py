"""`charjax adapt`: teach a trained run one writer's hand from the corrections they made.

    charjax adapt --workdir runs/demo --out runs/demo-me

RUN/corrections/ holds labelled 48x48 PNGs in the folder source's file-name layout
(`A_0001.png`, case-safe `065_0001.png`; charjax/datasets/folder.py). The new run starts from
RUN's best weights (`init_from`, fresh optimizer) and trains one short epoch of STEPS steps
in which every batch mixes the corrections (repeated, so they are a third of the images) with
a sample of RUN's own training data (for the synthetic set a fresh draw of the generator,
cached after the first adaptation), so what the run knew is not forgotten.
Validation and test come from that sample alone: they measure what the adaptation must not
lose. The result is an ordinary run folder that predict, eval, read and serve take.

It is meant to take seconds, not minutes: one epoch (one validation, one checkpoint), no
augmentation, plots, projector or TensorBoard, and arrays of the same shapes whatever the
number of corrections (up to a third of the epoch's images), so the compiled programs come
from the compilation cache after the first adaptation on a machine.

Everything is the ordinary trainer (charjax/train.py) on a derived config; this module only
prepares the two arrays (OUT/adapt/) and the config.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Callable

import ml_collections
import numpy as np

from charjax import charset, checkpoints, datasets, files
from charjax.errors import CharjaxError, DataError

MIN_CORRECTIONS = 10  # fewer corrections than this teach nothing reliable
STEPS = 90  # optimizer steps, in one epoch (more when the corrections outnumber their share)
CORRECTION_SHARE = 1 / 3  # corrections' share of the training images (by repetition)
HELD_OUT = 62 * 4  # images of the run's own data for validation, and as many for the test
LEARNING_RATE = 3e-4  # a tenth of a fresh run's rate, held constant: small steps from RUN

log = logging.getLogger(__name__)


class AdaptError(CharjaxError):
    """Adaptation cannot start (no run, no or too few corrections, OUT already used)."""


def corrections_dir(workdir: str | os.PathLike) -> str:
    return os.path.join(os.fspath(workdir), "corrections")


def adapt_config(
    run_config: ml_collections.ConfigDict, workdir: str, out: str, general_npz: str,
    corrections_npz: str, held_out: int,
) -> ml_collections.ConfigDict:
    """The run's config turned into the adaptation's: same model and framing, the sample as
    the source (split for validation and test), the corrections as the training mix."""
    config = ml_collections.ConfigDict(run_config.to_dict())
    config.init_from = os.fspath(workdir)
    config.num_epochs = 1
    config.learning_rate = LEARNING_RATE
    config.optimizer.schedule = "constant"
    config.optimizer.warmup_epochs = 0.0
    config.ensemble_members = 1
    config.keep_best = 1
    config.log_every_steps = 0
    config.data.source = f"npz:{general_npz}"
    config.data.train_mix = f"npz:{corrections_npz}"
    config.data.val_count = held_out
    config.data.test_count = held_out
    config.report.tensorboard = False
    config.report.plots = False
    config.report.projector_max = 0
    config.report.sample_images = 0
    config.report.progress = "off"
    # The corrections are the writer's own forms: undistorted they are learnt in fewer steps
    # (benchmarks/RESULTS.md, "Adaptation: where its time goes"), and each step costs less.
    config.augment.enabled = False
    return config


def free_out_dir(workdir: str | os.PathLike) -> str:
    """The first of RUN-me, RUN-me-2, ... that holds no run (where serve adapts to)."""
    base = os.path.normpath(os.fspath(workdir)) + "-me"
    names = (base if i == 1 else f"{base}-{i}" for i in itertools.count(1))
    return next(n for n in names if not os.path.isdir(checkpoints.checkpoint_dir(n)))


def training_mix(batch_size: int, corrections: int) -> tuple[int, int]:
    """(images of the run's own data, correction images) in the adaptation's epoch of STEPS
    batches: the corrections fill CORRECTION_SHARE of it (more, if there are more)."""
    images = STEPS * batch_size
    own = int((1 - CORRECTION_SHARE) * images)
    return own, max(images - own, corrections)


def repeat_to(images: np.ndarray, labels: np.ndarray, count: int,
              seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The corrections repeated (whole copies, then a random part) to `count` images."""
    target = max(len(labels), count)
    rng = np.random.default_rng(seed)
    index = np.concatenate([np.arange(len(labels))] * (target // len(labels))
                           + [rng.permutation(len(labels))[: target % len(labels)]])
    return images[index], labels[index]


def _general_sample(run_config: ml_collections.ConfigDict, count: int, seed: int):
    """`count` images of the run's own training source: for the synthetic set a fresh,
    cached draw from the same generator; for any other source a sample of its images."""
    data = run_config.data
    if data.source == "synthetic":
        from charjax.datasets import synthetic

        return synthetic.load(count, seed, data.framing, data.cache_dir or None)
    dataset = datasets.load(data.source, data)
    pick = np.random.default_rng(seed).permutation(len(dataset))[:count]
    return dataset.subset(pick)


def adapt(workdir: str, out: str, train_and_evaluate: Callable[..., dict]) -> dict:
    """Fine-tunes RUN (`workdir`) on RUN/corrections into the new run `out`; returns its
    metrics (metrics.json) with the number of corrections used. `train_and_evaluate` is the
    trainer's (charjax.train), passed in by the caller: this module only prepares."""
    start = time.perf_counter()
    if os.path.abspath(out) == os.path.abspath(workdir):
        raise AdaptError(f"--out {out}: is the run itself; name a new folder, e.g. {out}-me")
    if os.path.isdir(checkpoints.checkpoint_dir(out)):
        raise AdaptError(f"--out {out}: already holds a run; name a new folder or delete it")
    _, run_config = checkpoints.load_for_inference(workdir)
    folder = corrections_dir(workdir)
    if not os.path.isdir(folder):
        raise AdaptError(f"{folder}: no corrections yet; save some (charjax serve, the word "
                         "page) or put labelled 48x48 PNGs there (A_0001.png)")
    try:
        corrections = datasets.load(f"folder:{folder}", run_config.data)
    except DataError as e:
        raise AdaptError(f"corrections: {e}") from e
    n = len(corrections)
    classes = len(np.unique(corrections.labels))
    if n < MIN_CORRECTIONS or classes < 2:
        raise AdaptError(f"{folder}: {n} correction(s) of {classes} character(s); adapting "
                         f"needs at least {MIN_CORRECTIONS} of 2 or more characters")
    seed = int(run_config.seed)
    own, slots = training_mix(int(run_config.batch_size), n)
    general = _general_sample(run_config, own + 2 * HELD_OUT, seed + 1)
    images, labels = repeat_to(corrections.images, corrections.labels, slots, seed)
    data_dir = os.path.join(os.fspath(out), "adapt")
    os.makedirs(data_dir, exist_ok=True)
    general_npz = os.path.abspath(os.path.join(data_dir, "general.npz"))
    corrections_npz = os.path.abspath(os.path.join(data_dir, "corrections.npz"))
    for path, imgs, labs in ((general_npz, general.images, general.labels),
                             (corrections_npz, images, labels)):
        with files.atomic_path(path, suffix=".npz") as tmp:
            np.savez(tmp, images=np.asarray(imgs)[..., 0], labels=np.asarray(labs, np.int32),
                     classes=charset.CLASSES)
    config = adapt_config(run_config, workdir, out, general_npz, corrections_npz, HELD_OUT)
    log.info("adapting %s on %d corrections of %d characters, with %d of its own images",
             workdir, n, classes, len(general))
    result = train_and_evaluate(config, os.fspath(out))
    return {**result, "corrections": n, "seconds": time.perf_counter() - start}
