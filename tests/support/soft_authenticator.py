"""A software WebAuthn authenticator and client, written from the specification for the tests.

It builds what a browser and an authenticator would send, byte by byte as WebAuthn Level 3
lays them out (§5.8.1 client data, §6.1 authenticator data, §6.5 attestation objects, §8.2 the
packed format, §6.3.3 assertion signatures), with ``cbor2`` and ``cryptography`` only, so the
provider's checks are tested against the standard's encoding, not against its own library.
Every field a test may want to get wrong is a parameter.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
import uuid
from dataclasses import dataclass, field

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ObjectIdentifier

FLAG_UP, FLAG_UV, FLAG_BE, FLAG_BS, FLAG_AT = 0x01, 0x04, 0x08, 0x10, 0x40
AAGUID_EXTENSION = ObjectIdentifier("1.3.6.1.4.1.45724.1.1.4")  # id-fido-gen-ce-aaguid (§8.2.1)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class AttestationAuthority:
    """A vendor's attestation root and the batch certificate of one authenticator model (§8.2.1)."""

    aaguid: str
    root_key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    batch_key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))

    def __post_init__(self) -> None:
        now = datetime.datetime.now(datetime.timezone.utc)
        root_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Test Attestation Root {self.aaguid}")])
        self.root = (x509.CertificateBuilder().subject_name(root_name).issuer_name(root_name).public_key(self.root_key.public_key())
                     .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
                     .not_valid_after(now + datetime.timedelta(days=365))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                                  key_encipherment=False, data_encipherment=False, key_agreement=False,
                                                  encipher_only=False, decipher_only=False), critical=True)
                     .sign(self.root_key, hashes.SHA256()))
        subject = x509.Name([
            x509.NameAttribute(NameOID.COUNTRY_NAME, "LU"), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test Vendor"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Authenticator Attestation"),
            x509.NameAttribute(NameOID.COMMON_NAME, "Test Key Batch 1"),
        ])
        self.batch = (x509.CertificateBuilder().subject_name(subject).issuer_name(root_name).public_key(self.batch_key.public_key())
                      .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
                      .not_valid_after(now + datetime.timedelta(days=365))
                      .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                      .add_extension(x509.UnrecognizedExtension(AAGUID_EXTENSION, cbor_free_octet_string(uuid.UUID(self.aaguid).bytes)),
                                     critical=False)
                      .sign(self.root_key, hashes.SHA256()))

    @property
    def root_pem(self) -> str:
        return self.root.public_bytes(serialization.Encoding.PEM).decode()


def cbor_free_octet_string(value: bytes) -> bytes:
    """DER ``OCTET STRING`` (the AAGUID extension's value)."""
    return bytes([0x04, len(value)]) + value


@dataclass
class SoftAuthenticator:
    """One authenticator holding discoverable credentials for one RP ID; a browser at ``origin``."""

    rp_id: str
    origin: str
    aaguid: str = "00000000-0000-0000-0000-000000000000"
    backup_eligible: bool = False
    backed_up: bool = False
    user_verifying: bool = True
    uses_counter: bool = True
    attestation: AttestationAuthority | None = None
    credentials: dict[bytes, dict] = field(default_factory=dict)

    # --- registration ------------------------------------------------------------------------

    def create(self, options: dict, *, origin: str | None = None, rp_id: str | None = None, challenge: str | None = None,
               credential_id: bytes | None = None) -> dict:
        """Answer ``navigator.credentials.create()`` options (their JSON form) as ``PublicKeyCredential.toJSON()``."""
        key = ec.generate_private_key(ec.SECP256R1())
        credential_id = credential_id or os.urandom(32)
        user_handle = unb64url(options["user"]["id"])
        self.credentials[credential_id] = {"key": key, "user_handle": user_handle, "count": 0}
        numbers = key.public_key().public_numbers()
        cose_key = cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")})
        attested = uuid.UUID(self.aaguid).bytes + len(credential_id).to_bytes(2, "big") + credential_id + cose_key
        auth_data = self._auth_data(rp_id or self.rp_id, FLAG_AT, 0) + attested
        client_data = self._client_data("webauthn.create", challenge or options["challenge"], origin)
        if self.attestation is not None and options.get("attestation") == "direct":
            signature = self.attestation.batch_key.sign(auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256()))
            statement = {"alg": -7, "sig": signature, "x5c": [self.attestation.batch.public_bytes(serialization.Encoding.DER)]}
            attestation_object = cbor2.dumps({"fmt": "packed", "attStmt": statement, "authData": auth_data})
        else:
            attestation_object = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return {
            "id": b64url(credential_id), "rawId": b64url(credential_id), "type": "public-key", "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
            "response": {"clientDataJSON": b64url(client_data), "attestationObject": b64url(attestation_object), "transports": ["internal"]},
        }

    # --- authentication ----------------------------------------------------------------------

    def get(self, options: dict, *, credential_id: bytes | None = None, origin: str | None = None, rp_id: str | None = None,
            sign_count: int | None = None, user_handle: bytes | None = None, backup_eligible: bool | None = None) -> dict:
        """Answer ``navigator.credentials.get()`` options with one held credential (the first by default)."""
        credential_id = credential_id or next(iter(self.credentials))
        held = self.credentials[credential_id]
        if sign_count is None:
            held["count"] += 1 if self.uses_counter else 0
            sign_count = held["count"]
        auth_data = self._auth_data(rp_id or self.rp_id, 0, sign_count, backup_eligible)
        client_data = self._client_data("webauthn.get", options["challenge"], origin)
        signature = held["key"].sign(auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256()))
        return {
            "id": b64url(credential_id), "rawId": b64url(credential_id), "type": "public-key", "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
            "response": {"clientDataJSON": b64url(client_data), "authenticatorData": b64url(auth_data), "signature": b64url(signature),
                         "userHandle": b64url(held["user_handle"] if user_handle is None else user_handle)},
        }

    # --- encoding ----------------------------------------------------------------------------

    def _auth_data(self, rp_id: str, extra_flags: int, sign_count: int, backup_eligible: bool | None = None) -> bytes:
        eligible = self.backup_eligible if backup_eligible is None else backup_eligible
        flags = FLAG_UP | extra_flags | (FLAG_UV if self.user_verifying else 0) | (FLAG_BE if eligible else 0)
        flags |= FLAG_BS if eligible and self.backed_up else 0
        return hashlib.sha256(rp_id.encode()).digest() + bytes([flags]) + sign_count.to_bytes(4, "big")

    def _client_data(self, kind: str, challenge: str, origin: str | None) -> bytes:
        return json.dumps({"type": kind, "challenge": challenge, "origin": origin or self.origin, "crossOrigin": False}).encode()
