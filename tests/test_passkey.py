"""The relying-party rules of idp/passkey.py, one per security rule of issue 17, against answers
built from WebAuthn Level 3 by tests/support/soft_authenticator.py (not by the library we use)."""

import base64
import hashlib
import json
from datetime import timedelta

import pytest
from flask import session
from sqlalchemy import func, select

from idp import audit, clock, create_app, passkey, settings
from idp.extensions import db
from tests.conftest import TEST_SETTINGS
from tests.support.soft_authenticator import AttestationAuthority, SoftAuthenticator, b64url, unb64url

ORIGIN, RP_ID = "http://127.0.0.1:5000", "127.0.0.1"


@pytest.fixture
def owner(patients):
    return passkey.Owner(account_id=patients.create().account.id)


@pytest.fixture
def request_context(app):
    with app.test_request_context("/"):
        yield


def register(owner, authenticator, purpose=passkey.REGISTER, name="Téléphone", **changes):
    options, ceremony = passkey.registration_options(owner, purpose, user_name="M. Schmit (1985*******01)", display_name="Marie Schmit")
    answer = authenticator.create(json.loads(options), **changes)
    return passkey.finish_registration(owner, purpose, ceremony, json.dumps(answer), name)


def log_in(authenticator, purpose=passkey.LOGIN, **changes):
    options, ceremony = passkey.authentication_options(purpose)
    return passkey.authenticate(purpose, ceremony, json.dumps(authenticator.get(json.loads(options), **changes)))


def events(name: audit.Event) -> list[audit.AuditEvent]:
    return list(db.session.scalars(select(audit.AuditEvent).where(audit.AuditEvent.name == name.value)))


# --- RP ID and origin -------------------------------------------------------------------------


def test_the_rp_id_is_the_issuers_host_unless_set_to_a_parent_domain(app, request_context):
    app.config["ISSUER"] = "https://login.esante.lu"
    assert passkey.rp_id() == "login.esante.lu"
    assert passkey.allowed_origins() == ["https://login.esante.lu"]
    app.config["PASSKEY_RP_ID"] = "esante.lu"
    assert passkey.rp_id() == "esante.lu"


@pytest.mark.parametrize("rp_id", ["example.lu", "lu", "sante.lu", "evil-esante.lu"])
def test_an_rp_id_that_is_not_the_issuers_host_or_a_parent_of_it_refuses_to_start(rp_id, tmp_path):
    with pytest.raises(settings.InvalidSettings, match="PASSKEY_RP_ID"):
        create_app({**TEST_SETTINGS, "ISSUER": "https://login.esante.lu", "PASSKEY_RP_ID": rp_id,
                    "DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite3'}"})


def test_admin_aaguids_without_attestation_roots_refuse_to_start(tmp_path):
    with pytest.raises(settings.InvalidSettings, match="ADMIN_PASSKEY_ATTESTATION_ROOTS"):
        create_app({**TEST_SETTINGS, "ADMIN_PASSKEY_AAGUIDS": ["cb69481e-8ff7-4039-93ec-0a2729a154a8"],
                    "DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite3'}"})


@pytest.mark.parametrize("origin", ["http://127.0.0.1:5001", "https://127.0.0.1:5000", "http://localhost:5000", "https://esante.lu.evil.example"])
def test_an_answer_from_another_origin_is_refused(owner, request_context, origin):
    """§7.1 step 9 and §7.2 step 13: the exact origin, scheme and port included."""
    with pytest.raises(passkey.ResponseNotValid, match="origin"):
        register(owner, SoftAuthenticator(rp_id=RP_ID, origin=ORIGIN), origin=origin)
    authenticator = SoftAuthenticator(rp_id=RP_ID, origin=ORIGIN)
    register(owner, authenticator)
    with pytest.raises(passkey.ResponseNotValid, match="origin"):
        log_in(authenticator, origin=origin)
    assert log_in(authenticator).owner == owner


def test_an_answer_for_another_rp_id_is_refused(owner, request_context):
    with pytest.raises(passkey.ResponseNotValid, match="RP ID"):
        register(owner, SoftAuthenticator(rp_id=RP_ID, origin=ORIGIN), rp_id="evil.example")
    authenticator = SoftAuthenticator(rp_id=RP_ID, origin=ORIGIN)
    register(owner, authenticator)
    with pytest.raises(passkey.ResponseNotValid, match="RP ID"):
        log_in(authenticator, rp_id="evil.example")


# --- challenges -------------------------------------------------------------------------------


