"""The signing-key cache (SIGNING_KEY_CACHE_SECONDS): fewer reads, never a wrong answer."""

from datetime import timedelta

import pytest
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError

from idp import clock, create_app, signing_key
from idp.extensions import db




def _sign(kid_and_key) -> str:
    kid, key = kid_and_key
    return jwt.encode({"alg": "RS256", "kid": kid}, {"iss": "x"}, key)


def test_signing_and_verifying_again_read_no_key_rows(app, statements):
    token = _sign(signing_key.active_key("RS256"))
    signing_key.verification_keys()
    statements.clear()
    assert _sign(signing_key.active_key("RS256"))
    assert jwt.decode(token, signing_key.verification_keys())
    assert not [sql for sql in statements if "signing_key" in sql]


@pytest.mark.settings(SIGNING_KEY_CACHE_SECONDS=0)
def test_without_the_cache_every_use_reads_the_keys(app, statements):
    signing_key.active_key("RS256")
    statements.clear()
    signing_key.active_key("RS256")
    assert [sql for sql in statements if "signing_key" in sql]


def test_a_rotated_key_signs_once_every_worker_publishes_it(app, client):
    """Pre-publication: JWKS answers are kept SIGNING_KEY_CACHE_SECONDS per worker, so a new key
    signs only after that long, and the old one until then."""
    old_kid, _ = signing_key.active_key("RS256")
    created = {row.kid for row in signing_key.rotate()}
    assert created <= {key["kid"] for key in client.get("/jwks.json").get_json()["keys"]}
    assert signing_key.active_key("RS256")[0] == old_kid
    clock.advance(timedelta(seconds=app.config["SIGNING_KEY_CACHE_SECONDS"] + 1))
    new_kid, _ = signing_key.active_key("RS256")
    assert new_kid != old_kid and new_kid in created


@pytest.mark.settings(SIGNING_KEY_CACHE_SECONDS=0)
def test_without_caches_a_rotated_key_signs_at_once(app):
    old_kid, _ = signing_key.active_key("RS256")
    created = {row.kid for row in signing_key.rotate()}
    assert signing_key.active_key("RS256")[0] in created


def test_a_key_created_by_another_instance_verifies_at_once(app, settings):
    signing_key.active_key("RS256")
    signing_key.verification_keys()  # this instance's cache now holds the old keys
    other = create_app(settings)
    other.instance_path = app.instance_path
    with other.app_context():
        signing_key.rotate(actor="other instance")
        token = _sign(signing_key.active_key("RS256"))
        db.session.remove()
    db.session.expire_all()
    assert jwt.decode(token, signing_key.verification_keys()).claims == {"iss": "x"}


def test_cached_keys_lapse_when_a_retired_key_leaves_the_jwks(app):
    kid, key = signing_key.active_key("RS256")
    token = _sign((kid, key))
    signing_key.rotate()
    assert jwt.decode(token, signing_key.verification_keys())  # the cache now holds the retired key
    clock.advance(timedelta(seconds=app.config["SIGNING_KEY_RETENTION"] + 2 * app.config["SIGNING_KEY_CACHE_SECONDS"] + 1))
    with pytest.raises(InvalidKeyIdError):
        jwt.decode(token, signing_key.verification_keys())
