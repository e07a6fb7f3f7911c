"""``idp clients ...``: the client registry from the command line."""

import hashlib
import json

import pytest
from sqlalchemy import func, select

from idp import audit, client as clients
from idp.extensions import db


def run(runner, *args: str):
    return runner.invoke(args=["clients", *args])


def run_json(runner, *args: str):
    result = run(runner, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def create(runner, *extra: str) -> dict:
    return run_json(runner, "create", "--name", "DSP viewer", "--redirect-uri", "https://dsp.example.lu/callback", *extra)


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def event_names() -> list[str]:
    return [event.name for event in reversed(audit.recent())]


def test_create_prints_the_secret_once_and_the_metadata(runner):
    document = create(runner, "--post-logout-redirect-uri", "https://dsp.example.lu/", "--first-party")
    assert document["client_secret"]
    assert document["client_name"] == "DSP viewer"
    assert document["redirect_uris"] == ["https://dsp.example.lu/callback"]
    assert document["post_logout_redirect_uris"] == ["https://dsp.example.lu/"]
    assert document["grant_types"] == ["authorization_code", "refresh_token"]
    assert document["scope"] == "openid profile email phone offline_access"
    assert document["token_endpoint_auth_method"] == "client_secret_basic"
    assert document["first_party"] is True and document["subject_type"] == "public"
    assert document["disabled"] is False
    shown = run_json(runner, "show", document["client_id"])
    assert "client_secret" not in shown and shown["client_name"] == "DSP viewer"


def test_client_secret_is_stored_hashed_not_plain(runner):
    document = create(runner)
    stored = clients.get_any(document["client_id"])
    assert stored.client_secret_hash == hashlib.sha256(document["client_secret"].encode()).hexdigest()
    assert document["client_secret"] not in json.dumps(clients.public_view(stored), default=str)


def test_create_public_client_has_no_secret(runner):
    document = run_json(runner, "create", "--name", "MyDSP", "--public", "--redirect-uri", "lu.esante.mydsp:/callback",
                        "--subject-type", "pairwise")
    assert document["client_secret"] is None
    assert document["token_endpoint_auth_method"] == "none"
    assert document["subject_type"] == "pairwise" and document["first_party"] is False


def test_create_machine_client_with_options(runner):
    document = run_json(runner, "create", "--name", "Laboratoire", "--grant-type", "client_credentials",
                        "--auth-method", "client_secret_post", "--scope", "openid")
    assert document["grant_types"] == ["client_credentials"]
    assert document["token_endpoint_auth_method"] == "client_secret_post"
    assert document["scope"] == "openid"


def test_create_private_key_jwt_client_reads_the_jwks_file(runner, tmp_path):
    jwks = {"keys": [{"kty": "EC", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
                      "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0", "kid": "rp-1"}]}
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks))
    document = create(runner, "--auth-method", "private_key_jwt", "--jwks-file", str(path))
    assert document["client_secret"] is None and document["jwks"] == jwks


def test_create_and_update_a_fapi2_client(runner, tmp_path):
    """``--profile fapi2``: the FAPI 2.0 Security Profile (idp.oauth.fapi2_profile); ``--profile none`` leaves it."""
    jwks = {"keys": [{"kty": "EC", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
                      "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0", "kid": "rp-1"}]}
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks))
    document = create(runner, "--auth-method", "private_key_jwt", "--jwks-file", str(path), "--profile", "fapi2")
    assert document["security_profile"] == "fapi2" and document["require_pushed_authorization_requests"] is True
    assert "security_profile: fapi2" in run(runner, "show", document["client_id"]).output
    left = run_json(runner, "update", document["client_id"], "--profile", "none")
    assert "security_profile" not in left and clients.get(document["client_id"]).security_profile is None


def test_a_fapi2_client_with_a_secret_is_refused(runner):
    result = run(runner, "create", "--name", "RP", "--redirect-uri", "https://rp.example.lu/cb", "--profile", "fapi2")
    assert result.exit_code == 1 and "private_key_jwt" in result.stderr
    unknown = run(runner, "create", "--name", "RP", "--redirect-uri", "https://rp.example.lu/cb", "--profile", "fapi1")
    assert unknown.exit_code == 1 and "security_profile" in unknown.stderr
    assert count(clients.Client) == 0


def test_private_key_jwt_without_jwks_is_rejected(runner):
    result = run(runner, "create", "--name", "RP", "--redirect-uri", "https://rp.example.lu/cb", "--auth-method", "private_key_jwt")
    assert result.exit_code == 1
    assert "jwks" in result.stderr
    assert count(clients.Client) == 0


def test_create_is_audited(runner):
    document = create(runner)
    events = audit.recent(name=audit.Event.CLIENT_CREATED.value)
    assert [(e.client_id, e.actor) for e in events] == [(document["client_id"], "cli")]


@pytest.mark.parametrize("redirect_uri", ["http://dsp.example.lu/callback", "https://dsp.example.lu/cb#frag", "dsp"])
def test_invalid_redirect_uri_is_rejected_and_nothing_written(runner, redirect_uri):
    result = run(runner, "create", "--name", "DSP viewer", "--redirect-uri", redirect_uri, "--json")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("Error: invalid_redirect_uri")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output
    assert count(clients.Client) == 0
    assert count(audit.AuditEvent) == 0


