"""Reading one inventory row: the columns, the header check, and each field's rules."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from biobank.reference import sprec as spreccodes
from biobank.reference.sprec import PRECENTRIFUGATION_TEMPERATURES, PRIMARY_CONTAINERS, STORAGE
from biobank.samples import barcodes
from biobank.samples.states import STATUSES

# Every column a file may have; the order is the one the example file uses.
COLUMNS = (
    "barcode",
    "study_id",
    "timepoint",
    "unscheduled_reason",
    "material",
    "aliquot_type",
    "volume_ml",
    "cell_count",
    "collected_at",
    "received_at",
    "container_code",
    "precentrifugation_delay_hours",
    "precentrifugation_temperature",
    "accession_number",
    "freeze_thaw_count",
    "status",
    "storage",
)
REQUIRED = ("study_id", "material", "aliquot_type", "collected_at", "received_at", "container_code")
# Each pair needs at least one of its columns.
ONE_OF = (("timepoint", "unscheduled_reason"), ("volume_ml", "cell_count"))

_MILLI = Decimal("0.001")
_MAX_VOLUME = Decimal(10) ** 7  # Numeric(10, 3)
_MAX_INT = 2**31 - 1  # an INTEGER column on PostgreSQL
_LENGTHS = {"barcode": 64, "unscheduled_reason": 200, "accession_number": 64}
_WEEK = dt.timedelta(days=7)
_MEMO_SIZE = 10_000  # distinct values remembered per column
_UNREAD = {"NO READ", "NOREAD", "NO TUBE", "NOTUBE", "EMPTY", "ERROR"}
_UNSEEN = object()


@dataclass(frozen=True, slots=True)
class Problem:
    """Something wrong with a file, where a person looking at it would find it."""

    line: int
    column: str | None
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}, column {self.column}" if self.column else f"line {self.line}"
        return f"{where}: {self.message}"


@dataclass(frozen=True, slots=True)
class Kind:
    """The reference data of an aliquot type that an import needs."""

    id: int
    code: str
    name: str
    sprec_type: str | None
    materials: frozenset[str]
    spins: int | None = None


@dataclass(frozen=True, slots=True)
class Reference:
    """Reference codes resolved once per import: upper-cased code → (id, code) or Kind."""

    timepoints: dict[str, tuple[int, str]]
    materials: dict[str, tuple[int, str]]
    kinds: dict[str, Kind]
    sprec_types: dict[str, str]  # material code → its SPREC sample type


@dataclass(slots=True)
class Row:
    """A row that passed every check of its own (duplicates are the caller's business)."""

    line: int
    barcode: str | None
    study_id: str
    patient_id: int
    timepoint_id: int | None
    timepoint: str | None
    unscheduled_reason: str | None
    material_id: int
    material: str
    kind: Kind
    volume_ml: Decimal | None
    cell_count: int | None
    collected_at: dt.datetime
    received_at: dt.datetime
    container_code: str
    precentrifugation_delay_hours: Decimal | None
    precentrifugation_temperature: str | None
    accession_number: str | None
    freeze_thaw_count: int
    status: str
    storage: str
    sprec_code: str | None


class _Bad(ValueError):
    """A field's value breaks its rule; the message says how."""


def check_header(header: list[str]) -> tuple[dict[str, int], list[Problem]]:
    """Column positions by (normalized) name, and the header's problems."""
    positions: dict[str, int] = {}
    problems = []
    for index, raw in enumerate(header):
        name = raw.strip().lower()
        if not name:
            problems.append(Problem(1, f"#{index + 1}", "a column has no name"))
        elif name not in COLUMNS:
            problems.append(
                Problem(1, name, "unknown column; the columns are " + ", ".join(COLUMNS))
            )
        elif name in positions:
            problems.append(Problem(1, name, "the column appears twice"))
        else:
            positions[name] = index
    for name in REQUIRED:
        if name not in positions:
            problems.append(Problem(1, name, "required column is missing"))
    for first, second in ONE_OF:
        if first not in positions and second not in positions:
            problems.append(Problem(1, first, f"required column is missing (or give {second})"))
    return positions, problems


def parse_datetime(raw: str) -> dt.datetime:
    """An ISO 8601 date or date-time, in UTC; without a zone it is taken as UTC."""
    try:
        value = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise _Bad(
            f"{raw!r} is not an ISO 8601 date or date-time "
            "(e.g. 2025-03-01 or 2025-03-01T09:30:00+01:00)"
        ) from None
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def _number(raw: str) -> Decimal:
    try:
        value = Decimal(raw)
    except InvalidOperation:
        hint = " (use a decimal point, not a comma)" if "," in raw else ""
        raise _Bad(f"{raw!r} is not a number{hint}") from None
    if not value.is_finite():
        raise _Bad(f"{raw!r} is not a number")
    return value


def parse_volume(raw: str) -> Decimal:
    """A volume in mL: positive, at most three decimals (what the database keeps)."""
    value = _number(raw)
    if value <= 0:
        raise _Bad("must be more than 0 mL")
    if value >= _MAX_VOLUME:
        raise _Bad(f"{raw} mL is more than a tube holds")
    if value != value.quantize(_MILLI):
        raise _Bad(f"{raw} has more than 3 decimals (the biobank records 0.001 mL)")
    return value.quantize(_MILLI)


def parse_count(raw: str, minimum: int) -> int:
    """A whole number (1e6 is accepted) of at least ``minimum``."""
    value = _number(raw)
    if value != value.to_integral_value():
        raise _Bad(f"{raw!r} is not a whole number")
    if value < minimum:
        raise _Bad(f"must be at least {minimum}")
    if value > _MAX_INT:
        raise _Bad(f"{raw} is too large")
    return int(value)


def _delay(raw: str) -> Decimal:
    value = _number(raw)
    if value < 0 or value >= 10**8:
        raise _Bad("must be a number of hours, 0 or more")
    return value


def _temperature(raw: str) -> str:
    for known in PRECENTRIFUGATION_TEMPERATURES:
        if raw.upper() == known.upper():
            return known
    raise _Bad(f"{raw!r} is not one of {', '.join(PRECENTRIFUGATION_TEMPERATURES)}")


@lru_cache(maxsize=4096)
def sprec(
    sprec_type: str | None,
    spins: int | None,
    material_type: str,
    container: str,
    delay: Decimal | None,
    temperature: str | None,
    storage: str,
) -> str:
    """The aliquot's SPREC code, built as samples.service.sprec_code builds it (an inventory
    records no processing: elements 4–6 are what follows from the type, else X; DNA and RNA
    carry their primary sample's code, the source tube being unknown)."""
    if not sprec_type:
        return spreccodes.source_code(material_type, container, delay, temperature)
    return spreccodes.aliquot_code(sprec_type, container, delay, temperature, spins, None, storage)


class RowReader:
    """Checks rows against the reference data, the patients and the clock, field by field.

    Values repeat down a file (a sample's columns on each of its aliquots), so each
    column remembers what its values parsed to: a repeat costs one dict lookup.
    """

    def __init__(
        self,
        positions: dict[str, int],
        reference: Reference,
        patients: dict[str, tuple[int, dt.date] | None],
        own_prefixes: set[str],
        now: dt.datetime,
    ) -> None:
        self.positions = positions
        self.width = len(positions)
        self.reference = reference
        self.patients = patients  # study_id → (id, diagnosis date); None when unknown
        self.own_prefixes = own_prefixes
        self.now = now
        parsers: dict[str, Callable[[str], Any]] = {
            "barcode": self._barcode,
            "study_id": self._patient,
            "timepoint": lambda raw: self._code(raw, reference.timepoints, "timepoint"),
            "unscheduled_reason": str,
            "material": lambda raw: self._code(raw, reference.materials, "material"),
            "aliquot_type": self._kind,
            "volume_ml": parse_volume,
            "cell_count": lambda raw: parse_count(raw, 1),
            "collected_at": self._moment,
            "received_at": self._moment,
            "container_code": self._container,
            "precentrifugation_delay_hours": _delay,
            "precentrifugation_temperature": _temperature,
            "accession_number": str,
            "freeze_thaw_count": lambda raw: parse_count(raw, 0),
            "status": self._status,
            "storage": self._storage,
        }
        # (column, position, parser, longest value, memo of parsed values or None)
        self.columns = [
            (
                name,
                positions[name],
                parsers[name],
                _LENGTHS.get(name, 64),
                None if name == "barcode" else {},
            )
            for name in COLUMNS
            if name in positions
        ]

    def _raw(self, fields: list[str], column: str) -> str:
        index = self.positions.get(column)
        return "" if index is None else fields[index].strip()

    def read(self, line: int, fields: list[str]) -> tuple[Row | None, list[Problem]]:
        """The checked row, or None and every problem found in it."""
        if len(fields) != self.width and (
            len(fields) < self.width or any(field.strip() for field in fields[self.width :])
        ):
            return None, [
                Problem(
                    line, None, f"{len(fields)} fields, but the header has {self.width} columns"
                )
            ]
        problems: list[Problem] = []
        values: dict[str, Any] = {}
        for column, index, parse, limit, memo in self.columns:
            raw = fields[index].strip()
            if memo is not None:
                value = memo.get(raw, _UNSEEN)  # "" is never remembered
                if value is not _UNSEEN:
                    values[column] = value
                    continue
            if not raw:
                if column in REQUIRED:
                    problems.append(Problem(line, column, "a value is required"))
                continue
            if len(raw) > limit:
                problems.append(Problem(line, column, f"longer than {limit} characters"))
                continue
            try:
                value = values[column] = parse(raw)
            except _Bad as exc:
                problems.append(Problem(line, column, str(exc)))
                continue
            if memo is not None:
                if len(memo) >= _MEMO_SIZE:
                    memo.clear()
                memo[raw] = value
        get = values.get
        patient, timepoint, material = get("study_id"), get("timepoint"), get("material")
        kind, collected, received = get("aliquot_type"), get("collected_at"), get("received_at")

        # The rules that involve more than one field.
        if (
            timepoint is None
            and "unscheduled_reason" not in values
            and not (self._raw(fields, "timepoint") or self._raw(fields, "unscheduled_reason"))
        ):
            problems.append(
                Problem(
                    line,
                    "timepoint",
                    "give a timepoint, or an unscheduled_reason for an unscheduled sample",
                )
            )
        if (
            "volume_ml" not in values
            and "cell_count" not in values
            and not (self._raw(fields, "volume_ml") or self._raw(fields, "cell_count"))
        ):
            problems.append(Problem(line, "volume_ml", "give volume_ml or cell_count"))
        if collected and received and received < collected:
            problems.append(Problem(line, "received_at", "is before collected_at"))
        if patient and collected and collected.date() < patient[1] - _WEEK:
            problems.append(
                Problem(line, "collected_at", "is more than a week before the patient's diagnosis")
            )
        if kind and material and kind.materials and material[1] not in kind.materials:
            problems.append(
                Problem(line, "aliquot_type", f"{kind.name} cannot be made from {material[1]}")
            )
        if problems:
            return None, problems
        container, delay = values["container_code"], get("precentrifugation_delay_hours")
        temperature, storage = get("precentrifugation_temperature"), get("storage", "X")
        return Row(
            line=line,
            barcode=get("barcode"),
            study_id=patient[2],
            patient_id=patient[0],
            timepoint_id=timepoint[0] if timepoint else None,
            timepoint=timepoint[1] if timepoint else None,
            unscheduled_reason=get("unscheduled_reason"),
            material_id=material[0],
            material=material[1],
            kind=kind,
            volume_ml=get("volume_ml"),
            cell_count=get("cell_count"),
            collected_at=collected,
            received_at=received,
            container_code=container,
            precentrifugation_delay_hours=delay,
            precentrifugation_temperature=temperature,
            accession_number=get("accession_number"),
            freeze_thaw_count=get("freeze_thaw_count", 0),
            status=get("status", "available"),
            storage=storage,
            sprec_code=sprec(
                kind.sprec_type,
                kind.spins,
                self.reference.sprec_types.get(material[1], "ZZZ"),
                container,
                delay,
                temperature,
                storage,
            ),
        ), []

    # --- one field each -----------------------------------------------------------------

    def _barcode(self, raw: str) -> str:
        code = barcodes.normalize(raw)
        if code in _UNREAD:
            raise _Bad(f"{raw!r}: the rack scanner could not read this tube")
        if why := barcodes.external_problem(code):
            raise _Bad(why)
        if barcodes.looks_own(code, self.own_prefixes):
            raise _Bad(
                f"{code} looks like a code this service issues; pre-barcoded tubes "
                "must carry their own code (leave the column empty to issue one)"
            )
        return code

    def _patient(self, raw: str) -> tuple[int, dt.date, str]:
        found = self.patients.get(raw)
        if found is None:
            raise _Bad(f"unknown study_id {raw!r}: register the patient first")
        return found[0], found[1], raw

    @staticmethod
    def _code(raw: str, codes: dict[str, tuple[int, str]], what: str) -> tuple[int, str]:
        found = codes.get(raw.upper())
        if found is None:
            raise _Bad(f"unknown {what} code {raw!r}")
        return found

    def _kind(self, raw: str) -> Kind:
        found = self.reference.kinds.get(raw.upper())
        if found is None:
            raise _Bad(f"unknown aliquot type code {raw!r}")
        return found

    def _moment(self, raw: str) -> dt.datetime:
        value = parse_datetime(raw)
        if value > self.now:
            raise _Bad(f"{raw} is in the future")
        return value

    @staticmethod
    def _container(raw: str) -> str:
        code = raw.upper()
        if code not in PRIMARY_CONTAINERS:
            raise _Bad(f"{raw!r} is not a SPREC primary container code")
        return code

    @staticmethod
    def _status(raw: str) -> str:
        status = raw.lower()
        if status not in STATUSES:
            raise _Bad(f"{raw!r} is not one of {', '.join(STATUSES)}")
        return status

    @staticmethod
    def _storage(raw: str) -> str:
        code = raw.upper()
        if code not in STORAGE:
            raise _Bad(f"{raw!r} is not a SPREC storage code ({', '.join(STORAGE)})")
        return code
