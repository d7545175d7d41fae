"""TensorBoard event files: written with tensorboardX, read back without TensorFlow.

Reading matters as much as writing: tests (and anyone comparing runs in a notebook) can
check what a run logged with nothing but tensorboardX's protobufs and `struct`.
"""

from __future__ import annotations

import glob
import json
import os
import struct
import time
from collections.abc import Iterator, Mapping
from typing import Any

from tensorboardX import SummaryWriter
from tensorboardX.crc32c import crc32c
from tensorboardX.proto.event_pb2 import Event, SessionLog

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


def _masked_crc(data: bytes) -> int:
    """TFRecord's masked CRC32C (the same sum tensorboardX writes)."""
    crc = crc32c(data) & 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def read_events(path: str) -> Iterator[Event]:
    """Events of one file, in order. Raises ValueError on a corrupt record.

    TFRecord framing: uint64 length, uint32 masked CRC of the length, the bytes, uint32
    masked CRC of the bytes, all little-endian. A file cut short by a live writer ends
    early without error.
    """
    with open(path, "rb") as f:
        while True:
            header = f.read(12)
            if len(header) < 12:
                return
            length, length_crc = struct.unpack("<QI", header)
            if _masked_crc(header[:8]) != length_crc:
                raise ValueError(f"{path}: corrupt record length (CRC mismatch)")
            data = f.read(length)
            footer = f.read(4)
            if len(data) < length or len(footer) < 4:
                return
            if _masked_crc(data) != struct.unpack("<I", footer)[0]:
                raise ValueError(f"{path}: corrupt record (CRC mismatch)")
            event = Event()
            event.ParseFromString(data)
            yield event


def event_files(logdir: str) -> list[str]:
    """The event files directly in `logdir`, oldest first (their names start with a time)."""
    return sorted(glob.glob(os.path.join(logdir, "events.out.tfevents.*")))


def read_scalars(logdir: str) -> dict[str, list[tuple[int, float]]]:
    """Tag -> [(step, value), ...] of the scalars in `logdir`, as TensorBoard shows them.

    Like TensorBoard, a session start at step S (a resumed run's `purge_step`) drops what
    the earlier files logged at steps >= S.
    """
    scalars: dict[str, list[tuple[int, float]]] = {}
    for path in event_files(logdir):
        for event in read_events(path):
            if event.HasField("session_log") and event.session_log.status == SessionLog.START:
                for tag, points in scalars.items():
                    scalars[tag] = [(s, v) for s, v in points if s < event.step]
            if not event.HasField("summary"):
                continue
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return {tag: points for tag, points in scalars.items() if points}


def summary_tags(logdir: str) -> set[str]:
    """Every summary tag (scalars, images, text, ...) in the event files of `logdir`."""
    return {
        value.tag
        for path in event_files(logdir)
        for event in read_events(path)
        if event.HasField("summary")
        for value in event.summary.value
    }
