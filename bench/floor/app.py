"""The floor: the smallest Flask program doing each machine scenario's work, measured beside the IdP.

A measuring stick, not code to copy (``BENCH_ARGS=--floor``, :mod:`bench.floor`).
Served by the same server as the IdP (granian, WSGI, same workers and threads), on the same
PostgreSQL (tables of its own, ``floor_*``, made by :mod:`bench.floor`), it does for each scenario what the IdP cannot avoid
doing, and nothing else:

- client credentials: HTTP Basic (SHA-256 compare), an RS256 RFC 9068 access token (joserfc),
  the token row and its audit row in one statement (psycopg 3, prepared, autocommit);
- refresh with rotation: HTTP Basic, the refresh token claimed (``UPDATE … RETURNING``), the
  patient read, the new token row and its audit row, one transaction; an access token and an
  ID token signed;
- userinfo: the bearer JWT verified, the token row with its patient read in one query;
- introspection: HTTP Basic, the JWT verified, the token row read;
- JWKS and discovery: the documents as bytes.

No rate limit, no access log, no metrics, no RFC error handling beyond refusing: the difference
between this and the IdP is what the IdP's framework layers cost.
"""

import base64
import hashlib
import hmac
import json
import os
import secrets
import time

import threading
from contextlib import contextmanager

import psycopg
from flask import Flask, Response, request
from joserfc import jwt
from joserfc.jwk import RSAKey

app = Flask(__name__)
KEY = RSAKey.import_key(json.loads(os.environ["FLOOR_KEY"]))  # the same in every worker
ISSUER = os.environ.get("FLOOR_ISSUER", "http://127.0.0.1")
CLIENT_ID, SECRET_HASH = os.environ["FLOOR_CLIENT_ID"], hashlib.sha256(os.environ["FLOOR_CLIENT_SECRET"].encode()).hexdigest()
_connections = threading.local()
JWKS = json.dumps({"keys": [KEY.as_dict(private=False)]}).encode()
DISCOVERY = json.dumps({"issuer": ISSUER, "token_endpoint": ISSUER + "/token", "jwks_uri": ISSUER + "/jwks.json",
                        "userinfo_endpoint": ISSUER + "/userinfo", "introspection_endpoint": ISSUER + "/introspect"}).encode()
ISSUE = ("WITH t AS (INSERT INTO floor_token (jti, family, client_id, account_id, scope, exp, refresh_hash) "
         "VALUES (%s, %s, %s, %s, %s, %s, %s)) "
         "INSERT INTO floor_audit (name, client_id, account_id, at, details) VALUES (%s, %s, %s, now(), %s)")
CLAIM = ("UPDATE floor_token SET rotated_at = now() WHERE refresh_hash = %s AND rotated_at IS NULL AND revoked_at IS NULL "
         "RETURNING family, account_id, scope")
ACCOUNT = "SELECT sub, given_name, family_name, email FROM floor_account WHERE id = %s"
USE = ("SELECT t.scope, t.exp, t.revoked_at, a.sub, a.given_name, a.family_name, a.email FROM floor_token t "
       "JOIN floor_account a ON a.id = t.account_id WHERE t.jti = %s")
INTROSPECT = "SELECT client_id, scope, exp, revoked_at FROM floor_token WHERE jti = %s"


class _Pool:
    """One autocommit connection per server thread (the server's threads are few and long-lived)."""

    @contextmanager
    def connection(self):
        if getattr(_connections, "value", None) is None:
            _connections.value = psycopg.connect(os.environ["FLOOR_DSN"], autocommit=True)
        yield _connections.value


pool = _Pool()


def _json(document: dict, status: int = 200) -> Response:
    return Response(json.dumps(document), status, content_type="application/json", headers={"Cache-Control": "no-store"})


def _client_authenticated() -> bool:
    client_id, _, secret = base64.b64decode(request.headers.get("Authorization", "")[6:]).decode().partition(":")
    return client_id == CLIENT_ID and hmac.compare_digest(SECRET_HASH, hashlib.sha256(secret.encode()).hexdigest())


def _access_token(sub: str, scope: str, now: int) -> tuple[str, str]:
    jti = secrets.token_urlsafe(24)
    claims = {"iss": ISSUER, "sub": sub, "aud": ISSUER, "client_id": CLIENT_ID, "iat": now, "exp": now + 3600, "jti": jti, "scope": scope}
    return jwt.encode({"alg": "RS256", "typ": "at+jwt", "kid": "floor"}, claims, KEY), jti


