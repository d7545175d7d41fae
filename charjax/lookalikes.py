"""Characters that writers draw alike, and mistakes split into look-alike and other.

EMNIST ByClass keeps apart characters that people draw the same way: the 15 letters whose
upper and lower case EMNIST Balanced merges (c i j k l m o p s u v w x y z), and the digits
0 and 1 beside O/o and l/I. A lone glyph cannot settle those; the line around it can
(its height against the x-height, its neighbours).
"""

from __future__ import annotations

import numpy as np

from charjax import charset

MERGED_CASES = "cijklmopsuvwxyz"  # EMNIST Balanced merges these upper/lower pairs
DIGIT_LOOKALIKES = {"0": "o", "1": "l", "i": "l"}  # 0 ~ O ~ o; 1 ~ l ~ I ~ i (~ L)


def group_of(char: str) -> str:
    """The look-alike group of a character: itself unless it shares a shape with others."""
    if char.lower() in MERGED_CASES:
        char = char.lower()
    return DIGIT_LOOKALIKES.get(char, char)


def split_errors(predicted: np.ndarray, labels: np.ndarray) -> dict[str, int | float]:
    """Counts of the mistakes within a look-alike group and of the others, and accuracy."""
    groups = np.array([group_of(c) for c in charset.CLASSES])
    wrong = predicted != labels
    alike = wrong & (groups[predicted] == groups[labels])
    return {"errors": int(wrong.sum()), "lookalike": int(alike.sum()),
            "other": int((wrong & ~alike).sum()), "accuracy": float(1 - wrong.mean())}
