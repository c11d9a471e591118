"""`flask --app wsgi demo load` (filled in below by the demo module)."""

from flask.cli import AppGroup

demo_cli = AppGroup("demo", help="Demo data.")
