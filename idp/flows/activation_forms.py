"""Forms of the activation wizard and of the "no activation code" request (labels from the guide)."""

from datetime import date

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, DateField, PasswordField, RadioField, SelectChoice, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, Optional, ValidationError

from .forms import valid_matricule


class CguForm(FlaskForm):
    accept = BooleanField(
        _l("En cochant cette case, j'accepte les Conditions Générales d'Utilisation."),
        validators=[DataRequired(_l("Vous devez accepter les Conditions Générales d'Utilisation pour activer votre compte."))],
    )


def code_required_when_received(form, field) -> None:
    if form.has_code.data == "yes" and not (field.data or "").strip():
        raise ValidationError(_l("Veuillez saisir le code d'activation reçu par courrier."))


class ActivationCodeForm(FlaskForm):
    matricule = StringField(_l("Matricule"), validators=[DataRequired(_l("Veuillez saisir votre matricule.")), Length(max=32), valid_matricule])
    has_code = RadioField(
        _l("Avez-vous reçu votre code d'activation ?"),
        choices=[SelectChoice("yes", _l("Oui")), SelectChoice("no", _l("Non"))],
        default="yes",
        validators=[InputRequired(_l("Veuillez répondre à la question."))],
    )
    activation_code = StringField(_l("Code d'activation"), validators=[Length(max=32), code_required_when_received])


class PasswordForm(FlaskForm):
    password = PasswordField(_l("Mot de passe"), validators=[DataRequired(_l("Veuillez saisir un mot de passe.")), Length(max=256)])
    confirmation = PasswordField(_l("Confirmation du mot de passe"), validators=[DataRequired(_l("Veuillez confirmer le mot de passe.")), Length(max=256)])


class ChannelDestinationForm(FlaskForm):
    channel = RadioField(
        _l("Code à usage unique à recevoir par"),
        choices=[SelectChoice("sms", _l("Mobile")), SelectChoice("email", _l("E-mail"))],
        validators=[InputRequired(_l("Veuillez choisir un moyen de réception."))],
    )
    destination = StringField(_l("Numéro de mobile ou adresse e-mail"), validators=[DataRequired(_l("Veuillez saisir un numéro de mobile ou une adresse e-mail.")), Length(max=320)])


class ChannelCodeForm(FlaskForm):
    code = StringField(_l("Code à usage unique"), validators=[DataRequired(_l("Veuillez saisir le code reçu.")), Length(max=12)])


class NextStepForm(FlaskForm):
    pass


class BackForm(FlaskForm):
    pass


class ResendForm(FlaskForm):
    pass


def not_in_future(form, field) -> None:
    if field.data and field.data > date.today():
        raise ValidationError(_l("La date de naissance ne peut pas être dans le futur."))


def valid_email(form, field) -> None:
    local, _, domain = (field.data or "").strip().partition("@")
    if field.data and (not local or "." not in domain or " " in field.data.strip()):
        raise ValidationError(_l("Adresse e-mail invalide."))


def some_contact(form, field) -> None:
    if not (form.contact_email.data or "").strip() and not (form.contact_phone.data or "").strip():
        raise ValidationError(_l("Indiquez une adresse e-mail ou un numéro de téléphone pour que le helpdesk puisse vous répondre."))


class HelpdeskRequestForm(FlaskForm):
    matricule = StringField(_l("Matricule"), validators=[DataRequired(_l("Veuillez saisir votre matricule.")), Length(max=32), valid_matricule])
    family_name = StringField(_l("Nom"), validators=[DataRequired(_l("Veuillez saisir votre nom.")), Length(max=200)])
    given_name = StringField(_l("Prénom"), validators=[DataRequired(_l("Veuillez saisir votre prénom.")), Length(max=200)])
    birth_date = DateField(_l("Date de naissance"), validators=[InputRequired(_l("Veuillez saisir une date de naissance valide.")), not_in_future])
    contact_email = StringField(_l("Adresse e-mail"), validators=[Length(max=320), valid_email, some_contact])
    contact_phone = StringField(_l("Téléphone"), validators=[Optional(), Length(max=32)])
    note = TextAreaField(_l("Message (facultatif)"), validators=[Optional(), Length(max=2000)])
