"""The train state, its creation, and the one way the model is applied.

Training, evaluation, checkpoints and the projector all run the network through `forward`
(or `infer`, its jitted evaluation-mode form), so the variables they feed it and the
features they read back are the same everywhere.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
from flax.training import train_state

from charjax import charset, input_pipeline, kernels, models, optim


class TrainState(train_state.TrainState):
    """Params, optimizer state and step; `batch_stats` for models with batch norm and
    `ema_params` (an exponential moving average of the weights, used for evaluation)."""

    batch_stats: Any = flax.struct.field(default_factory=dict)
    ema_params: Any = None

    def eval_params(self) -> Any:
        return self.params if self.ema_params is None else self.ema_params


def create_train_state(
    config: ml_collections.ConfigDict, rng: jax.Array, steps_per_epoch: int = 1
) -> TrainState:
    """Initialises the model named in `config.model` and its optimizer.

    `steps_per_epoch` only shapes the learning-rate schedule; the state's structure
    (and so a checkpoint's) does not depend on it. The variables and the optimizer state
    come from one compiled program per model and optimizer recipe (op by op, the
    initialisers would compile some thirty small programs).
    """
    choice = kernels.select(models.kernel_setting(config.model), precision=config.precision)
    model = models.create_model(config.model, config.precision, choice.conv_block)
    init = _initializer(model, ml_collections.FrozenConfigDict(config.optimizer),
                        config.ema_decay > 0)
    if _tracing(rng):  # inside jit or eval_shape: traced in place, no program of its own
        init = init.__wrapped__
    step, params, batch_stats, opt_state, ema_params = init(rng)
    return TrainState(
        step=step,
        apply_fn=model.apply,
        params=params,
        tx=optim.make_optimizer(config, steps_per_epoch),
        opt_state=opt_state,
        batch_stats=batch_stats,
        ema_params=ema_params,
    )


@functools.lru_cache(maxsize=16)
def _initializer(
    model: nn.Module, optimizer: ml_collections.FrozenConfigDict, ema: bool
) -> Callable[[jax.Array], tuple]:
    """The jitted (step, params, batch_stats, opt_state, ema_params) of a fresh state.

    The optimizer's state holds no learning rate and no schedule length (optax evaluates
    schedules in its updates), so a recipe built with any rate and length initialises it.
    """
    recipe = ml_collections.ConfigDict(
        {"optimizer": optimizer.as_configdict(), "learning_rate": 1.0, "num_epochs": 1})

    def init(rng: jax.Array) -> tuple:
        variables = model.init({"params": rng}, jnp.zeros((1, *charset.IMAGE_SHAPE)),
                               train=False)
        params = variables["params"]
        batch_stats = variables["batch_stats"] if "batch_stats" in variables else {}
        opt_state = optim.make_optimizer(recipe, 1).init(params)
        return jnp.zeros((), jnp.int32), params, batch_stats, opt_state, (
            params if ema else None)

    cpu = jax.default_backend() == "cpu"
    return jax.jit(init, compiler_options=INIT_COMPILER_OPTIONS if cpu else None)


def _tracing(rng: jax.Array) -> bool:
    """Whether JAX is tracing (a nested jit could not take compiler options)."""
    if isinstance(rng, jax.core.Tracer):
        return True
    try:
        from jax._src import core
    except ImportError:
        return False
    return not getattr(core, "trace_state_clean", lambda: True)()


# XLA:CPU compiles the initialisers (threefry draws, erf_inv for the truncated normals) about
# 3x faster at LLVM -O1 than at its default -O3, to the same bits; the program runs once.
INIT_COMPILER_OPTIONS = {"xla_backend_optimization_level": 1}


class Output(NamedTuple):
    logits: jax.Array  # [B, 62] float32
    batch_stats: Any  # updated in training mode, else the state's own
    features: jax.Array | None  # [B, D] penultimate layer, when asked for


def _sown_features(intermediates: Any) -> jax.Array | None:
    """The last value sown under a 'features' name anywhere in the intermediates."""
    found = None
    for path, leaf in jax.tree_util.tree_flatten_with_path(intermediates)[0]:
        if "features" in [getattr(k, "key", None) for k in path]:
            found = leaf
    return found


def forward(
    state: TrainState,
    params: Any,
    images: jax.Array,
    *,
    train: bool,
    rng: jax.Array | None = None,
    features: bool = False,
) -> Output:
    """The model on normalised float images [B, 48, 48, 1] with `params`.

    In training mode dropout draws from `rng` and batch norm updates its statistics. With
    `features`, the penultimate layer the model sows as `intermediates/features` comes back
    too (the logits for a model that sows nothing).
    """
    variables = {"params": params}
    if state.batch_stats:
        variables["batch_stats"] = state.batch_stats
    mutable = []
    if train and state.batch_stats:
        mutable.append("batch_stats")
    if features:
        mutable.append("intermediates")
    rngs = {"dropout": rng} if train else {}
    if not mutable:
        return Output(state.apply_fn(variables, images, train=train, rngs=rngs),
                      state.batch_stats, None)
    logits, mutated = state.apply_fn(variables, images, train=train, rngs=rngs,
                                     mutable=mutable)
    batch_stats = mutated["batch_stats"] if "batch_stats" in mutated else state.batch_stats
    sown = None
    if features:
        sown = _sown_features(mutated["intermediates"] if "intermediates" in mutated else {})
        sown = logits if sown is None else sown
        sown = sown.reshape(sown.shape[0], -1).astype(jnp.float32)
    return Output(logits, batch_stats, sown)


def sows_features(state: TrainState) -> bool:
    """Whether the model sows `intermediates/features` (checked abstractly, no compute)."""
    probe = jax.ShapeDtypeStruct((1, *charset.IMAGE_SHAPE), jnp.float32)

    def sown(s, x):
        variables = {"params": s.params, **({"batch_stats": s.batch_stats} if s.batch_stats
                                             else {})}
        return s.apply_fn(variables, x, train=False, mutable=["intermediates"])[1]

    intermediates = jax.eval_shape(sown, state, probe)
    return _sown_features(intermediates) is not None


def for_inference(state: TrainState) -> TrainState:
    """The state evaluation needs, on this host: its evaluation weights as `params`, no
    optimizer state. A state replicated over the devices of many hosts can then be run by
    this host alone (only process 0 reports)."""
    slim = state.replace(params=state.eval_params(), ema_params=None, opt_state=None, tx=None)
    return jax.device_get(slim)


@jax.jit
def infer(state: TrainState, images: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(logits [B, 62], features [B, D]) of uint8 images [B, 48, 48, 1], evaluation mode,
    with the state's `params` (pass `for_inference(state)` to use its evaluation weights)."""
    out = forward(state, state.params, input_pipeline.normalize(images), train=False,
                  features=True)
    return out.logits, out.features
