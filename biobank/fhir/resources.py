"""Specimen and Patient resources, built from the rows of ``biobank.fhir.specimens``.

Pure functions: no queries, no Flask. What a researcher sees is decided here too: no
accession number (a hospital's lab number), no notes, no freezer location.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from biobank.fhir import terminology as tx
from biobank.fhir.access import Viewer, identifier_system, patient_fhir_id, patient_label
from biobank.fhir.specimens import Details
from biobank.fhir.terminology import type_codings
from biobank.reference.sprec import precentrifugation_code

SPREC_ELEMENTS = (
    "type",
    "container",
    "precentrifugation",
    "centrifugation",
    "second_centrifugation",
    "post_centrifugation",
    "storage",
)


@dataclass(frozen=True)
class Settings:
    """The deployment's identifiers (BIOBANK_FHIR_SYSTEM_BASE and the MIABIS ids)."""

    base: str
    collection_id: str

    @classmethod
    def from_config(cls, config: Any) -> Settings:
        """The settings of an app's configuration."""
        return cls(config["FHIR_SYSTEM_BASE"].rstrip("/"), config["MIABIS_COLLECTION_ID"])

    def system(self, name: str) -> str:
        """An identifier system of this biobank."""
        return f"{self.base}/sid/{name}"

    def extension(self, name: str) -> str:
        """An extension of this biobank."""
        return f"{self.base}/StructureDefinition/{name}"


def instant(value: dt.datetime | None) -> str | None:
    """A FHIR instant/dateTime (seconds, with zone)."""
    if value is None:
        return None
    return value.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def quantity(value: Decimal | int | None, unit: str) -> dict[str, Any] | None:
    """A UCUM quantity: millilitres, or a count of cells."""
    if value is None:
        return None
    if unit == "cells":
        return {"value": int(value), "unit": "cells", "system": tx.UCUM, "code": "{cells}"}
    number = Decimal(value).normalize()
    return {
        "value": float(number) if number % 1 else int(number),
        "unit": "mL",
        "system": tx.UCUM,
        "code": "mL",
    }


def sprec_elements(code: str | None) -> dict[str, str]:
    """The seven SPREC elements of a tube's code (X where unknown): the one place that reads
    them, so a code with every element recorded is read the same way."""
    # INTEGRATION POINT (issue 16, SPREC v3.0): elements 4-6 and coded derivatives arrive in
    # the same seven-element code; should they get columns of their own, read them here.
    parts = (code or "").split("-")
    if len(parts) != len(SPREC_ELEMENTS):
        return {}
    return dict(zip(SPREC_ELEMENTS, parts, strict=True))


def _collection(row: Any, amount: dict[str, Any] | None) -> dict[str, Any]:
    found: dict[str, Any] = {"collectedDateTime": instant(row["collected_at"])}
    if amount:
        found["quantity"] = amount
    method_site = tx.COLLECTION.get(row["material_sprec"] or "")
    if method_site:
        method, site = method_site
        found["method"] = tx.concept(tx.sct(method))
        found["bodySite"] = tx.concept(
            tx.coding(tx.SNOMED, site[0], site[1], version=tx.SNOMED_VERSION)
        )
    return found


def _base(
    kind: str,
    row: Any,
    settings: Settings,
    viewer: Viewer,
    codings: list[dict[str, Any]],
    text: str,
) -> dict[str, Any]:
    miabis = any(c["system"] == tx.MIABIS_DETAILED_TYPE for c in codings)
    resource: dict[str, Any] = {
        "resourceType": "Specimen",
        "id": f"{kind}-{row['id']}",
        "meta": {
            "lastUpdated": instant(row["last_updated"]),
            **({"profile": [tx.PROFILE_SAMPLE]} if miabis else {}),
        },
        "extension": [
            {
                "url": tx.EXT_SAMPLE_COLLECTION,
                "valueIdentifier": {
                    "system": settings.system("collection"),
                    "value": settings.collection_id,
                },
            }
        ],
        "identifier": [{"system": settings.system("barcode"), "value": row["barcode"]}],
    }
    if viewer.staff and row["accession_number"]:
        resource["accessionIdentifier"] = {
            "system": settings.system("accession"),
            "value": row["accession_number"],
        }
    resource["type"] = tx.concept(*codings, text=text)
    resource["subject"] = {"reference": f"Patient/{patient_fhir_id(viewer, row['study_id'])}"}
    resource["receivedTime"] = instant(row["received_at"])
    if resource["meta"]["lastUpdated"] is None:
        del resource["meta"]["lastUpdated"]
    return resource


