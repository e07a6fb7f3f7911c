"""What patients read about services, scopes, claims and their trail, in plain words.

One place for the consent page, "Services autorisés" and "Traçabilité", so that a scope is
called the same everywhere and a new scope, claim or audit event is worded once. Each table
maps a protocol name to a lazy translation (French source, German and English catalogues);
anything not in a table is shown as it is rather than hidden.

Service names follow OpenID Connect Dynamic Client Registration §2.1: a client's
``client_name#de`` / ``client_name#en`` metadata names it in that language, ``client_name``
otherwise.
"""

from typing import Any, Iterable, Mapping

from authlib.oauth2.rfc6749 import scope_to_list
from flask_babel import LazyString, get_locale, gettext as _, lazy_gettext as _l

from . import audit
from .client import Client

SCOPES: dict[str, LazyString] = {
    "openid": _l("votre identifiant eSanté"),
    "profile": _l("vos nom, prénom et date de naissance"),
    "email": _l("votre adresse e-mail"),
    "phone": _l("votre numéro de téléphone mobile"),
    "matricule": _l("votre matricule"),
    "offline_access": _l("un accès qui reste valable après votre déconnexion"),
    "delegations": _l("la gestion des assistants de votre DSP"),
    "assisted_patients": _l("la liste des patients dont vous êtes l'assistant DSP"),
}

# Single claims a client may ask for with the ``claims`` parameter (OpenID Connect Core §5.5).
CLAIMS: dict[str, LazyString] = {
    "name": _l("votre nom complet"),
    "family_name": _l("votre nom"),
    "given_name": _l("votre prénom"),
    "birthdate": _l("votre date de naissance"),
    "locale": _l("votre langue"),
    "updated_at": _l("la date de mise à jour de votre profil"),
    "email": _l("votre adresse e-mail"),
    "email_verified": _l("si votre adresse e-mail a été vérifiée"),
    "phone_number": _l("votre numéro de téléphone mobile"),
    "phone_number_verified": _l("si votre numéro de mobile a été vérifié"),
    "matricule": _l("votre matricule"),
    "assisted_patients": _l("la liste des patients dont vous êtes l'assistant DSP"),
}


def scope_phrases(scope: str | Iterable[str] | None) -> list[str]:
    """One phrase per scope, in the order given; ``openid`` first when present."""
    names = scope_to_list(scope) if isinstance(scope, str) or scope is None else list(scope)
    return [str(SCOPES.get(name, name)) for name in names or []]


def claim_phrases(names: Iterable[str]) -> list[str]:
    return [str(CLAIMS.get(name, name)) for name in names]


def service_name(client: Client | None, client_id: str | None = None) -> str:
    """The client's name in the page's language (``client_name#<language>``), else its ``client_name``."""
    if client is None:
        return client_id or ""
    language = str(get_locale())
    return (client.extra_metadata or {}).get(f"client_name#{language}") or client.name


CHANNELS = {"sms": _l("SMS"), "email": _l("e-mail")}

# A one-time code's purpose (idp.flows.login, idp.activation, idp.self_service).
CODE_PURPOSES = {
    "login": _l("Code à usage unique envoyé par %(channel)s pour vous connecter"),
    "activation": _l("Code à usage unique envoyé par %(channel)s pour activer votre compte"),
    "contact_change": _l("Code à usage unique envoyé par %(channel)s pour confirmer vos nouvelles coordonnées"),
    "password_change": _l("Code à usage unique envoyé par %(channel)s pour changer votre mot de passe"),
    "password_creation": _l("Code à usage unique envoyé par %(channel)s pour créer votre mot de passe"),
    "password_recovery": _l("Code à usage unique envoyé par %(channel)s pour réinitialiser votre mot de passe"),
}

