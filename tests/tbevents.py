"""Read TensorBoard event files back without TensorFlow, so tests can check what a run
logged: tensorboardX's protobufs and `struct` are enough."""

from __future__ import annotations

import glob
import os
import struct
from collections.abc import Iterator

from tensorboardX.crc32c import crc32c
from tensorboardX.proto.event_pb2 import Event, SessionLog


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
