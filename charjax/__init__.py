"""charjax: handwritten character recognition (0-9, A-Z, a-z) in JAX/Flax.

    rec = charjax.Recognizer.load("runs/demo")
    rec.predict(["letter.png"], top_k=3)
"""

from __future__ import annotations

from typing import Any

from charjax import malloc_tuning as _malloc_tuning

_malloc_tuning.apply()  # before XLA's first allocation; see charjax/malloc_tuning.py

__version__ = "0.1.0"
__all__ = ["Recognizer", "__version__"]


def __getattr__(name: str) -> Any:
    # Imported on first use, so `import charjax` (and the CLI's --help) stays quick.
    if name == "Recognizer":
        from charjax.recognizer import Recognizer

        return Recognizer
    raise AttributeError(f"module 'charjax' has no attribute {name!r}")
