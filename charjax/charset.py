"""The 62 character classes in EMNIST ByClass order: digits, upper case, lower case.

Every dataset source maps its labels into this order, so models, training and
evaluation never need to know where the images came from.
"""

import string

CLASSES: str = string.digits + string.ascii_uppercase + string.ascii_lowercase
NUM_CLASSES: int = len(CLASSES)
IMAGE_SIZE: int = 48
IMAGE_SHAPE: tuple[int, int, int] = (IMAGE_SIZE, IMAGE_SIZE, 1)

_INDEX = {c: i for i, c in enumerate(CLASSES)}


def index_to_char(index: int) -> str:
    """Character of a class index (0 -> '0', 10 -> 'A', 36 -> 'a')."""
    if not 0 <= index < NUM_CLASSES:
        raise ValueError(f"class index {index} is outside 0..{NUM_CLASSES - 1}")
    return CLASSES[index]


def char_to_index(char: str) -> int:
    """Class index of a single character; raises ValueError naming the character."""
    try:
        return _INDEX[char]
    except KeyError:
        raise ValueError(
            f"{char!r} is not one of the {NUM_CLASSES} classes (0-9, A-Z, a-z)"
        ) from None
