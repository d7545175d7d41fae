"""Training: a pure, jitted train step and the epoch loop around it.

`train_step(state, batch, rng) -> (state, metrics)` is the whole of the maths. The
loop (`train_and_evaluate`) owns the effects: data placement, logging, checkpoints.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from charjax import (
    augment,
    backend,
    charset,
    checkpoints,
    datasets,
    distributed,
    evaluate,
    input_pipeline,
    interrupt,
    jsonio,
    kernels,
    layers,
    models,
    optim,
    reporting,
    run_folder,
    validation,
)
from charjax import workdir as workdir_lib
from charjax.state import TrainState, create_train_state, forward

__all__ = ["TrainState", "create_train_state", "train_step", "train_and_evaluate"]

log = logging.getLogger(__name__)


def train_step(
    state: TrainState,
    batch: dict[str, jax.Array],
    rng: jax.Array,
    augment_config: ml_collections.FrozenConfigDict | None = None,
    label_smoothing: float = 0.0,
    ema_decay: float = 0.0,
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One optimizer step on a batch {'image': uint8 [B,48,48,1], 'label': int32 [B]}.

    Pure: the same (state, batch, rng) always gives the same result. Augmentation, when
    enabled, happens here, on device, so the host never touches a batch. The keyword
    options are static (fixed per run); the metrics report the unsmoothed loss.
    """
    images = input_pipeline.normalize(batch["image"])
    dropout_rng, augment_rng = jax.random.split(rng)
    if augment_config is not None and augment_config.enabled:
        images = augment.augment_batch(augment_rng, images, augment_config)
    labels = batch["label"]

    def loss_fn(params):
        out = forward(state, params, images, rng=dropout_rng)
        logits, batch_stats = out.logits, out.batch_stats
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
        if label_smoothing > 0:
            targets = optax.smooth_labels(
                jax.nn.one_hot(labels, logits.shape[-1]), label_smoothing
            )
            objective = optax.softmax_cross_entropy(logits, targets).mean()
        else:
            objective = loss
        return objective, (loss, logits, batch_stats)

    grad_fn = jax.grad(loss_fn, has_aux=True)
    grads, (loss, logits, batch_stats) = grad_fn(state.params)
    state = state.apply_gradients(grads=grads, batch_stats=batch_stats)
    if state.ema_params is not None and ema_decay > 0:
        ema = jax.tree_util.tree_map(
            lambda e, p: ema_decay * e + (1.0 - ema_decay) * p, state.ema_params, state.params
        )
        state = state.replace(ema_params=ema)
    accuracy = jnp.mean(jnp.argmax(logits, -1) == labels)
    return state, {"loss": loss, "accuracy": accuracy}


def make_device_train_step(
    batch_size: int,
    augment_config: ml_collections.ConfigDict | None,
    placement: distributed.Placement | None = None,
    label_smoothing: float = 0.0,
    ema_decay: float = 0.0,
    steps_per_call: int = 1,
) -> Callable:
    """Jitted step that gathers its batch on device from the epoch's permutation.

    `fn(state, images, labels, perm, index, key) -> (state, metrics)` runs step `index` of
    the epoch; with `steps_per_call` K > 1 it runs steps index .. index+K-1 in one
    `lax.scan` and returns each step's metrics ([K] arrays). Steps past the epoch's end
    (its last call, when K does not divide the epoch) are computed and thrown away, so one
    compiled program serves every call. The results do not depend on K.

    The rng is `fold_in(key, state.step)`: a resumed run draws exactly the numbers an
    uninterrupted one would. The state is donated, so its buffers are reused in place.
    With a placement, the batch indices are split along the `data` axis, so each device
    gathers and computes only its share and XLA all-reduces the gradients.
    """
    frozen = ml_collections.FrozenConfigDict(augment_config) if augment_config else None

    def step(state, images, labels, perm, index, key):
        idx = jax.lax.dynamic_slice_in_dim(perm, index * batch_size, batch_size)
        batch = {"image": images[idx], "label": labels[idx]}
        if placement is not None:
            batch = jax.lax.with_sharding_constraint(batch, placement.batch)
        rng = jax.random.fold_in(key, state.step)
        return train_step(state, batch, rng, frozen, label_smoothing, ema_decay)

    def steps(state, images, labels, perm, index, key):
        total = perm.shape[0] // batch_size  # the epoch's steps (static)

        def body(state, j):
            new, metrics = step(state, images, labels, perm, index + j, key)
            if total % steps_per_call:  # the epoch's last call runs past its end
                keep = index + j < total
                new = jax.tree_util.tree_map(lambda n, o: jnp.where(keep, n, o), new, state)
            return new, metrics

        return jax.lax.scan(body, state, jnp.arange(steps_per_call))

    out = placement.replicated if placement is not None else None
    return jax.jit(
        step if steps_per_call == 1 else steps, donate_argnums=0, out_shardings=out,
        compiler_options=layers.cpu_compiler_options(),
    )


