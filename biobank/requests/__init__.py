"""Sample requests (issue 6): availability, requests, allocation, picking, shipping, recalls.

Importing the package registers its consent hooks (withdrawn tubes leave open requests;
recall notices name the request and recipient), so any process that loads the models has them.
"""

from biobank.requests import recalls as _recalls  # noqa: F401  (registers the consent hooks)