def test_a_challenge_is_single_use_and_spent_whatever_the_outcome(owner, request_context):
    authenticator = SoftAuthenticator(rp_id=RP_ID, origin=ORIGIN)
    register(owner, authenticator)
    options, ceremony = passkey.authentication_options(passkey.LOGIN)
    answer = json.dumps(authenticator.get(json.loads(options)))

    assert passkey.authenticate(passkey.LOGIN, ceremony, answer).owner == owner
    with pytest.raises(passkey.ChallengeNotValid):
        passkey.authenticate(passkey.LOGIN, ceremony, answer)

    options, ceremony = passkey.authentication_options(passkey.LOGIN)
    with pytest.raises(passkey.ResponseNotValid):
        passkey.authenticate(passkey.LOGIN, ceremony, json.dumps(authenticator.get(json.loads(options), origin="http://evil.example")))
    with pytest.raises(passkey.ChallengeNotValid):  # a failed try spent it too
        passkey.authenticate(passkey.LOGIN, ceremony, json.dumps(authenticator.get(json.loads(options))))


def test_a_challenge_expires(owner, request_context, app):
    authenticator = SoftAuthenticator(rp_id=RP_ID, origin=ORIGIN)
    register(owner, authenticator)
    options, ceremony = passkey.authentication_options(passkey.LOGIN)
    clock.advance(timedelta(seconds=app.config["PASSKEY_CHALLENGE_TTL"] + 1))

    with pytest.raises(passkey.ChallengeNotValid):
        passkey.authenticate(passkey.LOGIN, ceremony, json.dumps(authenticator.get(json.loads(options))))


def test_a_challenge_answers_only_its_own_purpose_and_owner(owner, request_context, patients):
    authenticator = SoftAuthenticator(rp_id=RP_ID, origin=ORIGIN)
    register(owner, authenticator)
    options, ceremony = passkey.authentication_options(passkey.ADMIN_LOGIN)
    with pytest.raises(passkey.ChallengeNotValid):
        passkey.authenticate(passkey.LOGIN, ceremony, json.dumps(authenticator.get(json.loads(options))))
    other = passkey.Owner(account_id=patients.create(email="b@example.lu").account.id)
    options, ceremony = passkey.registration_options(other, passkey.REGISTER, user_name="x", display_name="x")
    with pytest.raises(passkey.ChallengeNotValid):  # another patient's registration challenge
        passkey.finish_registration(owner, passkey.REGISTER, ceremony, json.dumps(SoftAuthenticator(rp_id=RP_ID, origin=ORIGIN)
                                                                                 .create(json.loads(options))), "x")


def test_challenges_are_random_kept_only_as_a_digest_and_never_in_the_page(owner, request_context):
    first = json.loads(passkey.authentication_options(passkey.LOGIN)[0])["challenge"]
    second = json.loads(passkey.authentication_options(passkey.LOGIN)[0])["challenge"]
    assert first != second and len(unb64url(first)) == 32
    stored = set(db.session.scalars(select(passkey.PasskeyChallenge.id)))
    assert hashlib.sha256(unb64url(first)).hexdigest() in stored and first not in stored


# --- registration -----------------------------------------------------------------------------


def test_registration_asks_a_discoverable_credential_user_verification_and_no_attestation(owner, request_context):
    options = json.loads(passkey.registration_options(owner, passkey.REGISTER, user_name="n", display_name="d")[0])

    assert options["rp"]["id"] == RP_ID
    assert options["authenticatorSelection"]["residentKey"] == "required"
    assert options["authenticatorSelection"]["requireResidentKey"] is True
    assert options["authenticatorSelection"]["userVerification"] == "required"
    assert options["attestation"] == "none"
    assert {param["alg"] for param in options["pubKeyCredParams"]} >= {-7, -257}


def test_the_user_handle_is_random_stable_and_never_the_matricule(patients, request_context):
    patient = patients.create()
    owner = passkey.Owner(account_id=patient.account.id)
    first = json.loads(passkey.registration_options(owner, passkey.REGISTER, user_name="n", display_name="d")[0])["user"]["id"]
    again = json.loads(passkey.registration_options(owner, passkey.REGISTER, user_name="n", display_name="d")[0])["user"]["id"]
    other = passkey.Owner(account_id=patients.create(email="z@example.lu").account.id)
    theirs = json.loads(passkey.registration_options(other, passkey.REGISTER, user_name="n", display_name="d")[0])["user"]["id"]

    assert first == again != theirs
    assert len(unb64url(first)) == 32
    assert patient.matricule.encode() not in unb64url(first) and patient.matricule not in first


def test_user_verification_is_required(owner, request_context):
    without = SoftAuthenticator(rp_id=RP_ID, origin=ORIGIN, user_verifying=False)
    with pytest.raises(passkey.ResponseNotValid, match="verif"):
        register(owner, without)
    authenticator = SoftAuthenticator(rp_id=RP_ID, origin=ORIGIN)
    register(owner, authenticator)
    authenticator.user_verifying = False
    with pytest.raises(passkey.ResponseNotValid, match="verif"):
        log_in(authenticator)


