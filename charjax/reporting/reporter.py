"""The Reporter: everything a person sees of a training run, called at its edges.

The trainer calls it at five points and hands it host values it already has:

    reporter = Reporter(workdir, config)
    reporter.start(samples, sample_labels, validation=(val_images, val_labels),
                   step=int(state.step))
    ... reporter.step(step, {"loss": 0.41})            # once per log period, host floats
    ... reporter.epoch(epoch, record, step=step, learning_rate=lr, images_per_s=rate,
                       state=state, best=is_best)      # state only for the periodic projector
    reporter.finish(history, best_epoch, best_state, test_images, test_labels,
                    test_probabilities, summary=result)
    reporter.close()

It never waits on the device inside the step loop: metrics arrive as floats, and it is
told which epoch is the best rather than deciding it. It runs the model only for the
projector's features. Only the host with `jax.process_index() == 0` writes anything; on
the others every call is a no-op.
"""

from __future__ import annotations

import io
import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from PIL import Image
from tqdm import tqdm

from charjax import augment, input_pipeline, preview
from charjax.reporting import plots, projector
from charjax.reporting import tensorboard as tb

log = logging.getLogger(__name__)

PROGRESS_MODES = ("auto", "bar", "plain", "off")  # config.report.progress
PLAIN_INTERVAL_S = 10.0  # a plain progress line at most this often (a short loop logs none)


class _LogLines:
    """A file for tqdm that turns each redraw into one plain log line (no \\r, no ANSI)."""

    def write(self, text: str) -> None:
        text = text.replace("\x1b[A", "").strip("\r\n ")
        if text:
            log.info("%s", text)

    def flush(self) -> None:
        pass


def model_inputs(
    images: np.ndarray, augment_config: ml_collections.ConfigDict | None, rng: jax.Array
) -> np.ndarray:
    """Float [N, 48, 48, 1] images as the train step feeds them to the model.

    Normalised and, when `augment_config.enabled`, distorted the same way, so the grid in
    TensorBoard shows what the network learns from rather than the raw data.
    """
    x = input_pipeline.normalize(jnp.asarray(images))
    if augment_config is not None and augment_config.enabled and len(images):
        cfg = ml_collections.FrozenConfigDict(augment_config)
        x = jax.jit(lambda key, batch: augment.augment_batch(key, batch, cfg))(rng, x)
    return np.asarray(x)


