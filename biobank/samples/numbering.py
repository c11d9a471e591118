"""How this deployment numbers its tubes: the prefixes and length of the codes it issues
(``biobank.samples.barcodes`` issues and checks them)."""

from __future__ import annotations

from flask import current_app

from biobank.storage.naming import PREFIXES as CONTAINER_PREFIXES


class Numbering:
    """How this deployment numbers its tubes (from the app config)."""

    def __init__(
        self, aliquot_prefix: str = "IF", sample_prefix: str = "SM", digits: int = 8
    ) -> None:
        self.aliquot_prefix = aliquot_prefix
        self.sample_prefix = sample_prefix
        self.digits = digits

    @property
    def prefixes(self) -> set[str]:
        """Prefixes of codes this service issues (storage adds box and container codes)."""
        return {self.aliquot_prefix, self.sample_prefix, *CONTAINER_PREFIXES}


def numbering() -> Numbering:
    """This deployment's barcode numbering, from the config."""
    config = current_app.config
    return Numbering(
        config["BARCODE_PREFIX"], config["SAMPLE_BARCODE_PREFIX"], config["BARCODE_DIGITS"]
    )
