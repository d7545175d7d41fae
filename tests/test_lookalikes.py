"""charjax.lookalikes: look-alike mistakes are told apart from the others."""

import numpy as np
import pytest

from charjax import charset
from charjax import lookalikes as error_groups


def test_groups_join_case_pairs_and_digit_lookalikes_only():
    g = error_groups.group_of
    assert g("O") == g("o") == g("0") and g("l") == g("I") == g("1") == g("i")
    assert g("C") == g("c") and g("A") != g("a") and g("B") != g("8") and g("5") != g("S")


def test_split_errors_counts_each_kind():
    idx = charset.CLASSES.index
    labels = np.array([idx("O"), idx("l"), idx("A"), idx("c"), idx("B")])
    predicted = np.array([idx("0"), idx("1"), idx("a"), idx("c"), idx("8")])
    result = error_groups.split_errors(predicted, labels)
    accuracy = result.pop("accuracy")
    assert result == {"errors": 4, "lookalike": 2, "other": 2}
    assert accuracy == pytest.approx(0.2)