E = audit.Event
_EVENTS: dict[audit.Event, LazyString] = {
    E.LOGIN_PASSWORD_OK: _l("Mot de passe correct saisi pour vous connecter"),
    E.LOGIN_PASSWORD_FAILED: _l("Mot de passe incorrect saisi pour vous connecter"),
    E.LOGIN_LOCKED: _l("Connexion bloquée temporairement après plusieurs mots de passe incorrects"),
    E.NEW_DEVICE_LOGIN: _l("Connexion depuis un nouvel appareil"),
    E.LOGIN_SUCCEEDED: _l("Connexion à votre compte eSanté"),
    E.ONE_TIME_CODE_SENT: _l("Code à usage unique envoyé par %(channel)s"),
    E.ONE_TIME_CODE_SEND_FAILED: _l("Le code à usage unique n'a pas pu être envoyé par %(channel)s"),
    E.ONE_TIME_CODE_FAILED: _l("Code à usage unique incorrect saisi"),
    E.ONE_TIME_CODE_EXHAUSTED: _l("Code à usage unique refusé après trop d'essais"),
    E.SESSION_ENDED: _l("Session eSanté fermée"),
    E.LOGOUT: _l("Déconnexion de votre compte eSanté"),
    E.BACKCHANNEL_LOGOUT_DELIVERED: _l("%(service)s a été informé de votre déconnexion"),
    E.BACKCHANNEL_LOGOUT_ABANDONED: _l("%(service)s n'a pas pu être informé de votre déconnexion"),
    E.CONSENT_GRANTED: _l("Vous avez autorisé %(service)s à accéder à votre compte"),
    E.CONSENT_REVOKED: _l("Vous avez retiré l'accès de %(service)s à votre compte"),
    E.AUTHORIZATION_CODE_ISSUED: _l("Connexion à %(service)s"),
    E.AUTHORIZATION_CODE_REUSED: _l("Tentative de réutilisation d'une autorisation par %(service)s : ses accès ont été révoqués"),
    E.TOKEN_ISSUED: _l("Accès délivré à %(service)s"),
    E.TOKEN_REFRESHED: _l("Accès de %(service)s renouvelé"),
    E.TOKEN_REVOKED: _l("Accès de %(service)s révoqué"),
    E.REFRESH_TOKEN_REUSED: _l("Réutilisation d'un ancien accès de %(service)s : ses accès ont été révoqués"),
    E.LETTER_ISSUED: _l("Courrier d'activation émis"),
    E.ACTIVATION_CODE_FAILED: _l("Code d'activation incorrect saisi"),
    E.ACTIVATION_CODE_ACCEPTED: _l("Activation : code d'activation accepté"),
    E.ACTIVATION_PASSWORD_SET: _l("Activation : mot de passe choisi"),
    E.ACTIVATION_CHANNEL_VERIFIED: _l("Activation : %(channel)s confirmé par un code"),
    E.ACCOUNT_ACTIVATED: _l("Compte eSanté activé"),
    E.ACCOUNT_DISABLED: _l("Compte suspendu par l'Agence eSanté"),
    E.ACCOUNT_ENABLED: _l("Compte rétabli par l'Agence eSanté"),
    E.CONTACT_CHANGED: _l("Coordonnées modifiées (%(channel)s)"),
    E.CHANNEL_PREFERENCE_CHANGED: _l("Codes à usage unique désormais envoyés par %(channel)s"),
    E.PASSWORD_CHANGED: _l("Mot de passe modifié"),
    E.PASSWORD_CREATED: _l("Mot de passe créé"),
    E.PASSWORD_RECOVERY_STARTED: _l("Mot de passe oublié : code envoyé par %(channel)s"),
    E.PASSWORD_RESET: _l("Mot de passe réinitialisé"),
    E.DELEGATION_LOOKUP: _l("Recherche d'un assistant par son numéro assuré"),
    E.DELEGATION_GRANTED: _l("Assistant DSP ajouté"),
    E.DELEGATION_REVOKED: _l("Assistant DSP retiré"),
    E.DELEGATION_ENDED: _l("Accès d'un assistant DSP terminé"),
    E.DELEGATED_CONSENT_GRANTED: _l("Un assistant a autorisé %(service)s à accéder à votre dossier"),
    E.DELEGATED_TOKEN_ISSUED: _l("Accès à votre dossier par un assistant, via %(service)s"),
    E.PATIENT_SELECTED: _l("Votre dossier a été ouvert par un assistant, via %(service)s"),
    E.TRAIL_EXPORTED: _l("Traçabilité téléchargée"),
    E.FEDERATED_LOGIN_STARTED: _l("Connexion via %(upstream)s commencée"),
    E.FEDERATED_RESPONSE_REJECTED: _l("Réponse de %(upstream)s refusée"),
    E.FEDERATED_IDENTITY_LINKED: _l("%(upstream)s associé à votre compte"),
    E.FEDERATED_IDENTITY_UNLINKED: _l("%(upstream)s retiré de votre compte"),
    E.FEDERATED_LOGOUT: _l("Déconnexion de %(upstream)s"),
    E.STEP_UP_REFUSED: _l("Niveau de sécurité supérieur demandé mais indisponible"),
    E.NATIONAL_ID_CONSENT_GIVEN: _l("Consentement au partage de votre identifiant national par MyGuichet.lu"),
    E.NATIONAL_ID_CONSENT_REVOKED: _l("Consentement au partage de votre identifiant national retiré"),
    E.NOTIFICATION_FAILED: _l("Un message d'information n'a pas pu vous être envoyé"),
    E.PASSKEY_REGISTERED: _l("Clé d'accès « %(name)s » ajoutée"),
    E.PASSKEY_RENAMED: _l("Clé d'accès renommée « %(name)s »"),
    E.PASSKEY_REMOVED: _l("Clé d'accès « %(name)s » supprimée"),
    E.PASSKEY_LOGIN_FAILED: _l("Connexion refusée avec une clé d'accès"),
    E.PASSKEY_COUNTER_REGRESSION: _l("Clé d'accès suspendue : elle semble avoir été copiée"),
}
EVENTS: dict[str, LazyString] = {event.value: text for event, text in _EVENTS.items()}
UPSTREAMS = {"myguichet": "MyGuichet.lu", "luxtrust": "LuxTrust"}


