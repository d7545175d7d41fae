"""Flax Linen models and a registry: name (or the tutorial's model number) -> module.

Every model maps float images [B, 48, 48, 1] in [0, 1] to logits [B, 62]; softmax
lives in the loss. The layer just before the classifier is sown as
`intermediates/features`, so the embedding projector can read it.
"""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from charjax import charset


class TutorialCNN(nn.Module):
    """The tutorial's network: conv5-pool-conv3-pool-dense-dropout-dense (846,654 params)."""

    num_classes: int = charset.NUM_CLASSES
    hidden: int = 128
    dropout: float = 0.5
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        x = x.astype(self.dtype)
        x = nn.Conv(32, (5, 5), padding="VALID", dtype=self.dtype, name="conv1")(x)
        x = nn.max_pool(nn.relu(x), (2, 2), strides=(2, 2))
        x = nn.Conv(64, (3, 3), padding="VALID", dtype=self.dtype, name="conv2")(x)
        x = nn.max_pool(nn.relu(x), (2, 2), strides=(2, 2))
        x = x.reshape((x.shape[0], -1))
        x = nn.relu(nn.Dense(self.hidden, dtype=self.dtype, name="hidden")(x))
        self.sow("intermediates", "features", x)
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
        x = nn.Dense(self.num_classes, dtype=self.dtype, name="head")(x)
        return x.astype(jnp.float32)


_REGISTRY: dict[str, Callable[[ml_collections.ConfigDict, jnp.dtype], nn.Module]] = {
    "tutorial": lambda cfg, dtype: TutorialCNN(
        hidden=cfg.get("hidden", 128), dropout=cfg.get("dropout", 0.5), dtype=dtype
    ),
}
# The tutorial picked its networks by number; model 1 is the one it trained.
_ALIASES: dict[str, str] = {"1": "tutorial"}


def model_names() -> list[str]:
    """Registered model names (aliases not included)."""
    return sorted(_REGISTRY)


def create_model(model_config: ml_collections.ConfigDict, precision: str = "float32") -> nn.Module:
    """Builds the module named by `model_config.name` (a name or the tutorial's number)."""
    name = str(model_config.name)
    name = _ALIASES.get(name, name)
    if name not in _REGISTRY:
        raise ValueError(
            f"unknown model {model_config.name!r}; choose one of {model_names()} "
            f"or a number in {sorted(_ALIASES)}"
        )
    dtypes = {"float32": jnp.float32, "bf16": jnp.bfloat16}
    if precision not in dtypes:
        raise ValueError(f"unknown precision {precision!r}; choose 'float32' or 'bf16'")
    return _REGISTRY[name](model_config, dtypes[precision])
