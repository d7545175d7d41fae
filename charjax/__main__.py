"""`python -m charjax ...` is the same as the `charjax` command."""

from charjax.cli import run

if __name__ == "__main__":
    run()
