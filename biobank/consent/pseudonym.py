"""Per-sub-study pseudonyms: how a researcher's sub-study names a patient.

A keyed hash (HMAC-SHA256) of the sub-study's code and the patient's study_id: the same
patient has the same pseudonym everywhere in one sub-study and an unrelated one in every
other, so two sub-studies cannot link their material by patient; without the key nobody can
compute one from a study_id. The key is the ``PSEUDONYM_KEY`` setting
(BIOBANK_PSEUDONYM_KEY), else derived from ``SECRET_KEY``: either way the same on every
worker and after a restart, and never in the repository. Managers map a pseudonym back
(``resolve``): the patients are few, each is hashed once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from biobank.auth import scope
from biobank.errors import NotFound
from biobank.patients.models import Patient

# "P-" and ten base-32 characters (50 bits: no two of a trial's patients share one in a
# sub-study); twelve characters fit where a label shows a study_id.
PREFIX = "P-"
LENGTH = 10
_DERIVATION = b"biobank pseudonym key v1"
# How every reader names the patient of an anonymised tube: there is none.
ANONYMISED = "anonymised"


def _key() -> bytes:
    configured = current_app.config.get("PSEUDONYM_KEY")
    if configured:
        return str(configured).encode()
    # Derived, not the secret itself: a pseudonym reveals nothing about the session key.
    secret = str(current_app.config["SECRET_KEY"]).encode()
    return hmac.new(secret, _DERIVATION, hashlib.sha256).digest()


def pseudonym(substudy_code: str, study_id: str) -> str:
    """The patient ``study_id`` as sub-study ``substudy_code`` knows them, e.g. P-7K3M9QXD2A."""
    digest = hmac.new(_key(), f"{substudy_code}\x00{study_id}".encode(), hashlib.sha256).digest()
    return f"{PREFIX}{base64.b32encode(digest).decode()[:LENGTH]}"


def namer(substudy_code: str) -> dict[str, str]:
    """A cache of pseudonyms for one sub-study (a request names the same patients often)."""
    return _Namer(substudy_code)


class _Namer(dict[str, str]):
    def __init__(self, substudy_code: str) -> None:
        super().__init__()
        self.code = substudy_code

    def __missing__(self, study_id: str | None) -> str:
        found = ANONYMISED if study_id is None else pseudonym(self.code, study_id)
        self[study_id] = found  # type: ignore[index]
        return found


def resolve(session: Session, substudy_code: str, name: str) -> str:
    """The study_id behind a pseudonym of a sub-study (of a patient of the asker's sites), or
    404."""
    if name.startswith(PREFIX) and len(name) == len(PREFIX) + LENGTH:
        for study_id in session.scalars(
            select(Patient.study_id).where(scope.patient_filter(scope.of(session), Patient.site_id))
        ):
            if hmac.compare_digest(pseudonym(substudy_code, study_id), name):
                return study_id
    raise NotFound(f"no patient is {name!r} in sub-study {substudy_code}")
