"""Service-issued barcodes: the check character is ISO 7064 MOD 37,36, as python-stdnum has it."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from stdnum.iso7064 import mod_37_36

from biobank.samples import barcodes


@given(
    prefix=st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=2, max_size=2),
    digits=st.integers(6, 12),
    data=st.data(),
)
def test_a_code_ends_in_the_iso_7064_check_character(prefix, digits, data):
    """Any prefix, width and number: the last character is stdnum's check character."""
    number = data.draw(st.integers(0, 10**digits - 1))
    code = barcodes.make(prefix, number, digits)
    assert code == f"{prefix}{number:0{digits}d}" + mod_37_36.calc_check_digit(code[:-1])
    assert barcodes.check_ok(code)


def test_issued_codes_are_the_series_next_numbers(session):
    """A batch across hundreds and a power of ten: each code is the one its number makes."""
    first = barcodes.issue(session, "QQ", 1, 6)
    number = int(first[0][2:-1])
    batch = barcodes.issue(session, "QQ", 1_250, 6)
    assert batch == [barcodes.make("QQ", n, 6) for n in range(number + 1, number + 1_251)]
    session.rollback()
