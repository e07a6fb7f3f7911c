"""The JSON API relying parties call with a patient's access token (RFC 6750 bearer tokens).

``/api/v1/delegations`` manages the Assistants DSP of the record the token is for; ``/openapi.json``
describes it (OpenAPI 3.1).
"""

from flask import Blueprint

blueprint = Blueprint("api", __name__)

from . import delegations, openapi  # noqa: E402,F401  (routes)
