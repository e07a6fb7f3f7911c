"""Federation fixtures: our provider and the two sandbox stand-ins as live servers on free loopback
ports, exchanging their metadata over HTTP as in development; a helper that drives the SAML round trip."""

import base64
import re
from dataclasses import dataclass
from html import unescape
from urllib.parse import urlsplit

import pytest

from idp.federation import saml
from idp.federation.keys import ensure_key_pair
from idp.federation.sandbox.app import create_sandbox_app
from idp.federation.sandbox.citizens import Citizen
from tests.support.browser import LiveServer


class _Deferred:
    """A WSGI app set after its server is bound: a stand-in must know its own URL (its port) first."""

    def __init__(self):
        self.app = None

    def __call__(self, environ, start_response):
        return self.app(environ, start_response)


@dataclass
class StandIn:
    kind: str
    server: LiveServer
    app: object

    @property
    def state(self):
        return self.app.extensions["sandbox_stand_in"]

    def add_citizen(self, citizen: Citizen) -> Citizen:
        self.state.citizens.append(citizen)
        return citizen


@dataclass
class Federation:
    provider: LiveServer
    myguichet: StandIn
    luxtrust: StandIn

    def stand_in(self, kind: str) -> StandIn:
        return getattr(self, kind)


def federation_settings(myguichet_url: str, luxtrust_url: str, **changes) -> dict:
    from flask import current_app

    settings = dict(current_app.config["FEDERATION"])
    upstreams = {name: dict(values) for name, values in settings["upstreams"].items()}
    upstreams["myguichet"]["metadata_url"] = myguichet_url + "/saml/metadata"
    upstreams["luxtrust"]["metadata_url"] = luxtrust_url + "/saml/metadata"
    for name, values in changes.items():
        upstreams[name].update(values)
    return {**settings, "upstreams": upstreams}


@pytest.fixture(scope="session")
def key_folder(tmp_path_factory):
    """Key pairs made once per run (RSA 3072 takes a while); each stand-in and the SP still have their own."""
    folder = tmp_path_factory.mktemp("saml-keys")
    ensure_key_pair(folder / "saml", "sp", "test SP")
    return folder


@pytest.fixture
def federation(app, key_folder):
    provider = LiveServer(app)
    app.config["ISSUER"] = provider.url
    stand_ins = {}
    for kind in ("myguichet", "luxtrust"):
        deferred = _Deferred()
        server = LiveServer(deferred)
        deferred.app = create_sandbox_app(kind, server.url, f"{provider.url}/saml/{kind}/metadata", key_folder, citizens=[],
                                          sp_home_url=provider.url)
        stand_ins[kind] = StandIn(kind, server, deferred.app)
    app.config["FEDERATION"] = {**federation_settings(stand_ins["myguichet"].server.url, stand_ins["luxtrust"].server.url),
                                "sp_key_file": str(key_folder / "saml" / "sp.key"), "sp_cert_file": str(key_folder / "saml" / "sp.crt")}
    saml.forget_metadata()
    yield Federation(provider, stand_ins["myguichet"], stand_ins["luxtrust"])
    for stand_in in stand_ins.values():
        stand_in.server.stop()
    provider.stop()
    saml.forget_metadata()


HIDDEN_RE = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


def hidden_fields(html: str) -> dict:
    return {name: unescape(value) for name, value in HIDDEN_RE.findall(html)}


def stand_in_answer(federation: Federation, location: str, citizen: str, device: str = "token") -> dict:
    """Play the citizen at the stand-in: open the AuthnRequest, pick ``citizen``; returns the HTTP-POST form."""
    kind = "myguichet" if location.startswith(federation.myguichet.server.url) else "luxtrust"
    stand_in = federation.stand_in(kind).app.test_client()
    parts = urlsplit(location)
    page = stand_in.get(parts.path + "?" + parts.query)
    assert page.status_code == 200, page.get_data(as_text=True)
    token = hidden_fields(page.get_data(as_text=True))["token"]
    answer = stand_in.post("/saml/sso", data={"token": token, "citizen": citizen, "device": device})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return hidden_fields(answer.get_data(as_text=True))


def post_to_acs(client, upstream: str, form: dict, follow: bool = True):
    """POST the answer to our ACS; with ``follow`` also come back to ``/continue`` like the browser does."""
    response = client.post(f"/saml/{upstream}/acs", data=form)
    if follow and response.status_code == 303 and "/continue" in response.headers["Location"]:
        return client.get(response.headers["Location"])
    return response


def saml_round_trip(client, federation: Federation, start_path: str, citizen: str, device: str = "token"):
    """Start at ``start_path`` on our side, authenticate at the stand-in, come back; returns our last response."""
    started = client.get(start_path)
    assert started.status_code == 303, started.get_data(as_text=True)
    location = started.headers["Location"]
    upstream = "myguichet" if location.startswith(federation.myguichet.server.url) else "luxtrust"
    return post_to_acs(client, upstream, stand_in_answer(federation, location, citizen, device))


def decoded(form: dict) -> str:
    return base64.b64decode(form["SAMLResponse"]).decode()


def encoded(xml: str) -> str:
    return base64.b64encode(xml.encode()).decode()
