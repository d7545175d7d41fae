"""TensorBoard event files, written with tensorboardX: the writer, the custom-scalars
layout and the config as hparams and text."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from typing import Any

from tensorboardX import SummaryWriter

# Charts that put train and validation on one plot (TensorBoard's "Custom Scalars" tab).
CURVES_LAYOUT = {
    "curves": {
        "loss": ["Multiline", ["train/loss", "val/loss"]],
        "accuracy": ["Multiline", ["train/accuracy", "val/accuracy"]],
    }
}

HParam = bool | str | float | int


def open_writer(logdir: str, purge_step: int | None = None) -> SummaryWriter:
    """A writer on `logdir` that flushes often enough for a live TensorBoard.

    `purge_step` makes TensorBoard hide what earlier files logged at or after that step:
    a resumed run passes the first step it will log, so what the interrupted run logged
    after its last checkpoint doesn't zigzag the curves.

    tensorboardX names its file by the second and opens it with 'wb', so a second writer
    within the same second on the same folder would wipe the first one's file. A
    nanosecond suffix keeps the names apart and still sorts them oldest first (TensorBoard
    reads a folder's files in name order).
    """
    os.makedirs(logdir, exist_ok=True)
    return SummaryWriter(logdir=logdir, purge_step=purge_step or None, flush_secs=30,
                         filename_suffix=f".{time.time_ns()}")


def plain_config(config: Any) -> dict:
    """A ConfigDict (or a mapping) as plain JSON data, references resolved."""
    if hasattr(config, "to_json"):
        return json.loads(config.to_json())
    return json.loads(json.dumps(dict(config), default=str))


def flatten_hparams(config: Any, prefix: str = "") -> dict[str, HParam]:
    """Dotted leaf names -> values TensorBoard's HParams tab accepts.

    It takes only bool, str, int and float: tuples and lists become strings, None and
    empty sub-configs are dropped.
    """
    data = plain_config(config) if not prefix else config
    out: dict[str, HParam] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten_hparams(value, name + "."))
        elif isinstance(value, bool | str | int | float):
            out[name] = value
        elif value is not None:
            out[name] = str(value)
    return out


def config_markdown(config: Any) -> str:
    """The config as an indented JSON block; TensorBoard's text tab renders Markdown."""
    text = json.dumps(plain_config(config), indent=2, sort_keys=True)
    return "\n".join("    " + line for line in text.splitlines())
