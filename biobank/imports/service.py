"""Bulk import of an existing inventory from CSV: one row per aliquot, all or nothing.

The file starts with a header line; column names are case-insensitive, in any order, and a
column this import does not know is an error (a misspelt column must not be dropped
silently). Comma, semicolon and tab separated files are accepted (the header decides), as
UTF-8 with or without a byte-order mark.

==============================  ==========================================================
column                          value
==============================  ==========================================================
barcode                         the tube's own code (pre-barcoded 2D tubes); empty: the
                                service issues one. Must not look like this service's codes
study_id *                      the patient's pseudonym; the patient must be registered
timepoint                       MRD timepoint code (DX, D8, EOI ...); empty for unscheduled
unscheduled_reason              why an unscheduled sample was taken (needed without timepoint)
material *                      PB, BM or CSF
aliquot_type *                  aliquot type code of the reference data (PLASMA, MNC-V ...)
volume_ml                       the tube's volume, mL, up to 3 decimals } at least one
cell_count                      cells in the tube                       } of the two
collected_at *, received_at *   ISO 8601 date or date-time; without a zone it is UTC;
                                received not before collected, neither in the future
container_code *                SPREC v3.0 primary container (PED, SHP, HEP, CPH ...)
precentrifugation_delay_hours   hours from collection to processing (for the SPREC code)
precentrifugation_temperature   RT, 2-10C or 35-38C
accession_number                the lab's accession number of the primary sample
freeze_thaw_count               cycles so far; default 0
status                          available (default), reserved, shipped, consumed ...
storage                         SPREC v3.0 long-term storage code (A…Z, default X)
==============================  ==========================================================
(* required: the column, and a value on every row. Every row also needs a timepoint or an
unscheduled_reason, and a volume_ml or a cell_count.)

Rows with the same study_id, timepoint, unscheduled_reason, material, collected_at and
accession_number are aliquots of one primary sample, which the import creates (it never
attaches aliquots to a sample registered before); they must agree on received_at,
container_code and the pre-centrifugation columns. The aliquots already exist, so the
sample has nothing left to split (volume_remaining_ml = 0), and as the volume collected is
not in an inventory, volume_ml records what is accounted for: the sum of its aliquots'
volumes, or 0.001 mL (the least the column holds above 0) when they only count cells. The
sample's notes say so.

Problems are reported as ``line N, column C: problem``, N as a person sees the file (the
header is line 1), all of them up to MAX_PROBLEMS.

How it runs: one pass over the file, insert while checking, in chunks of 5,000 rows. Per
chunk, one query resolves the new study_ids and one finds which of its barcodes are taken;
rows are checked in Python against reference codes loaded once; the good rows go in with
Core executemany INSERTs (samples, aliquots, and their custody events: ``received`` per
sample, ``imported`` per aliquot). Rows keep being inserted after a problem, so a barcode
repeated further down is still found; at the end any problem raises ``ImportRefused`` and
the caller rolls the one transaction back. A check-then-insert pass pair would parse the
file twice and, to find repeats, hold every barcode of the file in memory; this way the
unique index does that work. Memory grows with the number of samples (a few hundred bytes
each) and by 16 bytes per aliquot, not with the rows.
"""

from __future__ import annotations

import csv
import datetime as dt
import gc
import io
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from itertools import chain
from pathlib import Path
from typing import IO, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from biobank.db import utcnow
from biobank.errors import Invalid
from biobank.imports.inserts import ImportedSample, Writer, chain_index_set_aside
from biobank.imports.rows import Kind, Problem, Reference, Row, RowReader, check_header
from biobank.patients.models import Patient
from biobank.reference.models import AliquotType, Material, Timepoint
from biobank.reports import tally
from biobank.samples import barcodes
from biobank.samples.models import Aliquot
from biobank.samples.service import Numbering

CHUNK_SIZE = 5_000
MAX_PROBLEMS = 100
_DELIMITERS = (",", ";", "\t")


@dataclass(frozen=True)
class Summary:
    """What an import added."""

    aliquots: int
    samples: int


