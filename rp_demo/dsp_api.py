"""The DSP API: a small resource server holding the demo records (``python -m rp_demo.dsp_api``).

It verifies the provider's JWT access tokens offline (RFC 9068 §4: JWKS signature, ``typ``
``at+jwt``, ``iss``, ``aud`` naming this API, ``exp``) and refuses tokens meant for anyone
else. Records and their access trail are keyed by the token's ``sub``, which the provider
chooses for this API (RFC 9068 §6): one identifier per patient, whichever app (the DSP viewer,
MyDSP) holds the token. Every read is kept in the record's access trail with the ``act`` claim
(RFC 8693 §4.1), so the patient's "Traçabilité" tab tells the owner from an assistant acting for them.

Tokens bound to a key (``cnf.jkt``, RFC 9449 §6.1), as MyDSP's are, are accepted only under the
``DPoP`` scheme with a proof by that key, checked here as §7.1 and §4.3 say: signature, ``typ``,
``htm``, ``htu``, ``ath``, ``iat`` window, each ``jti`` once, and this API's own nonce (§9) when
``DPOP_NONCE_REQUIRED``. Unbound tokens (the DSP viewer's) keep working as Bearer tokens.
The records are the sample documents of ``data/documents.json``; the trail lives in memory,
as befits a demo.
"""

import argparse
import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

from flask import Flask, current_app, g, jsonify, request
from joserfc import jwk, jws
from joserfc.errors import JoseError
from werkzeug.serving import run_simple

from .protocol import DPOP_ALGORITHMS, DPOP_PROOF_REGISTRY, InvalidToken, ProviderError, ProviderKeys, SeenOnce, access_token_hash, discover, validate_claims

DOCUMENTS = json.loads((Path(__file__).parent / "data" / "documents.json").read_text(encoding="utf-8"))
DOCUMENTS_PER_RECORD = 5
REALM = "dsp-api"
MAX_PROOF_LENGTH = 8192


class DPoPRefused(Exception):
    """A presentation refused under RFC 9449 §7.1: ``invalid_token``, ``invalid_dpop_proof`` or
    ``use_dpop_nonce`` (§9), answered with a ``DPoP`` challenge."""

    def __init__(self, error: str, description: str):
        super().__init__(description)
        self.error = error


@dataclass(frozen=True)
class Access:
    at: int
    subject: str
    actor: str | None  # ``act.sub``: the assistant reading the record, None for the owner
    client_id: str | None


class AccessTrail:
    """Who read which record, newest first; thread-safe (the server is threaded)."""

    def __init__(self) -> None:
        self._entries: list[Access] = []
        self._lock = threading.Lock()

    def record(self, entry: Access) -> None:
        with self._lock:
            self._entries.append(entry)

    def for_subject(self, subject: str) -> list[Access]:
        with self._lock:
            return [entry for entry in reversed(self._entries) if entry.subject == subject]


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """``ISSUER``: the provider; ``AUDIENCE``: this API's identifier, required in ``aud``;
    ``PUBLIC_URL``: where clients reach it, the base of a DPoP proof's ``htu`` (default: the
    request's host URL); ``DPOP_PROOF_MAX_AGE``: how far (seconds) a proof's ``iat`` may be from
    now; ``DPOP_NONCE_REQUIRED``: proofs must carry a nonce of this API, each valid
    ``DPOP_NONCE_LIFETIME`` to twice that (§9)."""
    app = Flask(__name__)
    app.config.update(ISSUER="http://127.0.0.1:5000", AUDIENCE="http://127.0.0.1:5002", PUBLIC_URL=None,
                      DPOP_PROOF_MAX_AGE=60, DPOP_NONCE_REQUIRED=False, DPOP_NONCE_LIFETIME=300)
    app.config.update(config or {})
    app.extensions["dsp_api"] = {"trail": AccessTrail(), "keys": None, "lock": threading.Lock(),
                                 "proofs": SeenOnce(), "nonce_secret": secrets.token_bytes(32)}

    @app.get("/")
    def about():
        return jsonify(service="DSP API", issuer=app.config["ISSUER"], audience=app.config["AUDIENCE"])

    @app.get("/v1/record")
    def record():
        claims = _authenticate()
        actor = (claims.get("act") or {}).get("sub")
        _state()["trail"].record(Access(int(time.time()), claims["sub"], actor, claims.get("client_id")))
        current_app.logger.info("record %s read by %s", claims["sub"], f"assistant {actor}" if actor else "its owner")
        return jsonify(subject=claims["sub"], acting=claims.get("act"), documents=documents_for(claims["sub"]))

    @app.get("/v1/record/accesses")
    def accesses():
        """The record's trail; ``by_you`` marks the reads of whoever asks (the assistant acting, or
        the owner), whom the app knows by its own ``sub``, not by this API's identifier."""
        claims = _authenticate()
        caller = (claims.get("act") or {}).get("sub") or claims["sub"]
        return jsonify(accesses=[{**asdict(entry), "by_you": (entry.actor or entry.subject) == caller}
                                 for entry in _state()["trail"].for_subject(claims["sub"])])

    app.register_error_handler(InvalidToken, _invalid_token)
    app.register_error_handler(DPoPRefused, _dpop_refused)

    @app.after_request
    def hand_out_dpop_nonce(response):
        """§9: every answer carries the nonce the next proof must use (a 401 ``use_dpop_nonce`` too)."""
        if app.config["DPOP_NONCE_REQUIRED"]:
            response.headers["DPoP-Nonce"] = _nonce()
        return response
    app.register_error_handler(ProviderError, _provider_unavailable)
    return app


