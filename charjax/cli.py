"""`charjax` command line: wires flags and config files to the library, nothing more.

    charjax train --config configs/default.py --workdir runs/demo [--config.FIELD=VALUE ...]

Every failure a user can fix (a mistyped override, a bad value, bad data) ends in one
readable line on stderr and a non-zero exit code, not a traceback.
"""

from __future__ import annotations

import logging as std_logging
import sys
from collections.abc import Callable

from absl import app, flags, logging

from charjax.errors import CharjaxError

FLAGS = flags.FLAGS
USAGE = """usage: charjax COMMAND [FLAGS]

commands:
  train   --config CONFIG.py --workdir DIR [--config.FIELD=VALUE ...]
          train, keep the best weights by validation accuracy, score the test split

run `charjax COMMAND --help` for a command's flags.
"""


def _fail(command: str, message: str, code: int = 2) -> None:
    print(f"charjax {command}: error: {message}", file=sys.stderr)
    sys.exit(code)


def _clean_message(error: BaseException) -> str:
    """One line from an exception; ml_collections quotes and splits its typo hints."""
    text = str(error).strip()
    if len(text) > 1 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]
    return " ".join(text.replace("\\n", "\n").replace("\\'", "'").split())


def _flags_parser(command: str) -> Callable[[list[str]], list[str]]:
    def parse(argv: list[str]) -> list[str]:
        try:
            return FLAGS(argv)
        except (flags.Error, AttributeError, TypeError, ValueError, KeyError) as e:
            _fail(command, _clean_message(e))
        return []

    return parse


def _define_train_flags() -> None:
    from ml_collections import config_flags

    config_flags.DEFINE_config_file("config", None, "Config file (configs/*.py).", lock_config=True)
    flags.DEFINE_string("workdir", None, "Run directory: checkpoints, metrics, logs.")
    flags.mark_flags_as_required(["config", "workdir"])


def _train(argv: list[str]) -> None:
    if len(argv) > 1:
        _fail("train", f"unexpected arguments {argv[1:]}")
    from charjax import train

    train.train_and_evaluate(FLAGS.config, FLAGS.workdir)


COMMANDS: dict[str, tuple[Callable[[], None], Callable[[list[str]], None]]] = {
    "train": (_define_train_flags, _train),
}


def setup_console_logging() -> None:
    """charjax's own progress as plain timestamped lines; libraries' INFO chatter stays quiet."""
    logging.set_verbosity(logging.WARNING)
    handler = std_logging.StreamHandler(sys.stderr)
    handler.setFormatter(std_logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    logger = std_logging.getLogger("charjax")
    logger.handlers[:] = [handler]
    logger.setLevel(std_logging.INFO)
    logger.propagate = False


def _guarded(command: str, main: Callable[[list[str]], None]) -> Callable[[list[str]], None]:
    def wrapped(argv: list[str]) -> None:
        setup_console_logging()
        try:
            main(argv)
        except CharjaxError as e:
            _fail(command, str(e), code=1)
        except KeyboardInterrupt:
            _fail(command, "interrupted; rerun the same command to resume", code=130)

    return wrapped


def run(argv: list[str] | None = None) -> None:
    """Console entry point: `charjax COMMAND [FLAGS]`."""
    argv = list(sys.argv if argv is None else argv)
    if len(argv) < 2 or argv[1] in ("-h", "--help", "help"):
        print(USAGE, end="")
        sys.exit(0 if len(argv) >= 2 else 2)
    command = argv[1]
    if command not in COMMANDS:
        _fail("", f"unknown command {command!r}; choose one of {sorted(COMMANDS)}")
    define, main = COMMANDS[command]
    define()
    app.run(
        _guarded(command, main),
        argv=[f"charjax {command}", *argv[2:]],
        flags_parser=_flags_parser(command),
    )
