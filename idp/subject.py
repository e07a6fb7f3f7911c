"""How a relying party or a resource server knows a patient and a session: ``sub`` and ``sid``.

``sub`` is public or pairwise per sector (OpenID Connect Core §8.1), never the matricule; ``sid``
(Front-/Back-Channel Logout §2.1) is opaque per session and client. ID tokens, userinfo,
delegations and logout tokens name people as the client knows them. An access token for a
resource server names them as that resource server knows them, whichever client holds the
token (RFC 9068 §6): one identifier per patient per resource server, another for the next one.
"""

import base64
import hashlib

from flask import current_app

from .account import Account, AccountRow
from .client import Client


def subject_for(account: Account | AccountRow, client: Client) -> str:
    """``sub`` as ``client`` sees it: public, or pairwise per sector (OpenID Connect Core §8.1)."""
    if client.subject_type == "public":
        return account.subject
    salt = current_app.config["PAIRWISE_SALT"]
    raw = hashlib.sha256(f"{client.sector_identifier}|{account.subject}|{salt}".encode()).digest()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def subject_for_resource(account: Account | AccountRow, resource_audience: str) -> str:
    """``sub`` as the resource server of ``resource_audience`` sees it: pairwise per resource server
    (RFC 9068 §6), so that two resource servers cannot correlate their records of one patient."""
    salt = current_app.config["PAIRWISE_SALT"]
    raw = hashlib.sha256(f"resource|{resource_audience}|{account.subject}|{salt}".encode()).digest()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def subject_in(account: Account | AccountRow, client: Client, resource_audience: str | None) -> str:
    """``sub`` in a token ``client`` holds: for its resource server when it has one, else the client's own."""
    return subject_for_resource(account, resource_audience) if resource_audience else subject_for(account, client)


def session_id_for(sso_session_id: str, client: Client) -> str:
    """``sid``: opaque per session and client, never the cookie value or its hash."""
    return hashlib.sha256(f"{sso_session_id}|{client.client_id}".encode()).hexdigest()[:32]