def documents_for(subject: str) -> list[dict[str, Any]]:
    """A stable pick of the sample documents per record, newest first, so records differ."""
    ranked = sorted(DOCUMENTS, key=lambda document: hashlib.sha256(f"{subject}|{document['id']}".encode()).digest())
    return sorted(ranked[:DOCUMENTS_PER_RECORD], key=lambda document: document["date"], reverse=True)


def _state() -> dict[str, Any]:
    return current_app.extensions["dsp_api"]


def _keys() -> ProviderKeys:
    state = _state()
    with state["lock"]:
        if state["keys"] is None:
            state["keys"] = ProviderKeys(discover(current_app.config["ISSUER"])["jwks_uri"])
        return state["keys"]


def _authenticate() -> dict[str, Any]:
    """The verified claims of the access token, or :class:`InvalidToken` / :class:`DPoPRefused`.

    A Bearer token (RFC 6750 §2.1) must not be bound to a key; a ``DPoP`` one must be, and come
    with a proof by that key (RFC 9449 §7.1).
    """
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    scheme, token = scheme.lower(), token.strip()
    if scheme not in ("bearer", "dpop") or not token:
        g.missing_token = True
        raise InvalidToken("an access token is required: Bearer, or DPoP with a proof")
    g.scheme = scheme
    claims = _keys().verify(token, typ="at+jwt").claims
    validate_claims(claims, issuer=current_app.config["ISSUER"], audience=current_app.config["AUDIENCE"])
    bound_key = (claims.get("cnf") or {}).get("jkt") if isinstance(claims.get("cnf"), dict) else None
    if scheme == "bearer":
        if bound_key:
            raise DPoPRefused("invalid_token", "this access token is DPoP-bound: present it with the DPoP scheme and a proof")
        return claims
    if not bound_key:
        raise DPoPRefused("invalid_token", "this access token is not DPoP-bound: present it as a Bearer token")
    if _verify_proof(request.headers.getlist("DPoP"), token) != bound_key:
        raise DPoPRefused("invalid_dpop_proof", "the DPoP proof is signed by another key than the token is bound to")
    return claims


def _verify_proof(values: list[str], access_token: str) -> str:
    """RFC 9449 §4.3 for this request; returns the proof key's thumbprint (RFC 7638)."""
    if len(values) != 1 or len(values[0]) > MAX_PROOF_LENGTH:
        raise DPoPRefused("invalid_dpop_proof", "exactly one DPoP proof is required")
    try:
        header = jws.extract_compact(values[0].encode(), registry=DPOP_PROOF_REGISTRY).headers()
        if header.get("typ") != "dpop+jwt":
            raise DPoPRefused("invalid_dpop_proof", "the DPoP proof must have typ dpop+jwt")
        if header.get("alg") not in DPOP_ALGORITHMS or not isinstance(header.get("jwk"), dict):
            raise DPoPRefused("invalid_dpop_proof", "the DPoP proof needs an alg of " + " ".join(DPOP_ALGORITHMS) + " and its jwk")
        key = jwk.import_key(header["jwk"])
        if key.is_private or key.key_type not in ("EC", "RSA"):
            raise DPoPRefused("invalid_dpop_proof", "the DPoP proof key must be a public asymmetric key")
        claims = json.loads(jws.deserialize_compact(values[0], key, registry=DPOP_PROOF_REGISTRY).payload)
    except DPoPRefused:
        raise
    except (JoseError, ValueError, TypeError, KeyError):
        raise DPoPRefused("invalid_dpop_proof", "the DPoP proof is not a valid signed JWT") from None
    if not isinstance(claims, dict) or not isinstance(claims.get("jti"), str) or not 0 < len(claims["jti"]) <= 256:
        raise DPoPRefused("invalid_dpop_proof", "the DPoP proof needs a jti")
    config = current_app.config
    if claims.get("htm") != request.method:
        raise DPoPRefused("invalid_dpop_proof", "the DPoP proof htm does not match the request method")
    url = (config["PUBLIC_URL"] or request.host_url).rstrip("/") + request.path
    if not isinstance(claims.get("htu"), str) or claims["htu"].split("?")[0].split("#")[0] != url:
        raise DPoPRefused("invalid_dpop_proof", "the DPoP proof htu does not match the request URL")
    if not isinstance(claims.get("iat"), int) or abs(time.time() - claims["iat"]) > config["DPOP_PROOF_MAX_AGE"]:
        raise DPoPRefused("invalid_dpop_proof", "the DPoP proof iat is too far from the current time")
    if not isinstance(claims.get("ath"), str) or not hmac.compare_digest(claims["ath"], access_token_hash(access_token)):
        raise DPoPRefused("invalid_dpop_proof", "the DPoP proof ath does not match the access token")
    if config["DPOP_NONCE_REQUIRED"] and not (isinstance(claims.get("nonce"), str) and _nonce_is_fresh(claims["nonce"])):
        raise DPoPRefused("use_dpop_nonce", "a fresh DPoP nonce of this API is required")
    thumbprint = key.thumbprint()
    if not _state()["proofs"].first_use(f"{thumbprint}|{claims['jti']}", 2 * config["DPOP_PROOF_MAX_AGE"]):
        raise DPoPRefused("invalid_dpop_proof", "this DPoP proof was already used")
    return thumbprint


