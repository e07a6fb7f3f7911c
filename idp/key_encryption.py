"""Key-encryption keys (KEKs): the private signing keys and the admins' TOTP seeds are stored sealed with AES-256-GCM.

A database dump alone then does not let anyone sign tokens or make an admin's second factor. ``KEY_ENCRYPTION_KEYS`` holds one
or more high-entropy secrets separated by commas, from an ``IDP_*`` variable, a settings file or
``KEY_ENCRYPTION_KEYS_FILE`` (generated into the instance folder in the embedded setup). The
first seals, every one opens: to rotate, put a new secret first, run ``idp keys rewrap``, then
drop the old one. Each secret is stretched to an AES key with HKDF-SHA256; its id is a
fingerprint of that key, so no id has to be configured or kept in step.
"""

import base64
import hashlib
import os
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app

_HKDF_INFO = b"esante-idp signing-key encryption v1"
MINIMUM_SECRET_LENGTH = 32


class KeyEncryptionError(RuntimeError):
    """A sealed key cannot be opened: its KEK is not configured, or the data was altered."""


@lru_cache(maxsize=8)
def _derive(secret: str) -> tuple[str, bytes]:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(secret.encode())
    return hashlib.sha256(key).hexdigest()[:16], key


def parse_secrets(value: str) -> list[str]:
    """The configured secrets, in order; refuses short ones (they would be guessable)."""
    items = [item.strip() for item in (value or "").split(",") if item.strip()]
    if not items:
        raise ValueError("KEY_ENCRYPTION_KEYS is empty")
    for item in items:
        if len(item) < MINIMUM_SECRET_LENGTH:
            raise ValueError(f"each KEY_ENCRYPTION_KEYS secret needs at least {MINIMUM_SECRET_LENGTH} characters")
    return items


def _keys() -> list[tuple[str, bytes]]:
    return [_derive(secret) for secret in parse_secrets(current_app.config["KEY_ENCRYPTION_KEYS"])]


def current_kek_id() -> str:
    return _keys()[0][0]


def seal(plaintext: bytes, associated: str) -> tuple[str, str]:
    """Encrypt under the current KEK. Returns (kek id, base64url of nonce + ciphertext).

    ``associated`` binds the ciphertext to its row (kid and algorithm): a sealed key moved to
    another row does not open.
    """
    kek_id, key = _keys()[0]
    nonce = os.urandom(12)
    sealed = nonce + AESGCM(key).encrypt(nonce, plaintext, associated.encode())
    return kek_id, base64.urlsafe_b64encode(sealed).decode()


def open_sealed(kek_id: str, sealed: str, associated: str) -> bytes:
    keys = dict(_keys())
    if kek_id not in keys:
        raise KeyEncryptionError(f"the key-encryption key {kek_id} is not configured (KEY_ENCRYPTION_KEYS)")
    raw = base64.urlsafe_b64decode(sealed.encode())
    try:
        return AESGCM(keys[kek_id]).decrypt(raw[:12], raw[12:], associated.encode())
    except InvalidTag:
        raise KeyEncryptionError(f"a key sealed with {kek_id} does not open: the stored data was altered") from None
