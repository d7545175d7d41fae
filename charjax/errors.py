"""Errors that carry a message a user can act on; the CLI prints them as one line.

Each class has the exit status the CLI returns for it (1 unless said otherwise).
"""


class CharjaxError(Exception):
    """Base of the errors the CLI reports without a traceback."""

    exit_code = 1


class DataError(CharjaxError, ValueError):
    """Bad input data; the message names the file and the fix."""


class CheckpointError(CharjaxError):
    """A missing, mismatched or corrupt checkpoint; the message names the path and the fix."""


class ConfigError(CharjaxError, ValueError):
    """A config field with a bad value; the message names the field, the value and the fix."""


class WorkdirError(CharjaxError):
    """A workdir that cannot be used: a file, not writable, in use, or another run's."""


class DivergedError(CharjaxError):
    """The training diverged (a non-finite or exploding loss) or learned nothing (accuracy
    at chance every epoch); the run stopped with the reason."""


class OutputError(CharjaxError):
    """A path the user named for output cannot be written, or holds a file that would be
    overwritten; found before any work, so it exits 2 like a flag mistake."""

    exit_code = 2


class ImageTooLarge(DataError):
    """An image whose pixel count (read from its header) is over the decoding budget."""


class InputWarning(UserWarning):
    """An image was answered, but the answer is a guess: the image is blank or noise."""


class Interrupted(CharjaxError):
    """SIGINT or SIGTERM: the run stopped cleanly at a step boundary; rerun to resume."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum
