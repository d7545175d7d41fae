"""What a workdir holds decides how a run in it starts: a rerun resumes the run there, with
its settings; a fresh run may start from another run's best weights (`init_from`).
These read run folders and never write them."""

from __future__ import annotations

import json
import logging
import os

import jax
import ml_collections

from charjax import checkpoints
from charjax.errors import CheckpointError, WorkdirError
from charjax.state import TrainState

log = logging.getLogger(__name__)


def resolved_config(config: ml_collections.ConfigDict) -> dict:
    """The config as plain JSON-able data, written beside every checkpoint."""
    return json.loads(config.to_json())


# Fields that may change between a run and its resumption without changing its results
# (num_epochs only while the learning rate does not depend on the run's length).
RESUMABLE_FIELDS = frozenset(
    {"num_epochs", "log_every_steps", "eval_batch_size", "keep_best", "init_from", "report",
     "steps_per_call", "deterministic", "compilation_cache"})


def _config_differences(old: dict, new: dict, allowed: frozenset, prefix: str = "") -> list[str]:
    """'field: old -> new' for every leaf that differs, dotted paths."""
    out = []
    for k in sorted(set(old) | set(new)):
        a, b, name = old[k] if k in old else None, new[k] if k in new else None, prefix + k
        if isinstance(a, dict) and isinstance(b, dict):
            out += _config_differences(a, b, allowed, name + ".")
        elif a != b and name.split(".")[0] not in allowed:
            out.append(f"{name}: {a!r} -> {b!r}")
    return out


def check_resume_config(workdir: str, stored: ml_collections.ConfigDict,
                        config: ml_collections.ConfigDict) -> None:
    """Refuses to resume `stored` with a config that changes more than RESUMABLE_FIELDS."""
    allowed = (RESUMABLE_FIELDS if config.optimizer.schedule == "constant"
               else RESUMABLE_FIELDS - {"num_epochs"})
    differences = _config_differences(resolved_config(stored), resolved_config(config), allowed)
    if differences:
        raise CheckpointError(
            f"{workdir} holds a run with another config ({'; '.join(differences)}); resume with "
            "the same settings, or train into a new --workdir")


def read_config_json(workdir: str | os.PathLike) -> ml_collections.ConfigDict | None:
    """WORKDIR/config.json on today's schema, None when there is none. A file that cannot be
    read is a WorkdirError: it is the user's to fix, and is never silently rewritten."""
    path = os.path.join(os.fspath(workdir), "config.json")
    if not os.path.lexists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            stored = json.load(f)
        if not isinstance(stored, dict):
            raise ValueError(f"holds a JSON {type(stored).__name__}, not an object")
        return checkpoints.upgrade_config(stored)
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as e:
        text = " ".join(str(e).split())[:200]
        raise WorkdirError(
            f"{path}: cannot be read ({type(e).__name__}: {text}); it is left as it is: restore "
            "it, or move it away (the checkpoints hold the config too), then rerun") from None


def stored_config(workdir: str) -> ml_collections.ConfigDict | None:
    """The config of the run already in `workdir` (its latest checkpoint's, else its
    config.json), or None for a fresh workdir. Refuses leftovers nothing can resume, and a
    config.json it cannot read (the run would rewrite it)."""
    in_json = read_config_json(workdir)
    if os.path.isdir(checkpoints.checkpoint_dir(workdir)):
        mngr = checkpoints.manager(workdir, create=False, read_only=True)
        try:
            step = mngr.latest_step()
            if step is not None:
                return checkpoints.read_config(mngr, step)
        finally:
            mngr.close()
    if os.path.exists(os.path.join(workdir, "metrics.json")):
        raise WorkdirError(
            f"--workdir {workdir}: holds metrics.json of another run but no checkpoint to "
            "resume from; train into a new --workdir (or delete that run's files)")
    return in_json


def check_init_from(config: ml_collections.ConfigDict, workdir: str) -> None:
    """Refuses, before anything is written, an `init_from` no run can start from."""
    other = config.init_from
    if not other:
        return
    if os.path.abspath(other) == os.path.abspath(workdir):
        raise CheckpointError(f"--config.init_from={other!r}: is this run's own --workdir; "
                              "to continue a run just rerun it, or name another run")
    if not os.path.isdir(checkpoints.checkpoint_dir(other)):
        raise CheckpointError(f"--config.init_from={other!r}: holds no checkpoints; name the "
                              "--workdir of a finished run")


def init_from(state: TrainState, other_workdir: str, framing: str) -> TrainState:
    """The tutorial's `reload`: start from another run's best weights, fresh optimizer.

    The weights taken are the ones that run evaluated (its moving average, if it kept one);
    a moving average of this run starts from them too, not from the random init. A run
    framed otherwise than `framing` is accepted (its features still help) with a warning.
    """
    other, other_config = checkpoints.load_for_inference(other_workdir)
    mine = jax.tree_util.tree_map(lambda x: (x.shape, x.dtype), (state.params, state.batch_stats))
    theirs = jax.tree_util.tree_map(lambda x: (x.shape, x.dtype), (other.params, other.batch_stats))
    if mine != theirs:
        raise CheckpointError(
            f"{other_workdir}: its weights belong to another model or input shape than "
            "config.model; set --config.model.* to match that run, or drop init_from")
    if other_config.data.framing != framing:
        log.warning("%s was trained on %s-framed images, this run's are %s-framed",
                    other_workdir, other_config.data.framing, framing)
    log.info("starting from the best weights of %s", other_workdir)
    params = other.eval_params()
    return state.replace(params=params, batch_stats=other.batch_stats,
                         ema_params=None if state.ema_params is None else params)
