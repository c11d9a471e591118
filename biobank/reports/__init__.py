"""Reports and pictures for the trial office: cohort completeness, freezer capacity,
inventory over time, shipments and requests (``GET /api/v1/reports/...``, the manager's
reports page). Each report is answered by aggregate SQL (one module per report), drawn by
``pictures`` and written as CSV through ``biobank.csvsafe``; what an asker may see is decided
in ``scope``, whose site part is ``biobank.auth.scope``'s."""
