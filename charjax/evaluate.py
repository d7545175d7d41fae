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
    eval_fn: Callable,
    state: Any,
    images: jax.Array,
    labels: jax.Array,
    batch_size: int,
    placement: Any = None,
) -> dict[str, Any]:
    """Runs `eval_fn(state, images, labels, idx, mask)` over every sample exactly once.

    Sums stay on device; one host sync at the end. With a placement the batch size is
    rounded up to a multiple of the device count (padding is masked out).
    """
    if placement is not None:
        batch_size = -(-batch_size // placement.num_devices) * placement.num_devices
    index, mask = input_pipeline.padded_batches(int(images.shape[0]), batch_size)
    put = placement.replicate if placement is not None else jnp.asarray
    totals = None
    for idx, m in zip(index, mask, strict=True):
        sums = eval_fn(state, images, labels, put(idx.astype(np.int32)), put(m))
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


@jax.jit
def _probabilities(state: Any, images: jax.Array) -> jax.Array:
    """Softmax of the evaluation weights; compiled once per model and batch shape."""
    from charjax import train  # late import: train uses this module

    logits, _ = train._forward(state, state.eval_params(), input_pipeline.normalize(images), False)
    return jax.nn.softmax(logits)


def predict_probabilities(state: Any, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Softmax probabilities [N, 62] of a restored model on uint8 images [N, 48, 48, 1]."""
    index, mask = input_pipeline.padded_batches(len(images), batch_size)
    out = [np.asarray(_probabilities(state, jnp.asarray(images[idx]))) for idx in index]
    return np.concatenate(out)[mask.reshape(-1)]


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


def metrics_from_probabilities(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """accuracy, loss, top-5 accuracy, n and per-class accuracy of scores against labels."""
    labels = np.asarray(labels).astype(np.int64)
    n = len(labels)
    predicted = probabilities.argmax(-1)
    top5 = np.argsort(-probabilities, axis=-1)[:, :5]
    picked = probabilities[np.arange(n), labels]
    correct = predicted == labels
    counts = np.bincount(labels, minlength=charset.NUM_CLASSES)
    hits = np.bincount(labels, weights=correct, minlength=charset.NUM_CLASSES)
    return {
        "accuracy": float(correct.mean()) if n else 0.0,
        "loss": float(-np.log(np.clip(picked, 1e-12, 1.0)).mean()) if n else 0.0,
        "top5_accuracy": float((top5 == labels[:, None]).any(-1).mean()) if n else 0.0,
        "n": int(n),
        "per_class": per_class_accuracy({"class_correct": hits, "class_count": counts}),
    }


def ensemble_metrics(
    probabilities: list[np.ndarray], labels: np.ndarray, vote: bool = False
) -> tuple[dict[str, Any], np.ndarray]:
    """Metrics of several models combined, and the scores they were read from.

    A vote yields shares of models, not probabilities, so a cross-entropy on them means
    nothing; with `vote` the accuracies come from the vote and the loss from the members'
    mean probability (`loss_of` says which).
    """
    mean = combine(probabilities)
    scores = combine(probabilities, vote=True) if vote else mean
    result = metrics_from_probabilities(scores, labels)
    if vote:
        result["loss"] = metrics_from_probabilities(mean, labels)["loss"]
    result["loss_of"] = "mean probability"
    return result, scores


def most_confused_pairs(
    probabilities: np.ndarray, labels: np.ndarray, top: int = 10
) -> list[tuple[str, str, int]]:
    """The `top` commonest mistakes as (true char, predicted char, count), commonest first."""
    from charjax.reporting import plots  # the package imports this module: import late

    matrix = plots.confusion_matrix(labels, np.asarray(probabilities).argmax(-1))
    return [(t, p, n) for t, p, n, _ in plots.most_confused(matrix, top)]


def load_eval_data(spec: str, run_config: Any, split: str = "auto") -> Any:
    """The dataset to score a run on.

    split 'auto' means the run's own test split when `spec` is the data the run trained on
    (so `charjax eval` reproduces the test accuracy training reported), else all of it.
    """
    from charjax import datasets

    if split == "auto":
        split = "test" if spec == run_config.data.source else "all"
    if split not in ("all", "train", "validation", "test"):
        raise ValueError(f"unknown split {split!r}; choose auto, all, train, validation or test")
    dataset = datasets.load(spec, run_config.data)
    if split == "all":
        return dataset
    splits = input_pipeline.stratified_split(
        dataset,
        run_config.data.val_fraction,
        run_config.data.test_fraction,
        run_config.data.split_seed,
    )
    return getattr(splits, split)
