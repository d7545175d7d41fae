"""The train state, its creation, and the model in training mode (`forward`, the loss's).

Evaluation and prediction apply the model through `charjax.inference`.
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

from charjax import charset, kernels, models, optim


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
    batch_stats: Any  # updated by batch norm


def forward(state: TrainState, params: Any, images: jax.Array, rng: jax.Array) -> Output:
    """The model in training mode on normalised float images [B, 48, 48, 1] with `params`:
    dropout draws from `rng`, batch norm updates its statistics. Everything else applies
    the model through `charjax.inference`."""
    variables = {"params": params}
    if not state.batch_stats:
        return Output(state.apply_fn(variables, images, train=True, rngs={"dropout": rng}),
                      state.batch_stats)
    logits, mutated = state.apply_fn({**variables, "batch_stats": state.batch_stats}, images,
                                     train=True, rngs={"dropout": rng}, mutable=["batch_stats"])
    return Output(logits, mutated["batch_stats"])