class ImportRefused(Invalid):
    """The file has problems: the caller must roll back what the import wrote."""

    def __init__(self, problems: list[Problem], complete: bool = True) -> None:
        self.problems = problems
        self.complete = complete  # False when the check stopped at MAX_PROBLEMS
        more = "" if complete else " (the check stopped there)"
        super().__init__(f"{len(problems)} problem(s) in the file{more}; nothing imported")


class _NotText(Exception):
    def __init__(self, line: int) -> None:
        self.line = line


def load_reference(session: Session) -> Reference:
    """The timepoint, material and aliquot-type codes, by upper-cased code."""
    return Reference(
        timepoints={
            code.upper(): (id_, code)
            for id_, code in session.execute(select(Timepoint.id, Timepoint.code))
        },
        materials={
            code.upper(): (id_, code)
            for id_, code in session.execute(select(Material.id, Material.code))
        },
        kinds={
            t.code.upper(): Kind(
                t.id, t.code, t.name, t.sprec_type, frozenset(t.materials), t.spins
            )
            for t in session.scalars(select(AliquotType))
        },
        sprec_types=dict(session.execute(select(Material.code, Material.sprec_type)).all()),
    )


def count_rows(path: Path) -> int:
    """Data lines in a file, for a progress bar (a quoted line break makes it an estimate)."""
    lines, last = 0, b"\n"
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            lines += block.count(b"\n")
            last = block[-1:]
    return max(lines + (last != b"\n") - 1, 0)


def _decoded(handle: IO[bytes], block_size: int = 1 << 18) -> Iterator[str]:
    """Lines as text (split at line feeds only, as the bytes were); a byte that is not UTF-8
    stops the import at its line.

    Whole blocks of lines are decoded at once; only a block that fails is decoded line by
    line, to find the line.
    """
    number = 0  # lines yielded so far
    rest = b""
    while True:
        block = handle.read(block_size)
        if block:
            end = block.rfind(b"\n") + 1
            if not end:
                rest += block
                continue
            block, rest = rest + block[:end], block[end:]
        else:
            block, rest = rest, b""
            if not block:
                return
        try:
            text = block.decode("utf-8-sig" if number == 0 else "utf-8")
        except UnicodeDecodeError:
            for raw in io.BytesIO(block):
                try:
                    yield raw.decode("utf-8-sig" if number == 0 else "utf-8")
                except UnicodeDecodeError:
                    raise _NotText(number + 1) from None
                number += 1
            continue
        lines = io.StringIO(text, newline="\n").readlines() or [text]  # [""]: a lone BOM
        number += len(lines)
        yield from lines


def import_aliquots(
    session: Session,
    actor: str,
    path: Path,
    numbering: Numbering,
    *,
    progress: Callable[[int], object] | None = None,
    chunk_size: int = CHUNK_SIZE,
    max_problems: int = MAX_PROBLEMS,
) -> Summary:
    """Import an inventory file; on any problem raise ImportRefused listing them all.

    ``progress`` is called with the number of rows read after each chunk.
    """
    with (
        path.open("rb") as handle,
        _young_collections_only(),
        chain_index_set_aside(session, count_rows(path)),
        tally.held_back(session.connection()) as tallies,
    ):
        run = _Import(
            session, actor, numbering, f"imported from {path.name}"[:200], max_problems, tallies
        )
        try:
            run.read(_decoded(handle), chunk_size, progress or (lambda n: None))
        except _NotText as exc:
            run.problem(Problem(exc.line, None, "is not UTF-8 text: save the file as CSV UTF-8"))
        except csv.Error as exc:
            run.problem(Problem(run.last_line + 1, None, f"cannot be read as CSV: {exc}"))
    return run.finish()


