"""Property-based tests (hypothesis) of the input parsers an attacker reaches first.

Each property holds for every input, not only the examples written down elsewhere: the
matricule validator, redirect-URI matching, scope and ``claims`` parsing, and the patient
forms (never a 500, whatever is typed). Example counts are kept small for ``make test``;
``make fuzz`` runs the same properties far longer (see tests/security/fuzzing.py).
"""

import json
import string
from datetime import date
from urllib.parse import urlsplit

import pytest
from hypothesis import assume, example, given, settings, strategies as st
from sqlalchemy import func, select

from idp import claims, client as clients, helpdesk_request, matricule
from idp.extensions import db
from tests.conftest import csrf_token
from tests.flows.test_activation import Wizard
from tests.security.fuzzing import examples, fuzz_settings, http_examples

pytestmark = pytest.mark.fuzz
pure = settings(max_examples=examples(100), deadline=None)
# Fixtures (the app, its client) are shared by a test's examples on purpose: state piling up
# (failed logins, requests filed) is part of what the forms must survive.
http_settings = fuzz_settings(http_examples())

# --- the matricule --------------------------------------------------------------------------

dates = st.dates(min_value=date(1850, 1, 1), max_value=date.today()).map(lambda day: day.strftime("%Y%m%d"))
valid_matricules = st.tuples(dates, st.integers(0, 999)).map(lambda parts: matricule.with_check_digits(f"{parts[0]}{parts[1]:03d}"))


@pure
@given(st.text())
def test_any_text_is_either_a_normalized_matricule_or_refused_with_a_reason(text):
    try:
        value = matricule.validate(text)
    except matricule.InvalidMatricule as refused:
        assert refused.reason
        return
    assert len(value) in (11, 13) and value.isascii() and value.isdigit()
    assert matricule.validate(value) == value


@pure
@given(valid_matricules, st.lists(st.sampled_from(" .-\t"), max_size=5), st.data())
def test_separators_typed_anywhere_are_ignored(value, separators, data):
    typed = value
    for separator in separators:
        at = data.draw(st.integers(0, len(typed)))
        typed = typed[:at] + separator + typed[at:]
    assert matricule.validate(typed) == value


@pure
@given(valid_matricules, st.integers(0, 9))
def test_adjacent_transpositions_in_the_payload_are_refused(value, position):
    """Verhoeff catches every adjacent transposition (Luhn misses 09/90)."""
    assume(value[position] != value[position + 1])
    swapped = value[:position] + value[position + 1] + value[position] + value[position + 2:]
    assert not matricule.is_valid(swapped)


@pure
@given(valid_matricules, st.integers(0, 12), st.sampled_from("٠١٢٣٤٥٦٧٨٩０１２３４５６７８９"))
def test_only_ascii_digits_count(value, position, lookalike):
    assert not matricule.is_valid(value[:position] + lookalike + value[position + 1:])


@pure
@given(st.text())
def test_a_masked_matricule_never_shows_more_than_year_and_last_two_digits(text):
    masked = matricule.mask(text)
    hidden = sum(1 for char in masked if char == "*")
    assert len(masked) == len(matricule.normalize(text))
    assert len(masked) - hidden <= 6


# --- redirect URIs --------------------------------------------------------------------------

uri_text = st.text(alphabet=string.ascii_letters + string.digits + ":/?#[]@!$&'()*+,;=%.-_~ \\", max_size=60)
loopback_registrations = st.sampled_from(["http://127.0.0.1/callback", "http://[::1]/cb", "http://127.0.0.1:8400/oauth?x=1"])


def _variants(registered: str):
    """Requested URIs an attacker derives from a registered one."""
    parts = urlsplit(registered)
    host = parts.netloc.rsplit(":", 1)[0] if not parts.netloc.endswith("]") else parts.netloc
    return st.one_of(
        st.builds(lambda port: registered.replace(parts.netloc, f"{host}:{port}", 1), st.integers(0, 99999)),
        st.builds(lambda extra: registered + extra, uri_text),
        st.builds(lambda extra: registered.replace(parts.netloc, extra + parts.netloc, 1), uri_text),
        st.builds(lambda extra: registered.replace(parts.netloc, parts.netloc + extra, 1), uri_text),
        st.builds(lambda scheme: registered.replace("http", scheme, 1), st.sampled_from(["https", "HTTP", "javascript", "ftp"])),
        uri_text,
    )


@pure
@given(uri_text, uri_text)
def test_a_web_client_redirect_uri_matches_only_itself(registered, requested):
    assert clients.redirect_uri_matches(registered, requested, native=False) == (registered == requested)


@pure
@example(("http://127.0.0.1/callback", "http://evil.example@127.0.0.1:8080/callback"))
@example(("http://127.0.0.1/callback", "http://127.0.0.1:8080/callback#fragment"))
@example(("http://127.0.0.1/callback", "http://127.0.0.1:0/callback"))
@example(("http://127.0.0.1/callback", "http://127.0.0.1:99999/callback"))
@given(loopback_registrations.flatmap(lambda registered: st.tuples(st.just(registered), _variants(registered))))
def test_a_native_loopback_redirect_uri_may_vary_its_port_and_nothing_else(pair):
    """RFC 8252 §7.3: any port on the loopback IP; host, path, query, userinfo, fragment stay."""
    registered, requested = pair
    if requested == registered or not clients.redirect_uri_matches(registered, requested, native=True):
        return
    reg, req = urlsplit(registered), urlsplit(requested)
    assert req.scheme == "http" and req.hostname == reg.hostname
    assert (req.path, req.query, req.fragment) == (reg.path, reg.query, "")
    assert "@" not in req.netloc
    assert req.port is not None and 0 < req.port < 65536


