"""Flax Linen models and a registry: name (or the tutorial's model number) -> module.

Every model maps float images [B, 48, 48, 1] in [0, 1] to logits [B, 62]; softmax
lives in the loss. The layer just before the classifier is sown as
`intermediates/features`, so the embedding projector can read it.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from charjax import charset, layers

log = logging.getLogger(__name__)


class TutorialCNN(nn.Module):
    """The tutorial's network: conv5-pool-conv3-pool-dense-dropout-dense (846,654 params at
    the tutorial's dense width, hidden=128).

    `conv_block` computes each conv + bias + ReLU + 2x2 max-pool block with the same
    parameter tree: `charjax.layers.conv_relu_pool` (XLA, cheaper max-pool gradient) or
    `onednn_conv_relu_pool` (one oneDNN call), as `charjax.kernels.select` chose at the
    entry point; None is the plain nn.Conv / nn.max_pool formulation. Checkpoints of one
    load into the others.
    """

    hidden: int
    dropout: float
    dtype: jnp.dtype = jnp.float32
    conv_block: Callable | None = None
    num_classes: int = charset.NUM_CLASSES

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        x = x.astype(self.dtype)
        if self.conv_block is not None:
            block = functools.partial(layers.ConvReluPool, dtype=self.dtype,
                                      block=self.conv_block)
            x = block(32, (5, 5), name="conv1")(x)
            x = block(64, (3, 3), name="conv2")(x)
        else:
            x = nn.Conv(32, (5, 5), padding="VALID", dtype=self.dtype, name="conv1")(x)
            x = nn.max_pool(nn.relu(x), window_shape=(2, 2), strides=(2, 2))
            x = nn.Conv(64, (3, 3), padding="VALID", dtype=self.dtype, name="conv2")(x)
            x = nn.max_pool(nn.relu(x), window_shape=(2, 2), strides=(2, 2))
        x = x.reshape((x.shape[0], -1))
        x = nn.relu(nn.Dense(self.hidden, dtype=self.dtype, name="hidden")(x))
        self.sow("intermediates", "features", x)
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
        x = nn.Dense(self.num_classes, dtype=self.dtype, name="head")(x)
        return x.astype(jnp.float32)


def _batch_norm(train: bool, dtype: jnp.dtype) -> functools.partial:
    """BatchNorm with Keras' momentum; statistics live in the `batch_stats` collection."""
    return functools.partial(nn.BatchNorm, use_running_average=not train, momentum=0.9, dtype=dtype)


class _BatchNormHead(nn.Module):
    """flatten -> Dense (no bias) -> BN -> ReLU (sown as features) -> Dropout -> logits."""

    hidden: int
    dropout: float
    num_classes: int
    dtype: jnp.dtype

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
        x = x.reshape((x.shape[0], -1))
        x = nn.Dense(self.hidden, use_bias=False, dtype=self.dtype, name="hidden")(x)
        x = nn.relu(_batch_norm(train, self.dtype)(name="bn_hidden")(x))
        self.sow("intermediates", "features", x)
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
        return nn.Dense(self.num_classes, dtype=self.dtype, name="head")(x).astype(jnp.float32)


class TutorialBN(nn.Module):
    """The classic MNIST recipe the tutorial's augmentation came from: two 5x5 conv blocks
    with batch norm, a 1024-wide dense layer, dropout."""

    hidden: int
    dropout: float
    dtype: jnp.dtype = jnp.float32
    num_classes: int = charset.NUM_CLASSES

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        norm = _batch_norm(train, self.dtype)
        x = x.astype(self.dtype)
        for i, features in enumerate((32, 64)):
            x = nn.Conv(features, (5, 5), padding="VALID", use_bias=False, dtype=self.dtype,
                        name=f"conv{i + 1}")(x)
            x = nn.relu(norm(name=f"bn{i + 1}")(x))
            x = nn.max_pool(x, window_shape=(2, 2), strides=(2, 2))
        head = _BatchNormHead(self.hidden, self.dropout, self.num_classes, self.dtype, name="top")
        return head(x, train)


class CompactVGG(nn.Module):
    """A small VGG-style net with batch norm (~1M parameters): one 5x5 stem like the
    tutorial's, then 3x3 pairs that see more context at 22x22 and 11x11 for the
    strokes that separate look-alike characters."""

    hidden: int
    dropout: float
    dtype: jnp.dtype = jnp.float32
    num_classes: int = charset.NUM_CLASSES

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        norm = _batch_norm(train, self.dtype)

        def conv(x, features, kernel, name, padding="SAME"):
            x = nn.Conv(features, kernel, padding=padding, use_bias=False, dtype=self.dtype,
                        name=name)(x)
            return nn.relu(norm(name=f"{name}_bn")(x))

        def pool(x):
            return nn.max_pool(x, window_shape=(2, 2), strides=(2, 2))

        x = pool(conv(x.astype(self.dtype), 32, (5, 5), "conv1", padding="VALID"))  # 22x22
        x = pool(conv(conv(x, 64, (3, 3), "conv2"), 64, (3, 3), "conv3"))  # 11x11
        x = pool(conv(x, 128, (3, 3), "conv4"))  # 5x5
        head = _BatchNormHead(self.hidden, self.dropout, self.num_classes, self.dtype, name="top")
        return head(x, train)


