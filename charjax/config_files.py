"""Load a config file (configs/*.py) by path.

configs/ is a folder of data files, not a package on sys.path, so a config that builds on
another one (emnist.py on default.py) and scripts that read a config load it by path.
"""

from __future__ import annotations

import importlib.util
import os

import ml_collections


def load(path: str) -> ml_collections.ConfigDict:
    """The `get_config()` of the config file at `path`."""
    name = "charjax_config_" + os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"no config file at {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def sibling(config_file: str, name: str) -> ml_collections.ConfigDict:
    """The config `name` (e.g. "default.py") from the folder of `config_file` (pass __file__)."""
    return load(os.path.join(os.path.dirname(os.path.abspath(config_file)), name))
