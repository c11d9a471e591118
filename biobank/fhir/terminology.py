"""The codes the FHIR resources speak: SNOMED CT, SPREC, MIABIS and FHIR's own value sets.

Keyed by standard codes only (SPREC sample types and containers, MIABIS storage bands), so
an aliquot type or material added as reference data is coded as soon as it names its SPREC
type. Sources, checked by hand against the published artefacts:

- SPREC → SNOMED CT sample types, containers and additives: the German Medical Informatics
  Initiative's biobank module, ConceptMaps ``mii-cm-biobank-sample-type-sprec-sct``,
  ``…-primary-container-sprec-sct`` and ``…-long-term-storage-sprec-sct``
  (github.com/medizininformatik-initiative/kerndatensatzmodul-biobank, input/fsh/conceptmaps),
  which also uses the SPREC code-system URIs below.
- MIABIS on FHIR (BBMRI-ERIC, github.com/BBMRI-cz/miabis-on-fhir, canonical
  https://fhir.bbmri-eric.eu): code systems ``miabis-detailed-samply-type-cs`` (sic),
  ``miabis-collection-sample-type-cs``, ``miabis-storage-temperature-cs``,
  ``miabis-characteristicCS``.
- Collection methods and body sites: SNOMED CT 22778000 Venipuncture and 277762005 Lumbar
  puncture (DICOM CID 8109 and the MII examples), 129316008 Aspiration - action (FHIR R4
  value set specimen-collection-method), 14016003 Bone marrow structure, 29092000 Venous
  structure, 61853006 Spinal canal structure; procedures 73373003 Specimen centrifugation,
  1186936003 Storage of specimen (MII examples), 9265001 Specimen processing (DICOM CID 8111).
- FHIR R4 value sets (hl7.org/fhir/R4): specimen-status, consent-state-codes,
  administrative-gender, v2-0493 specimen condition, consentscope, v3-ActReason.
"""

from __future__ import annotations

from typing import Any

SNOMED = "http://snomed.info/sct"
# The International Edition, as FHIR names a SNOMED CT version (MIABIS asks for a version
# on every body-site coding: invariant SpecimenOntologyInvariant).
SNOMED_VERSION = "http://snomed.info/sct/900000000000207008"
UCUM = "http://unitsofmeasure.org"
SPREC_SAMPLE_TYPE = "http://www.isber.org/sprec/type-of-sample"
SPREC_CONTAINER = "http://www.isber.org/sprec/type-of-primary-container"
SPREC_PRECENTRIFUGATION = "http://www.isber.org/sprec/pre-centrifugation"
SPREC_CENTRIFUGATION = "http://www.isber.org/sprec/centrifugation"
SPREC_SECOND_CENTRIFUGATION = "http://www.isber.org/sprec/second-centrifugation"
SPREC_POST_CENTRIFUGATION = "http://www.isber.org/sprec/post-centrifugation"
SPREC_STORAGE = "http://www.isber.org/sprec/long-term-storage"

MIABIS = "https://fhir.bbmri-eric.eu"
MIABIS_DETAILED_TYPE = f"{MIABIS}/CodeSystem/miabis-detailed-samply-type-cs"
MIABIS_COLLECTION_TYPE = f"{MIABIS}/CodeSystem/miabis-collection-sample-type-cs"
MIABIS_TEMPERATURE = f"{MIABIS}/CodeSystem/miabis-storage-temperature-cs"
MIABIS_CHARACTERISTIC = f"{MIABIS}/CodeSystem/miabis-characteristicCS"
MIABIS_DATASET_TYPE = f"{MIABIS}/CodeSystem/miabis-dataset-type-CS"
PROFILE_SAMPLE = f"{MIABIS}/StructureDefinition/miabis-sample"
PROFILE_DONOR = f"{MIABIS}/StructureDefinition/miabis-sample-donor"
PROFILE_COLLECTION = f"{MIABIS}/StructureDefinition/miabis-collection"
PROFILE_COLLECTION_ORG = f"{MIABIS}/StructureDefinition/miabis-collection-organization"
PROFILE_BIOBANK = f"{MIABIS}/StructureDefinition/miabis-biobank"
EXT_STORAGE_TEMPERATURE = (
    f"{MIABIS}/StructureDefinition/miabis-sample-storage-temperature-extension"
)
EXT_SAMPLE_COLLECTION = f"{MIABIS}/StructureDefinition/miabis-sample-collection-extension"
EXT_DATASET_TYPE = f"{MIABIS}/StructureDefinition/miabis-dataset-type-extension"
EXT_NUMBER_OF_SUBJECTS = f"{MIABIS}/StructureDefinition/miabis-number-of-subjects-extension"
EXT_ORG_DESCRIPTION = f"{MIABIS}/StructureDefinition/miabis-organization-description-extension"

