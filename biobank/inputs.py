"""The input policy for text and numbers, in one place (no Flask, no marshmallow).

Every string the service accepts (JSON bodies, query strings, path parameters, forms,
uploaded files) is held to the same rule, so SQLite and PostgreSQL see the same values:
PostgreSQL refuses NUL where SQLite stores it, and neither can store a lone surrogate.
Control characters are refused everywhere; tab, newline and carriage return only in
multi-line text (notes, descriptions, addresses, uploaded files).
"""

from __future__ import annotations

import re

# C0 and C1 controls, DEL, and UTF-16 surrogates (a lone one cannot be encoded to UTF-8).
_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_FORBIDDEN_MULTILINE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")

# What the database columns hold: PostgreSQL's INTEGER, the id columns' type.
INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1

# Path parameters are matched against codes of at most 64 characters; anything longer
# names nothing, and is not worth a query.
MAX_PATH_PARAMETER = 200


def bad_character(text: str, multiline: bool = False) -> str | None:
    """Why ``text`` breaks the policy (naming the first bad character), or None if it keeps it."""
    match = (_FORBIDDEN_MULTILINE if multiline else _FORBIDDEN).search(text)
    if match is None:
        return None
    char = match.group()
    if "\ud800" <= char <= "\udfff":
        kind = "a lone UTF-16 surrogate"
    elif char == "\x00":
        kind = "a NUL character"
    else:
        kind = "a control character"
    where = "" if multiline else " (tab and newline only in multi-line text)"
    return f"contains {kind} (U+{ord(char):04X}) at position {match.start() + 1}{where}"


def ascii_id(value: str) -> int | None:
    """A database id given as text: ASCII digits that fit the column, else None.

    ``str.isdigit`` is true for '¹' and '٣', and ``int`` reads the second: neither is an id.
    """
    if not value or len(value) > 10 or not value.isascii() or not value.isdigit():
        return None
    number = int(value)
    return number if number <= INT32_MAX else None
