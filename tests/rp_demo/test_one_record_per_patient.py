"""One patient, one record: the DSP viewer and MyDSP open the same record in the DSP API and see
one trail, because the access token's ``sub`` belongs to the resource server, not to the client
(RFC 9068 §6); each app still knows the patient by its own ``sub`` (OpenID Connect Core §8.1).

MyDSP logs in through the provider's test client standing in for the system browser; the DSP
viewer is driven through its own test client; the provider, the viewer, MyDSP's loopback
receiver and the DSP API are live servers on loopback.
"""

import queue
import re
import threading

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import KeySet

from idp import delegation
from idp.extensions import db
from rp_demo.mydsp import MyDsp
from tests.conftest import csrf_token
from tests.oauth.conftest import hidden_fields
from tests.rp_demo.test_viewer import current_visit, log_in as viewer_log_in, text


@pytest.fixture
def family(patients):
    parent = patients.create(given_name="Hector", family_name="Doe", birth="19840214", email=None, mobile="+352621000601")
    child = patients.create(given_name="Rita", family_name="Doe", birth="20160520", email=None, mobile="+352621000602")
    delegation.grant(child.account, parent.account, created_by=child.account)
    db.session.commit()
    return parent, child


def mydsp_log_in(app: MyDsp, client, patients, patient, provider) -> None:
    """MyDSP's login, the provider's test client playing the system browser (consent included)."""
    opened, outcome = queue.Queue(), {}
    worker = threading.Thread(target=lambda: outcome.update(claims=app.login(opened.put, timeout=60)))
    worker.start()
    authorize = opened.get(timeout=10)[len(provider.url):]
    patients.login(patient, next_url=authorize)
    consent_page = client.get(authorize)
    decided = client.post("/authorize", data={**hidden_fields(consent_page.get_data(as_text=True)), "decision": "allow"})
    assert decided.status_code == 303, decided.get_data(as_text=True)
    requests.get(decided.headers["Location"], timeout=10)
    worker.join(timeout=30)
    assert "claims" in outcome, "MyDSP's login did not finish"


def viewer_record(web, provider, record: dict) -> dict:
    """What the viewer read from the DSP API for ``record`` (its own or an opened one), and whom
    its token names there (the viewer's tokens are DPoP-bound: the test reads, never presents, them)."""
    keys = KeySet.import_key_set(requests.get(provider.url + "/jwks.json", timeout=10).json())
    claims = jwt.decode(record["token"]["access_token"], keys).claims
    return {"subject": claims["sub"], "acting": claims.get("act"), "documents": record["documents"]}


def test_the_same_patient_through_the_viewer_and_mydsp_sees_one_record_and_one_trail(
        client, patients, provider, dsp_api, viewer, demo_clients, family, tmp_path):
    parent, child = family
    mydsp = MyDsp(provider.url, dsp_api.url, token_file=tmp_path / "mydsp" / "tokens.json")
    mydsp_log_in(mydsp, client, patients, parent, provider)
    own_in_app, child_in_app = mydsp.records()
    assert child_in_app["name"] == "Rita Doe"
    through_app = mydsp.open_record(child_in_app["sub"])
    own_through_app = mydsp.open_record(own_in_app["sub"])

    web = viewer.app.test_client()
    viewer_log_in(web, client, patients, parent, provider, viewer)
    assert web.get("/dossier").status_code == 200  # Hector's own record, read from the DSP API
    own_through_viewer = viewer_record(web, provider, current_visit(web)["user"] | {"token": current_visit(web)["token"]})
    page = text(web.get("/dossiers"))
    child_in_viewer = re.findall(r'name="sub" value="([^"]+)"', page)[1]
    assert child_in_viewer != child_in_app["sub"], "each app knows Rita by its own sub"
    assert web.post("/dossiers/ouvrir", data={"csrf_token": csrf_token(page), "sub": child_in_viewer}).status_code == 302
    assert web.get("/dossier").status_code == 200  # the viewer reads the record from the DSP API
    through_viewer = viewer_record(web, provider, current_visit(web)["record"])

    assert through_viewer["subject"] == through_app["subject"], "one record for Rita in the DSP API"
    assert through_viewer["documents"] == through_app["documents"]
    assert through_viewer["acting"] == through_app["acting"], "Hector is one assistant for the DSP API"
    assert own_through_viewer["subject"] == own_through_app["subject"], "one record for Hector too"

    trail = dsp_api.app.extensions["dsp_api"]["trail"].for_subject(through_app["subject"])
    assert {entry.client_id for entry in trail} == {"dsp-viewer", "mydsp"}, "one trail: the reads of both apps"
    assert {entry.actor for entry in trail} == {through_app["acting"]["sub"]}
    rows = re.findall(r"<tr>(.*?)</tr>", text(web.get("/dossier?onglet=tracabilite")), re.S)
    apps = {re.sub(r"\s+", " ", cell).strip() for row in rows for cell in re.findall(r"<td>(.*?)</td>", row, re.S)[2:]}
    assert {"MyDSP (application mobile)", "DSP (site web)"} <= apps, "the viewer's Traçabilité shows MyDSP's read too"
    assert all("Assistant DSP : Hector Doe" in row for row in rows if "<td>" in row), "each read by Hector, named"
