"""Every JSON file charjax writes: valid JSON (no NaN or Infinity tokens), written atomically.

Python's json module writes float('nan') as the bare token NaN, which other JSON readers
(jq, JavaScript, pandas with strict parsing) reject. Non-finite numbers become null.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import numpy as np

from charjax import files


def finite(data: Any) -> Any:
    """`data` with every non-finite float replaced by None and numpy scalars made plain."""
    if isinstance(data, dict):
        return {str(k): finite(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [finite(v) for v in data]
    if isinstance(data, np.generic):
        data = data.item()
    if isinstance(data, np.ndarray):
        return finite(data.tolist())
    if isinstance(data, float) and not math.isfinite(data):
        return None
    return data


def dumps(data: Any) -> str:
    """Strict JSON text of `data` (see `finite`)."""
    return json.dumps(finite(data), indent=2, allow_nan=False)


def write(path: str | os.PathLike, data: Any) -> None:
    """Writes `data` to `path` atomically (`files.write_text`): a reader sees old or new, whole."""
    files.write_text(path, dumps(data) + "\n")