def _storage_processing(
    elements: dict[str, str], stored: dt.datetime | None, band: str | None
) -> dict[str, Any] | None:
    storage = elements.get("storage", "X")
    temperature = tx.miabis_temperature(band)
    if stored is None and storage == "X" and temperature is None:
        return None
    step: dict[str, Any] = {"description": "long-term storage"}
    if temperature:
        step["extension"] = [
            {
                "url": tx.EXT_STORAGE_TEMPERATURE,
                "valueCodeableConcept": tx.concept(
                    tx.coding(
                        tx.MIABIS_TEMPERATURE, temperature, tx.MIABIS_TEMPERATURES[temperature]
                    )
                ),
            }
        ]
    step["procedure"] = tx.concept(
        tx.sct(tx.STORAGE),
        tx.coding(tx.SPREC_STORAGE, storage),
        text="cryopreservation" if band in tx.COLD_BANDS else None,
    )
    if stored is not None:
        step["timeDateTime"] = instant(stored)
    return step


def _processing(
    row: Any, elements: dict[str, str], stored: dt.datetime | None, band: str | None
) -> list[dict[str, Any]]:
    sprec_type = row["type_sprec"]
    steps = []
    if sprec_type in tx.SPUN:
        pre = elements.get("precentrifugation", "X")
        steps.append(
            {
                "description": f"centrifugation (SPREC pre-centrifugation {pre})",
                "procedure": tx.concept(
                    tx.sct(tx.CENTRIFUGATION),
                    tx.coding(tx.SPREC_CENTRIFUGATION, elements.get("centrifugation", "X")),
                ),
            }
        )
    if sprec_type in tx.SPUN_TWICE:
        steps.append(
            {
                "description": "second centrifugation",
                "procedure": tx.concept(
                    tx.sct(tx.CENTRIFUGATION),
                    tx.coding(
                        tx.SPREC_SECOND_CENTRIFUGATION, elements.get("second_centrifugation", "X")
                    ),
                ),
            }
        )
    steps.append(
        {
            "description": f"aliquoting: {row['type_name']}",
            "procedure": tx.concept(tx.sct(tx.PROCESSING), text="aliquoting"),
            "timeDateTime": instant(row["created_at"]),
        }
    )
    storage = _storage_processing(elements, stored, band)
    if storage is not None:
        steps.append(storage)
    return steps


def _condition(row: Any, band: str | None, notes: list[str]) -> list[dict[str, Any]]:
    found = []
    code = None
    if row["thawed_at"] is not None:
        code = tx.CONDITION_ROOM
    elif band in tx.COLD_BANDS and row["out_since"] is None:
        code = tx.CONDITION_FROZEN
    elif band == "2to10":
        code = tx.CONDITION_COOL
    elif band == "RT":
        code = tx.CONDITION_ROOM
    if code is not None:
        found.append(tx.concept(tx.coding(tx.V2_CONDITION, *code)))
    found += [tx.concept(text=note) for note in notes]
    return found


