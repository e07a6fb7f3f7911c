"""How a relying party knows a patient and a session: ``sub`` and ``sid``.

``sub`` is public or pairwise per sector (OpenID Connect Core §8.1), never the matricule; ``sid``
(Front-/Back-Channel Logout §2.1) is opaque per session and client. Tokens, delegations and
logout tokens all name people and sessions this way.
"""

import base64
import hashlib

from flask import current_app

from .account import Account
from .client import Client


def subject_for(account: Account, client: Client) -> str:
    """``sub`` as ``client`` sees it: public, or pairwise per sector (OpenID Connect Core §8.1)."""
    if client.subject_type == "public":
        return account.subject
    salt = current_app.config["PAIRWISE_SALT"]
    raw = hashlib.sha256(f"{client.sector_identifier}|{account.subject}|{salt}".encode()).digest()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def session_id_for(sso_session_id: str, client: Client) -> str:
    """``sid``: opaque per session and client, never the cookie value or its hash."""
    return hashlib.sha256(f"{sso_session_id}|{client.client_id}".encode()).hexdigest()[:32]
