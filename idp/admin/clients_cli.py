"""``idp clients ...``: the client registry from the command line."""

from flask.cli import AppGroup

clients_cli = AppGroup("clients", help="Relying parties and machine clients.")
