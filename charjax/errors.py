"""Errors that carry a message a user can act on; the CLI prints them as one line."""


class CharjaxError(Exception):
    """Base of the errors the CLI reports without a traceback."""


class DataError(CharjaxError, ValueError):
    """Bad input data; the message names the file and the fix."""


class CheckpointError(CharjaxError):
    """A missing, mismatched or corrupt checkpoint; the message names the path and the fix."""
