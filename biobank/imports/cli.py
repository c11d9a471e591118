"""`flask --app wsgi import aliquots FILE.csv`."""

from flask.cli import AppGroup

import_cli = AppGroup("import", help="Bulk import of an existing inventory.")