def test_credential_ids_are_unique_across_owners(owner, request_context, patients):
    other = passkey.Owner(account_id=patients.create(email="o@example.lu").account.id)
    register(owner, SoftAuthenticator(rp_id=RP_ID, origin=ORIGIN), credential_id=b"\x01" * 32)

    with pytest.raises(passkey.AlreadyRegistered):
        register(other, SoftAuthenticator(rp_id=RP_ID, origin=ORIGIN), credential_id=b"\x01" * 32)


def test_an_owner_holds_at_most_the_configured_number_of_passkeys(owner, request_context, app):
    app.config["PASSKEY_MAX_PER_OWNER"] = 2
    register(owner, SoftAuthenticator(rp_id=RP_ID, origin=ORIGIN))
    register(owner, SoftAuthenticator(rp_id=RP_ID, origin=ORIGIN))
    with pytest.raises(passkey.TooManyPasskeys):
        register(owner, SoftAuthenticator(rp_id=RP_ID, origin=ORIGIN))


def test_the_owners_passkeys_are_excluded_from_a_new_registration(owner, request_context):
    created = register(owner, SoftAuthenticator(rp_id=RP_ID, origin=ORIGIN))
    options = json.loads(passkey.registration_options(owner, passkey.REGISTER, user_name="n", display_name="d")[0])
    assert [item["id"] for item in options["excludeCredentials"]] == [created.credential_id]


# --- authentication ---------------------------------------------------------------------------


def test_amr_tells_device_bound_from_synced_and_acr_is_substantial(owner, request_context, patients):
    device_bound = SoftAuthenticator(rp_id=RP_ID, origin=ORIGIN)
    register(owner, device_bound)
    synced = SoftAuthenticator(rp_id=RP_ID, origin=ORIGIN, backup_eligible=True, backed_up=True)
    register(owner, synced)

    assert log_in(device_bound).amr == ["hwk", "user", "mfa"]
    assert log_in(synced).amr == ["swk", "user", "mfa"]
    assert log_in(synced).acr == log_in(device_bound).acr == "http://eidas.europa.eu/LoA/substantial"


def test_the_user_handle_must_name_the_credentials_owner(owner, request_context):
    authenticator = SoftAuthenticator(rp_id=RP_ID, origin=ORIGIN)
    register(owner, authenticator)
    with pytest.raises(passkey.ResponseNotValid, match="userHandle"):
        log_in(authenticator, user_handle=b"\x02" * 32)


def test_an_unknown_or_deleted_credential_is_refused_and_audited(owner, request_context):
    authenticator = SoftAuthenticator(rp_id=RP_ID, origin=ORIGIN)
    created = register(owner, authenticator)
    passkey.remove(owner, created)

    with pytest.raises(passkey.CredentialUnknown):
        log_in(authenticator)
    assert [event.details["reason"] for event in events(audit.Event.PASSKEY_LOGIN_FAILED)] == ["unknown_credential"]


def test_a_counter_that_goes_back_suspends_the_credential_audits_and_tells_the_patient(owner, request_context):
    from idp import messaging

    authenticator = SoftAuthenticator(rp_id=RP_ID, origin=ORIGIN)
    created = register(owner, authenticator)
    log_in(authenticator, sign_count=5)

    with pytest.raises(passkey.CounterWentBack):
        log_in(authenticator, sign_count=5)  # a clone that has not moved past the original
    with pytest.raises(passkey.CredentialSuspended):
        log_in(authenticator, sign_count=9)  # even a later count: the credential stays suspended

    db.session.refresh(created)
    assert created.suspended_at is not None and created.sign_count == 5
    [regression] = events(audit.Event.PASSKEY_COUNTER_REGRESSION)
    assert regression.account_id == owner.account_id and (regression.details["stored"], regression.details["received"]) == (5, 5)
    assert any("suspendue" in message.body for message in messaging.outbox_messages())


def test_authenticators_without_a_counter_keep_working(owner, request_context):
    """§6.1.1: a counter that stays zero (synced passkeys) is no regression."""
    authenticator = SoftAuthenticator(rp_id=RP_ID, origin=ORIGIN, uses_counter=False, backup_eligible=True)
    register(owner, authenticator)
    for _ in range(3):
        assert log_in(authenticator).amr[0] == "swk"


def test_a_change_of_backup_eligibility_is_refused(owner, request_context):
    """§6.1.3: the BE flag is fixed when the credential is made."""
    authenticator = SoftAuthenticator(rp_id=RP_ID, origin=ORIGIN)
    register(owner, authenticator)
    with pytest.raises(passkey.ResponseNotValid, match="backup"):
        log_in(authenticator, backup_eligible=True)


