"""The MIABIS resources that describe the biobank itself: Organization/biobank
(miabis-biobank), Organization/juristic-person, Organization/collection
(miabis-collection-organization), Group/collection (miabis-collection) and
Measure/miabis-collection-summary. Names and ids come from the deployment's settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from biobank.fhir import miabis
from biobank.fhir import terminology as tx
from biobank.fhir.resources import Settings

ORGANIZATIONS = ("biobank", "juristic-person", "collection")
GROUPS = ("collection",)
MEASURES = (miabis.MEASURE_ID,)


@dataclass(frozen=True)
class Directory:
    """What the biobank calls itself (BIOBANK_MIABIS_* settings)."""

    biobank_id: str
    biobank_name: str
    collection_name: str
    country: str
    juristic_person: str

    @classmethod
    def from_config(cls, config: Any) -> Directory:
        """The names of an app's configuration."""
        return cls(
            config["MIABIS_BIOBANK_ID"],
            config["MIABIS_BIOBANK_NAME"],
            config["MIABIS_COLLECTION_NAME"],
            config["MIABIS_COUNTRY"],
            config["MIABIS_JURISTIC_PERSON"],
        )


def organization(kind: str, directory: Directory, settings: Settings) -> dict[str, Any]:
    """One of the three Organizations."""
    address = [{"country": directory.country}]
    if kind == "juristic-person":
        return {
            "resourceType": "Organization",
            "id": kind,
            "active": True,
            "name": directory.juristic_person,
            "address": address,
        }
    if kind == "biobank":
        return {
            "resourceType": "Organization",
            "id": "biobank",
            "meta": {"profile": [tx.PROFILE_BIOBANK]},
            "extension": [
                {
                    "url": tx.EXT_ORG_DESCRIPTION,
                    "valueString": "Residual diagnostic and follow-up material (bone marrow, "
                    "peripheral blood, cerebrospinal fluid) of infants treated in the "
                    "Interfant-21 trial (NCT05327894).",
                }
            ],
            "identifier": [{"system": settings.system("biobank"), "value": directory.biobank_id}],
            "active": True,
            "name": directory.biobank_name,
            "address": address,
            "partOf": {"reference": "Organization/juristic-person"},
        }
    return {
        "resourceType": "Organization",
        "id": "collection",
        "meta": {"profile": [tx.PROFILE_COLLECTION_ORG]},
        "extension": [
            {
                "url": tx.EXT_ORG_DESCRIPTION,
                "valueString": (
                    "Samples of infants under one year with KMT2A-rearranged B-cell ALL or "
                    "single-lineage B-MPAL, at diagnosis and the trial's MRD timepoints."
                ),
            }
        ],
        "identifier": [{"system": settings.system("collection"), "value": settings.collection_id}],
        "active": True,
        "name": directory.collection_name,
        "address": address,
        "partOf": {"reference": "Organization/biobank"},
    }


