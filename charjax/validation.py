"""Checks a training config before the run touches anything, so a bad value costs nothing.

`check_config` looks at the config alone (names, types, ranges) and runs before the
workdir is created or anything is compiled; `check_splits` looks at the split sizes once
the data is loaded, still before anything is written. `check_progress` guards each epoch's
numbers: a diverged or a learn-nothing run stops with the reason. Every failure is one
`ConfigError` (or `DivergedError`) whose message reads
``--config.FIELD=VALUE: what is wrong; the fix`` — the same spelling as the override that
mends it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from charjax import charset, framing, kernels, models, optim
from charjax.datasets import sources
from charjax.errors import ConfigError, DivergedError
from charjax.reporting.reporter import PROGRESS_MODES

_MISSING = object()


def _get(config: Any, dotted: str) -> Any:
    node = config
    for part in dotted.split("."):
        try:
            node = node[part]
        except (KeyError, TypeError, AttributeError):
            return _MISSING
    return node


def _fail(field: str, value: Any, problem: str, fix: str) -> ConfigError:
    return ConfigError(f"--config.{field}={value!r}: {problem}; {fix}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool)


class _Checker:
    """Reads fields of one config; each method raises on the first bad value."""

    def __init__(self, config: Any):
        self.config = config

    def value(self, field: str) -> Any:
        value = _get(self.config, field)
        if value is _MISSING:
            raise ConfigError(
                f"config.{field} is missing; add it to the config file (configs/default.py "
                "lists every field)")
        return value

    def integer(self, field: str, minimum: int, example: int, why: str = "",
                maximum: float = math.inf) -> int:
        value = self.value(field)
        if not _is_int(value) or not minimum <= value <= maximum:
            bound = f">= {minimum}" if math.isinf(maximum) else f"in {minimum}..{maximum}"
            raise _fail(field, value, f"must be a whole number {bound}{why}",
                        f"e.g. --config.{field}={example}")
        return int(value)

    def number(
        self, field: str, low: float, high: float, example: float, *,
        low_open: bool = False, high_open: bool = False, why: str = "",
    ) -> float:
        value = self.value(field)
        ok = _is_number(value) and math.isfinite(float(value))
        if ok:
            v = float(value)
            ok = (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
        if not ok:
            left = "(" if low_open else "["
            right = ")" if high_open or math.isinf(high) else "]"
            shown_high = "inf" if math.isinf(high) else f"{high:g}"
            raise _fail(field, value, f"must be a finite number in {left}{low:g}, "
                        f"{shown_high}{right}{why}", f"e.g. --config.{field}={example}")
        return float(value)

    def choice(self, field: str, choices: Sequence[str]) -> str:
        value = self.value(field)
        if str(value) not in choices or not isinstance(value, str | int):
            raise _fail(field, value, "unknown name", f"choose one of {', '.join(choices)}")
        return str(value)

    def boolean(self, field: str) -> bool:
        value = self.value(field)
        if not isinstance(value, bool | np.bool_):
            raise _fail(field, value, "must be True or False", f"e.g. --config.{field}=True")
        return bool(value)

    def text(self, field: str) -> str:
        value = self.value(field)
        if not isinstance(value, str):
            raise _fail(field, value, "must be a string", f"e.g. --config.{field}=''")
        return value


def check_config(config: Any) -> None:
    """Raises ConfigError for the first field of a training config that cannot work."""
    c = _Checker(config)
    c.integer("seed", 0, 0)
    epochs = c.integer("num_epochs", 1, 12, " (the epochs to train)")
    c.integer("batch_size", 1, 128, " (images per training step)")
    c.integer("eval_batch_size", 1, 512, " (images per evaluation step)")
    c.number("learning_rate", 0.0, math.inf, 1e-3, low_open=True)
    c.number("label_smoothing", 0.0, 1.0, 0.1, high_open=True)
    c.number("ema_decay", 0.0, 1.0, 0.999, high_open=True, why=" (0 turns the average off)")
    c.choice("precision", models.PRECISIONS)
    c.integer("log_every_steps", 0, 100, " (0: no step logging)")
    c.integer("ensemble_members", 1, 5)
    c.integer("keep_best", 1, 2, " (best checkpoints kept)")
    c.text("init_from")
    check_backend_fields(config)

    name = models.canonical_name(c.choice("model.name", models.model_choices()))
    models.entry(name).check(c, f"model.{name}")
    impl = c.choice("model.impl", kernels.IMPLS)
    try:
        # "auto" always finds kernels; asking which would start the backend, and a
        # multi-process run must not start it before jax.distributed does
        if impl != "auto":
            kernels.select(models.kernel_setting(config.model), precision=config.precision)
    except RuntimeError as err:
        raise _fail("model.impl", impl, str(err).removeprefix(f"model.impl={impl!r} but "),
                    "use --config.model.impl=auto") from None

    c.choice("optimizer.name", optim.NAMES)
    c.choice("optimizer.schedule", optim.SCHEDULES)
    c.number("optimizer.weight_decay", 0.0, math.inf, 1e-4)
    c.number("optimizer.warmup_epochs", 0.0, float(epochs), 0.0,
             high_open=epochs > 0 and c.value("optimizer.schedule") != "constant",
             why=f" (at most num_epochs={epochs}, and less for a decaying schedule)")
    c.number("optimizer.final_lr_fraction", 0.0, 1.0, 0.01)
    c.number("optimizer.grad_clip_norm", 0.0, math.inf, 1.0, why=" (0: no clipping)")

    _check_data(c)
    _check_augment(c)
    c.choice("report.progress", PROGRESS_MODES)
    for field, example in (("report.projector_max", 10_000), ("report.sample_images", 64),
                           ("report.error_images", 64), ("report.confused_pairs", 25),
                           ("report.projector_every_epochs", 0)):
        c.integer(field, 0, example)
    c.boolean("report.tensorboard")
    c.boolean("report.plots")


def check_backend_fields(config: Any) -> None:
    """The fields `charjax.backend.configure` reads before anything else runs."""
    c = _Checker(config)
    c.integer("steps_per_call", 0, 16, " (0: auto, 1 on a CPU, 16 on a GPU)")
    c.boolean("deterministic")
    c.boolean("compilation_cache")


def _source(c: _Checker, field: str) -> sources.Source:
    """The registered source the dataset spec in `field` names."""
    spec = c.text(field)
    found = sources.find(spec)
    if found is None:
        raise _fail(field, spec, "unknown dataset spec", f"use one of {sources.usages()}")
    return found[0]


def _check_data(c: _Checker) -> None:
    used = [_source(c, "data.source")]
    used += [_source(c, "data.train_mix")] if c.text("data.train_mix") else []
    why = " (the best epoch is chosen on the validation split, and the test split scores it)"
    val_count, test_count = c.value("data.val_count"), c.value("data.test_count")
    if (val_count is None) != (test_count is None):
        raise ConfigError(
            f"--config.data.val_count={val_count!r} and --config.data.test_count="
            f"{test_count!r}: set both (a split by counts) or neither (by fractions)")
    if val_count is not None:
        c.integer("data.val_count", 1, 700, why)
        c.integer("data.test_count", 1, 700, why)
    val = c.number("data.val_fraction", 0.0, 1.0, 0.1, low_open=True, high_open=True, why=why)
    test = c.number("data.test_fraction", 0.0, 1.0, 0.1, low_open=True, high_open=True, why=why)
    if val + test >= 1.0:
        raise ConfigError(
            f"--config.data.val_fraction={val!r} and --config.data.test_fraction={test!r} sum "
            "to 1 or more, leaving nothing to train on; make them sum to less than 1, e.g. 0.1 "
            "each")
    c.integer("data.split_seed", 0, 0)
    c.text("data.cache_dir")
    c.boolean("data.skip_bad")
    c.choice("data.framing", framing.FRAMINGS)
    c.integer("data.preparation", 1, framing.PREPARATION, " (how image files are prepared)",
              maximum=framing.PREPARATION)
    for source in used:
        source.check(c)


def _check_augment(c: _Checker) -> None:
    c.boolean("augment.enabled")
    c.number("augment.prob", 0.0, 1.0, 1.0)
    c.number("augment.max_shift", 0.0, float(charset.IMAGE_SIZE), 2.0, why=" (pixels)")
    c.number("augment.max_rotation", 0.0, 180.0, 8.0, why=" (degrees)")
    c.number("augment.max_shear", 0.0, 90.0, 5.0, high_open=True, why=" (degrees)")
    zoom = c.value("augment.zoom_range")
    if (not isinstance(zoom, Sequence) or len(zoom) != 2 or not all(
            _is_number(z) and math.isfinite(z) and z > 0 for z in zoom) or zoom[0] > zoom[1]):
        raise _fail("augment.zoom_range", zoom, "must be two positive numbers (low, high) with "
                    "low <= high", "e.g. --config.augment.zoom_range='(0.95, 1.05)'")
    c.boolean("augment.elastic")
    c.number("augment.elastic_alpha", 0.0, math.inf, 50.0, why=" (pixels)")
    c.number("augment.elastic_sigma", 0.0, math.inf, 6.0, low_open=True, why=" (pixels)")


# ----------------------------------------------------------------------------- splits


def check_splits(
    config: Any, label_counts: Mapping[str, int], class_sizes: np.ndarray
) -> None:
    """Refuses split sizes a run cannot use: an empty validation or test split, or a
    training split smaller than one batch. `label_counts` holds the split sizes
    ('train', 'validation', 'test'); `class_sizes` the images per class present."""
    from charjax import input_pipeline

    val, test = float(config.data.val_fraction), float(config.data.test_fraction)

    def sizes(v: float, t: float) -> tuple[int, int]:
        counts = [input_pipeline._split_counts(int(n), v, t) for n in class_sizes]
        return sum(a for a, _ in counts), sum(b for _, b in counts)

    largest = int(class_sizes.max()) if len(class_sizes) else 0
    empty = [name for name in ("validation", "test") if not label_counts[name]]
    if empty:
        fix = "add images"
        for hundredths in range(1, 50):  # the smallest fractions that fill both splits
            v, t = max(val, hundredths / 100), max(test, hundredths / 100)
            if v + t < 1 and min(sizes(v, t)) > 0:
                raises = [f"--config.data.{field} to {new:g}" for field, old, new in
                          (("val_fraction", val, v), ("test_fraction", test, t)) if new > old]
                fix = f"raise {' and '.join(raises)} (or more), or add images"
                break
        field, current = (("val_fraction", val) if empty[0] == "validation"
                          else ("test_fraction", test))
        raise ConfigError(
            f"--config.data.{field}={current!r}: leaves 0 {' and 0 '.join(empty)} images (the "
            f"largest class has {largest} image(s), split per class with rounding); {fix}")
    train = int(label_counts["train"])
    batch = int(config.batch_size)
    if batch > train:
        suggestion = max(1, 2 ** int(math.log2(train))) if train else 1
        raise ConfigError(
            f"--config.batch_size={batch}: more than the {train} training images, so an epoch "
            f"has no step; use at most {train}, e.g. --config.batch_size={suggestion}, or add "
            "images")


# ----------------------------------------------------------------------------- epochs


def check_finite(epoch: int, record: Mapping[str, float], learning_rate: float) -> None:
    """Stops a run whose loss became NaN or infinite, before its weights are kept."""
    bad = {k: v for k, v in record.items() if k.endswith("loss") and not math.isfinite(v)}
    if bad:
        names = ", ".join(f"{k} {v}" for k, v in bad.items())
        raise DivergedError(
            f"epoch {epoch}: {names}: the training diverged, so these weights were not saved "
            f"and the run stopped; lower the learning rate (--config.learning_rate="
            f"{learning_rate:g} now, try {learning_rate / 10:g}) or set "
            "--config.optimizer.grad_clip_norm=1.0, and train into a new --workdir")


# Divergence: the loss of a uniform guess over the classes is ln(62) = 4.13; a healthy run
# starts near it and only goes down. An epoch whose mean training loss is above
# EXPLODED_FACTOR times that has diverged, whatever the first epoch did; one above the
# uniform guess's loss and GROWN_FACTOR times the first epoch's is diverging.
EXPLODED_FACTOR = 10.0
GROWN_FACTOR = 10.0
# At chance: validation accuracy within CHANCE_SIGMAS binomial standard deviations of
# always answering the commonest validation class (plus one image, for tiny splits).
CHANCE_SIGMAS = 3.0
LEARNING_DROP = 0.02  # a training loss this much below the first epoch's is learning


def chance_accuracy_bound(labels: np.ndarray) -> tuple[float, float]:
    """(chance, bound): the accuracy of always answering the commonest class of `labels`,
    and the highest accuracy still indistinguishable from it (CHANCE_SIGMAS above, plus
    one image)."""
    labels = np.asarray(labels)
    n = max(len(labels), 1)
    chance = float(np.bincount(labels).max()) / n if len(labels) else 0.0
    return chance, chance + CHANCE_SIGMAS * math.sqrt(chance * (1 - chance) / n) + 1 / n


def check_progress(
    history: Sequence[Mapping[str, float]], config: Any, validation_labels: np.ndarray
) -> None:
    """Called after each epoch, before it is saved: stops a run that diverged or learns
    nothing, with the reason and the fix (a DivergedError, exit status 1).

    * a NaN or infinite loss (`check_finite`);
    * exploded: the epoch's mean training loss is above 10 x ln(62) (= 41.3; a uniform
      guess scores 4.13);
    * growing: it is above ln(62) and 10 x the first epoch's;
    * at chance: after the last epoch of a run of two or more, no epoch's validation
      accuracy rose above the chance bound (`chance_accuracy_bound`) and the training loss
      never fell LEARNING_DROP below the first epoch's (a slow but healthy start lowers it).

    None of these can happen to a run that learns: tests/test_bad_inputs.py checks a tiny
    healthy run passes and --config.learning_rate=1e6 stops at its first epoch.
    """
    epoch, record = int(history[-1]["epoch"]), history[-1]
    learning_rate = float(config.learning_rate)
    check_finite(epoch, record, learning_rate)
    uniform = math.log(charset.NUM_CLASSES)
    loss, first = float(record["train_loss"]), float(history[0]["train_loss"])
    fix = (f"lower the learning rate (--config.learning_rate={learning_rate:g} now, try "
           f"{learning_rate / 10:g}) or set --config.optimizer.grad_clip_norm=1.0, and train "
           "into a new --workdir")
    if loss > EXPLODED_FACTOR * uniform:
        raise DivergedError(
            f"epoch {epoch}: train loss {loss:.4g} is over {EXPLODED_FACTOR:g}x a uniform "
            f"guess's {uniform:.2f}: the training diverged, so these weights were not saved "
            f"and the run stopped; {fix}")
    if len(history) > 1 and loss > uniform and loss > GROWN_FACTOR * first:
        raise DivergedError(
            f"epoch {epoch}: train loss {loss:.4g} grew to over {GROWN_FACTOR:g}x the first "
            f"epoch's {first:.4g}: the training diverged, so these weights were not saved and "
            f"the run stopped; {fix}")
    if epoch >= int(config.num_epochs) and len(history) >= 2:
        chance, bound = chance_accuracy_bound(validation_labels)
        best = max(float(e["val_accuracy"]) for e in history)
        lowest = min(float(e["train_loss"]) for e in history[1:])
        if best <= bound and lowest >= (1.0 - LEARNING_DROP) * first:
            raise DivergedError(
                f"epochs {history[0]['epoch']}-{epoch}: validation accuracy never rose above "
                f"chance (best {best:.4f}; answering the commonest class scores {chance:.4f}) "
                f"and the training loss never fell (first {first:.4f}, lowest {lowest:.4f}): "
                "the model learned nothing, and its last epoch was not saved; check that the "
                "labels match the images, then try another learning rate (--config."
                f"learning_rate={learning_rate:g} now: {learning_rate / 10:g} if it was too "
                "high) in a new --workdir")
