"""SPREC (Standard PREanalytical Code) vocabulary for fluid samples.

Codes from the ISBER SPREC tables (Betsou et al., Biopreserv Biobank 2012, SPREC 2.0,
kept unchanged for fluids in 3.0). A fluid code has seven elements:
type - primary container - pre-centrifugation - centrifugation - second centrifugation -
post-centrifugation delay - long-term storage.
"""

from __future__ import annotations

from decimal import Decimal

SAMPLE_TYPES = {
    "ASC", "AMN", "BAL", "BLD", "BMA", "BMK", "BUC", "BUF", "BFF", "CEL", "CEN", "CLN", "CRD",
    "CSF", "DWB", "NAS", "PEL", "PEN", "PFL", "PL1", "PL2", "RBC", "SAL", "SEM", "SER", "SPT",
    "STL", "SYN", "TER", "U24", "URN", "URM", "URT", "ZZZ",
}

PRIMARY_CONTAINERS = {
    "ACD", "ADD", "CAT", "CPD", "CPT", "EDG", "HEP", "HIR", "LHG", "ORG", "PAX", "PED", "PET",
    "PI1", "PIX", "PPS", "PXD", "PXR", "SCI", "SHP", "SPO", "SST", "TEM", "TRC", "XXX", "ZZZ",
}

# Pre-centrifugation: delay between collection and processing, by temperature.
# (upper bound of the delay in hours, code at room temperature, code at 2–10 °C)
_PRECENTRIFUGATION = (
    (Decimal(2), "A", "B"),
    (Decimal(4), "C", "D"),
    (Decimal(8), "E", "F"),
    (Decimal(12), "G", "H"),
    (Decimal(24), "I", "J"),
    (Decimal(48), "K", "L"),
)
PRECENTRIFUGATION_TEMPERATURES = ("RT", "2-10C")

# Long-term storage codes used for this biobank's tubes.
STORAGE = {
    "D": "cryotube, −85 °C to −60 °C",
    "C": "cryotube in liquid nitrogen",
    "N": "cryotube in liquid nitrogen after −80 °C",
    "X": "unknown",
}


def precentrifugation_code(delay_hours: Decimal | None, temperature: str | None) -> str:
    """The SPREC pre-centrifugation letter for a delay and temperature; X if unknown."""
    if delay_hours is None or temperature is None:
        return "X"
    cold = temperature == "2-10C"
    for limit, room, chilled in _PRECENTRIFUGATION:
        if delay_hours < limit:
            return chilled if cold else room
    return "N" if cold else "M"


def fluid_code(sample_type: str, container: str, precentrifugation: str,
               centrifugation: str = "X", second_centrifugation: str = "X",
               post_centrifugation: str = "X", storage: str = "X") -> str:
    """A seven-element SPREC code."""
    return "-".join((sample_type, container, precentrifugation, centrifugation,
                     second_centrifugation, post_centrifugation, storage))