def collection_group(
    summary: miabis.Summary, directory: Directory, settings: Settings
) -> dict[str, Any]:
    """Group/collection: which sexes, materials, temperatures, ages and diagnoses it holds."""

    def characteristic(code: str, value: dict[str, Any]) -> dict[str, Any]:
        return {
            "code": tx.concept(tx.coding(tx.MIABIS_CHARACTERISTIC, code)),
            **value,
            "exclude": False,
        }

    samples = summary.samples
    donors = sorted({key.patient_id for key in samples})
    found = []
    if summary.ages:
        ages = summary.ages.values()
        found.append(
            characteristic(
                "Age",
                {
                    "valueRange": {
                        "low": {
                            "value": min(ages),
                            "unit": "months",
                            "system": tx.UCUM,
                            "code": "mo",
                        },
                        "high": {
                            "value": max(ages),
                            "unit": "months",
                            "system": tx.UCUM,
                            "code": "mo",
                        },
                    }
                },
            )
        )
    for sex in sorted({summary.sexes[d] for d in donors}):
        found.append(
            characteristic(
                "Sex",
                {
                    "valueCodeableConcept": tx.concept(
                        tx.coding(miabis.GENDER_SYSTEM, tx.MIABIS_SEX.get(sex, "unknown"))
                    )
                },
            )
        )
    for code in sorted({tx.miabis_temperature(b) for b in samples.values()} - {None}):
        found.append(
            characteristic(
                "StorageTemperature",
                {
                    "valueCodeableConcept": tx.concept(
                        tx.coding(tx.MIABIS_TEMPERATURE, code, tx.MIABIS_TEMPERATURES[code])
                    )
                },
            )
        )
    for material in sorted({key.material for key in samples}):
        found.append(
            characteristic(
                "MaterialType",
                {
                    "valueCodeableConcept": tx.concept(
                        tx.coding(tx.MIABIS_COLLECTION_TYPE, material)
                    )
                },
            )
        )
    for diagnosis in sorted(summary.diagnoses):
        code, display = tx.DIAGNOSES[diagnosis]
        found.append(
            characteristic(
                "Diagnosis",
                {"valueCodeableConcept": tx.concept(tx.coding(tx.ICD10, code, display))},
            )
        )
    group: dict[str, Any] = {
        "resourceType": "Group",
        "id": "collection",
        "meta": {"profile": [tx.PROFILE_COLLECTION]},
        "extension": [{"url": tx.EXT_NUMBER_OF_SUBJECTS, "valueInteger": len(donors)}],
        "identifier": [{"system": settings.system("collection"), "value": settings.collection_id}],
        "active": True,
        "type": "person",
        "actual": True,
        "name": directory.collection_name,
        "quantity": len(donors),
        "managingEntity": {"reference": "Organization/collection"},
    }
    if found:
        group["characteristic"] = found
    return group


def measure(settings: Settings) -> dict[str, Any]:
    """Measure/miabis-collection-summary: what $evaluate-measure counts, and how."""

    def criteria(text: str) -> dict[str, Any]:
        return {"language": "text/plain", "expression": text}

    def stratifier(code: str, text: str) -> dict[str, Any]:
        return {
            "code": tx.concept(tx.coding(tx.MIABIS_CHARACTERISTIC, code)),
            "criteria": criteria(text),
        }

    population = tx.concept(tx.coding(*miabis.POPULATION))
    return {
        "resourceType": "Measure",
        "id": miabis.MEASURE_ID,
        "url": f"{settings.base}/Measure/{miabis.MEASURE_ID}",
        "name": "MiabisCollectionSummary",
        "title": "MIABIS collection summary",
        "status": "active",
        "description": "Samples as MIABIS counts them (one donor, material type and collection "
        "date; tubes still in the biobank) and their donors, by material type, "
        "sex, age at collection and storage temperature.",
        "scoring": tx.concept(
            tx.coding("http://terminology.hl7.org/CodeSystem/measure-scoring", "cohort", "Cohort")
        ),
        "group": [
            {
                "code": tx.concept(text="samples (one donor, material type and collection date)"),
                "population": [
                    {
                        "code": population,
                        "criteria": criteria(
                            "distinct (donor, MIABIS material type, collection date) of tubes "
                            "available, reserved or blocked"
                        ),
                    }
                ],
                "stratifier": [
                    stratifier("MaterialType", "MIABIS collection sample type"),
                    stratifier("Sex", "the donor's administrative gender"),
                    stratifier(
                        "Age",
                        "age at collection in months: "
                        + ", ".join(label for _, _, label in miabis.AGE_BANDS),
                    ),
                    stratifier(
                        "StorageTemperature",
                        "MIABIS storage temperature of the coldest freezer holding the sample",
                    ),
                ],
            },
            {
                "code": tx.concept(text="donors"),
                "population": [
                    {
                        "code": population,
                        "criteria": criteria("distinct donors of the counted samples"),
                    }
                ],
                "stratifier": [stratifier("Sex", "the donor's administrative gender")],
            },
        ],
    }