# FHIR R4 required value sets: what a resource may carry (the tests check against these).
SPECIMEN_STATUSES = frozenset({"available", "unavailable", "unsatisfactory", "entered-in-error"})
CONSENT_STATUSES = frozenset(
    {"draft", "proposed", "active", "rejected", "inactive", "entered-in-error"}
)
GENDERS = frozenset({"male", "female", "other", "unknown"})
# MIABIS value sets (the codes of the code systems the profiles bind to).
MIABIS_DETAILED_TYPES = frozenset(
    {
        "WholeBlood",
        "BoneMarrowAspirate",
        "BoneMarrowWhole",
        "BoneMarrowPlasma",
        "Plasma",
        "Serum",
        "BuffyCoat",
        "PBMC",
        "PrimaryCells",
        "CerebrospinalFluid",
        "DNA",
        "RNA",
        "RedBloodCells",
        "Saliva",
        "Urine",
        "Other",
    }
)
MIABIS_COLLECTION_TYPES = frozenset(
    {
        "Blood",
        "BuffyCoat",
        "DNA",
        "OtherBodyFluid",
        "Plasma",
        "PrimaryCells",
        "RNA",
        "Serum",
        "Saliva",
        "Urine",
        "Other",
    }
)
MIABIS_TEMPERATURES = {
    "RT": "Room temperature",
    "2to10": "between 2 and 10 degrees Celsius",
    "-18to-35": "between -18 and -35 degrees Celsius",
    "-60to-85": "between -60 and -85 degrees Celsius",
    "LN": "liquid nitrogen, -150 to -196 degrees Celsius",
    "Other": "any other temperature or long time storage information",
}

# Our freezers' bands (biobank.storage.models.TEMPERATURE_BANDS) in MIABIS's code system,
# which has one liquid-nitrogen code and none for mechanical −150 °C freezers.
BAND_TO_MIABIS = {
    "RT": "RT",
    "2to10": "2to10",
    "-18to-35": "-18to-35",
    "-60to-85": "-60to-85",
    "below-135": "Other",
    "LN-vapour": "LN",
    "LN-liquid": "LN",
}
# Colder first: a MIABIS sample kept in several bands is counted under its coldest.
BAND_ORDER = ("LN-liquid", "LN-vapour", "below-135", "-60to-85", "-18to-35", "2to10", "RT")


class SampleType:
    """What one SPREC sample type is in SNOMED CT and MIABIS."""

    def __init__(
        self,
        sct: str,
        sct_display: str,
        detailed: str,
        collection: str,
        marrow_detailed: str | None = None,
    ) -> None:
        self.sct, self.sct_display = sct, sct_display
        self.detailed, self.collection = detailed, collection
        # Marrow-derived plasma and cells have their own MIABIS detailed types.
        self.marrow_detailed = marrow_detailed or detailed

    def miabis_detailed(self, material_sprec: str | None) -> str:
        """The MIABIS detailed sample type, given the primary material's SPREC type."""
        return self.marrow_detailed if material_sprec == "BMA" else self.detailed


