"""``idp demo seed``: the demo data ``make run`` needs."""

from flask.cli import AppGroup

demo_cli = AppGroup("demo", help="Demo data for the embedded default.")
