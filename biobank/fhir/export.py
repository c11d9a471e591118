"""The bulk export: every resource as NDJSON, one file per resource type (the FHIR Bulk Data
file layout: ``Specimen.ndjson``, ``Patient.ndjson``…, and ``manifest.json`` listing them).

Streams: Specimens and Patients are read a keyset page at a time, Consents a batch of
patients at a time, and each resource is written as soon as it is built, so memory stays
the same whatever the size of the biobank.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import orjson
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from biobank.fhir import consents, directory, miabis, specimens
from biobank.fhir.access import SYSTEM
from biobank.fhir.resources import Settings, patient_resource
from biobank.fhir.service import page_entries
from biobank.patients.models import Patient
from biobank.samples.models import Aliquot, Sample

CHUNK = 2000
TYPES = ("Organization", "Group", "Patient", "Specimen", "Consent")


def total(session: Session) -> int:
    """How many resources an export writes, for the progress bar (Consents counted as one
    per patient: an estimate)."""
    count = session.scalar(select(func.count()).select_from(Sample)) or 0
    count += session.scalar(select(func.count()).select_from(Aliquot)) or 0
    patients = session.scalar(select(func.count()).select_from(Patient)) or 0
    return count + 2 * patients + len(directory.ORGANIZATIONS) + 1


def _patients(session: Session, settings: Settings) -> Iterator[dict[str, Any]]:
    after = 0
    while rows := consents.patients_after(session, SYSTEM, after, CHUNK):
        for row in rows:
            yield patient_resource(row.study_id, row.sex, SYSTEM, settings)
        after = rows[-1].id


def specimens_of(session: Session, viewer: Any, settings: Settings) -> Iterator[dict[str, Any]]:
    """Every Specimen the viewer may see, a page at a time."""
    for page in specimens.stream(session, viewer, CHUNK):
        yield from page_entries(session, viewer, page, settings)


def line(resource: dict[str, Any]) -> bytes:
    """One NDJSON line."""
    return orjson.dumps(resource) + b"\n"


def _consents(session: Session, settings: Settings) -> Iterator[dict[str, Any]]:
    after = 0
    while rows := consents.patients_after(session, SYSTEM, after, CHUNK // 4):
        logs = consents.entries_of(session, SYSTEM, [row.id for row in rows])
        for row in rows:
            yield from consents.consent_resources(row, logs[row.id], SYSTEM, settings)
        after = rows[-1].id
        session.expunge_all()  # the consent entries of this batch are written: let them go


def export(
    session: Session,
    folder: Path,
    settings: Settings,
    names: directory.Directory,
    progress: Callable[[int], None] = lambda _n: None,
    request_url: str = "flask --app wsgi fhir export",
) -> dict[str, Any]:
    """Write every resource under ``folder``; returns the manifest (also written)."""
    folder.mkdir(parents=True, exist_ok=True)
    started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    sources: dict[str, Callable[[], Iterator[dict[str, Any]]]] = {
        "Organization": lambda: (
            directory.organization(kind, names, settings) for kind in directory.ORGANIZATIONS
        ),
        "Group": lambda: iter(
            [directory.collection_group(miabis.summarise(session, SYSTEM), names, settings)]
        ),
        "Patient": lambda: _patients(session, settings),
        "Specimen": lambda: specimens_of(session, SYSTEM, settings),
        "Consent": lambda: _consents(session, settings),
    }
    output = []
    for kind in TYPES:
        path = folder / f"{kind}.ndjson"
        with path.open("wb") as handle:
            count = _write(handle, sources[kind](), progress)
        output.append({"type": kind, "url": path.name, "count": count})
    manifest = {
        "transactionTime": started,
        "request": request_url,
        "requiresAccessToken": False,
        "output": output,
        "error": [],
    }
    (folder / "manifest.json").write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
    return manifest


def _write(
    handle: IO[bytes], resources: Iterator[dict[str, Any]], progress: Callable[[int], None]
) -> int:
    count = 0
    for resource in resources:
        handle.write(line(resource))
        count += 1
        if count % 500 == 0:
            progress(500)
    progress(count % 500)
    return count
