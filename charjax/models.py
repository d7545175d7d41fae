"""Flax Linen models and a registry: name (or the tutorial's model number) -> module.

Every model maps float images [B, 48, 48, 1] in [0, 1] to logits [B, 62]; softmax
lives in the loss. The layer just before the classifier is sown as
`intermediates/features`, so the embedding projector can read it.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from charjax import charset, kernels, layers

log = logging.getLogger(__name__)


class TutorialCNN(nn.Module):
    """The tutorial's network: conv5-pool-conv3-pool-dense-dropout-dense (846,654 params at
    the tutorial's dense width, hidden=128).

    `impl='fast'` computes the same function with the same parameter tree through
    `charjax.layers` (cheaper max-pool gradient, bias/ReLU after the pool);
    `impl='onednn'` runs each conv-pool block as one oneDNN call (`charjax.kernels`);
    `impl='flax'` is the plain nn.Conv / nn.max_pool formulation. Checkpoints of one
    load into the others. `create_model` turns 'auto' into one of them.
    """

    hidden: int
    dropout: float
    dtype: jnp.dtype = jnp.float32
    impl: str = "fast"  # create_model resolves the config's "auto"
    num_classes: int = charset.NUM_CLASSES

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        x = x.astype(self.dtype)
        if self.impl in ("fast", "onednn"):
            block = functools.partial(layers.ConvReluPool, dtype=self.dtype, impl=self.impl)
            x = block(32, (5, 5), name="conv1")(x)
            x = block(64, (3, 3), name="conv2")(x)
        elif self.impl == "flax":
            x = nn.Conv(32, (5, 5), padding="VALID", dtype=self.dtype, name="conv1")(x)
            x = nn.max_pool(nn.relu(x), window_shape=(2, 2), strides=(2, 2))
            x = nn.Conv(64, (3, 3), padding="VALID", dtype=self.dtype, name="conv2")(x)
            x = nn.max_pool(nn.relu(x), window_shape=(2, 2), strides=(2, 2))
        else:
            raise ValueError(f"unknown impl {self.impl!r}; choose one of {IMPLS}")
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


# Each model is built from config.model: its own block (config.model.<name>) and, where it
# has a choice of kernels, config.model.impl. Every setting is in the config schema; none
# is a hidden default.
_REGISTRY: dict[str, Callable[[ml_collections.ConfigDict, jnp.dtype], nn.Module]] = {
    "tutorial": lambda m, dtype: TutorialCNN(
        m.tutorial.hidden, m.tutorial.dropout, dtype,
        resolve_impl(m.impl, precision=_precision(dtype)),
    ),
    "tutorial_bn": lambda m, dtype: TutorialBN(m.tutorial_bn.hidden, m.tutorial_bn.dropout, dtype),
    "compact_vgg": lambda m, dtype: CompactVGG(m.compact_vgg.hidden, m.compact_vgg.dropout, dtype),
}
# The tutorial picked its networks by number; model 1 is the one it trained.
_ALIASES: dict[str, str] = {"1": "tutorial", "2": "tutorial_bn", "3": "compact_vgg"}


def canonical_name(name: str | int) -> str:
    """'tutorial' for 'tutorial' or the tutorial's number '1'; unknown names pass through."""
    name = str(name)
    return _ALIASES[name] if name in _ALIASES else name


IMPLS = ("auto", "onednn", "fast", "flax")


def resolve_impl(impl: str, backend: str | None = None, precision: str = "float32") -> str:
    """The tutorial network's implementation for this process: 'auto' is oneDNN on a CPU
    where charjax.kernels load and run in `precision`, XLA's fast path on other CPUs,
    plain Flax layers on accelerators (cuDNN needs none of the CPU rewrites)."""
    if impl not in IMPLS:
        raise ValueError(f"unknown impl {impl!r}; choose one of {IMPLS}")
    backend = backend or jax.default_backend()
    if impl == "auto":
        if backend != "cpu":
            return "flax"
        return "onednn" if kernels.supports(precision) else "fast"
    if impl == "onednn" and not kernels.status().available:
        raise RuntimeError(f"model.impl='onednn' but {kernels.status().detail}")
    if impl == "onednn" and not kernels.supports(precision):
        raise RuntimeError(f"model.impl='onednn' but this CPU's oneDNN has no {precision} "
                           "convolution (it needs AVX-512); use model.impl='auto' or 'fast'")
    return impl


def _precision(dtype: jnp.dtype) -> str:
    return "bf16" if jnp.dtype(dtype) == jnp.bfloat16 else "float32"


def impl_of(model_config: ml_collections.ConfigDict) -> str:
    """The impl setting a model config runs with: its own for the tutorial network
    (default 'auto'), plain Flax layers for the others."""
    return model_config.impl if canonical_name(model_config.name) == "tutorial" else "flax"


def describe_impl(impl: str, backend: str | None = None, precision: str = "float32") -> str:
    """One line for a run's log: the backend and the kernels `impl` resolves to."""
    backend = backend or jax.default_backend()
    chosen = resolve_impl(impl, backend, precision)
    kind = {"onednn": kernels.status().detail if chosen == "onednn" else "",
            "fast": "XLA convolutions (charjax.layers fast path)",
            "flax": "XLA convolutions (plain Flax layers)"}[chosen]
    if chosen == "fast" and impl == "auto" and not kernels.available():
        kind += f"; oneDNN kernels unavailable: {kernels.status().detail}"
    elif chosen == "fast" and impl == "auto":
        kind += f"; this CPU's oneDNN has no {precision} convolution"
    return f"backend {backend}, model kernels: {kind}"


# Compute precisions: float32, or bf16 compute with float32 master weights.
PRECISIONS: tuple[str, ...] = ("float32", "bf16")


def model_choices() -> list[str]:
    """Every accepted `model.name`: the registered names and the tutorial's numbers."""
    return model_names() + sorted(_ALIASES)


def model_names() -> list[str]:
    """Registered model names (aliases not included)."""
    return sorted(_REGISTRY)


def create_model(model_config: ml_collections.ConfigDict, precision: str = "float32") -> nn.Module:
    """Builds the module named by `model_config.name` (a name or the tutorial's number)
    from its settings, `model_config[name]` (and `model_config.impl`)."""
    name = canonical_name(model_config.name)
    if name not in _REGISTRY:
        raise ValueError(
            f"unknown model {model_config.name!r}; choose one of {model_names()} "
            f"or a number in {sorted(_ALIASES)}"
        )
    dtypes = dict(zip(PRECISIONS, (jnp.float32, jnp.bfloat16), strict=True))
    if precision not in dtypes:
        raise ValueError(f"unknown precision {precision!r}; choose 'float32' or 'bf16'")
    return _REGISTRY[name](model_config, dtypes[precision])
