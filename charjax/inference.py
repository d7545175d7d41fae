"""The one place a model is applied outside training's loss: uint8 images in, logits and
features out.

    predictor = inference.load("runs/demo")   # or load(["runs/a", "runs/b"], vote=True)
    predictor.probabilities(pixels)            # uint8 [N, 48, 48, 1] -> [N, 62]

Evaluation, the Recognizer (predict, read, serve), export, the projector and ensembles all
run `outputs`, so the weights (`TrainState.eval_params`), the input normalisation (training's
`input_pipeline.normalize`) and the features read back are the same everywhere.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from charjax import charset, framing, input_pipeline, kernels, models
from charjax.errors import CheckpointError

BATCH_SIZES: tuple[int, ...] = (1, 8, 64, 256)  # inputs are padded to one of these


def run_model(model: nn.Module, variables: Any, images: jax.Array) -> tuple[Any, Any]:
    """(logits, the last value the model sows as intermediates/features, or None) of float
    images in 0-1, evaluation mode. Not jitted: export serialises it with no nested call."""
    logits, mutated = model.apply(variables, images, train=False, mutable=["intermediates"])
    found = None
    for path, leaf in jax.tree_util.tree_flatten_with_path(mutated.get("intermediates", {}))[0]:
        if "features" in [getattr(k, "key", None) for k in path]:
            found = leaf
    return logits, found


@functools.partial(jax.jit, static_argnums=0)
def outputs(model: nn.Module, variables: Any, pixels: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(logits [N, 62], features [N, D]) of uint8 inputs [N, 48, 48, 1], evaluation mode,
    normalised as training normalises them. The features are the penultimate layer the model
    sows as intermediates/features (its logits when it sows none)."""
    logits, sown = run_model(model, variables, input_pipeline.normalize(pixels))
    sown = logits if sown is None else sown
    return logits, sown.reshape(sown.shape[0], -1).astype(jnp.float32)


class Predictor:
    """A model with the weights it is evaluated with and, loaded from a run, its config and
    framing. Thread-safe: concurrent callers (a web server's workers) take turns."""

    vote = False

    def __init__(self, model: nn.Module, variables: Any,
                 config: ml_collections.ConfigDict | None = None, workdir: str | None = None):
        self.model, self.variables, self.config, self.workdir = model, variables, config, workdir
        self.framing = None if config is None else framing.check_framing(config.data.framing)
        self.members = (self,)
        self._lock = threading.Lock()

    def outputs(self, pixels: np.ndarray, batch_size: int | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
        """(logits, features) of uint8 inputs [N, 48, 48, 1] as host arrays, run in batches
        padded to `batch_size` (default: the smallest of BATCH_SIZES that holds them), so
        one compiled program per size serves every N."""
        pixels = np.asarray(pixels)
        if pixels.ndim != 4 or pixels.shape[1:] != charset.IMAGE_SHAPE:
            raise ValueError(f"inputs must be [N, 48, 48, 1], got {pixels.shape}")
        sizes = BATCH_SIZES if batch_size is None else (batch_size,)
        parts = []
        for start in range(0, max(len(pixels), 1), sizes[-1]):  # none: shaped empty arrays
            part = pixels[start:start + sizes[-1]]
            batch = np.zeros((next(s for s in sizes if s >= len(part)), *charset.IMAGE_SHAPE),
                             np.uint8)
            batch[:len(part)] = part
            with self._lock:
                parts.append([np.asarray(a)[:len(part)]
                              for a in outputs(self.model, self.variables, batch)])
        logits, features = zip(*parts, strict=True)
        return np.concatenate(logits), np.concatenate(features)

    def probabilities(self, pixels: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """Softmax [N, 62] of uint8 inputs [N, 48, 48, 1]."""
        logits = self.outputs(pixels, batch_size)[0]
        shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
        return shifted / shifted.sum(axis=-1, keepdims=True)

    def sows_features(self) -> bool:
        """Whether the model sows intermediates/features (checked abstractly, no compute)."""
        probe = jax.ShapeDtypeStruct((1, *charset.IMAGE_SHAPE), jnp.float32)
        return jax.eval_shape(lambda v, x: run_model(self.model, v, x)[1],
                              self.variables, probe) is not None


def of_state(train_state: Any, host: bool = False) -> Predictor:
    """A train state's model with its evaluation weights (`eval_params`: the moving average
    where the run keeps one). `host` fetches them to this host first, so a state replicated
    over many hosts' devices can be run by this one alone."""
    variables = {"params": train_state.eval_params()}
    if train_state.batch_stats:
        variables["batch_stats"] = train_state.batch_stats
    return Predictor(train_state.apply_fn.__self__,
                     jax.device_get(variables) if host else variables)


def combine(probabilities: list[np.ndarray], vote: bool = False) -> np.ndarray:
    """Ensemble of several models' probabilities: their mean, or a majority vote.

    A vote returns the share of models that chose each class (ties go to the class with
    the higher mean probability), so the result is still a [N, 62] score.
    """
    stacked = np.stack(probabilities)
    mean = stacked.mean(0)
    if not vote:
        return mean
    votes = np.zeros_like(mean)
    for p in stacked:
        votes[np.arange(len(p)), p.argmax(-1)] += 1.0
    return (votes + 1e-6 * mean) / len(stacked)


class Ensemble:
    """Several runs answering as one (`combine`: their mean probability, or their `vote`).
    They must share a framing: each image is prepared once for all of them."""

    workdir = None

    def __init__(self, members: Sequence[Predictor], vote: bool = False):
        if len({m.framing for m in members}) > 1:
            raise CheckpointError("an ensemble's runs must share a framing; these differ: " +
                                  ", ".join(f"{m.workdir} ({m.framing})" for m in members))
        self.members, self.vote = tuple(members), vote
        self.config, self.framing = members[0].config, members[0].framing

    def probabilities(self, pixels: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """The members' probabilities of uint8 inputs [N, 48, 48, 1], combined."""
        return combine([m.probabilities(pixels, batch_size) for m in self.members], self.vote)


def load(workdir: str | os.PathLike | Sequence[str | os.PathLike], impl: str | None = None,
         *, step: int | None = None, vote: bool = False) -> Predictor | Ensemble:
    """A run's best checkpoint (or `step`) as a Predictor; several runs as an Ensemble.

    `impl` picks the model's kernels through `charjax.kernels.select` (default: the run's
    config.model.impl; "flax": plain Flax layers, the same weights).
    """
    if not isinstance(workdir, str | os.PathLike):
        members = [load(w, impl, step=step) for w in workdir]
        return members[0] if len(members) == 1 else Ensemble(members, vote)
    from charjax import checkpoints  # Orbax: imported when a run is loaded, not before

    train_state, config = checkpoints.load_for_inference(workdir, step)
    choice = kernels.select(impl or models.kernel_setting(config.model),
                            precision=config.precision)
    model = models.create_model(config.model, config.precision, choice.conv_block)
    return Predictor(model, of_state(train_state).variables, config, os.fspath(workdir))