def _nonce(window_offset: int = 0) -> str:
    """§9: a nonce of this API, stateless: an HMAC of the current time window."""
    window = int(time.time()) // current_app.config["DPOP_NONCE_LIFETIME"] + window_offset
    return hmac.new(_state()["nonce_secret"], str(window).encode(), hashlib.sha256).hexdigest()[:32]


def _nonce_is_fresh(nonce: str) -> bool:
    return any(hmac.compare_digest(nonce, _nonce(offset)) for offset in (0, -1))


def _dpop_challenge(**parameters: str) -> str:
    listed = "".join(f', {name}="{value}"' for name, value in parameters.items())
    return f'DPoP realm="{REALM}"{listed}, algs="{" ".join(DPOP_ALGORITHMS)}"'


def _invalid_token(error: InvalidToken):
    """RFC 6750 §3: no error code when no token came, ``invalid_token`` otherwise, under the
    scheme the token came with; without a token both schemes are offered (RFC 9449 §7.1)."""
    description = str(error).replace('"', "'")
    if g.get("missing_token"):
        challenge = f'Bearer realm="{REALM}", {_dpop_challenge()}'
        body = {"error_description": str(error)}
    elif g.get("scheme") == "dpop":
        challenge = _dpop_challenge(error="invalid_token", error_description=description)
        body = {"error": "invalid_token", "error_description": str(error)}
    else:
        challenge = f'Bearer realm="{REALM}", error="invalid_token", error_description="{description}"'
        body = {"error": "invalid_token", "error_description": str(error)}
    return _unauthorized(body, challenge)


def _dpop_refused(error: DPoPRefused):
    description = str(error).replace('"', "'")
    return _unauthorized({"error": error.error, "error_description": str(error)},
                         _dpop_challenge(error=error.error, error_description=description))


def _unauthorized(body: dict[str, str], challenge: str):
    response = jsonify(body)
    response.status_code = 401
    response.headers["WWW-Authenticate"] = challenge
    return response


def _provider_unavailable(error: ProviderError):
    current_app.logger.warning("provider unavailable: %s", error)
    response = jsonify(error="temporarily_unavailable", error_description="the identity provider's keys are unavailable")
    response.status_code = 503
    response.headers["Retry-After"] = "5"
    return response


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m rp_demo.dsp_api", description="The demo DSP API (resource server).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5002)
    parser.add_argument("--issuer", default="http://127.0.0.1:5000")
    parser.add_argument("--audience", default=None, help="this API's identifier (default: its own URL)")
    parser.add_argument("--dpop-nonce", action="store_true", help="DPoP proofs must carry a nonce of this API (RFC 9449 §9)")
    arguments = parser.parse_args(argv)
    audience = arguments.audience or f"http://{arguments.host}:{arguments.port}"
    public_url = f"http://{arguments.host}:{arguments.port}"
    app = create_app({"ISSUER": arguments.issuer, "AUDIENCE": audience, "PUBLIC_URL": public_url,
                      "DPOP_NONCE_REQUIRED": arguments.dpop_nonce})
    run_simple(arguments.host, arguments.port, app, threaded=True)


if __name__ == "__main__":
    main()