def test_usage_errors_exit_2(runner):
    assert run(runner, "create", "--name", "X", "--subject-type", "global").exit_code == 2
    assert run(runner, "create", "--name", "X", "--public", "--auth-method", "client_secret_post").exit_code == 2
    assert run(runner, "create", "--redirect-uri", "https://x.example.lu/cb").exit_code == 2
    assert count(clients.Client) == 0


def test_list_shows_every_client(runner):
    first = create(runner)
    second = run_json(runner, "create", "--name", "MyDSP", "--public", "--redirect-uri", "lu.esante.mydsp:/callback")
    run_json(runner, "disable", second["client_id"])
    listed = run_json(runner, "list")
    assert [(d["client_id"], d["disabled"]) for d in listed] == [(first["client_id"], False), (second["client_id"], True)]
    assert all("client_secret" not in d for d in listed)


def test_show_unknown_client_fails(runner):
    result = run(runner, "show", "nope", "--json")
    assert result.exit_code == 1 and "no client" in result.stderr and result.stdout == ""


def test_update_changes_only_the_given_options(runner):
    document = create(runner, "--post-logout-redirect-uri", "https://dsp.example.lu/")
    updated = run_json(runner, "update", document["client_id"], "--name", "DSP viewer 2",
                       "--redirect-uri", "https://dsp.example.lu/cb2", "--redirect-uri", "https://dsp.example.lu/cb3")
    assert updated["client_name"] == "DSP viewer 2"
    assert updated["redirect_uris"] == ["https://dsp.example.lu/cb2", "https://dsp.example.lu/cb3"]
    assert updated["post_logout_redirect_uris"] == ["https://dsp.example.lu/"]
    assert updated["scope"] == document["scope"] and updated["grant_types"] == document["grant_types"]
    event = audit.recent(name=audit.Event.CLIENT_UPDATED.value)[0]
    assert event.client_id == document["client_id"] and event.details["fields"] == ["name", "redirect_uris"]
    assert clients.get(document["client_id"]).check_client_secret(document["client_secret"])


def test_update_first_party_flag_both_ways(runner):
    document = create(runner)
    assert run_json(runner, "update", document["client_id"], "--first-party")["first_party"] is True
    assert run_json(runner, "update", document["client_id"], "--third-party")["first_party"] is False


def test_invalid_update_writes_nothing(runner):
    document = create(runner)
    events_before = count(audit.AuditEvent)
    result = run(runner, "update", document["client_id"], "--name", "Renamed", "--redirect-uri", "http://evil.example/cb")
    assert result.exit_code == 1 and "invalid_redirect_uri" in result.stderr
    db.session.expire_all()
    stored = clients.get_any(document["client_id"])
    assert stored.name == "DSP viewer" and stored.redirect_uris == ["https://dsp.example.lu/callback"]
    assert count(audit.AuditEvent) == events_before


def test_update_without_options_is_a_usage_error(runner):
    document = create(runner)
    assert run(runner, "update", document["client_id"]).exit_code == 2


def test_disable_and_enable(runner):
    document = create(runner)
    assert run_json(runner, "disable", document["client_id"])["disabled"] is True
    assert clients.get(document["client_id"]) is None
    assert run_json(runner, "enable", document["client_id"])["disabled"] is False
    assert clients.get(document["client_id"]) is not None
    assert event_names()[-2:] == ["client:disabled", "client:updated"]


def test_rotate_secret_replaces_the_secret(runner):
    document = create(runner)
    rotated = run_json(runner, "rotate-secret", document["client_id"])
    assert rotated["client_id"] == document["client_id"] and rotated["client_secret"] != document["client_secret"]
    stored = clients.get(document["client_id"])
    assert stored.check_client_secret(rotated["client_secret"])
    assert not stored.check_client_secret(document["client_secret"])
    assert event_names()[-1] == "client:secret_rotated"


def test_rotate_secret_of_public_client_fails(runner):
    document = run_json(runner, "create", "--name", "MyDSP", "--public", "--redirect-uri", "lu.esante.mydsp:/callback")
    result = run(runner, "rotate-secret", document["client_id"], "--json")
    assert result.exit_code == 1 and result.stdout == ""
    assert event_names() == ["client:created"]


def test_initial_token_can_register_a_client(runner, client):
    document = run_json(runner, "initial-token", "--expires-in", "600", "--note", "pharmacie")
    assert document["expires_at"].endswith("Z")
    response = client.post("/register", headers={"Authorization": f"Bearer {document['initial_access_token']}"},
                           json={"client_name": "Pharmacie", "redirect_uris": ["https://pharmacie.example.lu/cb"]})
    assert response.status_code == 201
    assert "client:initial_access_token_issued" in event_names()
    stored = db.session.scalar(select(clients.InitialAccessToken))
    assert stored.note == "pharmacie" and stored.token_hash != document["initial_access_token"]


def test_text_output_without_json(runner):
    result = run(runner, "create", "--name", "DSP viewer", "--redirect-uri", "https://dsp.example.lu/callback")
    assert result.exit_code == 0
    assert "client secret (shown once)" in result.stdout