# SPREC type → SNOMED CT (MII ConceptMap; PEL/PEN/CEN, absent there, as the cells they are)
# and MIABIS detailed / collection sample types.
SAMPLE_TYPES: dict[str, SampleType] = {
    "BLD": SampleType("258580003", "Whole blood specimen", "WholeBlood", "Blood"),
    "BMA": SampleType(
        "396997002",
        "Specimen from bone marrow obtained by aspiration",
        "BoneMarrowAspirate",
        "Other",
    ),
    "CSF": SampleType(
        "258450006", "Cerebrospinal fluid sample", "CerebrospinalFluid", "OtherBodyFluid"
    ),
    "PL1": SampleType("119361006", "Plasma specimen", "Plasma", "Plasma", "BoneMarrowPlasma"),
    "PL2": SampleType("119361006", "Plasma specimen", "Plasma", "Plasma", "BoneMarrowPlasma"),
    "SER": SampleType("119364003", "Serum specimen", "Serum", "Serum"),
    "BUF": SampleType("258587000", "Buffy coat", "BuffyCoat", "BuffyCoat"),
    "BFF": SampleType("258587000", "Buffy coat", "BuffyCoat", "BuffyCoat"),
    "CEL": SampleType(
        "404798000", "Peripheral blood mononuclear cell", "PBMC", "PrimaryCells", "PrimaryCells"
    ),
    "PEL": SampleType(
        "404798000", "Peripheral blood mononuclear cell", "PBMC", "PrimaryCells", "PrimaryCells"
    ),
    "CEN": SampleType(
        "404798000", "Peripheral blood mononuclear cell", "PBMC", "PrimaryCells", "PrimaryCells"
    ),
    "PEN": SampleType(
        "404798000", "Peripheral blood mononuclear cell", "PrimaryCells", "PrimaryCells"
    ),
    "RBC": SampleType("119351004", "Erythrocyte specimen", "RedBloodCells", "Other"),
    "SAL": SampleType("119342007", "Saliva specimen", "Saliva", "Saliva"),
    "URN": SampleType("278020009", "Spot urine sample", "Urine", "Urine"),
}
# Complex derivatives have no fluid SPREC type (until it is recorded, issue 16): the
# aliquot type's code names them.
DERIVATIVES: dict[str, SampleType] = {
    "DNA": SampleType("258566005", "Deoxyribonucleic acid specimen", "DNA", "DNA"),
    "RNA": SampleType("441673008", "Ribonucleic acid specimen", "RNA", "RNA"),
}

# The collection of each primary material, by its SPREC type: (method, body site).
COLLECTION = {
    "BLD": (("22778000", "Venipuncture"), ("29092000", "Venous structure")),
    "BMA": (("129316008", "Aspiration - action"), ("14016003", "Bone marrow structure")),
    "CSF": (("277762005", "Lumbar puncture"), ("61853006", "Spinal canal structure")),
}

# SPREC primary containers: (SNOMED container type, additives as SNOMED substances).
TUBE = ("83059008", "Tube, device")
CRYOTUBE = ("702269006", "General specimen container, no additive, sterile")
CONTAINERS: dict[str, tuple[tuple[str, str], tuple[tuple[str, str], ...]]] = {
    "PED": (TUBE, (("69519002", "Ethylenediamine tetra-acetate"),)),
    "SED": (TUBE, (("69519002", "Ethylenediamine tetra-acetate"),)),
    "SHP": (
        ("767382000", "Evacuated blood collection tube with heparin sodium"),
        (("50045009", "Heparin sodium"),),
    ),
    "HEP": (
        ("702284002", "Non-evacuated blood collection tube, lithium heparin"),
        (("372877000", "Heparin"),),
    ),
    "LHB": (
        ("702284002", "Non-evacuated blood collection tube, lithium heparin"),
        (("372877000", "Heparin"),),
    ),
    "SCI": (
        ("702296009", "Non-evacuated blood collection tube, sodium citrate"),
        (("412546005", "Sodium citrate"),),
    ),
    "PPS": (TUBE, ()),
    "GLS": (("76123001", "Glass tube, device"), ()),
}
DMSO = ("115535002", "Dimethyl sulfoxide")
# Viable cells are frozen in DMSO (SPREC CEL, BUF: viable).
CRYOPROTECTED = frozenset({"CEL", "BUF"})
# Sample types that exist only after a centrifugation (density gradient or plain).
SPUN = frozenset({"PL1", "PL2", "SER", "BUF", "BFF", "CEL", "PEL", "CEN", "PEN", "RBC"})
SPUN_TWICE = frozenset({"PL2"})

CENTRIFUGATION = ("73373003", "Specimen centrifugation")
STORAGE = ("1186936003", "Storage of specimen")
PROCESSING = ("9265001", "Specimen processing")

