"""The shipment manifest: what left in a request, as CSV and as the data of a printable page.

Pseudonymised: tubes are named by barcode and the patient's pseudonym in the request's
sub-study only (``biobank.consent.pseudonym``), whoever prints it; no study_id, accession
numbers, notes or consent details.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from biobank import csvsafe
from biobank.consent import pseudonym
from biobank.errors import Conflict
from biobank.requests import lifecycle, readmodels
from biobank.requests.lifecycle import Asker
from biobank.requests.models import HELD, SampleRequest, Shipment

# Tubes that went out with the shipment (whatever happened to them since).
SHIPPED = ("shipped", "received", "consumed", "returned", "destroyed")
COLUMNS = (
    "barcode",
    "patient",
    "timepoint",
    "material",
    "aliquot_type",
    "volume_ml",
    "cell_count",
    "sprec_code",
    "freeze_thaw_count",
    "discrepancy",
)


@dataclass
class Manifest:
    """A shipped request's manifest."""

    request: SampleRequest
    shipment: Shipment
    tubes: list[readmodels.Tube]

    def rows(self) -> list[dict[str, Any]]:
        """One dict per tube, the CSV's columns."""
        return [{column: getattr(tube, column) for column in COLUMNS} for tube in self.tubes]


def manifest(session: Session, asker: Asker, number: str) -> Manifest:
    """The manifest of a shipped request; before shipping there is none (409)."""
    request = lifecycle.get_request(session, asker, number)
    if request.shipment is None:
        raise Conflict(
            f"request {number} is {request.state}: it has no manifest until it ships", field="state"
        )
    return Manifest(request, request.shipment, readmodels.tubes(session, request, SHIPPED))


def to_csv(found: Manifest) -> str:
    """The manifest as CSV: a header line, then one line per tube."""
    return csvsafe.to_csv(COLUMNS, ([row[key] for key in COLUMNS] for row in found.rows()))


def shipment_labels(session: Session, asker: Asker, number: str) -> list[dict[str, str]]:
    """Tube labels for a request's tubes (held or gone with it), each naming the patient by
    the sub-study's pseudonym instead of the study_id: to relabel tubes before they leave."""
    from biobank.labels.service import ANONYMISED, aliquot_rows
    from biobank.samples.models import Aliquot

    request = lifecycle.get_request(session, asker, number)
    ids = [t.aliquot_id for t in readmodels.tubes(session, request, (*HELD, *SHIPPED))]
    names = pseudonym.namer(request.substudy_code)
    return [
        {
            **data,
            "study_id": data["study_id"]
            if data["study_id"] == ANONYMISED
            else names[data["study_id"]],
        }
        for _, data in aliquot_rows(session, Aliquot.id.in_(ids), (Aliquot.barcode,))
    ]
