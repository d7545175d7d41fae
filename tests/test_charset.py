import pytest

from charjax import charset


def test_order_is_emnist_byclass():
    assert charset.NUM_CLASSES == 62
    assert charset.CLASSES[:10] == "0123456789"
    assert charset.index_to_char(10) == "A" and charset.index_to_char(36) == "a"
    assert charset.index_to_char(61) == "z"


def test_round_trip_every_class():
    for i, c in enumerate(charset.CLASSES):
        assert charset.char_to_index(c) == i
        assert charset.index_to_char(i) == c


@pytest.mark.parametrize("bad", ["!", "é", "ab", ""])
def test_unknown_character_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="not one of the 62 classes"):
        charset.char_to_index(bad)


def test_index_out_of_range():
    with pytest.raises(ValueError, match="outside"):
        charset.index_to_char(62)