def _grid_array(images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """HWC uint8 of preview's labelled grid (its PNG, decoded), for add_image."""
    buffer = io.BytesIO()
    preview.write_grid(images, labels, buffer)  # type: ignore[arg-type]  # PIL takes a file
    buffer.seek(0)
    return np.asarray(Image.open(buffer).convert("RGB"))


def _epoch_scalars(record: Mapping[str, float]) -> dict[str, float]:
    """train_loss -> train/loss, val_accuracy -> val/accuracy, seconds -> time/epoch_seconds."""
    out = {}
    for key, value in record.items():
        if key == "epoch" or not isinstance(value, int | float):
            continue
        for prefix in ("train", "val", "test"):
            if key.startswith(prefix + "_"):
                out[f"{prefix}/{key[len(prefix) + 1:]}"] = float(value)
                break
        else:
            out["time/epoch_seconds" if key == "seconds" else f"epoch/{key}"] = float(value)
    return out


class Reporter:
    """TensorBoard, projector, PNG plots and console lines of one training run.

    `enabled=False` (or any host but the first) turns every method into a no-op, so the
    trainer never needs an `if`.
    """

    def __init__(self, workdir: str, config: Any, enabled: bool = True):
        self.workdir = os.fspath(workdir)
        self.settings = config.report  # checked by charjax.validation
        self.enabled = bool(enabled) and jax.process_index() == 0
        self.logdir = os.path.join(self.workdir, "tb")
        self.num_epochs = int(config.num_epochs)
        self.eval_batch_size = int(config.eval_batch_size)
        self._config = config
        self._writer: Any = None
        self._validation: tuple[np.ndarray, np.ndarray] | None = None
        self._start_time = time.perf_counter()
        self._epochs_run = 0

    # -- the five edges -------------------------------------------------------------------

    def start(
        self,
        samples: np.ndarray | None = None,
        sample_labels: np.ndarray | None = None,
        *,
        validation: tuple[np.ndarray, np.ndarray] | None = None,
        step: int = 0,
    ) -> None:
        """Opens the event files and logs the config and a grid of input samples.

        `samples` are float [N, 48, 48, 1] in [0, 1] as the model sees them (see
        `model_inputs`); `validation` (uint8 images, labels) feeds the projector; `step` is
        where a resumed run stands, so TensorBoard hides what the interrupted run logged
        after its last checkpoint.
        """
        self._start_time = time.perf_counter()
        if not self.enabled:
            return
        if validation is not None and self.settings.projector_max > 0:
            limit = min(self.settings.projector_max,
                        projector.max_thumbnails(validation[0].shape[1]))
            if limit < self.settings.projector_max and len(validation[0]) > limit:
                log.warning("projector: one sprite holds at most %d thumbnails; using the "
                            "first %d validation images", limit, limit)
            self._validation = (np.asarray(validation[0][:limit]),
                                np.asarray(validation[1][:limit]))
        if not self.settings.tensorboard:
            return
        # Scalars at `step` itself belong to the checkpointed epoch and stay.
        self._writer = tb.open_writer(self.logdir, purge_step=step + 1 if step else None)
        self._writer.add_text("config", tb.config_markdown(self._config), step)
        self._writer.add_custom_scalars(tb.CURVES_LAYOUT)
        if samples is not None and len(samples) and self.settings.sample_images > 0:
            shown = np.asarray(samples)[: self.settings.sample_images]
            if sample_labels is None:  # no labels to print: tensorboardX's plain grid
                self._writer.add_images("inputs/augmented", shown.transpose(0, 3, 1, 2), step)
            else:
                grid = _grid_array(shown, np.asarray(sample_labels)[: len(shown)])
                self._writer.add_image("inputs/augmented", grid, step, dataformats="HWC")
        self._writer.flush()
        log.info("TensorBoard: tensorboard --logdir %s", self.logdir)

    def step(self, step: int, metrics: Mapping[str, float]) -> None:
        """Logs train/step_<name> for each metric, at the global `step`.

        Give host floats (the trainer fetches them once per log period); a device array
        here would make this call wait for the device.
        """
        if self._writer is None:
            return
        for name, value in metrics.items():
            self._writer.add_scalar(f"train/step_{name}", float(value), step)

    def epoch(
        self,
        epoch: int,
        record: Mapping[str, float],
        *,
        step: int,
        learning_rate: float | None = None,
        images_per_s: float | None = None,
        state: Any = None,
        best: bool = False,
    ) -> None:
        """One console line (`*` when the trainer says this epoch is the best so far), the
        epoch's scalars at the global `step`, and the projector when
        `projector_every_epochs` divides `epoch` (that needs `state`).
        """
        self._epochs_run += 1
        if not self.enabled:
            return
        log.info("%s", self.epoch_line(epoch, record, images_per_s, best))
        if self._writer is None:
            return
        scalars = _epoch_scalars(record)
        scalars["train/epoch"] = float(epoch)
        if learning_rate is not None:
            scalars["train/learning_rate"] = float(learning_rate)
        if images_per_s is not None:
            scalars["train/images_per_s"] = float(images_per_s)
        for tag, value in scalars.items():
            self._writer.add_scalar(tag, value, step)
        every = self.settings.projector_every_epochs
        if every and epoch % every == 0 and state is not None:
            self._projector(state, epoch, "validation")
        self._writer.flush()

    def finish(
        self,
        history: Sequence[Mapping[str, float]],
        best_epoch: int,
        state: Any,
        test_images: np.ndarray,
        test_labels: np.ndarray,
        test_probabilities: np.ndarray,
        *,
        step: int | None = None,
        summary: Mapping[str, Any] | None = None,
    ) -> dict[str, str]:
        """Curves (marking `best_epoch`), confusion matrix, error grid, the final projector
        and the hparams.

        `state` is the model the test was scored with (the best epoch's) and
        `test_probabilities` [N, 62] its scores of the test images; `summary` (train.py's
        result dict) supplies the numbers of the HParams tab. Returns {name: path} of what
        it wrote.
        """
        if not self.enabled:
            return {}
        written: dict[str, str] = {}
        test_labels = np.asarray(test_labels)
        if self.settings.plots:
            written.update(self._plots(history, best_epoch, test_images, test_labels,
                                       np.asarray(test_probabilities)))
        if self._writer is not None:
            self._projector(state, best_epoch, "best", written)
            self._hparams(summary, step)
            self._writer.flush()
        for name, path in written.items():
            log.info("wrote %s: %s", name, path)
        return written

    def close(self) -> None:
        """Flushes and closes the event files; safe to call twice."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> Reporter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- helpers ----------------------------------------------------------------------------

    def progress(
        self, total: int | None, desc: str, unit: str = "step",
        interval: float = PLAIN_INTERVAL_S,
    ) -> tqdm:
        """A tqdm bar honouring `config.report.progress`: a redrawn bar on a terminal
        (auto, bar), plain log lines at most every `interval` seconds elsewhere (auto,
        plain; none for a loop shorter than that), nothing when off or on hosts that
        don't report. Update it with `set_postfix(..., refresh=False)` and `update(n)`."""
        mode = self.settings.progress if self.enabled else "off"
        if mode == "auto":
            mode = "bar" if sys.stderr.isatty() else "plain"
        if mode == "bar":
            return tqdm(total=total, desc=desc, unit=unit, leave=False, dynamic_ncols=True)
        return tqdm(
            total=total, desc=desc, unit=unit, disable=mode == "off", file=_LogLines(),
            mininterval=interval, delay=interval, ascii=True,
            bar_format="{desc}: {n_fmt}/{total_fmt} ({percentage:.0f}%) "
                       "[{elapsed}<{remaining}, {rate_fmt}{postfix}]",
        )

    def epoch_line(
        self,
        epoch: int,
        record: Mapping[str, float],
        images_per_s: float | None = None,
        best: bool = False,
    ) -> str:
        """'epoch 3/8: train loss .. acc .. | val loss .. acc .. * | 12.3 s, 1450 img/s |
        elapsed 0:37, ETA 1:42'. The ETA extrapolates this process's epochs."""
        elapsed = time.perf_counter() - self._start_time
        total = f"/{self.num_epochs}" if self.num_epochs else ""
        parts = [
            f"epoch {epoch}{total}: train loss {record['train_loss']:.4f} "
            f"acc {record['train_accuracy']:.4f}",
            f"val loss {record['val_loss']:.4f} "
            f"acc {record['val_accuracy']:.4f}{' *' if best else ''}",
        ]
        speed = f"{record['seconds']:.1f} s" if "seconds" in record else ""
        if images_per_s is not None:
            speed += f"{', ' if speed else ''}{images_per_s:.0f} img/s"
        if speed:
            parts.append(speed)
        timing = f"elapsed {tqdm.format_interval(elapsed)}"
        if self.num_epochs and self._epochs_run:
            remaining = max(self.num_epochs - epoch, 0)
            timing += f", ETA {tqdm.format_interval(remaining * elapsed / self._epochs_run)}"
        parts.append(timing)
        return " | ".join(parts)

    def _plots(
        self,
        history: Sequence[Mapping[str, float]],
        best_epoch: int,
        test_images: np.ndarray,
        test_labels: np.ndarray,
        test_probabilities: np.ndarray,
    ) -> dict[str, str]:
        written = {}
        os.makedirs(self.workdir, exist_ok=True)
        if history:
            written["curves"] = os.path.join(self.workdir, "curves.png")
            plots.curves(history, best_epoch, written["curves"])
        if not len(test_labels):
            return written
        predictions = test_probabilities.argmax(-1)
        written["confusion"] = os.path.join(self.workdir, "confusion.png")
        plots.confusion(test_labels, predictions, written["confusion"],
                        top=self.settings.confused_pairs)
        pairs = plots.most_confused(plots.confusion_matrix(test_labels, predictions), 5)
        if pairs:
            log.info("most confused (true->predicted): %s",
                     ", ".join(f"{t}->{p} {c}" for t, p, c, _ in pairs))
        path = os.path.join(self.workdir, "errors.png")
        shown = plots.errors(np.asarray(test_images), test_labels, test_probabilities, path,
                             limit=self.settings.error_images)
        if shown:
            written["errors"] = path
        return written

    def _projector(
        self, state: Any, step: int, tag: str, written: dict[str, str] | None = None
    ) -> None:
        """Penultimate features of the kept validation images, into LOGDIR/<step>/<tag>."""
        if self._validation is None or not len(self._validation[0]):
            return
        images, labels = self._validation
        started = time.perf_counter()
        features, logits = projector.penultimate_features(state, images, self.eval_batch_size)
        folder = projector.write(self.logdir, features, images, labels, logits.argmax(-1),
                                 step, tag)
        log.info("projector: %d validation images, %d features, in %.1f s",
                 len(images), features.shape[1], time.perf_counter() - started)
        if written is not None:
            written["projector"] = folder

    def _hparams(self, summary: Mapping[str, Any] | None, step: int | None) -> None:
        """The config beside the run's headline numbers, in TensorBoard's HParams tab."""
        metrics = {}
        for name in ("best_val_accuracy", "test_accuracy", "test_loss"):
            if summary is not None and name in summary:
                metrics[f"hparam/{name}"] = float(summary[name])
        if metrics:
            self._writer.add_hparams(tb.flatten_hparams(self._config), metrics,
                                     name="hparams", global_step=step)
