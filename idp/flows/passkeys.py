"""Passkeys on the patient pages: « Se connecter avec une clé d'accès » (button and autofill) on the
login page, « Mes clés d'accès » in "Mon compte", and the offer at step 4 of the activation wizard.

A ceremony has two requests: the page's script fetches the options (``…/options``, JSON, the
CSRF token in a header) and the browser keeps the challenge's id in the flow cookie; the script
then posts the authenticator's answer in an ordinary form, and the page answers like any other
(a redirect, or the page again with the reason in the patient's language). The checks are in
:mod:`idp.passkey`.
"""

from flask import abort, current_app, flash, g, jsonify, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from .. import account as accounts, activation, audit, clock, matricule as matricule_rules, passkey, sso_session, throttle
from ..extensions import db, limiter
from ..page_guards import login_required, safe_next
from . import blueprint
from .activation import SESSION_KEY as WIZARD_KEY
from .account_forms import ActionForm
from .forms import LoginForm, PasskeyLoginForm, PasskeyNameForm, PasskeyRegisterForm
from .login import throttled_message

LOGIN_CEREMONY = "passkey_login"
REGISTER_CEREMONY = "passkey_register"
ACTIVATION_CEREMONY = "passkey_activation"


def refusal_message(error: passkey.PasskeyRefused) -> str:
    """Why a passkey did not log in or register, in the patient's words."""
    if isinstance(error, passkey.ChallengeNotValid):
        return _("La demande a expiré ou a déjà été utilisée. Veuillez réessayer.")
    if isinstance(error, (passkey.CredentialUnknown, passkey.OwnerNotActive)):
        return _("Cette clé d'accès n'est pas (ou plus) enregistrée pour un compte eSanté actif. Connectez-vous avec votre matricule "
                 "et votre mot de passe.")
    if isinstance(error, (passkey.CredentialSuspended, passkey.CounterWentBack)):
        return _("Par sécurité, cette clé d'accès est suspendue : elle semble avoir été copiée. Connectez-vous avec votre matricule et "
                 "votre mot de passe, puis supprimez-la dans Mon compte, rubrique Mes clés d'accès.")
    if isinstance(error, passkey.TooManyPasskeys):
        return _("Vous avez déjà %(num)d clés d'accès : supprimez-en une avant d'en ajouter une autre.",
                 num=current_app.config["PASSKEY_MAX_PER_OWNER"])
    if isinstance(error, passkey.AlreadyRegistered):
        return _("Cet appareil contient déjà une clé d'accès de votre compte.")
    return _("La clé d'accès n'a pas pu être vérifiée. Veuillez réessayer.")


