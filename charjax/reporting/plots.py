"""PNG figures of a run: learning curves, the confusion matrix, the worst mistakes.

matplotlib through `Figure` + `FigureCanvasAgg`, never pyplot: pyplot keeps global state
(the current figure, the chosen backend) that would leak into a user's own plots, and
Agg needs no display, so this works on a headless training box. matplotlib is imported
inside the drawing functions: it costs ~0.4 s, and `charjax predict` imports the trainer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from charjax import charset, preview

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI = 100
CURVES_SIZE = (1200, 450)  # pixels (width, height) of curves.png
CONFUSION_SIZE = (1600, 1100)  # pixels (width, height) of confusion.png
_TRAIN, _VAL = "#1f77b4", "#d62728"


def _figure(size: tuple[int, int]) -> Figure:
    """A figure of exactly `size` pixels, so the PNG size is known in advance."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size[0] / DPI, size[1] / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def curves(history: Sequence[Mapping[str, float]], best: int, path: str) -> None:
    """The tutorial's two figures side by side: accuracy and loss per epoch, train vs
    validation, with the `best` epoch (the one the test was scored with) marked.

    `history` is train.py's list of {'epoch', 'train_loss', 'train_accuracy', 'val_loss',
    'val_accuracy', ...} records.
    """
    from matplotlib.ticker import MaxNLocator

    if not history:
        raise ValueError("no epochs in the history; there is nothing to plot")
    epochs = [int(e["epoch"]) for e in history]
    fig = _figure(CURVES_SIZE)
    for col, metric in enumerate(("accuracy", "loss")):
        ax = fig.add_subplot(1, 2, col + 1)
        ax.plot(epochs, [e[f"train_{metric}"] for e in history], "o-", color=_TRAIN,
                markersize=3, label="train")
        ax.plot(epochs, [e[f"val_{metric}"] for e in history], "o-", color=_VAL,
                markersize=3, label="validation")
        ax.axvline(best, color="0.5", linestyle=":", linewidth=1, label=f"best (epoch {best})")
        ax.set_title(f"model {metric}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    """Counts [62, 62]: row = true class, column = predicted class."""
    n = charset.NUM_CLASSES
    flat = np.asarray(labels, np.int64) * n + np.asarray(predictions, np.int64)
    return np.bincount(flat, minlength=n * n).reshape(n, n)


def most_confused(matrix: np.ndarray, top: int = 20) -> list[tuple[str, str, int, float]]:
    """The `top` off-diagonal cells: (true char, predicted char, count, share of true).

    Ties go to the lower class index, so the list is the same on every run.
    """
    off = matrix.astype(np.int64).copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(-off, axis=None, kind="stable")[:top]
    rows = matrix.sum(1)
    out = []
    for flat in order:
        t, p = divmod(int(flat), matrix.shape[1])
        if off[t, p] == 0:
            break
        out.append((charset.CLASSES[t], charset.CLASSES[p], int(off[t, p]),
                    float(off[t, p] / rows[t])))
    return out


def confusion(labels: np.ndarray, predictions: np.ndarray, path: str, top: int = 25) -> None:
    """The 62x62 matrix (share of each true class, so rare classes read the same), with
    the most confused pairs listed beside it.

    A square-root colour scale keeps a 2% confusion visible next to a 95% diagonal;
    lines split digits, upper and lower case.
    """
    from matplotlib.colors import PowerNorm

    matrix = confusion_matrix(labels, predictions)
    rows = np.maximum(matrix.sum(1, keepdims=True), 1)
    share = matrix / rows
    n = charset.NUM_CLASSES
    accuracy = np.trace(matrix) / max(matrix.sum(), 1)
    fig = _figure(CONFUSION_SIZE)
    ax = fig.add_axes((0.05, 0.07, 0.60, 0.87))
    image = ax.imshow(share, cmap="viridis", norm=PowerNorm(0.5, vmin=0.0, vmax=1.0),
                      interpolation="nearest")
    ticks = np.arange(n)
    # Monospace: in the default sans font I and l are the same bar.
    ax.set_xticks(ticks, list(charset.CLASSES), fontsize=8, family="monospace")
    ax.set_yticks(ticks, list(charset.CLASSES), fontsize=8, family="monospace")
    ax.tick_params(length=0)
    for edge in (9.5, 35.5):
        ax.axhline(edge, color="white", linewidth=0.6)
        ax.axvline(edge, color="white", linewidth=0.6)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"confusion matrix: {int(matrix.sum())} images, accuracy {accuracy:.2%}")
    bar = fig.colorbar(image, ax=ax, fraction=0.04, pad=0.01)
    bar.set_label("share of the true class")

    pairs = most_confused(matrix, top)
    lines = ["most confused pairs", "", " true → pred   count  of true"]
    lines += [f"   {t}  →  {p}    {c:6d}  {s:6.1%}" for t, p, c, s in pairs]
    if not pairs:
        lines.append("   (no mistakes)")
    fig.text(0.73, 0.94, "\n".join(lines), family="monospace", fontsize=11, va="top")
    fig.savefig(path, dpi=DPI)


def worst_errors(probabilities: np.ndarray, labels: np.ndarray, limit: int) -> np.ndarray:
    """Indices of misclassified images, the most confidently wrong first."""
    predictions = probabilities.argmax(-1)
    wrong = np.flatnonzero(predictions != np.asarray(labels))
    confidence = probabilities[wrong, predictions[wrong]]
    return wrong[np.argsort(-confidence, kind="stable")][:limit]


def errors(
    images: np.ndarray,
    labels: np.ndarray,
    probabilities: np.ndarray,
    path: str,
    limit: int = 64,
    columns: int = 16,
) -> int:
    """Grid of the worst misclassified images labelled 'true → predicted NN%' (preview's
    write_grid, with the model's probability of its wrong answer). Returns how many it
    shows; writes nothing when there is no mistake.
    """
    worst = worst_errors(probabilities, labels, limit)
    if len(worst):
        predicted = probabilities[worst].argmax(-1)
        preview.write_grid(images[worst], np.asarray(labels)[worst], path, columns=columns,
                           predictions=predicted,
                           confidences=probabilities[worst, predicted])
    return len(worst)
