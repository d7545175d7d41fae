"""Packages: the library, and configs/ installed as `charjax_configs` (metadata: pyproject.toml)."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["charjax", "charjax.*"]), "charjax_configs"],
    package_dir={"charjax_configs": "configs"},
)
