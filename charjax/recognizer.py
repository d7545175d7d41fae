"""A trained run as a recognizer: images or files in, the likeliest characters out.

    rec = charjax.Recognizer.load("runs/demo")
    rec.predict(["my_a.png", drawing_array], top_k=3)  # [[("a", 0.91), ("d", 0.04), ...], ...]

Every image goes through `charjax.framing.prepare` with the framing stored in the run's
config, so a drawing, a photo and an upload are framed as the model's training images were.
Arrays follow one rule (`charjax.inputs`: integers 0-255, floats 0-1); a blank or noisy image
is answered with a warning (`Result.warning`; `predict` issues it as an `InputWarning`).
The model runs through `charjax.inference` (several runs: an ensemble), in batches padded to
a few fixed sizes, so it is compiled once per size, not once per call.
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from collections.abc import Sequence
from typing import Any

import ml_collections
import numpy as np
from PIL import Image

from charjax import charset, framing, imageio, inference, inputs, reading
from charjax.errors import CharjaxError, DataError, InputWarning

ImageLike = str | os.PathLike | np.ndarray | Image.Image


@dataclasses.dataclass(frozen=True)
class Result:
    """One image's answer: top-k (character, probability), the 48x48 input, any warning.

    `error` is set (and `top` empty) when the image could not be read.
    """

    name: str
    top: list[tuple[str, float]]
    pixels: np.ndarray | None = None
    warning: str | None = None
    error: str | None = None


class Recognizer:
    """A predictor (`charjax.inference`: a run, or several as an ensemble), its classes and
    the framing its training data used."""

    def __init__(self, predictor: inference.Predictor | inference.Ensemble,
                 metrics: dict[str, Any] | None = None):
        self.predictor = predictor
        self.config: ml_collections.ConfigDict = predictor.config
        self.framing: str = predictor.framing
        self.classes: tuple[str, ...] = tuple(charset.CLASSES)
        self.metrics = dict(metrics or {})
        self.workdir = predictor.workdir  # the run's folder (not an ensemble's): corrections

    @classmethod
    def load(cls, workdir: str | os.PathLike | Sequence[str | os.PathLike],
             step: int | None = None, impl: str | None = None, vote: bool = False
             ) -> Recognizer:
        """The best checkpoint of a run (or `step`), or of several runs as an ensemble
        (their mean probability, or their `vote`); `impl` swaps the model's formulation
        (e.g. "flax": plain Flax layers, the same weights) for models that have several."""
        predictor = inference.load(workdir, impl, step=step, vote=vote)
        return cls(predictor, predictor.workdir and _read_metrics(predictor.workdir))

    # ------------------------------------------------------------------ public API
    def predict(self, images: ImageLike | Sequence[ImageLike], top_k: int = 3
                ) -> list[list[tuple[str, float]]]:
        """Per image, its `top_k` (character, probability), likeliest first.

        `images`: one image or a list of them: file paths, Pillow images, arrays [H, W] or
        [H, W, 1|2|3|4] of any size (integers 0-255, floats 0-1, or bool), or a batch
        [N, H, W(, C)]. An unreadable file or an array out of its range raises a DataError
        naming it (`recognize` reports it instead); anything else (bytes, None, nested
        lists) a TypeError. A blank or noisy image is answered with an InputWarning.
        """
        results = self.recognize(images, top_k)
        for r in results:
            if r.error:
                raise DataError(r.error)
        for r in results:
            if r.warning:
                warnings.warn(f"{r.name}: {r.warning}", InputWarning, stacklevel=2)
        return [r.top for r in results]

    def recognize(self, images: ImageLike | Sequence[ImageLike], top_k: int = 3) -> list[Result]:
        """Like `predict`, with each image's model input and warning; bad files are reported
        in their own Result while every other image is still answered."""
        check_top_k(top_k)
        items = inputs.as_items(images)
        prepared: list[framing.Prepared | None] = []
        names, errors = [], []
        for index, item in enumerate(items):
            name = os.fspath(item) if isinstance(item, str | os.PathLike) else f"image {index}"
            names.append(name)
            try:
                prepared.append(self.prepare(item))
                errors.append(None)
            except (CharjaxError, ValueError) as e:
                prepared.append(None)
                errors.append(str(e) if name in str(e) else f"{name}: {e}")
        good = [p.pixels for p in prepared if p is not None]
        probs = iter(self.probabilities(np.stack(good)) if good else [])
        results = []
        for name, p, error in zip(names, prepared, errors, strict=True):
            if p is None:
                results.append(Result(name, [], error=error))
                continue
            results.append(Result(name, self.top(next(probs), top_k), p.pixels, p.warning))
        return results

    def read(self, image: ImageLike, top_k: int = 3) -> reading.Reading:
        """An image (or file) of a word or a line of separate characters -> its text, with
        each character's box, top-k and why the line's geometry changed an answer
        (charjax/reading.py); the characters are read in one batch by `probabilities`."""
        check_top_k(top_k)
        if isinstance(image, str | os.PathLike):
            path = os.fspath(image)
            image = imageio.open_picture(imageio.read_bytes(path), path)
        return reading.read(image, self.probabilities, self.framing, top_k)

    def prepare(self, image: ImageLike) -> framing.Prepared:
        """One image (or file) -> the model's 48x48 input, framed as its training data was,
        with a warning when the image is blank, a speck or noise (see `charjax.inputs`)."""
        problem = inputs.type_problem(image)
        if problem:
            raise TypeError(problem)
        if isinstance(image, str | os.PathLike):
            path = os.fspath(image)
            image = imageio.open_picture(imageio.read_bytes(path), path)
        elif not isinstance(image, Image.Image):
            image = inputs.check_array(image)
        prepared = framing.prepare(image, self.framing)
        if prepared.warning is None and inputs.is_noise(image):
            return dataclasses.replace(prepared, warning=inputs.NOISE_WARNING)
        return prepared

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        """Softmax [N, 62] of prepared uint8 inputs [N, 48, 48, 1] (an ensemble's combined
        scores); thread-safe, padded to a few compiled batch sizes (`inference.BATCH_SIZES`)."""
        return self.predictor.probabilities(pixels)

    def top(self, probabilities: np.ndarray, top_k: int) -> list[tuple[str, float]]:
        best = np.argsort(-probabilities, kind="stable")[:top_k]
        return [(self.classes[i], float(probabilities[i])) for i in best]

    def info(self) -> dict[str, Any]:
        """What a client needs to know about the model (served as GET /model)."""
        return {
            "classes": "".join(self.classes),
            "model": str(self.config.model.name),
            "framing": self.framing,
            "image_size": charset.IMAGE_SIZE,
            "test_accuracy": self.metrics.get("test_accuracy"),
            "guides": framing.line_guides() if self.framing == "line" else None,
        }


def check_top_k(top_k: int) -> int:
    if isinstance(top_k, bool) or not isinstance(top_k, int | np.integer):
        raise ValueError(f"top_k must be an integer, got {top_k!r}")
    if not 1 <= top_k <= charset.NUM_CLASSES:
        raise ValueError(f"top_k must be in 1..{charset.NUM_CLASSES}, got {top_k}")
    return int(top_k)


def _read_metrics(workdir: str | os.PathLike) -> dict[str, Any]:
    try:
        with open(os.path.join(os.fspath(workdir), "metrics.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}
