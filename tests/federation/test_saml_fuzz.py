"""Fuzzing the SAML response parser: whatever reaches the assertion consumer, the answer is a clean
refusal (or, for a mutation that leaves every signed byte intact, the normal hand-over), never a 500.

Bounded in the normal suite; ``make fuzz`` runs many more examples (``tests/security/fuzzing.py``).
"""

import base64

import pytest
from hypothesis import given, strategies as st

from idp.federation.sandbox.citizens import Citizen
from tests.federation.conftest import decoded, encoded, stand_in_answer
from tests.security.fuzzing import fuzz_settings

MARIE = Citizen("mg-fuzz", "Marie", "Schmit", "1970010199951", "marie@example.lu", None)
CLEAN_ANSWERS = {303, 400}


@pytest.fixture
def genuine_xml(client, federation) -> str:
    """One real answer of the stand-in MyGuichet, the seed every mutation starts from."""
    federation.myguichet.add_citizen(MARIE)
    started = client.get("/federation/myguichet/start")
    return decoded(stand_in_answer(federation, started.headers["Location"], MARIE.subject))


def post(client, saml_response: str):
    return client.application.test_client().post("/saml/myguichet/acs", data={"SAMLResponse": saml_response})


@pytest.mark.fuzz
@pytest.mark.settings(RATELIMIT_ENABLED=False)  # the consumer's rate limit would answer long runs with 429
@fuzz_settings(15)
@given(data=st.data())
def test_mutated_answers_are_refused_cleanly(client, genuine_xml, data):
    position = data.draw(st.integers(0, len(genuine_xml)))
    cut = data.draw(st.integers(0, 40))
    inserted = data.draw(st.sampled_from(["", "<", ">", "&", "&lt;", '"', "<x/>", "]]>", "<!--", "\x00", "é", "<!DOCTYPE d [<!ENTITY e 'x'>]>",
                                          "<saml:Assertion>", "xmlns:a='urn:x'", data.draw(st.text(max_size=20))]))
    mutated = genuine_xml[:position] + inserted + genuine_xml[position + cut:]
    assert post(client, encoded(mutated)).status_code in CLEAN_ANSWERS


@pytest.mark.fuzz
@pytest.mark.settings(RATELIMIT_ENABLED=False)  # the consumer's rate limit would answer long runs with 429
@fuzz_settings(15)
@given(raw=st.binary(max_size=2048))
def test_arbitrary_bytes_are_refused_cleanly(client, federation, raw):
    assert post(client, base64.b64encode(raw).decode()).status_code == 400


@pytest.mark.fuzz
@pytest.mark.settings(RATELIMIT_ENABLED=False)  # the consumer's rate limit would answer long runs with 429
@fuzz_settings(10)
@given(text=st.text(max_size=512))
def test_arbitrary_form_values_are_refused_cleanly(client, federation, text):
    assert post(client, text).status_code == 400
