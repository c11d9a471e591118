"""Service-issued barcodes: prefix, zero-padded sequence, ISO 7064 MOD 37,36 check character.

The check character catches a mistyped or misread code: every single-character
substitution and most transpositions change it. It is computed here, the same as
python-stdnum's (tests/test_barcodes.py), which checks it; a series issued in bulk computes
its shared leading characters once.
"""

from __future__ import annotations

import re

from sqlalchemy import update
from sqlalchemy.orm import Session
from stdnum.iso7064 import mod_37_36

from biobank.samples.models import BarcodeCounter

_OWN = re.compile(r"^(?P<prefix>[A-Z]{2})(?P<number>\d{6,12})(?P<check>[0-9A-Z])$")

# The one character set of codes other systems printed (pre-barcoded tubes, racks' own
# codes), wherever they come in: registration, `flask import aliquots`, rack scans. Letters,
# digits and . _ - (a letter or digit first), 3-64 characters: what the rack scanners'
# files hold, and nothing a spreadsheet, a page or a label could read as a command.
EXTERNAL_RULE = r"[A-Za-z0-9][A-Za-z0-9_.\-]{2,63}"
_EXTERNAL = re.compile(EXTERNAL_RULE)
EXTERNAL_WORDS = "3-64 letters, digits, '.', '_' or '-', starting with a letter or digit"


def normalize(code: str) -> str:
    """Scanners add whitespace and some keyboards lower-case: neither matters."""
    return code.strip().upper()


_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_VALUES = {character: value for value, character in enumerate(_ALPHABET)}


def _state(text: str, state: int = 18) -> int:
    """ISO 7064 MOD 37,36 over ``text``, from ``state`` (18 at the start)."""
    values = _VALUES
    for character in text:
        state = ((state or 36) * 2 % 37 + values[character]) % 36
    return state


def _check_character(state: int) -> str:
    return _ALPHABET[(1 - (state or 36) * 2 % 37) % 36]


def make(prefix: str, number: int, digits: int) -> str:
    """The barcode for a number in a prefix's series."""
    body = f"{prefix}{number:0{digits}d}"
    return body + _check_character(_state(body))


def external_problem(code: str) -> str | None:
    """Why a (normalized) external code breaks the one rule, or None if it keeps it."""
    if _EXTERNAL.fullmatch(code):
        return None
    return f"{code!r} is not a tube or rack code ({EXTERNAL_WORDS})"


def looks_own(code: str, prefixes: set[str]) -> bool:
    """Whether a (normalized) code has the shape of one this service issues."""
    match = _OWN.match(code)
    return bool(match and match.group("prefix") in prefixes)


def check_ok(code: str) -> bool:
    """Whether the last character of an own-format code is its check character."""
    return mod_37_36.is_valid(code)


def issue(session: Session, prefix: str, count: int, digits: int) -> list[str]:
    """Reserve ``count`` consecutive numbers of a series and return their barcodes.

    The counter row is updated in place, so concurrent transactions queue on its lock
    (PostgreSQL) or the database write lock (SQLite) and never share a number.
    """
    if count <= 0:
        return []
    last = session.execute(
        update(BarcodeCounter)
        .where(BarcodeCounter.prefix == prefix)
        .values(next_value=BarcodeCounter.next_value + count)
        .returning(BarcodeCounter.next_value)
    ).scalar()
    if last is None:
        session.add(BarcodeCounter(prefix=prefix, next_value=1 + count))
        session.flush()
        last = 1 + count
    first = last - count
    # Consecutive codes share all but their last few characters: their check state is
    # computed once per hundred.
    codes = []
    head_states: dict[str, int] = {}
    for number in range(first, last):
        body = f"{prefix}{number:0{digits}d}"
        head, tail = body[:-2], body[-2:]
        state = head_states.get(head)
        if state is None:
            state = head_states[head] = _state(head)
        codes.append(body + _check_character(_state(tail, state)))
    return codes