def _how_logged_in(amr: list[str], channel: str | None) -> str | None:
    """The means of a login (RFC 8176 ``amr`` values), as the patient knows them."""
    if "hwk" in amr and "user" in amr or "swk" in amr:
        return _("avec une clé d'accès")
    if "pwd" in amr:
        return _("avec votre mot de passe et un code reçu par SMS") if "sms" in amr else _("avec votre mot de passe et un code reçu par e-mail")
    if "otp" in amr:
        return _("à la fin de l'activation de votre compte")
    if amr:
        return _("avec LuxTrust ou MyGuichet.lu")
    return None


def event_sentence(name: str, details: Mapping[str, Any] | None, service: str | None) -> str:
    """One trail row as a sentence in the page's language: what happened, with which service and means."""
    details = details or {}
    channel = str(CHANNELS.get(details.get("channel"), details.get("channel") or ""))
    values = {"service": service or _("un service"), "channel": channel, "name": details.get("passkey_name") or "",
              "upstream": UPSTREAMS.get(details.get("upstream"), details.get("upstream") or "")}
    if name == E.ONE_TIME_CODE_SENT and details.get("purpose") in CODE_PURPOSES:
        return str(CODE_PURPOSES[details["purpose"]]) % values
    if name in (E.LOGIN_SUCCEEDED, E.AUTHORIZATION_CODE_ISSUED):
        how = _how_logged_in(list(details.get("amr") or []), channel)
        if how:
            base = _("Connexion à %(service)s", service=values["service"]) if name == E.AUTHORIZATION_CODE_ISSUED \
                else _("Connexion à votre compte eSanté")
            return f"{base} {how}"
    if name in EVENTS:
        return str(EVENTS[name]) % values
    return name
