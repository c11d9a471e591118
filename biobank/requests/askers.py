"""Who asks, as the request services see them: the authenticated user of this HTTP request,
for the requests API and the pages alike."""

from __future__ import annotations

from biobank.auth.service import Asker
from biobank.auth.web import current_asker, current_user


def asker() -> Asker:
    """The authenticated user as the request services see them: with their sub-studies if
    they are a researcher (only a researcher's sub-studies limit what they see)."""
    who = current_asker()
    if not who.researcher:
        return who
    return who._replace(substudies=tuple(current_user().substudy_codes))