# The tube's state (biobank.samples.states) → FHIR Specimen.status. A tube that left for a
# recipient still exists (available); used up, destroyed or lost ones do not. The exact state
# travels in an extension.
STATUS = {
    "available": "available",
    "reserved": "available",
    "blocked": "available",
    "shipped": "available",
    "consumed": "unavailable",
    "destroyed": "unavailable",
    "missing": "unavailable",
}
# And back: which tube states a status search means.
STATES_FOR_STATUS: dict[str, tuple[str, ...]] = {}
for _state, _status in STATUS.items():
    STATES_FOR_STATUS.setdefault(_status, ())
    STATES_FOR_STATUS[_status] += (_state,)

GENDER = {"F": "female", "M": "male", "U": "unknown"}
MIABIS_SEX = {"F": "female", "M": "male", "U": "unknown"}

# HL7 v2 table 0493 (specimen condition), as FHIR R4 binds Specimen.condition.
V2_CONDITION = "http://terminology.hl7.org/CodeSystem/v2-0493"
CONDITION_FROZEN = ("FROZ", "Frozen")
CONDITION_ROOM = ("ROOM", "Room temperature")
CONDITION_COOL = ("COOL", "Cool")
COLD_BANDS = frozenset({"-18to-35", "-60to-85", "below-135", "LN-vapour", "LN-liquid"})

# Consent (FHIR R4 consent-state-codes) from the latest decision of a component.
CONSENT_STATUS = {"given": "active", "declined": "rejected", "withdrawn": "inactive"}
CONSENT_SCOPE = ("http://terminology.hl7.org/CodeSystem/consentscope", "research", "Research")
CONSENT_CATEGORY = ("http://loinc.org", "59284-0", "Patient Consent")
RESEARCH_PURPOSE = (
    "http://terminology.hl7.org/CodeSystem/v3-ActReason",
    "HRESCH",
    "healthcare research",
)

# ICD-10 codes of the trial's diagnoses, for the collection's diagnosis characteristic:
# C91.0 acute lymphoblastic leukaemia; mixed-phenotype acute leukaemia (ICD-O-3 9806/3)
# is coded C95.0 in ICD-10.
ICD10 = "http://hl7.org/fhir/sid/icd-10"
DIAGNOSES = {
    "B-ALL": ("C91.0", "Acute lymphoblastic leukaemia"),
    "B-MPAL": ("C95.0", "Acute leukaemia of unspecified cell type"),
}


def coding(system: str, code: str, display: str | None = None, **extra: Any) -> dict[str, Any]:
    """A Coding."""
    found: dict[str, Any] = {"system": system, "code": code}
    if extra:
        found.update(extra)
    if display:
        found["display"] = display
    return found


def concept(*codings: dict[str, Any], text: str | None = None) -> dict[str, Any]:
    """A CodeableConcept."""
    found: dict[str, Any] = {}
    if codings:
        found["coding"] = list(codings)
    if text:
        found["text"] = text
    return found


def sct(code_display: tuple[str, str]) -> dict[str, Any]:
    """A SNOMED CT coding from (code, display)."""
    return coding(SNOMED, code_display[0], code_display[1])


def sample_type(sprec_type: str | None, aliquot_code: str | None) -> SampleType | None:
    """What a tube holds in the standards' words, from its SPREC type (or, for a complex
    derivative without one, its aliquot type's code)."""
    if sprec_type and sprec_type in SAMPLE_TYPES:
        return SAMPLE_TYPES[sprec_type]
    return DERIVATIVES.get(aliquot_code or "")


def miabis_temperature(band: str | None) -> str | None:
    """MIABIS's storage temperature code for a freezer's band."""
    return BAND_TO_MIABIS.get(band) if band else None


def type_codings(
    base: str,
    sprec_type: str | None,
    aliquot_code: str | None,
    material_code: str | None,
    material_sprec: str | None,
) -> list[dict[str, Any]]:
    """Specimen.type: SNOMED CT first, then SPREC, MIABIS and the biobank's own code."""
    kind = sample_type(sprec_type, aliquot_code)
    codings = []
    if kind is not None:
        codings.append(coding(SNOMED, kind.sct, kind.sct_display))
    if sprec_type:
        codings.append(coding(SPREC_SAMPLE_TYPE, sprec_type))
    if kind is not None:
        codings.append(coding(MIABIS_DETAILED_TYPE, kind.miabis_detailed(material_sprec)))
    if aliquot_code:
        codings.append(coding(f"{base}/CodeSystem/aliquot-type", aliquot_code))
    elif material_code:
        codings.append(coding(f"{base}/CodeSystem/material", material_code))
    return codings
