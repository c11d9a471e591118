"""Sample requests (issue 6): availability, requests, allocation, picking, shipping, recalls.

Its consent hooks (withdrawn tubes leave open requests; recall notices name the request and
recipient) are connected by ``create_app`` (``biobank.requests.recalls.connect``).
"""