@contextmanager
def _young_collections_only() -> Iterator[None]:
    """Pause the automatic garbage collector; ``_Import.read`` collects the young objects
    between chunks.

    A chunk allocates objects fast enough to set off one of the collector's full passes
    every chunk or two, and a full pass walks every object the process holds (a Flask app
    with its models and schemas is ~130,000 of them), however small the import's own: at
    1,000,000 rows that was a quarter of the import's CPU time. Rows make no reference
    cycles; what little cyclic garbage a chunk leaves is young and collected after it.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class _Import:
    """The state of one import: caches, the samples made so far, the problems found."""

    def __init__(
        self,
        session: Session,
        actor: str,
        numbering: Numbering,
        reason: str,
        max_problems: int,
        tallies: tally.HeldBack,
    ) -> None:
        self.session = session
        self.actor = actor
        self.numbering = numbering
        self.max_problems = max_problems
        self.now = utcnow()
        self.writer = Writer(session, actor, numbering, reason, self.now, tallies)
        self.problems: list[Problem] = []
        self.patients: dict[str, tuple[int, dt.date] | None] = {}
        self.samples: dict[tuple[Any, ...], ImportedSample] = {}
        # Ids of the aliquots inserted so far (ascending) and their lines, to name the
        # line a repeated barcode first appeared on.
        self.ids = array("q")
        self.lines = array("q")
        self.failed_codes: dict[str, int] = {}
        self.truncated = False  # stopped at the cap with rows left unchecked
        self.aliquots = 0
        self.last_line = 1
        self.positions: dict[str, int] = {}
        self.reader: RowReader  # made once the header is known

    @property
    def full(self) -> bool:
        """Whether enough problems were found to stop."""
        return len(self.problems) >= self.max_problems

    def problem(self, problem: Problem) -> None:
        """Note a problem; past the cap, only that there were more."""
        if self.full:
            self.truncated = True
        else:
            self.problems.append(problem)

    def read(
        self, lines: Iterator[str], chunk_size: int, progress: Callable[[int], object]
    ) -> None:
        """Check the header, then check and insert the rows chunk by chunk."""
        first = next(lines, None)
        if first is None or not first.strip():
            self.problem(
                Problem(1, None, "the file is empty: the first line must name the columns")
            )
            return
        delimiter = max(_DELIMITERS, key=first.count)
        reader = csv.reader(chain([first], lines), delimiter=delimiter)
        self.positions, problems = check_header(next(reader))
        if problems:
            for problem in problems:
                self.problem(problem)
            return
        self.reader = RowReader(
            self.positions,
            load_reference(self.session),
            self.patients,
            self.numbering.prefixes,
            self.now,
        )
        chunk: list[tuple[int, list[str]]] = []
        append = chunk.append
        for fields in reader:
            line, self.last_line = self.last_line + 1, reader.line_num
            if "".join(fields).strip():  # a row of empty fields is a blank line
                append((line, fields))
            if len(chunk) >= chunk_size:
                self._chunk(chunk)
                progress(len(chunk))
                chunk.clear()
                gc.collect(1)  # see _young_collections_only
                if self.full:
                    self.truncated = True
                    return
        if chunk:
            self._chunk(chunk)
            progress(len(chunk))
        if not self.aliquots and not self.problems:
            self.problem(Problem(2, None, "the file has a header but no rows"))

    def finish(self) -> Summary:
        """Raise the problems, or set the samples' volumes and say what was imported."""
        if self.problems:
            raise ImportRefused(self.problems, complete=not self.truncated)
        samples = list(self.samples.values())
        for start in range(0, len(samples), CHUNK_SIZE):
            self.writer.sample_volumes(samples[start : start + CHUNK_SIZE])
        return Summary(aliquots=self.aliquots, samples=len(samples))

    # --- one chunk -----------------------------------------------------------------------

    def _column(self, chunk: list[tuple[int, list[str]]], name: str) -> set[str]:
        """The distinct values of a column in a chunk, stripped."""
        index = self.positions.get(name)
        if index is None:
            return set()
        return {fields[index].strip() for _, fields in chunk if len(fields) > index}

    def _chunk(self, chunk: list[tuple[int, list[str]]]) -> None:
        """Check a chunk's rows; insert the good ones."""
        self._resolve_patients(chunk)
        codes = {barcodes.normalize(code) for code in self._column(chunk, "barcode")} - {""}
        table = Aliquot.__table__  # plain rows: the ORM's result handling costs more here
        taken = (
            dict(
                self.session.execute(
                    select(table.c.barcode, table.c.id).where(table.c.barcode.in_(codes))
                ).all()
            )
            if codes
            else {}
        )
        seen: dict[str, int] = {}
        good: list[tuple[Row, ImportedSample]] = []
        new: list[tuple[Row, ImportedSample]] = []
        barcode_at = self.positions.get("barcode")
        read, failed = self.reader.read, self.failed_codes
        for line, fields in chunk:
            row, problems = read(line, fields)
            if row is not None:
                code = row.barcode or ""
                if code and (code in seen or code in taken or code in failed):
                    problems = self._duplicate(line, code, seen, taken)
                if not problems:
                    sample, problems = self._sample_of(row, new)
                    if sample is not None:
                        if code:
                            seen[code] = line
                        if row.volume_ml is not None:
                            sample.volume += row.volume_ml
                        good.append((row, sample))
                        continue
            else:
                code = ""
                if barcode_at is not None and len(fields) > barcode_at:
                    code = barcodes.normalize(fields[barcode_at])
                if code:
                    problems.extend(self._duplicate(line, code, seen, taken))
            for problem in problems:
                self.problem(problem)
            if code:
                failed.setdefault(code, line)
            if self.full:
                self.truncated = True
                return
        self.writer.samples(new)
        for id_, line in self.writer.aliquots(good):
            self.ids.append(id_)
            self.lines.append(line)
        self.aliquots += len(good)

    def _resolve_patients(self, chunk: list[tuple[int, list[str]]]) -> None:
        wanted = self._column(chunk, "study_id") - self.patients.keys() - {""}
        if not wanted:
            return
        found = {
            study_id: (id_, diagnosed)
            for id_, study_id, diagnosed in self.session.execute(
                select(Patient.id, Patient.study_id, Patient.diagnosis_date).where(
                    Patient.study_id.in_(wanted)
                )
            )
        }
        for study_id in wanted:
            self.patients[study_id] = found.get(study_id)

    def _duplicate(
        self, line: int, code: str, seen: dict[str, int], taken: dict[str, int]
    ) -> list[Problem]:
        earlier = seen.get(code) or self.failed_codes.get(code)
        if earlier is None and code in taken:
            earlier = self._line_of(taken[code])
            if earlier is None:
                return [Problem(line, "barcode", f"{code} is already registered in the biobank")]
        if earlier is None:
            return []
        return [Problem(line, "barcode", f"{code} is also on line {earlier}")]

    def _line_of(self, aliquot_id: int) -> int | None:
        """The line an aliquot of this import came from; None if it was there before."""
        at = bisect_left(self.ids, aliquot_id)
        if at < len(self.ids) and self.ids[at] == aliquot_id:
            return self.lines[at]
        return None

    def _sample_of(
        self, row: Row, new: list[tuple[Row, ImportedSample]]
    ) -> tuple[ImportedSample | None, list[Problem]]:
        """The row's sample (made if new), or the columns where it disagrees with it."""
        key = (
            row.patient_id,
            row.timepoint_id,
            row.unscheduled_reason,
            row.material_id,
            row.collected_at,
            row.accession_number,
        )
        sample = self.samples.get(key)
        if sample is None:
            sample = ImportedSample(
                0,
                row.line,
                row.received_at,
                row.container_code,
                row.precentrifugation_delay_hours,
                row.precentrifugation_temperature,
                Decimal(0),
            )
            self.samples[key] = sample
            new.append((row, sample))
            return sample, []
        if (
            row.received_at == sample.received_at
            and row.container_code == sample.container_code
            and row.precentrifugation_delay_hours == sample.delay
            and row.precentrifugation_temperature == sample.temperature
        ):
            return sample, []
        problems = [
            Problem(
                row.line,
                column,
                f"differs from line {sample.line}, an aliquot of the same "
                "sample (same study_id, timepoint, material, collected_at, accession_number)",
            )
            for column, mine, theirs in (
                ("received_at", row.received_at, sample.received_at),
                ("container_code", row.container_code, sample.container_code),
                ("precentrifugation_delay_hours", row.precentrifugation_delay_hours, sample.delay),
                (
                    "precentrifugation_temperature",
                    row.precentrifugation_temperature,
                    sample.temperature,
                ),
            )
            if mine != theirs
        ]
        return (None if problems else sample), problems
