"""Forms of the federation pages (labels are the guide's French wording)."""

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField
from wtforms.validators import DataRequired


class NationalIdConsentForm(FlaskForm):
    consent = BooleanField(
        _l("Je consens à ce que MyGuichet.lu partage mon identifiant national avec l'Agence eSanté."),
        validators=[DataRequired(_l("Sans ce consentement, MyGuichet.lu ne peut pas vous identifier auprès de l'Agence eSanté."))],
    )


class MyGuichetCguForm(FlaskForm):
    accept = BooleanField(
        _l("En cochant cette case, je reconnais avoir lu et accepté les Conditions Générales d'Utilisation de la Plateforme "
           "eSanté et du DSP. Je consens à l'activation de mon compte sur la plateforme eSanté et à l'accès à mon Dossier de "
           "Soins Partagé (DSP). Mon adresse email et mon numéro de téléphone MyGuichet.lu seront utilisés pour renseigner "
           "mon profil eSanté."),
        validators=[DataRequired(_l("Vous devez accepter les Conditions Générales d'Utilisation pour activer votre compte."))],
    )


class ActionForm(FlaskForm):
    """A button that changes something (unlink, revoke, log out): CSRF only."""