def _epoch_order(key: jax.Array, epoch: int, num_examples: int) -> jax.Array:
    return input_pipeline.epoch_permutation(jax.random.fold_in(key, 1), epoch, num_examples)


@functools.lru_cache(maxsize=8)
def _permutation_fn(placement: distributed.Placement | None) -> Callable:
    """The jitted epoch order `fn(key, epoch, num_examples)` (the run's key, folded here),
    replicated on the mesh; built once per placement."""
    out = placement.replicated if placement is not None else None
    return jax.jit(_epoch_order, static_argnums=2, out_shardings=out)


class _StepMetrics:
    """Per-step metrics of an epoch: device arrays as the calls return them, fetched to
    the host in one transfer per log period (no program is compiled to combine them)."""

    def __init__(self) -> None:
        self._pending: list[tuple[int, dict]] = []  # (steps, metrics) not fetched yet
        self._fetched: dict[str, list[np.ndarray]] = {}

    def add(self, steps: int, metrics: dict) -> None:
        self._pending.append((steps, metrics))

    def _fetch(self) -> None:
        for steps, metrics in jax.device_get(self._pending):
            for name, value in metrics.items():
                self._fetched.setdefault(name, []).append(np.reshape(value, -1)[:steps])
        self._pending.clear()

    def means(self, start: int, stop: int) -> dict[str, float]:
        """Mean of each metric over the epoch's steps start .. stop-1."""
        self._fetch()
        return {name: float(np.mean(np.concatenate(parts)[start:stop], dtype=np.float64))
                for name, parts in self._fetched.items()}


MAX_IN_FLIGHT = 8  # calls queued on the device before the host waits for the oldest


