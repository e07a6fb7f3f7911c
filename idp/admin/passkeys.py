"""Passkeys on the admin pages: an admin's own (login instead of password + TOTP, registration,
removal) and the helpdesk's removal of a patient's passkeys (a lost or stolen device).

``ADMIN_REQUIRE_PASSKEY``: an admin with a passkey may not use password + TOTP any more, and one
without is kept on « Mes clés d'accès » until they register one. ``ADMIN_PASSKEY_AAGUIDS``: only
those authenticator models, proven by attestation (:mod:`idp.passkey`).
"""

from flask import abort, current_app, flash, g, jsonify, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _, lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import HiddenField, StringField
from wtforms.validators import DataRequired, Length

from .. import account as accounts, admin_account, admin_session, audit, clock, passkey, throttle
from ..extensions import db, limiter
from . import blueprint
from .forms import ActionForm, LoginForm
from .login_session import start_admin_session

LOGIN_CEREMONY = "admin_passkey_login"
REGISTER_CEREMONY = "admin_passkey_register"
ANSWER_MAX_LENGTH = 16_000
# Where an admin without a passkey may go while ADMIN_REQUIRE_PASSKEY is on.
ENROLMENT_ENDPOINTS = {"admin.passkeys", "admin.passkey_new", "admin.passkey_register_options", "admin.logout"}
LOGIN_ENDPOINTS = {"admin.passkey_login", "admin.passkey_login_options"}


class PasskeyLoginForm(FlaskForm):
    credential = HiddenField("credential", validators=[DataRequired(), Length(max=ANSWER_MAX_LENGTH)])


class PasskeyRegisterForm(FlaskForm):
    name = StringField(_l("Nom de la clé d'accès"), validators=[DataRequired(_l("Donnez un nom à cette clé d'accès.")),
                                                               Length(max=passkey.NAME_MAX_LENGTH)])
    credential = HiddenField("credential", validators=[DataRequired(_l("Votre navigateur n'a pas créé de clé d'accès.")),
                                                       Length(max=ANSWER_MAX_LENGTH)])


class PatientLookupForm(FlaskForm):
    matricule = StringField(_l("Matricule du patient"), validators=[DataRequired(), Length(max=32)])


def passkey_required_for(admin: admin_account.AdminAccount) -> bool:
    """ADMIN_REQUIRE_PASSKEY: this admin must log in with a passkey (they have one)."""
    return current_app.config["ADMIN_REQUIRE_PASSKEY"] and passkey.has_passkey(passkey.Owner(admin_id=admin.id))


def enrolment_redirect() -> ResponseReturnValue | None:
    """ADMIN_REQUIRE_PASSKEY and no passkey yet: « Mes clés d'accès » first, nothing else."""
    if current_app.config["ADMIN_REQUIRE_PASSKEY"] and request.endpoint not in ENROLMENT_ENDPOINTS \
            and not passkey.has_passkey(passkey.Owner(admin_id=g.admin.id)):
        flash(_("Les administrateurs doivent se connecter avec une clé d'accès : enregistrez-en une pour continuer."), "error")
        return redirect(url_for("admin.passkeys"), code=303)
    return None


def _refusal(error: passkey.PasskeyRefused) -> str:
    if isinstance(error, passkey.AttestationNotAllowed):
        return _("Ce modèle d'authentificateur n'est pas autorisé pour les administrateurs.")
    if isinstance(error, passkey.ChallengeNotValid):
        return _("La demande a expiré ou a déjà été utilisée. Veuillez réessayer.")
    if isinstance(error, (passkey.CredentialUnknown, passkey.OwnerNotActive)):
        return _("Cette clé d'accès n'ouvre aucun compte d'administration.")
    if isinstance(error, (passkey.CredentialSuspended, passkey.CounterWentBack)):
        return _("Par sécurité, cette clé d'accès est suspendue : elle semble avoir été copiée.")
    if isinstance(error, passkey.TooManyPasskeys):
        return _("Nombre maximal de clés d'accès atteint : supprimez-en une d'abord.")
    if isinstance(error, passkey.AlreadyRegistered):
        return _("Cet appareil contient déjà une clé d'accès de votre compte.")
    return _("La clé d'accès n'a pas pu être vérifiée. Veuillez réessayer.")


def _json_options(ceremony_key: str, options_and_ceremony: tuple[str, str]) -> ResponseReturnValue:
    options, ceremony = options_and_ceremony
    session[ceremony_key] = ceremony
    db.session.commit()
    return current_app.response_class(options, mimetype="application/json")


# --- login ------------------------------------------------------------------------------------


@blueprint.post("/login/passkey/options")
@limiter.limit(lambda: current_app.config["RATE_LIMIT_PASSKEY"])
def passkey_login_options() -> ResponseReturnValue:
    return _json_options(LOGIN_CEREMONY, passkey.authentication_options(passkey.ADMIN_LOGIN))


