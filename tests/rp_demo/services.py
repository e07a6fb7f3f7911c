"""The demo relying parties against a live provider: each service on its own loopback port.

``provider`` serves the test's app; ``dsp_api`` and ``viewer`` serve the rp_demo apps pointed
at it; ``demo_clients`` registers the two demo clients (``idp demo seed``) for those URLs, which
makes the viewer's key in the app's instance folder, where the viewer reads it.
A test sets the DSP API's settings with ``@pytest.mark.parametrize("dsp_api_config", [{...}])``.
"""

from pathlib import Path

import pytest

from idp import demo
from idp.extensions import db
from rp_demo import dsp_api as dsp_api_app, viewer as viewer_app
from tests.support.browser import LiveServer


@pytest.fixture
def provider(app):
    with LiveServer(app) as server:
        app.config["ISSUER"] = server.url
        yield server


@pytest.fixture
def dsp_api_config() -> dict:
    return {}


@pytest.fixture
def dsp_api(provider, dsp_api_config):
    api = dsp_api_app.create_app({"ISSUER": provider.url, **dsp_api_config})
    with LiveServer(api) as server:
        api.config["AUDIENCE"] = api.config["PUBLIC_URL"] = server.url
        yield server


@pytest.fixture
def viewer(provider, dsp_api):
    web = viewer_app.create_app({"ISSUER": provider.url, "DSP_API_URL": dsp_api.url, "SECRET_KEY": "viewer-test-secret",
                                 "CLIENT_KEY_FILE": str(Path(provider.app.instance_path) / demo.DSP_VIEWER_KEY_FILE)})
    with LiveServer(web) as server:
        web.config["PUBLIC_URL"] = server.url
        yield server


@pytest.fixture
def demo_clients(app, viewer, dsp_api):
    """The demo seed, with the relying parties where this test serves them."""
    app.config["DEMO_DSP_VIEWER_URL"] = viewer.url
    app.config["DEMO_DSP_API_AUDIENCE"] = dsp_api.url
    report = demo.seed()
    db.session.commit()
    return report