# --- scopes and the claims parameter ----------------------------------------------------------

scope_words = st.sampled_from([*clients.SUPPORTED_SCOPES, "admin", "openid2", "OPENID", "", "profile\x00"])
scope_strings = st.lists(scope_words, max_size=8).map(" ".join) | st.text(max_size=40)


@pure
@given(st.lists(st.sampled_from(clients.SUPPORTED_SCOPES), unique=True), scope_strings)
def test_a_client_is_granted_no_scope_it_is_not_registered_for(registered, requested):
    client = clients.Client(scope=" ".join(registered))
    allowed = (client.get_allowed_scope(requested) or "").split()
    assert set(allowed) <= set(registered)
    assert set(allowed) <= set(requested.split())


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
claims_objects = st.dictionaries(
    st.sampled_from(["userinfo", "id_token", "other"]),
    st.dictionaries(st.sampled_from([*claims.CLAIMS_SUPPORTED, "unknown"]), json_values, max_size=5) | json_values,
    max_size=3,
)


@pure
@given(st.one_of(claims_objects.map(json.dumps), json_values.map(json.dumps), st.text()))
def test_the_claims_parameter_is_parsed_or_refused_never_crashes(text):
    try:
        parsed = claims.parse_claims_request(text)
    except claims.InvalidClaimsRequest:
        return
    assert parsed is None or (isinstance(parsed, dict) and set(parsed) <= {"userinfo", "id_token"})
    for target in ("userinfo", "id_token"):
        assert all(isinstance(name, str) for name in claims.requested_claim_names(parsed, target))


@pytest.mark.parametrize("depth", [2_000, 100_000])
def test_a_deeply_nested_claims_parameter_is_refused(depth):
    with pytest.raises(claims.InvalidClaimsRequest):
        claims.parse_claims_request("[" * depth + "]" * depth)


@http_settings
@given(claims_text=st.one_of(claims_objects.map(json.dumps), st.text(max_size=50)), scope=scope_strings)
def test_any_scope_and_claims_at_the_authorization_endpoint_get_an_answer_not_a_crash(client, rp_client, claims_text, scope):
    response = client.get("/authorize", query_string={
        "response_type": "code", "client_id": rp_client.client_id, "redirect_uri": rp_client.redirect_uris[0], "scope": scope,
        "claims": claims_text, "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "code_challenge_method": "S256",
        "nonce": "n", "state": "s",
    })
    assert response.status_code in (303, 400), response.status_code


# --- form input -------------------------------------------------------------------------------

form_text = st.text(max_size=40) | st.sampled_from(["", " ", "\x00", "1893120105732", "<script>", "' OR 1=1 --", "\u202e", "a" * 300])


@http_settings
@given(matricule_text=form_text, password=form_text)
def test_any_login_input_gets_a_page_not_a_crash(client, patients, matricule_text, password):
    page = client.get("/login")
    response = client.post("/login", data={"csrf_token": csrf_token(page.get_data(as_text=True)), "matricule": matricule_text, "password": password})
    assert response.status_code in (303, 400, 429)
    assert "Traceback" not in response.get_data(as_text=True)


@http_settings
@given(matricule_text=form_text, code=form_text, has_code=st.sampled_from(["yes", "no", "", "maybe"]))
def test_any_activation_code_input_gets_a_page_not_a_crash(client, patients, pending, matricule_text, code, has_code):
    wizard = Wizard(client, patients)
    if client.get("/activation/code").status_code != 200:
        assert wizard.accept_cgu().status_code == 303
    response = wizard.code(matricule_text, code, has_code=has_code)
    assert response.status_code in (303, 400, 409, 429)


@http_settings
@given(fields=st.fixed_dictionaries({
    "matricule": form_text, "family_name": form_text, "given_name": form_text,
    "birth_date": st.dates().map(date.isoformat) | form_text, "contact_email": form_text, "contact_phone": form_text, "note": form_text,
}))
def test_any_no_code_request_input_gets_a_page_not_a_crash(app, client, fields):
    page = client.get("/activation/request")
    response = client.post("/activation/request", data={"csrf_token": csrf_token(page.get_data(as_text=True)), **fields})
    assert response.status_code in (303, 400, 429)
    db.session.rollback()


@http_settings
@given(field=st.sampled_from(["family_name", "given_name", "note", "contact_phone"]), before=st.text(max_size=5), after=st.text(max_size=5))
def test_a_nul_character_in_any_form_field_is_refused_and_nothing_is_stored(app, client, field, before, after):
    """PostgreSQL cannot store NUL in text: without the check the insert failed with a 500."""
    fields = {"matricule": "1893120105732", "family_name": "Schmit", "given_name": "Marie", "birth_date": "1990-01-01",
              "contact_email": "marie@example.lu", "contact_phone": "", "note": ""}
    page = client.get("/activation/request")
    response = client.post("/activation/request", data={
        "csrf_token": csrf_token(page.get_data(as_text=True)), **fields, field: before + "\x00" + after})
    assert response.status_code == 400
    assert "Caractères non autorisés" in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(helpdesk_request.HelpdeskRequest)) == 0


def test_a_nul_character_in_a_parameter_or_json_string_is_refused(client, rp_client):
    authorize = client.get("/authorize", query_string={"client_id": rp_client.client_id, "nonce": "n\x00"})
    assert authorize.status_code == 400
    registration = client.post("/register", data='{"client_name": "a\\u0000b"}', content_type="application/json")
    assert registration.status_code == 400 and registration.get_json()["error"] == "invalid_request"
