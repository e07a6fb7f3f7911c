"""WSGI entry point: ``gunicorn -c config/gunicorn.conf.py`` (or any WSGI server) serves ``app``.

Each worker builds its own app after the fork, so no database connection or Redis socket is
shared between processes.
"""

from . import create_app

app = create_app()
