"""Forms of the patient pages. Labels are French source strings, translated by Flask-Babel."""

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, PasswordField, RadioField, StringField
from wtforms.validators import DataRequired, Length, ValidationError

from .. import matricule as matricule_rules, passkey

PASSKEY_ANSWER_MAX_LENGTH = 16_000  # an authenticator's answer is a few kilobytes, attestation certificates included


def valid_matricule(form, field) -> None:
    if not matricule_rules.is_valid(field.data or ""):
        raise ValidationError(_l("Le matricule doit comporter 11 ou 13 chiffres valides."))


class LoginForm(FlaskForm):
    matricule = StringField(_l("Matricule"), validators=[DataRequired(_l("Veuillez saisir votre matricule.")), Length(max=32), valid_matricule])
    password = PasswordField(_l("Mot de passe"), validators=[DataRequired(_l("Veuillez saisir votre mot de passe.")), Length(max=256)])
    # Unticked, the SSO cookie dies with the browser (a shared computer); ticked, it lasts the session's lifetime.
    remember = BooleanField(_l("Se souvenir de cet appareil"))
    # A label, though never shown: without one WTForms translates a default ("Next"), loading
    # its own message catalogue from disk on every request that builds the form.
    next = HiddenField("next")


class ChannelForm(FlaskForm):
    channel = RadioField(_l("Code à usage unique à recevoir par"), choices=[], validators=[DataRequired(_l("Veuillez choisir un moyen de réception."))])


class CodeForm(FlaskForm):
    code = StringField(_l("Code à usage unique"), validators=[DataRequired(_l("Veuillez saisir le code reçu.")), Length(max=12)])


class ResendForm(FlaskForm):
    pass


class PasskeyLoginForm(FlaskForm):
    """The authenticator's answer, posted by the login page's script."""

    credential = HiddenField("credential", validators=[DataRequired(), Length(max=PASSKEY_ANSWER_MAX_LENGTH)])
    next = HiddenField("next")
    remember = BooleanField(_l("Se souvenir de cet appareil"))


class PasskeyNameForm(FlaskForm):
    name = StringField(_l("Nom de la clé d'accès"), validators=[DataRequired(_l("Donnez un nom à cette clé d'accès.")),
                                                               Length(max=passkey.NAME_MAX_LENGTH)],
                       description=_l("Par exemple « iPhone de Rita » : pour la reconnaître dans la liste."))


class PasskeyRegisterForm(PasskeyNameForm):
    credential = HiddenField("credential", validators=[DataRequired(_l("Votre navigateur n'a pas créé de clé d'accès.")),
                                                       Length(max=PASSKEY_ANSWER_MAX_LENGTH)])
