"""Metrics of a model on a dataset: accuracy, loss, top-5, per class.

Evaluation is padded to whole batches with a mask, so one compiled step serves every
batch and no sample is counted twice or lost.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from charjax import charset, input_pipeline


def batch_sums(logits: jax.Array, labels: jax.Array, mask: jax.Array) -> dict[str, jax.Array]:
    """Masked sums over a batch; divide by `count` after summing over batches."""
    mask = mask.astype(jnp.float32)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    correct = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
    top5 = jnp.any(jax.lax.top_k(logits, 5)[1] == labels[:, None], axis=-1).astype(jnp.float32)
    per_class = jax.nn.one_hot(labels, charset.NUM_CLASSES) * mask[:, None]
    return {
        "loss": jnp.sum(loss * mask),
        "correct": jnp.sum(correct * mask),
        "top5_correct": jnp.sum(top5 * mask),
        "count": jnp.sum(mask),
        "class_count": jnp.sum(per_class, 0),
        "class_correct": jnp.sum(per_class * correct[:, None], 0),
    }


def evaluate_arrays(
    eval_fn: Callable, state: Any, images: jax.Array, labels: jax.Array, batch_size: int
) -> dict[str, Any]:
    """Runs `eval_fn(state, batch)` over all of (images, labels); one host sync at the end."""
    index, mask = input_pipeline.padded_batches(int(images.shape[0]), batch_size)
    totals = None
    for idx, m in zip(index, mask, strict=True):
        idx = jnp.asarray(idx)
        sums = eval_fn(state, {"image": images[idx], "label": labels[idx], "mask": jnp.asarray(m)})
        totals = sums if totals is None else jax.tree_util.tree_map(jnp.add, totals, sums)
    totals = jax.device_get(totals)
    count = max(float(totals["count"]), 1.0)
    return {
        "accuracy": float(totals["correct"]) / count,
        "loss": float(totals["loss"]) / count,
        "top5_accuracy": float(totals["top5_correct"]) / count,
        "n": int(totals["count"]),
        "class_count": np.asarray(totals["class_count"]),
        "class_correct": np.asarray(totals["class_correct"]),
    }


def per_class_accuracy(result: dict[str, Any]) -> dict[str, float]:
    """Character -> accuracy, for the classes that occur."""
    return {
        charset.index_to_char(i): float(c / n)
        for i, (c, n) in enumerate(zip(result["class_correct"], result["class_count"], strict=True))
        if n > 0
    }
