"""FHIR R4 and MIABIS: the read-only API under /fhir and the bulk export (``fhir export``)."""
