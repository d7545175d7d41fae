"""Orbax checkpoints of a run: the latest (for resume) and the best k by validation accuracy.

Each checkpoint holds the train state, the resolved config (the "architecture JSON"),
the class names and the epoch history, so a run directory alone is enough to resume,
evaluate or predict.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as cm

from charjax import jsonio
from charjax import state as state_lib
from charjax.errors import CheckpointError
from charjax_configs import default as schema

BEST_METRIC = "val_accuracy"

_log = logging.getLogger("charjax.checkpoints")


def _rank(metrics: Mapping[str, float]) -> float:
    """What makes an epoch the best: its validation accuracy."""
    return float(metrics[BEST_METRIC])


def best_epoch(history: Sequence[Mapping[str, float]]) -> int:
    """The best epoch of a run's history: the highest validation accuracy, the later of
    ties. This is the rule Orbax applies to the saved epochs (a stable sort by `_rank`,
    best last), so the epoch named here is the checkpoint it keeps as the best."""
    if not history:
        raise ValueError("no epochs in the history; there is no best epoch")
    return int(sorted(history, key=_rank)[-1]["epoch"])


def checkpoint_dir(workdir: str | os.PathLike) -> str:
    return os.path.join(os.path.abspath(os.fspath(workdir)), "checkpoints")


def manager(
    workdir: str | os.PathLike, keep_best: int = 2, create: bool = True, read_only: bool = False
) -> ocp.CheckpointManager:
    """A manager that keeps the newest step and the `keep_best` best by validation accuracy.

    `max_to_keep` with a `best_fn` would keep the k best and silently delete the newest,
    which breaks resume; the preservation policy keeps both. `read_only` (eval, predict,
    and the trainer's look before it locks in) never deletes anything: a half-written
    step may belong to a run that is training right now.
    """
    policy = cm.AnyPreservationPolicy(
        [
            cm.LatestN(n=1),
            cm.BestN(get_metric_fn=_rank, reverse=False, n=keep_best),
        ]
    )
    # Orbax warns that a read-only manager is read-only; that is the point here.
    absl_logger = logging.getLogger("absl")
    level = absl_logger.level
    if read_only:
        absl_logger.setLevel(logging.ERROR)
    try:
        options = ocp.CheckpointManagerOptions(
            best_fn=_rank,
            best_mode="max",
            preservation_policy=policy,
            create=create and not read_only,
            cleanup_tmp_directories=not read_only,
            read_only=read_only,
            enable_async_checkpointing=True,
        )
        return ocp.CheckpointManager(checkpoint_dir(workdir), options=options)
    finally:
        absl_logger.setLevel(level)


def host_copy(tree: Any) -> Any:
    """Copies arrays to fresh host memory, so a donated buffer can't change a pending save.

    Replicated arrays are read from this process's own copy, so it works on every host.
    """

    def copy(x: Any) -> np.ndarray:
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            x = x.addressable_data(0)
        return np.array(x)

    return jax.tree_util.tree_map(copy, tree)


def save(
    mngr: ocp.CheckpointManager,
    epoch: int,
    state: Any,
    config: dict,
    history: list[dict],
    metrics: dict[str, float],
) -> None:
    """Saves one epoch's checkpoint asynchronously; the files appear atomically when done.

    A checkpoint with non-finite metrics is refused: it could become "best".
    """
    if not all(math.isfinite(float(v)) for v in metrics.values()):
        raise ValueError(f"epoch {epoch}: refusing to save non-finite metrics {metrics}")
    mngr.save(
        epoch,
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(host_copy(state)),
            config=ocp.args.JsonSave(jsonio.finite(config)),
            history=ocp.args.JsonSave(jsonio.finite({"epochs": history})),
        ),
        metrics={k: float(v) for k, v in metrics.items()},
    )


def _single_device_target(abstract_state: Any) -> Any:
    """Restore target with explicit shardings on one local device.

    A checkpoint written on a GPU or on several devices then restores on a CPU-only machine.
    """
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])

    def leaf(x: Any) -> Any:
        if hasattr(x, "shape") and hasattr(x, "dtype"):
            return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device)
        return x

    return jax.tree_util.tree_map(leaf, abstract_state)


def restore(mngr: ocp.CheckpointManager, step: int, abstract_state: Any) -> tuple[Any, dict, list]:
    """Restores (state, config dict, epoch history) of `step` onto one local device."""
    try:
        restored = mngr.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(_single_device_target(abstract_state)),
                config=ocp.args.JsonRestore(),
                history=ocp.args.JsonRestore(),
            ),
        )
    except Exception as e:  # orbax/tensorstore raise many types for damaged files
        raise _unrestorable(mngr, step, e) from e
    return restored.state, dict(restored.config), list(restored.history["epochs"])


def read_config(mngr: ocp.CheckpointManager, step: int) -> ml_collections.ConfigDict:
    """The config of a checkpoint on today's schema (see `upgrade_config`), to rebuild the
    model before restoring its weights."""
    try:
        restored = mngr.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))
    except Exception as e:
        raise _unrestorable(mngr, step, e) from e
    return upgrade_config(dict(restored.config))


def _legacy_model_block(model: dict) -> dict:
    """A run from before per-model blocks kept model.hidden/dropout flat; map them the way
    that code read them (hidden: tutorial only; bn_hidden: tutorial_bn; dropout: all)."""
    model = copy.deepcopy(model)
    hidden, dropout = model.pop("hidden"), model.pop("dropout")
    bn_hidden = model.pop("bn_hidden") if "bn_hidden" in model else 1024
    model["tutorial"] = {"hidden": hidden, "dropout": dropout}
    model["tutorial_bn"] = {"hidden": bn_hidden, "dropout": dropout}
    model["compact_vgg"] = {"hidden": 256, "dropout": dropout}
    return model


def _overlay(config: ml_collections.ConfigDict, stored: Mapping[str, Any]) -> None:
    """Sets every field of `stored` that the schema knows onto `config`, recursively."""
    for key, value in stored.items():
        if key not in config:
            continue
        if isinstance(config[key], ml_collections.ConfigDict) and isinstance(value, Mapping):
            _overlay(config[key], value)
        else:
            with config.ignore_type():
                config[key] = tuple(value) if isinstance(config[key], tuple) else value


def upgrade_config(stored: dict) -> ml_collections.ConfigDict:
    """A run's stored config on the current schema (configs/default.py): fields added since
    the run was trained take their defaults, and settings that moved (the model's to its
    per-model block, data.synthetic.framing to data.framing) move, so every checkpoint
    stays restorable and resumable."""
    stored = copy.deepcopy(stored)
    if "model" in stored and "tutorial" not in stored["model"]:
        stored["model"] = _legacy_model_block(stored["model"])
    data = stored["data"] if "data" in stored else {}
    synthetic = data["synthetic"] if "synthetic" in data else {}
    if "framing" in synthetic and "framing" not in data:
        data["framing"] = synthetic.pop("framing")
    elif "data" in stored and "framing" not in data:
        data["framing"] = "line"  # runs from before framing was a setting drew line-framed
    if "data" in stored and "preparation" not in data:
        data["preparation"] = 1  # folder images as runs before it read them
    config = schema.get_config()
    _overlay(config, stored)
    return config


def _unrestorable(mngr: ocp.CheckpointManager, step: int, error: Exception) -> CheckpointError:
    if isinstance(error, CheckpointError):
        return error
    where = os.path.join(os.fspath(mngr.directory), str(step))
    text = " ".join(str(error).split())[:300]
    return CheckpointError(
        f"{where}: cannot be restored ({type(error).__name__}: {text}); the files are damaged "
        "or were written by another model; delete that step's folder to fall back to an "
        "earlier one, or retrain")


def all_finite(tree: Any) -> bool:
    """True when every floating-point leaf of `tree` is finite (no NaN, no infinity)."""
    return all(
        bool(np.isfinite(np.asarray(x)).all())
        for x in jax.tree_util.tree_leaves(tree)
        if np.issubdtype(np.asarray(x).dtype, np.floating)
    )


def recorded_best_epoch(mngr: ocp.CheckpointManager, workdir: str | os.PathLike) -> int | None:
    """The best epoch the run recorded: metrics.json's (a finished run), else by the epoch
    history in its latest checkpoint; None when neither can be read."""
    try:
        with open(os.path.join(os.fspath(workdir), "metrics.json"), encoding="utf-8") as f:
            return int(json.load(f)["best_epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    latest = mngr.latest_step()
    if latest is None:
        return None
    try:
        restored = mngr.restore(latest, args=ocp.args.Composite(history=ocp.args.JsonRestore()))
        return best_epoch(list(restored.history["epochs"]))
    except Exception:  # noqa: BLE001 - a damaged history only loses this check
        return None


def _warn_if_not_the_best(
    mngr: ocp.CheckpointManager, workdir: str | os.PathLike, step: int, steps: list[int]
) -> None:
    """Says so when the run's best epoch has no checkpoint left (deleted, or lost), so the
    epoch scored instead is never taken for the best silently."""
    best = recorded_best_epoch(mngr, workdir)
    if best is not None and best != step and best not in steps:
        _log.warning("%s: the checkpoint of the best epoch (%d) is missing; using epoch %d "
                     "instead, the best of those left (%s)", workdir, best, step,
                     ", ".join(map(str, steps)))


def load_for_inference(workdir: str | os.PathLike, step: int | None = None) -> tuple[Any, Any]:
    """(train state, ConfigDict) of a run's best checkpoint (or `step`), ready for eval/predict.

    The model is rebuilt from the config stored in the checkpoint, so the caller needs
    nothing but the run directory.
    """
    directory = checkpoint_dir(workdir)
    if not os.path.isdir(directory):
        raise CheckpointError(
            f"{workdir}: no checkpoints here (expected {directory}); train first with "
            f"`charjax train --config configs/default.py --workdir {workdir}`"
        )
    mngr = manager(workdir, create=False, read_only=True)
    try:
        steps = sorted(mngr.all_steps())
        if step is not None and step not in steps:
            held = f"epochs {', '.join(map(str, steps))}" if steps else "no finished checkpoint"
            raise CheckpointError(
                f"{directory}: has no checkpoint of epoch {step}; it holds {held}; pass one of "
                "those, or no step for the best")
        if step is None:
            step = mngr.best_step() if mngr.best_step() is not None else mngr.latest_step()
            if step is not None:
                _warn_if_not_the_best(mngr, workdir, step, steps)
        if step is None:
            raise CheckpointError(
                f"{directory}: holds no finished checkpoint; train (or resume) with "
                f"`charjax train ... --workdir {workdir}`"
            )
        try:
            config = read_config(mngr, step)
            abstract = jax.eval_shape(
                lambda: state_lib.create_train_state(config, jax.random.key(0))
            )
            state, _, _ = restore(mngr, step, abstract)
        except Exception as e:
            raise _unrestorable(mngr, step, e) from e
        if not all_finite((state.params, state.batch_stats, state.ema_params)):
            raise CheckpointError(
                f"{directory}/{step}: its weights hold NaN or infinite values (the run diverged); "
                "retrain with a lower --config.learning_rate into a new --workdir")
    finally:
        mngr.close()
    return state, config
