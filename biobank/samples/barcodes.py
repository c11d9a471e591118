"""Service-issued barcodes: prefix, zero-padded sequence, ISO 7064 MOD 37,36 check character.

The check character (python-stdnum computes it) catches a mistyped or misread code:
every single-character substitution and most transpositions change it.
"""

from __future__ import annotations

import re

from sqlalchemy import update
from sqlalchemy.orm import Session
from stdnum.iso7064 import mod_37_36

from biobank.samples.models import BarcodeCounter

_OWN = re.compile(r"^(?P<prefix>[A-Z]{2})(?P<number>\d{6,12})(?P<check>[0-9A-Z])$")


def normalize(code: str) -> str:
    """Scanners add whitespace and some keyboards lower-case: neither matters."""
    return code.strip().upper()


def make(prefix: str, number: int, digits: int) -> str:
    """The barcode for a number in a prefix's series."""
    body = f"{prefix}{number:0{digits}d}"
    return body + mod_37_36.calc_check_digit(body)


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
        update(BarcodeCounter).where(BarcodeCounter.prefix == prefix)
        .values(next_value=BarcodeCounter.next_value + count)
        .returning(BarcodeCounter.next_value)
    ).scalar()
    if last is None:
        session.add(BarcodeCounter(prefix=prefix, next_value=1 + count))
        session.flush()
        last = 1 + count
    first = last - count
    return [make(prefix, n, digits) for n in range(first, last)]
