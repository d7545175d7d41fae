"""Find and load a config: a shipped one by name (`default`) or any config file by path.

The shipped configs are the source tree's configs/ folder, installed as the package
`charjax_configs`, so `charjax train --config default` works from any directory. A config
builds on another by importing it (`from charjax_configs import default`).
"""

from __future__ import annotations

import importlib.util
import os

import ml_collections

import charjax_configs
from charjax.errors import CharjaxError

SHIPPED_DIR = os.path.dirname(os.path.abspath(charjax_configs.__file__))


def shipped_names() -> list[str]:
    """The names of the shipped configs (configs/*.py), sorted."""
    return sorted(
        name[:-3] for name in os.listdir(SHIPPED_DIR)
        if name.endswith(".py") and not name.startswith("_")
    )


def shipped_path(name: str) -> str | None:
    """The file of the shipped config `name` (or `name.py`) unless `name` is an existing
    file; None when it is neither."""
    if os.path.isfile(name):
        return None
    stem = name[:-3] if name.endswith(".py") else name
    if stem in shipped_names():  # a bare name: no folder part, so never a typo'd path
        return os.path.join(SHIPPED_DIR, stem + ".py")
    return None


def resolve(name_or_path: str) -> str:
    """The file of a config: an existing path as given, else a shipped config by name
    (`default` or `default.py`). Raises CharjaxError in one line when there is neither."""
    if os.path.isfile(name_or_path):
        return name_or_path
    shipped = shipped_path(name_or_path)
    if shipped:
        return shipped
    raise CharjaxError(
        f"no config file {name_or_path!r}; give a path to a .py file or a shipped config: "
        f"{', '.join(shipped_names())}"
    )


def load(name_or_path: str, *args: str) -> ml_collections.ConfigDict:
    """The `get_config(*args)` of a shipped config (by name) or of the config file at a path
    (`args`: the ARG of `--config FILE:ARG`, for configs that take one)."""
    path = resolve(name_or_path)
    stem = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location("charjax_config_" + stem, path)
    if spec is None or spec.loader is None:
        raise CharjaxError(f"{path}: not a Python config file")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(*args)