def _issue(connection, account: tuple | None, account_id: int | None, scope: str, family: str, grant_type: str) -> dict:
    now = int(time.time())
    sub = account[0] if account else CLIENT_ID
    access_token, jti = _access_token(sub, scope, now)
    answer = {"access_token": access_token, "token_type": "Bearer", "expires_in": 3600, "scope": scope}
    refresh_hash = None
    if account:
        answer["refresh_token"] = secrets.token_urlsafe(32)
        refresh_hash = hashlib.sha256(answer["refresh_token"].encode()).hexdigest()
        answer["id_token"] = jwt.encode({"alg": "RS256", "kid": "floor"}, {"iss": ISSUER, "sub": sub, "aud": CLIENT_ID, "iat": now,
                                                                            "exp": now + 300, "given_name": account[1]}, KEY)
    connection.execute(ISSUE, (jti, family, CLIENT_ID, account_id, scope, now + 3600, refresh_hash, "token:issued", CLIENT_ID,
                               account_id, json.dumps({"grant_type": grant_type, "scope": scope})), prepare=True)
    return answer


@app.post("/token")
def token():
    if not _client_authenticated():
        return _json({"error": "invalid_client"}, 401)
    grant_type = request.form.get("grant_type")
    if grant_type == "client_credentials":
        with pool.connection() as connection:
            return _json(_issue(connection, None, None, "openid", secrets.token_urlsafe(24), grant_type))
    if grant_type == "refresh_token":
        presented = hashlib.sha256(request.form.get("refresh_token", "").encode()).hexdigest()
        with pool.connection() as connection, connection.transaction():
            claimed = connection.execute(CLAIM, (presented,), prepare=True).fetchone()
            if claimed is None:
                return _json({"error": "invalid_grant"}, 400)
            family, account_id, scope = claimed
            account = connection.execute(ACCOUNT, (account_id,), prepare=True).fetchone()
            return _json(_issue(connection, account, account_id, scope, family, grant_type))
    return _json({"error": "unsupported_grant_type"}, 400)


def _verified_jti(value: str) -> str | None:
    try:
        claims = jwt.decode(value, KEY, algorithms=["RS256"]).claims
        jwt.JWTClaimsRegistry(iss={"essential": True, "value": ISSUER}).validate(claims)
        return claims["jti"]
    except Exception:
        return None


@app.get("/userinfo")
def userinfo():
    jti = _verified_jti(request.headers.get("Authorization", "")[7:])
    with pool.connection() as connection:
        row = connection.execute(USE, (jti,), prepare=True).fetchone() if jti else None
    if row is None or row[2] is not None or row[1] <= time.time():
        return _json({"error": "invalid_token"}, 401)
    return _json({"sub": row[3], "given_name": row[4], "family_name": row[5], "email": row[6]})


@app.post("/introspect")
def introspect():
    if not _client_authenticated():
        return _json({"error": "invalid_client"}, 401)
    jti = _verified_jti(request.form.get("token", ""))
    with pool.connection() as connection:
        row = connection.execute(INTROSPECT, (jti,), prepare=True).fetchone() if jti else None
    if row is None or row[3] is not None or row[2] <= time.time():
        return _json({"active": False})
    return _json({"active": True, "iss": ISSUER, "client_id": row[0], "scope": row[1], "exp": row[2], "jti": jti})


@app.get("/jwks.json")
def jwks():
    return Response(JWKS, content_type="application/json")


@app.get("/.well-known/openid-configuration")
def discovery():
    return Response(DISCOVERY, content_type="application/json")


@app.post("/seed")
def seed():
    """Set-up only: ``count`` patients, each with a token family (the load generator's ``tokens``)."""
    families = []
    with pool.connection() as connection:
        for number in range(int(request.args["count"])):
            account_id = connection.execute("INSERT INTO floor_account (sub, given_name, family_name, email) VALUES (%s, %s, %s, %s) "
                                            "RETURNING id", (secrets.token_urlsafe(24), f"Patient {number}", "Floor", None)).fetchone()[0]
            account = connection.execute(ACCOUNT, (account_id,)).fetchone()
            issued = _issue(connection, account, account_id, "openid profile offline_access", secrets.token_urlsafe(24), "authorization_code")
            families.append({"access_token": issued["access_token"], "refresh_token": issued["refresh_token"]})
    return _json({"tokens": families})

