"""Upstream identity: MyGuichet (SAML) and LuxTrust, as a service provider; sandbox stand-ins for development.

``upstream`` is the connector interface and registry, ``saml`` the python3-saml service provider,
``views`` the SAML endpoints (``/saml/<upstream>/...``) and the entry points, ``myguichet`` the
national-identifier consent and the activation without a letter, ``luxtrust`` linking, login and
step-up, ``identities`` the patient's settings page, ``sandbox`` the stand-in identity providers.
"""

from flask import Blueprint, Flask

blueprint = Blueprint("federation", __name__)


def init_app(app: Flask) -> None:
    """The federation pages, and LuxTrust as the means of a step-up the authorization endpoint asks for."""
    from .. import assurance
    from .luxtrust import step_up_response

    app.register_blueprint(blueprint)
    assurance.register_step_up(app, step_up_response)


@blueprint.app_context_processor
def _upstreams_for_templates() -> dict:
    from . import connectors

    def federation_enabled(name: str) -> bool:
        return connectors.is_enabled(name)

    return {"federation_enabled": federation_enabled}


from . import identities, luxtrust, myguichet, views  # noqa: E402,F401  (routes)
