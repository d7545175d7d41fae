"""Metrics of a model on a dataset: accuracy, loss, top-5, per class.

Evaluation is padded to whole batches with a mask, so one compiled step serves every
batch and no sample is counted twice or lost.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from charjax import charset, datasets, distributed, inference, input_pipeline, layers, state
from charjax.datasets.base import Dataset
from charjax.reporting import plots

log = logging.getLogger(__name__)
PREDICT_BATCH = 512  # images per call when a restored run scores a dataset


def batch_sums(logits: jax.Array, labels: jax.Array, mask: jax.Array) -> dict[str, jax.Array]:
    """Masked sums over a batch, the one definition of every metric; `summarize` turns
    the sums (added over batches) into accuracies and a mean loss."""
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


def summarize(totals: dict[str, Any]) -> dict[str, Any]:
    """accuracy, loss, top5_accuracy, n and per_class (character -> accuracy, for the
    classes that occur) from `batch_sums` added over batches."""
    totals = jax.device_get(totals)
    count = max(float(totals["count"]), 1.0)
    class_count, class_correct = np.asarray(totals["class_count"]), totals["class_correct"]
    return {
        "accuracy": float(totals["correct"]) / count,
        "loss": float(totals["loss"]) / count,
        "top5_accuracy": float(totals["top5_correct"]) / count,
        "n": int(totals["count"]),
        "per_class": {
            charset.index_to_char(i): float(class_correct[i] / n)
            for i, n in enumerate(class_count) if n > 0
        },
    }


def eval_step(train_state: state.TrainState, batch: dict[str, jax.Array]) -> tuple[dict, jax.Array]:
    """(`batch_sums` over the batch's unmasked samples, logits) with the evaluation weights."""
    predictor = inference.of_state(train_state)
    logits, _ = inference.outputs(predictor.model, predictor.variables, batch["image"])
    return batch_sums(logits, batch["label"], batch["mask"]), logits


def make_device_eval_step(placement: distributed.Placement | None = None) -> Callable:
    """Jitted eval step over (images, labels) gathered by padded indices and a mask."""

    def step(train_state, images, labels, idx, mask):
        batch = {"image": images[idx], "label": labels[idx], "mask": mask}
        if placement is not None:
            batch = jax.lax.with_sharding_constraint(batch, placement.batch)
        return eval_step(train_state, batch)

    out = placement.replicated if placement is not None else None
    return jax.jit(step, out_shardings=out, compiler_options=layers.cpu_compiler_options())


def eval_batch_size(batch_size: int, placement: distributed.Placement | None = None) -> int:
    """The batch `evaluate_arrays` runs: `batch_size` rounded up to a multiple of the
    placement's device count."""
    if placement is None:
        return batch_size
    return -(-batch_size // placement.num_devices) * placement.num_devices


def evaluate_arrays(
    eval_fn: Callable,
    train_state: Any,
    images: jax.Array,
    labels: jax.Array,
    batch_size: int,
    placement: distributed.Placement | None = None,
    keep_logits: bool = False,
) -> dict[str, Any]:
    """`summarize`d metrics of `eval_fn` (see `make_device_eval_step`) over every sample
    exactly once; with `keep_logits`, also the logits [N, 62] as a host array.

    Every batch has the same shape (the last one padded and masked), so one compiled step
    serves them all; the batches' sums stay on device until one host sync at the end, and
    are added there. With a placement the batch size is rounded up to a multiple of the
    device count (`eval_batch_size`).
    """
    batch_size = eval_batch_size(batch_size, placement)
    index, mask = input_pipeline.padded_batches(int(images.shape[0]), batch_size)
    put = placement.replicate if placement is not None else jnp.asarray
    sums, logits = [], []
    for idx, m in zip(index, mask, strict=True):
        batch_sums_, batch_logits = eval_fn(train_state, images, labels,
                                            put(idx.astype(np.int32)), put(m))
        sums.append(batch_sums_)
        if keep_logits:
            logits.append(batch_logits)
    sums = jax.device_get(sums)
    result = summarize({name: np.sum([np.asarray(s[name], np.float64) for s in sums], axis=0)
                        for name in sums[0]})
    if keep_logits:
        result["logits"] = np.concatenate(jax.device_get(logits))[mask.reshape(-1)]
    return result


def adapt_to_class_mix(
    probabilities: np.ndarray,
    train_counts: np.ndarray,
    tolerance: float = 1e-6,
    max_iterations: int = 500,
) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities [N, C] re-weighted to the class mix of the images they were read from,
    and that mix [C], estimated from the images alone: no label is used.

    A model trained on balanced classes splits look-alike ties (`1`/`l`/`I`, `0`/`O`/`o`)
    evenly; where one member of a tie is far commoner, as digits are in most real text,
    the data's own mix breaks the tie. This is the EM procedure of Saerens, Latinne and
    Decaestecker (2002, "Adjusting the outputs of a classifier to new a priori
    probabilities"): p'(c|x) is p(c|x) * q(c) / t(c) normalised, with t the training mix
    (`train_counts`) and q the mean of p' over the images, iterated to a fixed point.
    """
    probabilities = np.asarray(probabilities, np.float64)
    train_prior = np.asarray(train_counts, np.float64)
    if train_prior.shape != probabilities.shape[-1:] or (train_prior <= 0).any():
        raise ValueError(f"train_counts needs {probabilities.shape[-1]} positive counts (every "
                         f"class seen in training), got {train_counts}")
    train_prior = train_prior / train_prior.sum()

    def reweighted(mix: np.ndarray) -> np.ndarray:
        adapted = probabilities * (mix / train_prior)
        return adapted / adapted.sum(-1, keepdims=True)

    mix = train_prior
    for _ in range(max_iterations):
        new_mix = reweighted(mix).mean(0)
        converged = np.abs(new_mix - mix).max() < tolerance
        mix = new_mix
        if converged:
            break
    return reweighted(mix), mix


def class_mix_metrics(scores: np.ndarray, labels: np.ndarray, train_counts: np.ndarray
                      ) -> dict[str, Any]:
    """Metrics of `scores` re-weighted to their images' class mix (`adapt_to_class_mix`),
    with that mix as "estimated_mix" (character -> share). A class the run never saw counts
    once: its answers are ~0 and stay so."""
    adapted, mix = adapt_to_class_mix(scores, np.maximum(train_counts, 1))
    result = metrics_from_probabilities(adapted, labels)
    result["estimated_mix"] = {charset.index_to_char(i): float(m) for i, m in enumerate(mix)}
    return result


def training_class_counts(workdir: str, training_labels: Callable[[], np.ndarray]) -> np.ndarray:
    """A run's training class counts, as it recorded them (WORKDIR/class_counts.json), or
    counted on `training_labels()` for runs older than that file."""
    try:
        with open(os.path.join(workdir, "class_counts.json")) as f:
            return np.asarray(json.load(f)["train"])
    except FileNotFoundError:
        log.info("%s: no class_counts.json; counting the training split's classes", workdir)
        return np.bincount(training_labels(), minlength=charset.NUM_CLASSES)


def metrics_from_probabilities(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """`summarize`d metrics of scores [N, 62] (probabilities, or a vote's shares) against
    labels: `batch_sums` on their logarithm, so the loss is the mean -log p(true class)."""
    logits = jnp.log(jnp.clip(jnp.asarray(probabilities, jnp.float32), 1e-12, 1.0))
    labels = jnp.asarray(np.asarray(labels), jnp.int32)
    return summarize(batch_sums(logits, labels, jnp.ones(labels.shape, bool)))


def ensemble_metrics(
    probabilities: list[np.ndarray], labels: np.ndarray, vote: bool = False
) -> tuple[dict[str, Any], np.ndarray]:
    """Metrics of several models combined, and the scores they were read from.

    A vote yields shares of models, not probabilities, so a cross-entropy on them means
    nothing; with `vote` the accuracies come from the vote and the loss from the members'
    mean probability (`loss_of` says which).
    """
    mean = inference.combine(probabilities)
    scores = inference.combine(probabilities, vote=True) if vote else mean
    result = metrics_from_probabilities(scores, labels)
    if vote:
        result["loss"] = metrics_from_probabilities(mean, labels)["loss"]
    result["loss_of"] = "mean probability"
    return result, scores


def score(predictor: inference.Predictor | inference.Ensemble, images: np.ndarray,
          labels: np.ndarray) -> tuple[dict, np.ndarray]:
    """`ensemble_metrics` of a predictor (a run, or an ensemble by its members) on uint8
    images, with the most-confused pairs, and the scores they were read from."""
    probabilities = [m.probabilities(images, PREDICT_BATCH) for m in predictor.members]
    result, scores = ensemble_metrics(probabilities, labels, vote=predictor.vote)
    result["most_confused"] = most_confused_pairs(scores, labels)
    return result, scores


def most_confused_pairs(
    probabilities: np.ndarray, labels: np.ndarray, top: int = 10
) -> list[tuple[str, str, int]]:
    """The `top` commonest mistakes as (true char, predicted char, count), commonest first."""
    matrix = plots.confusion_matrix(labels, np.asarray(probabilities).argmax(-1))
    return [(t, p, n) for t, p, n, _ in plots.most_confused(matrix, top)]


def load_eval_data(
    spec: str, run_config: ml_collections.ConfigDict, split: str = "auto"
) -> Dataset:
    """The dataset to score a run on.

    split 'auto' means the run's own test split when `spec` is the data the run trained on
    (so `charjax eval` reproduces the test accuracy training reported), else all of it.
    """
    if split == "auto":
        split = "test" if spec == run_config.data.source else "all"
    if split not in ("all", "train", "validation", "test"):
        raise ValueError(f"unknown split {split!r}; choose auto, all, train, validation or test")
    dataset = datasets.load(spec, run_config.data)
    if split == "all":
        return dataset
    return getattr(input_pipeline.split(dataset, run_config.data), split)