def train_epoch(
    state: TrainState,
    step_fn: Callable,
    data: tuple[jax.Array, jax.Array],
    key: jax.Array,
    epoch: int,
    batch_size: int,
    log_every: int = 0,
    placement: distributed.Placement | None = None,
    reporter: reporting.Reporter | None = None,
    steps_per_call: int = 1,
) -> tuple[TrainState, dict[str, float]]:
    """Runs one epoch; metrics stay on device and are fetched once at the end.

    `step_fn` is `make_device_train_step(..., steps_per_call)`: each call runs that many
    steps. With a reporter, every `log_every` steps the period's mean metrics are fetched
    (one sync) for the progress bar and TensorBoard's train/step_* curves.
    """
    images, labels = data
    steps = images.shape[0] // batch_size
    if steps == 0:
        raise ValueError(
            f"the training split has {images.shape[0]} images, fewer than one batch of "
            f"{batch_size}; lower batch_size or use more data"
        )
    perm = _permutation_fn(placement)(key, epoch, images.shape[0])
    first_step, history, in_flight = int(jax.device_get(state.step)), _StepMetrics(), []
    # Several XLA:CPU devices share the host's threads: with many steps queued, a device
    # can wait in a collective for a thread that never comes (a 40 s rendezvous timeout
    # kills the run). Waiting for the step two back keeps the queue short; elsewhere the
    # queue is unbounded and the host never waits.
    # Everywhere else a short queue (MAX_IN_FLIGHT calls) keeps the device busy while the
    # host returns to Python often enough to notice Ctrl-C within a few steps.
    cpu_mesh = placement is not None and placement.num_devices > 1
    max_in_flight = 2 if cpu_mesh and jax.default_backend() == "cpu" else MAX_IN_FLIGHT
    bar = reporter.progress(steps, f"epoch {epoch}") if reporter else contextlib.nullcontext()
    with bar:
        for i in range(0, steps, steps_per_call):
            if interrupt.requested() is not None:
                jax.block_until_ready(state)  # the queued steps finish before anyone exits
                interrupt.raise_if_requested()
            state, metrics = step_fn(state, images, labels, perm, i, key)
            done = min(i + steps_per_call, steps)
            if max_in_flight and len(in_flight) >= max_in_flight:
                jax.block_until_ready(in_flight.pop(0))
            in_flight.append(metrics)
            history.add(done - i, metrics)
            if reporter is None or not log_every:
                continue
            for end in range((i // log_every + 1) * log_every, done + 1, log_every):
                recent = history.means(end - log_every, end)
                reporter.step(first_step + end, recent)
                bar.set_postfix(loss=recent["loss"], accuracy=recent["accuracy"], refresh=False)
                bar.update(log_every)
    return state, history.means(0, steps)


def load_splits(
    config: ml_collections.ConfigDict, workdir: str | None = None
) -> input_pipeline.Splits:
    """The configured dataset, split train/validation/test as config.data says.

    With a workdir, files skipped as bad (`data.skip_bad`) are listed in it, and data with
    fewer than two classes is refused.
    """
    if workdir is None:
        dataset = datasets.load(config.data.source, config.data)
    else:
        dataset = datasets.load_for_training(config.data, workdir)[0]
    return _split_and_mix(dataset, config.data)


def _split_and_mix(
    dataset: datasets.Dataset, data_config: ml_collections.ConfigDict
) -> input_pipeline.Splits:
    """The configured split of `dataset`, with `data.train_mix`'s images (if any) added to
    its training split."""
    splits = input_pipeline.split(dataset, data_config)
    if not data_config.train_mix:
        return splits
    extra = datasets.load(data_config.train_mix, data_config)
    log.info("training split: %d images of %s mixed with %d of %s", len(splits.train),
             data_config.source, len(extra), data_config.train_mix)
    return input_pipeline.with_training_mix(splits, extra, data_config.split_seed)


def _write_json(workdir: str, name: str, data: dict) -> None:
    """Writes WORKDIR/name atomically as strict JSON, from process 0 only."""
    if not distributed.is_main_process():
        return
    jsonio.write(os.path.join(workdir, name), data)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Trains `config.num_epochs` epochs, keeps the best weights by validation accuracy,
    scores the test split with them and writes WORKDIR/metrics.json. Returns that dict.

    Reruns on the same workdir continue from the latest checkpoint. Runs data-parallel
    over every device of every process (see `distributed`). The config, the data and the
    workdir are all checked before anything is written or compiled; the workdir is
    locked against a second writer for the whole run.
    """
    validation.check_config(config)
    backend.configure(config)  # before XLA starts: its flags and compilation cache
    distributed.initialize(config.distributed)
    if not distributed.is_main_process():
        logging.getLogger("charjax").setLevel(logging.WARNING)  # process 0 speaks for all
    placement = distributed.data_placement()
    placement.check_batch_size(config.batch_size)
    run_folder.check_init_from(config, workdir)
    with workdir_lib.claim(workdir, enabled=distributed.is_main_process()):
        return _train_claimed(config, workdir, placement)


def _train_claimed(
    config: ml_collections.ConfigDict, workdir: str, placement: distributed.Placement
) -> dict:
    config_dict = run_folder.resolved_config(config)
    stored = run_folder.stored_config(workdir)
    if stored is not None:
        run_folder.check_resume_config(workdir, stored, config)
    # Data before Orbax starts threads and before any write: bad data exits cleanly.
    dataset, skipped = datasets.load_for_training(config.data)
    splits = _split_and_mix(dataset, config.data)
    counts = np.bincount(dataset.labels)
    validation.check_splits(
        config,
        {"train": len(splits.train), "validation": len(splits.validation),
         "test": len(splits.test)},
        counts[counts > 0],
    )
    # From here on the run writes into the workdir (config.json once the state restored).
    mngr = checkpoints.manager(workdir, keep_best=config.keep_best)
    log.info(
        "data %s: %d train, %d validation, %d test images; %d device(s), %d process(es)",
        config.data.source, len(splits.train), len(splits.validation), len(splits.test),
        placement.num_devices, jax.process_count(),
    )
    reporter = reporting.Reporter(workdir, config)
    try:
        with interrupt.deferred():
            return _run(config, workdir, placement, (splits, skipped), mngr, config_dict,
                        reporter)
    finally:
        # Whatever ended the run (done, NaN, Ctrl-C, a bug): the checkpoint being written is
        # finished and Orbax's threads stop before the process may exit.
        mngr.wait_until_finished()
        mngr.close()
        reporter.close()
        with contextlib.suppress(OSError):  # a run that saved nothing leaves no empty folder
            os.rmdir(checkpoints.checkpoint_dir(workdir))


@jax.jit
def _run_keys(seed: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(the run's key, its initialisation key, the key of the sample images shown), in one
    compiled program rather than one per key operation."""
    key = jax.random.key(seed)
    return key, jax.random.fold_in(key, 0), jax.random.fold_in(key, 2)


def _softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax on the host (no program compiled for one call)."""
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def _precompile(
    config: ml_collections.ConfigDict,
    placement: distributed.Placement,
    state: TrainState,
    key: jax.Array,
    train_data: tuple[jax.Array, jax.Array],
    val_data: tuple[jax.Array, jax.Array],
    step_fn: Callable,
    eval_fn: Callable,
    epoch: int,
) -> None:
    """Compiles the epoch loop's programs before the first epoch (or loads them from the
    compilation cache) and logs how long that took."""
    n = int(train_data[0].shape[0])
    perm = jax.ShapeDtypeStruct((n,), jnp.int32, sharding=placement.replicated)
    eval_batch = evaluate.eval_batch_size(config.eval_batch_size, placement)
    index, mask = (placement.replicate(np.zeros(eval_batch, dtype))
                   for dtype in (np.int32, bool))
    backend.precompile([
        ("train step", step_fn, (state, *train_data, perm, 0, key)),
        ("eval step", eval_fn, (state, *val_data, index, mask)),
        ("epoch order", _permutation_fn(placement), (key, epoch, n)),
    ], note=backend.describe_cache())


def _run(
    config: ml_collections.ConfigDict,
    workdir: str,
    placement: distributed.Placement,
    data: tuple[input_pipeline.Splits, list[datasets.Skipped]],
    mngr: Any,
    config_dict: dict,
    reporter: reporting.Reporter,
) -> dict:
    splits, skipped = data
    key, init_key, sample_key = _run_keys(config.seed)
    steps_per_epoch = len(splits.train) // config.batch_size
    state = create_train_state(config, init_key, steps_per_epoch)
    log.info(
        "model %s: %d parameters",
        config.model.name, sum(x.size for x in jax.tree_util.tree_leaves(state.params)),
    )
    steps_per_call = backend.steps_per_call(config.steps_per_call, steps_per_epoch)
    kernel_line = kernels.select(models.kernel_setting(config.model),
                                 precision=config.precision).description
    log.info("%s; %d step%s per call; %s", kernel_line,
             steps_per_call, "" if steps_per_call == 1 else "s", backend.describe())
    history: list[dict] = []
    if mngr.latest_step() is not None:
        state, _, history = checkpoints.restore(mngr, mngr.latest_step(), state)
        log.info("resuming from the checkpoint of epoch %d", mngr.latest_step())
    elif config.init_from:
        state = run_folder.init_from(state, config.init_from, config.data.framing)
    where = datasets.write_skipped(skipped, workdir) if distributed.is_main_process() else None
    if where:
        log.warning("%s: %d file(s) left out, listed in %s", config.data.source, len(skipped),
                    where)
    _write_json(workdir, "config.json", config_dict)
    # The class mix the weights learned, for `charjax eval --adapt_class_mix`.
    _write_json(workdir, "class_counts.json", {"train": np.bincount(
        splits.train.labels, minlength=charset.NUM_CLASSES).tolist()})

    state, key = placement.replicate((state, key))
    train_data = placement.replicate(input_pipeline.host_arrays(splits.train))
    val_data = placement.replicate(input_pipeline.host_arrays(splits.validation))
    step_fn = make_device_train_step(
        config.batch_size, config.augment if config.augment.enabled else None, placement,
        config.label_smoothing, config.ema_decay, steps_per_call,
    )
    eval_fn = evaluate.make_device_eval_step(placement)
    start_epoch = len(history) + 1
    if start_epoch <= config.num_epochs:
        _precompile(config, placement, state, key, train_data, val_data, step_fn, eval_fn,
                    start_epoch)
    # Writes on process 0 only; flushed at each epoch's end, so a crash loses at most that
    # epoch's step losses, which the resumed run hides anyway (its purge step).
    learning_rate = jax.jit(optim.learning_rate_schedule(config, steps_per_epoch))
    shown = config.report.sample_images
    reporter.start(
        reporting.model_inputs(splits.train.images[:shown], config.augment, sample_key),
        splits.train.labels[:shown],
        validation=(splits.validation.images, splits.validation.labels),
        step=int(jax.device_get(state.step)),
    )
    train_start = time.perf_counter() - sum(e["seconds"] for e in history)
    for epoch in range(start_epoch, config.num_epochs + 1):
        interrupt.raise_if_requested()
        t0 = time.perf_counter()
        state, train_metrics = train_epoch(
            state, step_fn, train_data, key, epoch, config.batch_size, config.log_every_steps,
            placement, reporter, steps_per_call,
        )
        train_seconds_epoch = time.perf_counter() - t0
        val = evaluate.evaluate_arrays(
            eval_fn, state, *val_data, config.eval_batch_size, placement
        )
        seconds = time.perf_counter() - t0
        history.append(
            {
                "epoch": epoch,
                "train_loss": train_metrics["loss"],
                "train_accuracy": train_metrics["accuracy"],
                "val_loss": val["loss"],
                "val_accuracy": val["accuracy"],
                "seconds": seconds,
            }
        )
        # Reported before the save: if the run dies in between, the resumed run redoes this
        # epoch and TensorBoard shows only the redone one.
        step = int(jax.device_get(state.step))
        reporter.epoch(
            epoch, history[-1], step=step, learning_rate=float(learning_rate(step)),
            images_per_s=len(splits.train) / train_seconds_epoch, state=state,
            best=checkpoints.best_epoch(history) == epoch,
        )
        # A diverged epoch is never saved, so it can never become the best or the latest.
        validation.check_progress(history, config, splits.validation.labels)
        checkpoints.save(mngr, epoch, state, config_dict, history, history[-1])
    mngr.wait_until_finished()
    train_seconds = time.perf_counter() - train_start

    best_epoch = checkpoints.best_epoch(history)  # the checkpoint Orbax keeps as the best
    best_state, _, _ = checkpoints.restore(mngr, best_epoch, state)
    best_state = placement.replicate(best_state)
    test = evaluate.evaluate_arrays(
        eval_fn, best_state, *placement.replicate(input_pipeline.host_arrays(splits.test)),
        config.eval_batch_size, placement, keep_logits=True,
    )
    result = {
        "epochs": history,
        "best_epoch": best_epoch,
        "best_val_accuracy": history[best_epoch - 1]["val_accuracy"],
        "test_loss": test["loss"],
        "test_accuracy": test["accuracy"],
        "train_seconds": train_seconds,
    }
    _write_json(workdir, "metrics.json", result)
    log.info(
        "best epoch %d (val accuracy %.4f): test loss %.4f, test accuracy %.4f",
        best_epoch, result["best_val_accuracy"], test["loss"], test["accuracy"],
    )
    reporter.finish(
        history, best_epoch, best_state, splits.test.images, splits.test.labels,
        _softmax(test["logits"]),
        step=int(jax.device_get(state.step)), summary=result,
    )
    return result
