"""Progress: a bar on a terminal, plain log lines (no control characters) elsewhere."""

import io
import logging

import pytest

from charjax import progress
from charjax.progress import Progress, track

CONTROL = ("\r", "\x1b")


class FakeClock:
    """A clock the test moves by hand, so throttling is exact and instant."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture
def log_stream():
    """Everything charjax.progress logs, as text."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("charjax.progress")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(old_level)


@pytest.fixture(autouse=True)
def plain_env(monkeypatch):
    monkeypatch.delenv(progress.ENV_VAR, raising=False)
    monkeypatch.setenv("TERM", "xterm")


def test_not_a_terminal_logs_plain_lines_every_interval(log_stream):
    stream, clock = io.StringIO(), FakeClock()
    with Progress(100, "epoch 1", stream=stream, clock=clock, interval=10) as bar:
        assert bar.mode == "plain"
        for _ in range(100):
            clock.now += 1.0
            bar.update(1, loss=0.123456)
    lines = log_stream.getvalue().splitlines()
    assert stream.getvalue() == ""  # nothing drawn on the stream itself
    assert len(lines) == 10, lines  # one per 10 s of the 100 s loop
    assert lines[0] == "epoch 1: 10/100 (10%), 1.0 it/s, 0:10 elapsed, ETA 1:30, loss 0.1235"
    assert not any(c in log_stream.getvalue() for c in CONTROL)


def test_a_short_loop_logs_nothing(log_stream):
    items = list(track(range(50), "quick", stream=io.StringIO()))
    assert items == list(range(50))
    assert log_stream.getvalue() == ""


def test_unknown_total_counts_without_a_percentage(log_stream):
    clock = FakeClock()
    bar = Progress(None, "reading", unit="img", stream=io.StringIO(), clock=clock, interval=1)
    clock.now += 2.0
    bar.update(40)
    bar.close()
    assert log_stream.getvalue().strip() == "reading: 40 img, 20.0 img/s, 0:02 elapsed"


def test_a_terminal_gets_a_redrawn_bar_that_is_wiped_at_the_end():
    stream, clock = FakeTerminal(), FakeClock()
    with Progress(10, "epoch 2", stream=stream, clock=clock) as bar:
        assert bar.mode == "bar"
        for _ in range(10):
            clock.now += 0.5
            bar.update(1, loss=2.0)
    text = stream.getvalue()
    assert text.count("\r") >= 10  # every update is 0.5 s apart, past the 0.1 s refresh
    assert "epoch 2" in text and "10/10" in text and "loss 2" in text
    assert text.endswith("\r\x1b[K")  # closed: the line is free for the epoch summary
    assert "\n" not in text


def test_bar_redraws_are_throttled():
    stream, clock = FakeTerminal(), FakeClock()
    with Progress(1000, "fast", stream=stream, clock=clock) as bar:
        for _ in range(999):
            clock.now += 0.001
            bar.update(1)
    # first draw, then at most one per 0.1 s of the 1 s loop, plus the final wipe
    assert stream.getvalue().count("\r") <= 13


def test_bar_line_fits_the_width():
    bar = Progress(500, "epoch 12", stream=FakeTerminal(), clock=FakeClock(), mode="bar")
    bar.update(250, loss=0.5, accuracy=0.75)
    for width in (40, 79, 200):
        assert len(bar.bar_line(width)) <= width
    bar.close()


def test_dumb_terminal_and_environment_override(monkeypatch):
    monkeypatch.setenv("TERM", "dumb")
    assert Progress(3, stream=FakeTerminal()).mode == "plain"
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.setenv(progress.ENV_VAR, "off")
    silent = Progress(3, stream=FakeTerminal())
    silent.update(3)
    silent.close()
    assert silent.mode == "off"
    monkeypatch.setenv(progress.ENV_VAR, "fancy")
    with pytest.raises(ValueError, match=progress.ENV_VAR):
        Progress(3, stream=FakeTerminal())
    with pytest.raises(ValueError, match="progress mode"):
        Progress(3, mode="sometimes")


def test_log_records_wipe_the_bar_instead_of_sharing_its_line():
    stream, clock = FakeTerminal(), FakeClock()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("charjax.test_progress")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with Progress(10, "epoch 1", stream=stream, clock=clock, logger=logger) as bar:
            bar.update(1)
            logger.info("a message")
            assert stream.getvalue().endswith("\r\x1b[Ka message\n")
            clock.now += 0.01  # a log line forces the next update to redraw at once
            bar.update(1)
            assert stream.getvalue().rstrip().endswith("]")
        assert not handler.filters  # the guard goes away with the bar
    finally:
        logger.removeHandler(handler)


def test_a_nested_bar_falls_back_to_plain_lines():
    with Progress(5, "outer", stream=FakeTerminal()) as outer:
        inner = Progress(5, "inner", stream=FakeTerminal())
        assert (outer.mode, inner.mode) == ("bar", "plain")
        inner.close()
    again = Progress(5, stream=FakeTerminal())
    assert again.mode == "bar"  # the outer one has gone
    again.close()


def test_format_duration():
    assert progress.format_duration(7) == "0:07"
    assert progress.format_duration(725) == "12:05"
    assert progress.format_duration(3723) == "1:02:03"
    assert progress.format_duration(float("inf")) == "?"
