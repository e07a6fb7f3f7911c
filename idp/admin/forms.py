"""Forms of the admin pages. Labels are French source strings, translated by Flask-Babel."""

import json

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, PasswordField, SelectChoice, SelectField, SelectMultipleField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from .. import client as clients

AUTH_METHOD_LABELS = {
    "client_secret_basic": _l("Secret client (HTTP Basic)"),
    "client_secret_post": _l("Secret client (dans le corps de la requête)"),
    "private_key_jwt": _l("Clé privée (private_key_jwt, JWKS requis)"),
    "none": _l("Client public (application native, PKCE)"),
}
GRANT_TYPE_LABELS = {
    "authorization_code": _l("Code d'autorisation (connexion des patients)"),
    "refresh_token": _l("Jeton de rafraîchissement"),
    "client_credentials": _l("Identifiants client (accès machine à machine)"),
    clients.TOKEN_EXCHANGE: _l("Échange de jeton (accès d'un assistant DSP, RFC 8693)"),
}


class LoginForm(FlaskForm):
    username = StringField(_l("Identifiant"), validators=[DataRequired(_l("Veuillez saisir votre identifiant.")), Length(max=64)])
    password = PasswordField(_l("Mot de passe"), validators=[DataRequired(_l("Veuillez saisir votre mot de passe.")), Length(max=256)])
    totp_code = StringField(_l("Code de l'application d'authentification"),
                            validators=[DataRequired(_l("Veuillez saisir le code à 6 chiffres.")), Length(max=10)])


class ActionForm(FlaskForm):
    """A button that changes something: only the CSRF token."""


class RejectRequestForm(FlaskForm):
    """Closes a "Je n'ai pas de code d'activation" request without a letter."""

    note = TextAreaField(_l("Motif du rejet (facultatif)"), validators=[Length(max=2000)])


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


def at_least_one(form, field) -> None:
    """Like DataRequired, without marking every checkbox of the group ``required``."""
    if not field.data:
        raise ValidationError(_l("Choisissez au moins un type d'autorisation."))


def uri_lines(text: str | None) -> list[str]:
    """One URI per line of a text area, blank lines ignored."""
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def json_object_or_empty(form, field) -> None:
    if not (field.data or "").strip():
        return
    try:
        document = json.loads(field.data)
    except ValueError:
        raise ValidationError(_l("Le JWKS doit être un document JSON valide."))
    if not isinstance(document, dict):
        raise ValidationError(_l("Le JWKS doit être un objet JSON avec une liste « keys »."))


class ClientForm(FlaskForm):
    name = StringField(_l("Nom affiché aux patients"), validators=[DataRequired(_l("Veuillez saisir un nom.")), Length(max=200)])
    redirect_uris = TextAreaField(_l("URI de redirection (une par ligne)"))
    post_logout_redirect_uris = TextAreaField(_l("URI de redirection après déconnexion (une par ligne)"))
    grant_types = MultiCheckboxField(_l("Types d'autorisation"),
                                     choices=[SelectChoice(value, label) for value, label in GRANT_TYPE_LABELS.items()],
                                     default=["authorization_code", "refresh_token"], validators=[at_least_one])
    scope = StringField(_l("Scopes autorisés (séparés par des espaces)"), default="openid profile email phone offline_access",
                        validators=[DataRequired(_l("Veuillez saisir au moins un scope.")), Length(max=500)])
    auth_method = SelectField(_l("Authentification au point de terminaison token"),
                              choices=[SelectChoice(method, AUTH_METHOD_LABELS[method]) for method in clients.SUPPORTED_AUTH_METHODS])
    jwks = TextAreaField(_l("Clés publiques du client (JWKS, JSON)"), validators=[json_object_or_empty])
    first_party = BooleanField(_l("Service de la plateforme eSanté (première partie, sans page de consentement)"))
    subject_type = SelectField(_l("Type d'identifiant (sub)"), choices=[
        SelectChoice("", _l("Par défaut (public pour la première partie, sinon par secteur)")),
        SelectChoice("public", _l("Public (le même pour tous les services)")),
        SelectChoice("pairwise", _l("Par secteur (pairwise)")),
    ])
    resource_audience = StringField(_l("Serveur de ressources pour l'audience (URI ; il pourra introspecter les jetons destinés à cette audience)"),
                                    validators=[Length(max=500)])
    security_profile = SelectField(_l("Profil de sécurité"), default="", choices=[
        SelectChoice("", _l("Aucun")),
        SelectChoice("fapi2", _l("FAPI 2.0 (requêtes poussées, DPoP, private_key_jwt)")),
    ])

    def registry_fields(self) -> dict:
        """The form's values as arguments of :func:`idp.client.create` / :func:`idp.client.update`."""
        return {
            "name": self.name.data.strip(),
            "redirect_uris": uri_lines(self.redirect_uris.data),
            "post_logout_redirect_uris": uri_lines(self.post_logout_redirect_uris.data),
            "grant_types": list(self.grant_types.data),
            "scope": " ".join(self.scope.data.split()),
            "auth_method": self.auth_method.data,
            "jwks": json.loads(self.jwks.data) if (self.jwks.data or "").strip() else None,
            "first_party": bool(self.first_party.data),
            "subject_type": self.subject_type.data or None,
            "resource_audience": (self.resource_audience.data or "").strip() or None,
            "security_profile": self.security_profile.data or None,
        }

    def fill_from(self, client: clients.Client) -> None:
        self.name.data = client.name
        self.redirect_uris.data = "\n".join(client.redirect_uris)
        self.post_logout_redirect_uris.data = "\n".join(client.post_logout_redirect_uris)
        self.grant_types.data = list(client.grant_types)
        self.scope.data = client.scope
        self.auth_method.data = client.token_endpoint_auth_method
        self.jwks.data = json.dumps(client.jwks, indent=2) if client.jwks else ""
        self.first_party.data = client.first_party
        self.subject_type.data = client.subject_type
        self.resource_audience.data = client.resource_audience or ""
        self.security_profile.data = client.security_profile or ""