def test_a_patients_passkey_does_not_open_the_admin_pages(owner, request_context):
    authenticator = SoftAuthenticator(rp_id=RP_ID, origin=ORIGIN)
    register(owner, authenticator)
    with pytest.raises(passkey.CredentialUnknown):
        log_in(authenticator, purpose=passkey.ADMIN_LOGIN)


def test_a_tampered_signature_is_refused(owner, request_context):
    authenticator = SoftAuthenticator(rp_id=RP_ID, origin=ORIGIN)
    register(owner, authenticator)
    options, ceremony = passkey.authentication_options(passkey.LOGIN)
    answer = authenticator.get(json.loads(options))
    signature = bytearray(unb64url(answer["response"]["signature"]))
    signature[-1] ^= 1
    answer["response"]["signature"] = b64url(bytes(signature))
    with pytest.raises(passkey.ResponseNotValid):
        passkey.authenticate(passkey.LOGIN, ceremony, json.dumps(answer))


# --- admins: attestation ----------------------------------------------------------------------


ALLOWED_MODEL = "cb69481e-8ff7-4039-93ec-0a2729a154a8"


@pytest.fixture
def admin_owner(app):
    from idp import admin_account

    admin = admin_account.create("alice", "Correct-Horse-42-battery")
    db.session.commit()
    return passkey.Owner(admin_id=admin.id)


def test_admins_may_be_held_to_an_allow_list_of_attested_models(app, request_context, admin_owner):
    authority = AttestationAuthority(aaguid=ALLOWED_MODEL)
    app.config.update(ADMIN_PASSKEY_AAGUIDS=[ALLOWED_MODEL], ADMIN_PASSKEY_ATTESTATION_ROOTS=authority.root_pem)
    options = json.loads(passkey.registration_options(admin_owner, passkey.ADMIN_REGISTER, user_name="alice", display_name="alice")[0])
    assert options["attestation"] == "direct"

    allowed = register(admin_owner, SoftAuthenticator(rp_id=RP_ID, origin=ORIGIN, aaguid=ALLOWED_MODEL, attestation=authority),
                       purpose=passkey.ADMIN_REGISTER)
    assert allowed.aaguid == ALLOWED_MODEL and allowed.attestation_format == "packed"

    other_model = AttestationAuthority(aaguid="ee882879-721c-4913-9775-3dfcce97072a")
    with pytest.raises(passkey.PasskeyRefused):  # another vendor's root: the chain does not end at ours
        register(admin_owner, SoftAuthenticator(rp_id=RP_ID, origin=ORIGIN, aaguid=other_model.aaguid, attestation=other_model),
                 purpose=passkey.ADMIN_REGISTER)
    with pytest.raises(passkey.AttestationNotAllowed):  # no attestation at all
        register(admin_owner, SoftAuthenticator(rp_id=RP_ID, origin=ORIGIN, aaguid=ALLOWED_MODEL), purpose=passkey.ADMIN_REGISTER)
    app.config["ADMIN_PASSKEY_ATTESTATION_ROOTS"] = authority.root_pem + other_model.root_pem
    with pytest.raises(passkey.AttestationNotAllowed):  # a proven model, but not on the list
        register(admin_owner, SoftAuthenticator(rp_id=RP_ID, origin=ORIGIN, aaguid=other_model.aaguid, attestation=other_model),
                 purpose=passkey.ADMIN_REGISTER)


def test_patients_passkeys_ask_no_attestation_even_with_an_admin_allow_list(app, request_context, owner):
    authority = AttestationAuthority(aaguid=ALLOWED_MODEL)
    app.config.update(ADMIN_PASSKEY_AAGUIDS=[ALLOWED_MODEL], ADMIN_PASSKEY_ATTESTATION_ROOTS=authority.root_pem)
    options = json.loads(passkey.registration_options(owner, passkey.REGISTER, user_name="n", display_name="d")[0])
    assert options["attestation"] == "none"
    assert register(owner, SoftAuthenticator(rp_id=RP_ID, origin=ORIGIN)).attestation_format == "none"


def test_housekeeping_deletes_expired_challenges_only(request_context, app):
    passkey.authentication_options(passkey.LOGIN)
    clock.advance(timedelta(seconds=app.config["PASSKEY_CHALLENGE_TTL"] + 1))
    passkey.authentication_options(passkey.LOGIN)

    assert passkey.purge_expired(clock.now()) == {"passkey_challenge": 1}
    assert db.session.scalar(select(func.count()).select_from(passkey.PasskeyChallenge)) == 1