@blueprint.post("/login/passkey")
@limiter.limit(lambda: current_app.config["RATE_LIMIT_PASSKEY"])
def passkey_login() -> ResponseReturnValue:
    """A passkey instead of password + TOTP; throttled per admin like the password login."""
    form = PasskeyLoginForm()
    if form.validate_on_submit():
        credential_id, handle = passkey.credential_in_answer(form.credential.data)
        try:
            throttle.check("RATE_LIMIT_ADMIN_LOGIN_PER_ACCOUNT", "admin-passkey", handle or credential_id or "")
        except throttle.Throttled as throttled:
            return _login_page(_("Trop de tentatives. Réessayez dans %(num)d secondes.", num=throttled.retry_after), 429)
        try:
            done = passkey.authenticate(passkey.ADMIN_LOGIN, session.pop(LOGIN_CEREMONY, None), form.credential.data)
            admin = admin_account.get(done.owner.admin_id)
            if admin is None or admin.disabled:
                raise passkey.OwnerNotActive()
        except passkey.PasskeyRefused as error:
            db.session.commit()
            return _login_page(_refusal(error), 400)
        audit.record(audit.Event.ADMIN_LOGIN_SUCCEEDED, actor=admin.username, method="passkey", amr=done.amr)
        return start_admin_session(admin)
    return _login_page(_("La clé d'accès n'a pas pu être vérifiée. Veuillez réessayer."), 400)


def _login_page(message: str, status: int) -> ResponseReturnValue:
    return render_template("admin/login.html", form=LoginForm(formdata=None), passkey_form=PasskeyLoginForm(formdata=None),
                           passkey_error=message), status


# --- an admin's own passkeys ------------------------------------------------------------------


def _owner() -> passkey.Owner:
    return passkey.Owner(admin_id=g.admin.id)


def _fresh() -> bool:
    """Registering needs an admin login at most ``PASSKEY_REAUTHENTICATION_MAX_AGE`` seconds old."""
    started = admin_session.current().created_at
    return (clock.now() - started).total_seconds() <= current_app.config["PASSKEY_REAUTHENTICATION_MAX_AGE"]


@blueprint.get("/passkeys")
def passkeys() -> ResponseReturnValue:
    return render_template("admin/passkeys.html", passkeys=passkey.passkeys_of(_owner()), form=PasskeyRegisterForm(formdata=None),
                           fresh=_fresh())


@blueprint.post("/passkeys/options")
@limiter.limit(lambda: current_app.config["RATE_LIMIT_PASSKEY"])
def passkey_register_options() -> ResponseReturnValue:
    if not _fresh():
        return jsonify(error=_("Reconnectez-vous avant d'ajouter une clé d'accès (connexion de plus de 5 minutes).")), 403
    try:
        return _json_options(REGISTER_CEREMONY, passkey.registration_options(_owner(), passkey.ADMIN_REGISTER, user_name=g.admin.username,
                                                                             display_name=f"{g.admin.username} (eSanté admin)"))
    except passkey.TooManyPasskeys as error:
        db.session.rollback()
        return jsonify(error=_refusal(error)), 409


@blueprint.post("/passkeys/new")
@limiter.limit(lambda: current_app.config["RATE_LIMIT_PASSKEY"])
def passkey_new() -> ResponseReturnValue:
    form = PasskeyRegisterForm()
    if not _fresh():
        flash(_("Reconnectez-vous avant d'ajouter une clé d'accès (connexion de plus de 5 minutes)."), "error")
        return redirect(url_for("admin.passkeys"), code=303)
    if not form.validate_on_submit():
        flash(_("Donnez un nom à cette clé d'accès."), "error")
        return redirect(url_for("admin.passkeys"), code=303)
    try:
        added = passkey.finish_registration(_owner(), passkey.ADMIN_REGISTER, session.pop(REGISTER_CEREMONY, None), form.credential.data,
                                            form.name.data)
    except passkey.PasskeyRefused as error:
        db.session.commit()
        flash(_refusal(error), "error")
        return redirect(url_for("admin.passkeys"), code=303)
    db.session.commit()
    flash(_("Clé d'accès « %(name)s » enregistrée.", name=added.name), "success")
    return redirect(url_for("admin.passkeys"), code=303)


@blueprint.post("/passkeys/<int:passkey_id>/delete")
def passkey_delete(passkey_id: int) -> ResponseReturnValue:
    found = passkey.get(_owner(), passkey_id)
    if found is None:
        abort(404)
    if ActionForm().validate_on_submit():
        passkey.remove(_owner(), found, actor=f"admin:{g.admin.username}")
        db.session.commit()
        flash(_("Clé d'accès supprimée."), "info")
    return redirect(url_for("admin.passkeys"), code=303)


# --- helpdesk: a patient's passkeys -----------------------------------------------------------


@blueprint.route("/patients/passkeys", methods=["GET", "POST"])
def patient_passkeys() -> ResponseReturnValue:
    """Look a patient up by matricule, see their passkeys, remove them all (audited, the patient told)."""
    form = PatientLookupForm(request.args) if request.method == "GET" else PatientLookupForm()
    patient = accounts.find_by_matricule(form.matricule.data or "") if form.matricule.data else None
    if request.method == "POST":
        if not form.validate_on_submit() or patient is None:
            abort(404)
        removed = [item.name for item in passkey.passkeys_of(passkey.Owner(account_id=patient.id))]
        count = passkey.remove_all(passkey.Owner(account_id=patient.id), actor=f"admin:{g.admin.username}")
        for name in removed:
            passkey.tell_patient(patient, name, added=False)
        db.session.commit()
        flash(_("%(count)d clé(s) d'accès supprimée(s) pour ce patient.", count=count), "success")
        return redirect(url_for("admin.patient_passkeys", matricule=patient.matricule), code=303)
    found = passkey.passkeys_of(passkey.Owner(account_id=patient.id)) if patient else []
    return render_template("admin/patient_passkeys.html", form=form, patient=patient, passkeys=found,
                           searched=bool(form.matricule.data))
