"""Safety numbers (enclave/identity/safety.py): the same on both sides, 60 digits, each
half bound to one fingerprint, and refused for what is not a fingerprint."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from enclave.identity.safety import DIGITS, grouped, safety_number

FPS = st.binary(min_size=32, max_size=32).map(bytes.hex)


@given(FPS, FPS)
def test_both_sides_compute_the_same_sixty_digits(a, b):
    number = safety_number(a, b)
    assert number == safety_number(b, a) == safety_number(a.upper(), b)
    assert len(number) == DIGITS and number.isdigit()


def test_each_half_belongs_to_one_fingerprint():
    a, b, c = "11" * 32, "22" * 32, "33" * 32
    ab, ac, bc = safety_number(a, b), safety_number(a, c), safety_number(b, c)
    assert ab[:30] == ac[:30]  # a sorts first in both: its half is the same
    assert ab[30:] != ac[30:] and ab[30:] == bc[:30]


def test_shown_as_three_lines_of_four_groups():
    lines = grouped(safety_number("ab" * 32, "cd" * 32))
    assert len(lines) == 3
    assert all(len(group) == 5 for line in lines for group in line.split(" "))


@pytest.mark.parametrize("bad", ["ab" * 31, "zz" * 32, ""])
def test_not_a_fingerprint(bad):
    with pytest.raises(ValueError):
        safety_number(bad, "ab" * 32)
