"""WSGI entry point: ``idp serve`` (:mod:`idp.server`), or any WSGI server, serves ``app``.

Each worker imports this module and builds its own app after the fork, so no database
connection or Redis socket is shared between processes. Python warnings (a library's
deprecations) go through logging too, so every line a worker writes is JSON.
"""

import logging

from . import create_app

logging.captureWarnings(True)
app = create_app()
