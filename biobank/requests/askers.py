"""Who asks, as the request services see them: the authenticated user of this HTTP request,
for the requests API and the pages alike."""

from __future__ import annotations

from biobank.auth.web import current_asker, current_user
from biobank.requests import lifecycle


def asker() -> lifecycle.Asker:
    """The authenticated user as the request services see them."""
    who = current_asker()
    # Only a researcher's sub-studies limit what they see: load them for researchers only.
    codes = tuple(current_user().substudy_codes) if who.role == "researcher" else ()
    return lifecycle.Asker(who.username, who.role, codes)