def aliquot_specimen(
    row: Any, details: Details, viewer: Viewer, settings: Settings
) -> dict[str, Any]:
    """A tube as a Specimen."""
    codings = type_codings(
        settings.base, row["type_sprec"], row["type_code"], None, row["material_sprec"]
    )
    resource = _base("aliquot", row, settings, viewer, codings, row["type_name"])
    resource["extension"].append(
        {"url": settings.extension("tube-status"), "valueCode": row["status"]}
    )
    resource["status"] = tx.STATUS[row["status"]]
    parent = row["parent_aliquot_id"]
    if parent is None and viewer.staff:
        resource["parent"] = [{"reference": f"Specimen/sample-{row['sample_id']}"}]
    elif parent is not None and (
        details.visible_parents is None or parent in details.visible_parents
    ):
        resource["parent"] = [{"reference": f"Specimen/aliquot-{parent}"}]
    elements = sprec_elements(row["sprec_code"])
    path, position, band = details.places.get(row["id"], (None, None, None))
    amount = (
        quantity(row["volume_ml"], "mL")
        if row["volume_ml"] is not None
        else quantity(row["cell_count"], "cells")
    )
    resource["collection"] = _collection(row, amount)
    resource["processing"] = _processing(row, elements, details.stored_at.get(row["id"]), band)
    container: dict[str, Any] = {
        "type": tx.concept(
            tx.sct(
                tx.CRYOTUBE
                if band in tx.COLD_BANDS or elements.get("storage", "X") != "X"
                else tx.TUBE
            )
        )
    }
    remaining = (
        quantity(row["volume_remaining_ml"], "mL")
        if row["volume_ml"] is not None
        else quantity(row["cell_count"], "cells")
    )
    if remaining:
        container["specimenQuantity"] = remaining
    if row["type_sprec"] in tx.CRYOPROTECTED:
        container["additiveCodeableConcept"] = tx.concept(tx.sct(tx.DMSO))
    if path is not None and viewer.staff:
        where = f"{path} / {position}" if position else path
        if row["out_since"] is not None:
            where += " (taken out)"
        container["extension"] = [
            {"url": settings.extension("storage-location"), "valueString": where}
        ]
    resource["container"] = [container]
    condition = _condition(row, band, details.notes.get(row["id"], []))
    if condition:
        resource["condition"] = condition
    resource["note"] = [{"text": f"freeze-thaw cycles: {row['freeze_thaw_count']}"}]
    return resource


def sample_specimen(row: Any, viewer: Viewer, settings: Settings) -> dict[str, Any]:
    """A primary sample (as received) as a Specimen."""
    codings = type_codings(
        settings.base, row["material_sprec"], None, row["material"], row["material_sprec"]
    )
    resource = _base("sample", row, settings, viewer, codings, row["material_name"])
    remaining = row["volume_remaining_ml"]
    resource["status"] = "available" if remaining is not None and remaining > 0 else "unavailable"
    resource["collection"] = _collection(row, quantity(row["volume_ml"], "mL"))
    pre = precentrifugation_code(
        row["precentrifugation_delay_hours"], row["precentrifugation_temperature"]
    )
    resource["processing"] = [
        {
            "description": "transport before processing (SPREC pre-centrifugation)",
            "procedure": tx.concept(
                tx.sct(tx.PROCESSING),
                tx.coding(tx.SPREC_PRECENTRIFUGATION, pre),
                text="pre-centrifugation delay and temperature",
            ),
        }
    ]
    kind, additives = tx.CONTAINERS.get(row["container_code"], (tx.TUBE, ()))
    container: dict[str, Any] = {
        "type": tx.concept(tx.sct(kind), tx.coding(tx.SPREC_CONTAINER, row["container_code"]))
    }
    if remaining is not None:
        container["specimenQuantity"] = quantity(remaining, "mL")
    if additives:
        container["additiveCodeableConcept"] = tx.concept(tx.sct(additives[0]))
    resource["container"] = [container]
    if viewer.staff and row["notes"]:
        resource["note"] = [{"text": row["notes"]}]
    return resource


def patient_resource(study_id: str, sex: str, viewer: Viewer, settings: Settings) -> dict[str, Any]:
    """A patient, pseudonymous: the study pseudonym and sex; no name, no birth date."""
    return {
        "resourceType": "Patient",
        "id": patient_fhir_id(viewer, study_id),
        "meta": {"profile": [tx.PROFILE_DONOR]},
        "extension": [{"url": tx.EXT_DATASET_TYPE, "valueCode": "BiologicalSamples"}],
        "identifier": [
            {
                "system": identifier_system(viewer, settings.base),
                "value": patient_label(viewer, study_id),
            }
        ],
        "gender": tx.GENDER.get(sex, "unknown"),
        "managingOrganization": {"reference": "Organization/biobank"},
    }
