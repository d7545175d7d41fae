"""The data sources by the spec string that names one (`name` or `name:ARG`), read by the
loaders, validation, `--help` and the error for an unknown spec.

A source is one module that calls `register` (charjax.datasets imports the built-in ones)
plus the block of config.data it reads: `load(arg, data_config)` returns the Dataset and the
files it left out; `check(checker)`, with charjax.validation's checker, validates that block
for a config that uses the source."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from charjax.datasets.base import Dataset
from charjax.datasets.skipped import Skipped


@dataclasses.dataclass(frozen=True)
class Source:
    """A registered source. `arg` names what follows "name:" in its spec ("PATH"); empty
    for a spec that is the name alone. `help` is one line, for --help."""

    name: str
    arg: str
    help: str
    load: Callable[[str, Any], tuple[Dataset, list[Skipped]]]
    check: Callable[[Any], object] = lambda checker: None

    @property
    def usage(self) -> str:
        return f"{self.name}:{self.arg}" if self.arg else self.name


_REGISTRY: dict[str, Source] = {}


def register(source: Source) -> None:
    """Makes specs `name[:ARG]` load with `source.load`; a name registered again is replaced."""
    _REGISTRY[source.name] = source


def find(spec: str) -> tuple[Source, str] | None:
    """The source `spec` names and its argument; None when no source takes that spec."""
    name, colon, arg = spec.partition(":")
    source = _REGISTRY.get(name)
    if source is None or bool(colon) != bool(source.arg) or (source.arg and not arg):
        return None
    return source, arg


def registered() -> list[Source]:
    """Every source, in registration order."""
    return list(_REGISTRY.values())


def usages() -> str:
    """Every spec form: "synthetic, npz:PATH, ..."."""
    return ", ".join(s.usage for s in registered())
