"""SPREC v3.0 (Standard PREanalytical Code) for fluid samples: the tables and the code rule.

The tables are reference data in ``sprec_v3.json`` beside this module, with their source
(Betsou et al., Biopreserv Biobank 2018, and the public implementations each code was
checked against); the migration that brought them loads the same file into ``sprec_code``.
A fluid code has seven elements, joined by '-':

    sample type - primary container - pre-centrifugation (delay, temperature) -
    centrifugation - second centrifugation - post-centrifugation (delay, temperature) -
    long-term storage

Delays fall in bands whose shared boundary belongs to the band that names it as its upper
end: 48 h at room temperature is K (24–48 h), not M (> 48 h). What follows by definition is
coded so: material that is not centrifuged has N for elements 4–6, single-spun plasma has N
for the second centrifugation; what is not known is X, never a guess.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

DATA_FILE = Path(__file__).with_name("sprec_v3.json")
_DATA = json.loads(DATA_FILE.read_text(encoding="utf-8"))
VERSION: str = _DATA["version"]
SOURCE: str = _DATA["_source"]
ELEMENTS = (
    "sample_type",
    "primary_container",
    "precentrifugation",
    "centrifugation",
    "second_centrifugation",
    "post_centrifugation",
    "long_term_storage",
)
TABLES: dict[str, list[dict[str, Any]]] = {name: _DATA["elements"][name] for name in ELEMENTS}
CODES: dict[str, dict[str, str]] = {
    name: {row["code"]: row["name"] for row in rows} for name, rows in TABLES.items()
}

SAMPLE_TYPES = frozenset(CODES["sample_type"])
PRIMARY_CONTAINERS = frozenset(CODES["primary_container"])
STORAGE = CODES["long_term_storage"]
PRECENTRIFUGATION_TEMPERATURES = ("RT", "2-10C", "35-38C")
CENTRIFUGATION_TEMPERATURES = ("RT", "2-10C")
POST_CENTRIFUGATION_TEMPERATURES = ("RT", "2-10C")
UNKNOWN, NOT_APPLICABLE, OTHER = "X", "N", "Z"


def _in_range(
    value: Decimal, after: float, after_inclusive: bool, upto: float | None, upto_inclusive: bool
) -> bool:
    above = value >= after if after_inclusive else value > after
    below = upto is None or (value <= upto if upto_inclusive else value < upto)
    return above and below


def _in_band(row: dict[str, Any], hours: Decimal) -> bool:
    return _in_range(
        hours, row["after_hours"], row["after_inclusive"], row["upto_hours"], row["upto_inclusive"]
    )


def _delay_code(
    element: str, hours: Decimal | None, temperature: str | None, temperatures: tuple[str, ...]
) -> str:
    if hours is None or temperature is None:
        return UNKNOWN
    if temperature not in temperatures:
        raise ValueError(f"{temperature!r} is not one of {', '.join(temperatures)}")
    if hours < 0:
        raise ValueError("a delay cannot be negative")
    for row in TABLES[element]:
        if row.get("temperature") == temperature and _in_band(row, Decimal(hours)):
            return row["code"]
    return OTHER  # e.g. 35–38 °C for 2 h or more: no band of the table


def precentrifugation_code(delay_hours: Decimal | None, temperature: str | None) -> str:
    """Element 3: delay from collection to processing, at RT, 2–10 °C or 35–38 °C; X if
    unknown, Z for a combination the table has no band for."""
    return _delay_code(
        "precentrifugation", delay_hours, temperature, PRECENTRIFUGATION_TEMPERATURES
    )


def post_centrifugation_code(delay_hours: Decimal | None, temperature: str | None) -> str:
    """Element 6: delay from centrifugation to freezing, at RT or 2–10 °C; X if unknown."""
    return _delay_code(
        "post_centrifugation", delay_hours, temperature, POST_CENTRIFUGATION_TEMPERATURES
    )


def centrifugation_code(spin: dict[str, Any] | None, element: str = "centrifugation") -> str:
    """Element 4 (or 5): a centrifugation's temperature, minutes, g and braking; X if
    unknown, Z when the table has no row for it."""
    if spin is None:
        return UNKNOWN
    minutes, g = Decimal(spin["minutes"]), Decimal(spin["g"])
    for row in TABLES[element]:
        if "minutes" not in row or row["temperature"] != spin["temperature"]:
            continue
        shortest, longest = row["minutes"]
        # '< 3000 g' excludes 3000, so 3000 g is '3000–6000 g', which keeps its upper end.
        in_range = _in_range(
            g, row["g_after"], row["g_after_inclusive"], row["g_upto"], row["g_upto_inclusive"]
        )
        if shortest <= minutes <= longest and in_range and bool(spin["braking"]) == row["braking"]:
            return row["code"]
    return OTHER


def processing_codes(spins: int | None, processing: dict[str, Any] | None) -> tuple[str, str, str]:
    """Elements 4, 5 and 6 for material centrifuged ``spins`` times to make it (0: not at
    all, 1: single spun, 2: double spun, None: as the processing says)."""
    processing = processing or {}
    if spins == 0:
        return NOT_APPLICABLE, NOT_APPLICABLE, NOT_APPLICABLE
    first = centrifugation_code(processing.get("centrifugation"))
    if spins == 1:
        second = NOT_APPLICABLE
    else:
        second = centrifugation_code(
            processing.get("second_centrifugation"), "second_centrifugation"
        )
    post = post_centrifugation_code(
        processing.get("post_centrifugation_delay_hours"),
        processing.get("post_centrifugation_temperature"),
    )
    return first, second, post


def fluid_code(
    sample_type: str,
    container: str,
    precentrifugation: str,
    centrifugation: str = UNKNOWN,
    second_centrifugation: str = UNKNOWN,
    post_centrifugation: str = UNKNOWN,
    storage: str = UNKNOWN,
) -> str:
    """A seven-element SPREC code."""
    return "-".join(
        (
            sample_type,
            container,
            precentrifugation,
            centrifugation,
            second_centrifugation,
            post_centrifugation,
            storage,
        )
    )


def aliquot_code(
    sample_type: str,
    container: str,
    delay_hours: Decimal | None,
    temperature: str | None,
    spins: int | None,
    processing: dict[str, Any] | None,
    storage: str,
) -> str:
    """The code of a tube of a fluid type, from its sample and the processing that made it."""
    return fluid_code(
        sample_type,
        container,
        precentrifugation_code(delay_hours, temperature),
        *processing_codes(spins, processing),
        storage,
    )


def source_code(
    sample_type: str, container: str, delay_hours: Decimal | None, temperature: str | None
) -> str:
    """The code of the primary sample itself, as a source: not centrifuged, not stored.

    DNA and RNA extracts have no row in SPREC's fluid tables (nucleic acids are outside the
    code's scope), so an extract carries the code of the specimen it was extracted from: its
    parent tube's, or this one when it was extracted straight from the primary sample.
    """
    return fluid_code(
        sample_type,
        container,
        precentrifugation_code(delay_hours, temperature),
        NOT_APPLICABLE,
        NOT_APPLICABLE,
        NOT_APPLICABLE,
        UNKNOWN,
    )


def elements(code: str) -> dict[str, str]:
    """A fluid code split into its elements by name (ValueError if it is not one)."""
    parts = code.split("-")
    if len(parts) != len(ELEMENTS):
        raise ValueError(f"{code!r} is not a seven-element SPREC code")
    return dict(zip(ELEMENTS, parts, strict=True))
