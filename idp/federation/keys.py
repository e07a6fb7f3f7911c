"""Signing key pairs for SAML, generated on first start into a private folder and reused.

Our service provider and each sandbox stand-in get their own pair; private keys never leave the
instance folder (mode 0600) and are never committed. A file lock makes two processes starting
together agree on one pair.
"""

import fcntl
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID


def ensure_key_pair(folder: Path, stem: str, common_name: str) -> tuple[Path, Path]:
    """``<folder>/<stem>.key`` and ``<stem>.crt`` (RSA 3072, self-signed, 10 years); created if missing."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    key_path, cert_path = folder / f"{stem}.key", folder / f"{stem}.crt"
    lock = os.open(folder / f"{stem}.lock", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (key_path.exists() and cert_path.exists()):
            key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
            name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
            now = datetime.now(timezone.utc)
            certificate = (
                x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
                .not_valid_after(now + timedelta(days=3650)).sign(key, hashes.SHA256())
            )
            key_bytes = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
            descriptor = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(key_bytes)
            cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        os.close(lock)
    return key_path, cert_path
