"""Forms of "Mon compte" and of the forgotten-password pages."""

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import PasswordField, RadioField, SelectChoice, StringField
from wtforms.validators import DataRequired, InputRequired, Length

from .forms import valid_matricule


class ContactChangeForm(FlaskForm):
    channel = RadioField(_l("Moyen à modifier"), choices=[SelectChoice("sms", _l("Mobile")), SelectChoice("email", _l("E-mail"))],
                         validators=[InputRequired(_l("Veuillez choisir un moyen de réception."))])
    destination = StringField(_l("Nouveau numéro de mobile ou nouvelle adresse e-mail"),
                              validators=[DataRequired(_l("Veuillez saisir un numéro de mobile ou une adresse e-mail.")), Length(max=320)])
    current_password = PasswordField(_l("Mot de passe actuel"), validators=[DataRequired(_l("Veuillez saisir votre mot de passe.")), Length(max=256)])


class CodeForm(FlaskForm):
    code = StringField(_l("Code à usage unique"), validators=[DataRequired(_l("Veuillez saisir le code reçu.")), Length(max=12)])


class PasswordChangeForm(FlaskForm):
    current_password = PasswordField(_l("Mot de passe actuel"), validators=[DataRequired(_l("Veuillez saisir votre mot de passe.")), Length(max=256)])


class LogoutElsewhereForm(FlaskForm):
    """"Se déconnecter des autres appareils" asks for the password again (ASVS 5.0 §7.5.2)."""

    current_password = PasswordField(_l("Mot de passe actuel"), validators=[DataRequired(_l("Veuillez saisir votre mot de passe.")), Length(max=256)])


class ChannelPreferenceForm(FlaskForm):
    channel = RadioField(_l("Recevoir les codes à usage unique par"), choices=[],
                         validators=[InputRequired(_l("Veuillez choisir un moyen de réception."))])


class ForgottenPasswordForm(FlaskForm):
    matricule = StringField(_l("Matricule"), validators=[DataRequired(_l("Veuillez saisir votre matricule.")), Length(max=32), valid_matricule])


class NewPasswordForm(FlaskForm):
    code = StringField(_l("Code à usage unique"), validators=[DataRequired(_l("Veuillez saisir le code reçu.")), Length(max=12)])
    password = PasswordField(_l("Nouveau mot de passe"), validators=[DataRequired(_l("Veuillez saisir un mot de passe.")), Length(max=256)])
    confirmation = PasswordField(_l("Confirmation du mot de passe"), validators=[DataRequired(_l("Veuillez confirmer le mot de passe.")), Length(max=256)])


class ActionForm(FlaskForm):
    """A button that changes something: only the CSRF token."""