# Compute precisions: float32, or bf16 compute with float32 master weights.
PRECISIONS: tuple[str, ...] = ("float32", "bf16")


@dataclasses.dataclass(frozen=True)
class Entry:
    """A registered model: how to build it from its config block, and how to check that
    block (`check(checker, prefix)`, with charjax.validation's checker and e.g.
    "model.tutorial"). `conv_block`: whether it takes the kernels chosen at start-up."""

    build: Callable[..., nn.Module]  # (block config, dtype, conv_block) -> module
    check: Callable[[Any, str], None]
    number: str | None = None  # the tutorial's model number, if it has one
    conv_block: bool = False


_REGISTRY: dict[str, Entry] = {}


def register(name: str, build: Callable[..., nn.Module], check: Callable[[Any, str], None],
             number: str | None = None, conv_block: bool = False) -> None:
    """Makes `config.model.name=name` build `build(config.model[name], dtype, conv_block)`.

    A new model is one module that calls this, plus its block in the config. A name
    registered again is replaced (a config file may be read twice); a number belongs to
    one name."""
    owner = next((n for n, e in _REGISTRY.items() if number and e.number == number), name)
    if owner != name:
        raise ValueError(f"model number {number} is registered already, to {owner!r}")
    _REGISTRY[name] = Entry(build, check, number, conv_block)


def check_hidden_and_dropout(checker: Any, prefix: str) -> None:
    """The check of a block with a dense width and a dropout rate (every built-in model)."""
    checker.integer(f"{prefix}.hidden", 1, 128, " (units of the layer before the classifier)")
    checker.number(f"{prefix}.dropout", 0.0, 1.0, 0.5, high_open=True)


# The tutorial picked its networks by number; model 1 is the one it trained.
register("tutorial", lambda m, dtype, block: TutorialCNN(m.hidden, m.dropout, dtype, block),
         check_hidden_and_dropout, number="1", conv_block=True)
register("tutorial_bn", lambda m, dtype, _: TutorialBN(m.hidden, m.dropout, dtype),
         check_hidden_and_dropout, number="2")
register("compact_vgg", lambda m, dtype, _: CompactVGG(m.hidden, m.dropout, dtype),
         check_hidden_and_dropout, number="3")


def canonical_name(name: str | int) -> str:
    """'tutorial' for 'tutorial' or the tutorial's number '1'; unknown names pass through."""
    name = str(name)
    return next((n for n, e in _REGISTRY.items() if e.number == name), name)


def entry(name: str | int) -> Entry:
    """The registered model named `name` (or numbered); ValueError listing the choices."""
    canonical = canonical_name(name)
    if canonical not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose one of {model_choices()}")
    return _REGISTRY[canonical]


def kernel_setting(model_config: ml_collections.ConfigDict) -> str:
    """The `config.model.impl` a model runs with: its own where it takes the chosen
    kernels, plain Flax layers ("flax") for the others."""
    return model_config.impl if entry(model_config.name).conv_block else "flax"


def model_choices() -> list[str]:
    """Every accepted `model.name`: the registered names and the tutorial's numbers."""
    return model_names() + sorted(e.number for e in _REGISTRY.values() if e.number)


def model_names() -> list[str]:
    """Registered model names (numbers not included)."""
    return sorted(_REGISTRY)


def create_model(
    model_config: ml_collections.ConfigDict,
    precision: str = "float32",
    conv_block: Callable | None = None,
) -> nn.Module:
    """Builds the module named by `model_config.name` (a name or the tutorial's number)
    from its own block, `model_config[name]`. `conv_block` is the conv-pool kernel
    `charjax.kernels.select(...).conv_block` chose (None: plain Flax layers); models
    without that choice ignore it."""
    found = entry(model_config.name)
    dtypes = dict(zip(PRECISIONS, (jnp.float32, jnp.bfloat16), strict=True))
    if precision not in dtypes:
        raise ValueError(f"unknown precision {precision!r}; choose 'float32' or 'bf16'")
    return found.build(model_config[canonical_name(model_config.name)], dtypes[precision],
                       conv_block)