def _options(ceremony_key: str, options_and_ceremony: tuple[str, str]) -> ResponseReturnValue:
    options, ceremony = options_and_ceremony
    session[ceremony_key] = ceremony
    db.session.commit()
    response = current_app.response_class(options, mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.app_context_processor
def passkey_login_form() -> dict:
    """The login page's passkey form (hidden fields filled by its script), on every render of it."""
    if request.endpoint in ("flows.login", "flows.passkey_login"):
        return {"passkey_form": g.get("passkey_form") or PasskeyLoginForm(formdata=None, next=request.args.get("next", ""))}
    return {}


# --- login ------------------------------------------------------------------------------------


@blueprint.post("/login/passkey/options")
@limiter.limit(lambda: current_app.config["RATE_LIMIT_PASSKEY"])
def passkey_login_options() -> ResponseReturnValue:
    return _options(LOGIN_CEREMONY, passkey.authentication_options(passkey.LOGIN))


@blueprint.post("/login/passkey")
@limiter.limit(lambda: current_app.config["RATE_LIMIT_PASSKEY"])
def passkey_login() -> ResponseReturnValue:
    """A passkey with user verification is a whole login: possession and the device's PIN or
    biometric (``amr`` ``hwk``/``swk``, ``user``, ``mfa``; ``acr`` substantial)."""
    form = g.passkey_form = PasskeyLoginForm()
    if not form.validate_on_submit():
        return _login_refused(LoginForm(formdata=None), _("La clé d'accès n'a pas pu être vérifiée. Veuillez réessayer."), 400)
    credential_id, handle = passkey.credential_in_answer(form.credential.data)
    try:
        throttle.check("RATE_LIMIT_LOGIN_PER_ACCOUNT", "passkey", handle or credential_id or "")
    except throttle.Throttled as throttled:
        return _login_refused(LoginForm(formdata=None), throttled_message(throttled.retry_after), 429,
                              {"Retry-After": str(throttled.retry_after)})
    try:
        done = passkey.authenticate(passkey.LOGIN, session.pop(LOGIN_CEREMONY, None), form.credential.data)
        account = accounts.get(done.owner.account_id)
        if account is None or not account.is_active:
            audit.record(audit.Event.PASSKEY_LOGIN_FAILED, account_id=done.owner.account_id, passkey_id=done.credential_id,
                         reason=passkey.OwnerNotActive.reason)
            raise passkey.OwnerNotActive()
    except passkey.PasskeyRefused as error:
        db.session.commit()  # the spent challenge, the audit event, a suspension
        g.unknown_passkey = credential_id if isinstance(error, passkey.CredentialUnknown) else None
        return _login_refused(LoginForm(formdata=None), refusal_message(error), 400)
    sso_session.start(account.id, amr=done.amr, acr=done.acr, remember=bool(form.remember.data))
    locale = account.locale
    db.session.commit()
    session.pop("login", None)
    if locale and "locale" not in session:
        session["locale"] = locale
    return redirect(safe_next(form.next.data), code=303)


def _login_refused(login_form, message: str, status: int, headers: dict | None = None) -> ResponseReturnValue:
    login_form.next.data = g.passkey_form.next.data
    return render_template("flows/login.html", form=login_form, passkey_error=message, unknown_passkey=g.get("unknown_passkey"),
                           rp_id=passkey.rp_id()), status, headers or {}


# --- "Mon compte" › « Mes clés d'accès » ------------------------------------------------------


def _owner() -> passkey.Owner:
    return passkey.Owner(account_id=g.account.id)


def _fresh() -> bool:
    """Adding a passkey needs a login at most ``PASSKEY_REAUTHENTICATION_MAX_AGE`` seconds old."""
    return (clock.now() - g.sso.auth_time).total_seconds() <= current_app.config["PASSKEY_REAUTHENTICATION_MAX_AGE"]


def _user_names(account: accounts.Account) -> dict[str, str]:
    """``user.name`` and ``user.displayName`` the passkey manager shows: the name and a masked
    matricule (enough to tell a parent's account from a child's), never the whole matricule."""
    return {"user_name": f"{account.display_name} ({matricule_rules.mask(account.matricule)})", "display_name": account.display_name}


@blueprint.get("/account/passkeys")
@login_required
def passkeys() -> ResponseReturnValue:
    return render_template("flows/account/passkeys.html", passkeys=passkey.passkeys_of(_owner()), form=ActionForm(),
                           rename_form=PasskeyNameForm(formdata=None), rp_id=passkey.rp_id(), user_handle=passkey.existing_user_handle(_owner()))


@blueprint.route("/account/passkeys/new", methods=["GET", "POST"])
@login_required
@limiter.limit(lambda: current_app.config["RATE_LIMIT_PASSKEY"], methods=["POST"])
def passkey_new() -> ResponseReturnValue:
    form = PasskeyRegisterForm()
    if not _fresh():
        session.pop(REGISTER_CEREMONY, None)
        login = url_for("flows.login", next=url_for("flows.passkey_new"), login_hint=g.account.matricule)
        return render_template("flows/account/passkey_new.html", form=form, reauthenticate=login), 400 if request.method == "POST" else 200
    if not form.validate_on_submit():
        return render_template("flows/account/passkey_new.html", form=form), 400 if request.method == "POST" else 200
    try:
        added = passkey.finish_registration(_owner(), passkey.REGISTER, session.pop(REGISTER_CEREMONY, None), form.credential.data,
                                            form.name.data)
    except passkey.PasskeyRefused as error:
        db.session.commit()
        form.name.errors.append(refusal_message(error))
        return render_template("flows/account/passkey_new.html", form=form), 400
    passkey.tell_patient(g.account, added.name, added=True)
    db.session.commit()
    flash(_("La clé d'accès « %(name)s » a été ajoutée. Vous pourrez l'utiliser à votre prochaine connexion.", name=added.name), "success")
    return redirect(url_for("flows.passkeys"), code=303)


@blueprint.post("/account/passkeys/options")
@login_required
@limiter.limit(lambda: current_app.config["RATE_LIMIT_PASSKEY"])
def passkey_register_options() -> ResponseReturnValue:
    if not _fresh():
        return jsonify(error=_("Pour des raisons de sécurité, reconnectez-vous avant d'ajouter une clé d'accès.")), 403
    try:
        return _options(REGISTER_CEREMONY, passkey.registration_options(_owner(), passkey.REGISTER, **_user_names(g.account)))
    except passkey.TooManyPasskeys as error:
        db.session.rollback()
        return jsonify(error=refusal_message(error)), 409


@blueprint.post("/account/passkeys/<int:passkey_id>/rename")
@login_required
def passkey_rename(passkey_id: int) -> ResponseReturnValue:
    found = _own_passkey(passkey_id)
    form = PasskeyNameForm()
    if not form.validate_on_submit() or not passkey.clean_name(form.name.data):
        flash(_("Donnez un nom à cette clé d'accès (64 caractères au plus)."), "error")
        return redirect(url_for("flows.passkeys"), code=303)
    passkey.rename(_owner(), found, form.name.data)
    db.session.commit()
    flash(_("Clé d'accès renommée."), "info")
    return redirect(url_for("flows.passkeys"), code=303)


@blueprint.post("/account/passkeys/<int:passkey_id>/delete")
@login_required
def passkey_delete(passkey_id: int) -> ResponseReturnValue:
    found = _own_passkey(passkey_id)
    if ActionForm().validate_on_submit():
        name = found.name
        passkey.remove(_owner(), found)
        passkey.tell_patient(g.account, name, added=False)
        db.session.commit()
        flash(_("La clé d'accès « %(name)s » a été supprimée : elle ne permet plus de vous connecter.", name=name), "info")
    return redirect(url_for("flows.passkeys"), code=303)


def _own_passkey(passkey_id: int) -> passkey.PasskeyCredential:
    found = passkey.get(_owner(), passkey_id)
    if found is None:
        abort(404)  # another patient's passkey, or none
    return found


# --- activation, step 4 « Autres moyens d'authentification » ---------------------------------


def _wizard_at_other_means():
    """This browser's wizard at step 4 (password chosen, channel proven by a code), or None."""
    try:
        wizard = activation.get(session.get(WIZARD_KEY))
        if wizard is None or wizard.completed_at is not None or not wizard.channel_verified:
            return None
        activation.require_step(wizard, activation.STEP_OTHER_MEANS)
    except activation.WizardError:
        return None
    return wizard


@blueprint.post("/activation/passkey/options")
@limiter.limit(lambda: current_app.config["RATE_LIMIT_PASSKEY"])
def activation_passkey_options() -> ResponseReturnValue:
    wizard = _wizard_at_other_means()
    if wizard is None:
        return jsonify(error=_("Cette étape n'est plus disponible : recommencez l'activation.")), 409
    account = accounts.get(wizard.account_id)
    try:
        return _options(ACTIVATION_CEREMONY, passkey.registration_options(
            passkey.Owner(account_id=account.id), passkey.ACTIVATION_REGISTER, **_user_names(account)))
    except passkey.TooManyPasskeys as error:
        db.session.rollback()
        return jsonify(error=refusal_message(error)), 409


@blueprint.post("/activation/passkey")
@limiter.limit(lambda: current_app.config["RATE_LIMIT_PASSKEY"])
def activation_passkey() -> ResponseReturnValue:
    wizard = _wizard_at_other_means()
    if wizard is None:
        return redirect(url_for("flows.activation_start"), code=303)
    form = PasskeyRegisterForm()
    if form.validate_on_submit():
        account = accounts.get(wizard.account_id)
        try:
            added = passkey.finish_registration(passkey.Owner(account_id=account.id), passkey.ACTIVATION_REGISTER,
                                                session.pop(ACTIVATION_CEREMONY, None), form.credential.data, form.name.data)
        except passkey.PasskeyRefused as error:
            db.session.commit()
            flash(refusal_message(error), "error")
        else:
            db.session.commit()
            flash(_("La clé d'accès « %(name)s » a été créée. Vous pourrez l'utiliser pour vous connecter une fois l'activation "
                    "terminée.", name=added.name), "success")
    else:
        for errors in form.errors.values():
            flash(" ".join(str(error) for error in errors), "error")
    return redirect(url_for("flows.activation_other_means"), code=303)
