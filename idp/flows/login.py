"""Connexion → PATIENT: matricule + password, then a one-time code by SMS or e-mail.

The attempt in progress lives in the signed flow cookie: the account id once the password
is right, and the one-time-code challenge id. A wrong password, an unknown matricule and an
account not yet active get the same answer, lockouts and throttles included (a matricule
without an account locks like one with an account). Attempts are limited per address and per
matricule typed (:mod:`idp.throttle`). Only the final step creates the SSO session, with a
cookie that outlives the browser only if the patient ticked "Se souvenir de cet appareil".
"""

import math
from datetime import datetime
from typing import Callable

from flask import current_app, flash, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _, lazy_gettext as _l, ngettext
from wtforms import Field, SelectChoice

from .. import account as accounts, audit, clock, credential, matricule as matricule_rules, messaging, one_time_code, sso_session, throttle
from ..assurance import ACR_SUBSTANTIAL
from ..extensions import db, limiter
from ..page_guards import safe_next
from . import blueprint
from .forms import ChannelForm, CodeForm, LoginForm, ResendForm

LOGIN_PURPOSE = "login"
# How long a verified password stays good for the code step, resends included: a flow cookie
# left in a shared browser must not let someone finish the login much later.
LOGIN_ATTEMPT_TTL = 15 * 60
CODE_REFUSED_MESSAGES = {
    one_time_code.OneTimeCodeExpired: _l("Ce code a expiré. Demandez un nouveau code."),
    one_time_code.OneTimeCodeExhausted: _l("Trop d'essais avec ce code. Demandez un nouveau code."),
    one_time_code.OneTimeCodeUsed: _l("Ce code a déjà été utilisé. Demandez un nouveau code."),
    one_time_code.OneTimeCodeBlocked: _l("Trop de codes erronés pour ce compte aujourd'hui. Par sécurité, réessayez demain ou "
                                         "contactez le helpdesk."),
}


def code_refused_message(error: one_time_code.OneTimeCodeError) -> str:
    """What the patient reads when a one-time code is refused or not sent, on every page that asks for one."""
    if isinstance(error, one_time_code.OneTimeCodeWrong):
        return ngettext("Code incorrect. Il vous reste %(num)d essai.", "Code incorrect. Il vous reste %(num)d essais.", error.attempts_left)
    if isinstance(error, one_time_code.ResendTooSoon):
        return ngettext("Veuillez patienter %(num)d seconde avant de demander un nouveau code.",
                        "Veuillez patienter %(num)d secondes avant de demander un nouveau code.", error.seconds)
    if isinstance(error, one_time_code.SendLimitReached):
        return ngettext("Trop de codes ont été envoyés à ce compte sans être utilisés. Par sécurité, aucun autre code ne sera envoyé "
                        "avant %(num)d heure ; contactez le helpdesk si besoin.",
                        "Trop de codes ont été envoyés à ce compte sans être utilisés. Par sécurité, aucun autre code ne sera envoyé "
                        "avant %(num)d heures ; contactez le helpdesk si besoin.", math.ceil(error.seconds / 3600))
    if isinstance(error, one_time_code.OneTimeCodeThrottled):
        return ngettext("Trop de codes saisis pour ce compte en peu de temps. Réessayez dans %(num)d seconde.",
                        "Trop de codes saisis pour ce compte en peu de temps. Réessayez dans %(num)d secondes.", error.seconds)
    return str(CODE_REFUSED_MESSAGES.get(type(error), CODE_REFUSED_MESSAGES[one_time_code.OneTimeCodeExhausted]))


def lockout_message(until: datetime) -> str:
    minutes = math.ceil((until - clock.now()).total_seconds() / 60)
    return ngettext("Trop de tentatives. Par sécurité, la connexion est bloquée pendant %(num)d minute.",
                    "Trop de tentatives. Par sécurité, la connexion est bloquée pendant %(num)d minutes.", minutes)


def throttled_message(retry_after: int) -> str:
    return ngettext("Trop de tentatives pour ce compte. Par sécurité, réessayez dans %(num)d minute.",
                    "Trop de tentatives pour ce compte. Par sécurité, réessayez dans %(num)d minutes.", math.ceil(retry_after / 60))


def code_accepted(check: Callable[[], object], field: Field) -> bool:
    """The one-time-code step of every page that asks for a code: run ``check``; when it refuses
    the code, keep what the refusal counted (committed: a wrong try counts even though the page
    fails) and tell the patient why on ``field``."""
    try:
        check()
    except one_time_code.OneTimeCodeError as error:
        db.session.commit()
        field.errors.append(code_refused_message(error))
        return False
    return True


def mask_destination(channel: str, value: str) -> str:
    """Enough of the address or number to recognise it, not enough to learn it from the page."""
    if channel == accounts.Channel.EMAIL.value:
        name, _, domain = value.partition("@")
        return f"{name[:1]}•••@{domain}"
    return "•" * max(0, len(value) - 3) + value[-3:]


@blueprint.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["RATE_LIMIT_LOGIN"], methods=["POST"])
def login() -> ResponseReturnValue:
    form = LoginForm()
    if request.method == "GET":
        form.next.data = request.args.get("next", "")
        hint = request.args.get("login_hint", "")
        if matricule_rules.is_valid(hint):
            form.matricule.data = matricule_rules.normalize(hint)
    if not form.validate_on_submit():
        return render_template("flows/login.html", form=form), 400 if request.method == "POST" else 200
    matricule = matricule_rules.normalize(form.matricule.data)
    try:
        throttle.check("RATE_LIMIT_LOGIN_PER_ACCOUNT", "login", matricule)
    except throttle.Throttled as throttled:
        form.password.errors.append(throttled_message(throttled.retry_after))
        return render_template("flows/login.html", form=form), 429, {"Retry-After": str(throttled.retry_after)}
    account = accounts.find_by_matricule(matricule)
    try:
        if account is None or not account.is_active:
            audit.record(audit.Event.LOGIN_UNKNOWN_MATRICULE, matricule=matricule_rules.mask(matricule))
            credential.refuse_without_account(matricule, form.password.data)
        credential.verify_password(account, form.password.data)
    except credential.WrongPassword:
        if account is not None and account.is_active:
            audit.record(audit.Event.LOGIN_PASSWORD_FAILED, account_id=account.id)
        db.session.commit()
        form.password.errors.append(_("Matricule ou mot de passe incorrect."))
        return render_template("flows/login.html", form=form), 400
    except credential.AccountLocked as locked:
        known = account is not None and account.is_active
        audit.record(audit.Event.LOGIN_LOCKED, account_id=account.id if known else None,
                     **({} if known else {"matricule": matricule_rules.mask(matricule)}))
        if locked.just_locked and known:
            _tell_of_lockout(account)
        db.session.commit()
        form.password.errors.append(lockout_message(locked.until))
        return render_template("flows/login.html", form=form), 429
    audit.record(audit.Event.LOGIN_PASSWORD_OK, account_id=account.id)
    # Read before the commit, which expires the account: reading it after would load it again.
    account_id, channels = account.id, account.channels()
    destination = account.destination(channels[0]) if len(channels) == 1 else None
    db.session.commit()
    session["login"] = {"account_id": account_id, "next": safe_next(form.next.data), "challenge": None, "started_at": clock.timestamp(),
                        "remember": bool(form.remember.data)}
    if len(channels) == 1:
        return _send_code(account_id, channels[0], destination)
    return redirect(url_for("flows.login_channel"), code=303)


def _tell_of_lockout(account: accounts.Account) -> None:
    """ASVS 5.0 §6.3.5: the patient learns that someone is trying their password."""
    notice = _("La connexion à votre compte eSanté est temporairement bloquée après plusieurs mots de passe erronés. "
               "Si ce n'était pas vous, changez votre mot de passe et contactez le helpdesk.")
    for channel in account.channels():
        messaging.notify(channel, account.destination(channel), notice)


def _recent_attempt() -> dict:
    """This browser's attempt while recent, else empty."""
    pending = session.get("login") or {}
    if not pending or clock.timestamp() - pending.get("started_at", 0) > LOGIN_ATTEMPT_TTL:
        return {}
    return pending


def _pending_login() -> tuple[dict, accounts.Account | None]:
    """This browser's attempt and its account, while recent and the account still active."""
    pending = _recent_attempt()
    account = accounts.get(pending["account_id"]) if pending else None
    return (pending, account) if account is not None and account.is_active else ({}, None)


def _pending_code() -> tuple[dict, accounts.Account | None, one_time_code.OneTimeCode | None]:
    """Like :func:`_pending_login`, with the attempt's challenge when it is this account's (one query for both)."""
    pending = _recent_attempt()
    challenge, account = one_time_code.get_with_account(pending.get("challenge"), pending.get("account_id"))
    if account is None or not account.is_active:
        return {}, None, None
    return pending, account, challenge


@blueprint.route("/login/channel", methods=["GET", "POST"])
def login_channel() -> ResponseReturnValue:
    account = _pending_login()[1]
    if account is None:
        return redirect(url_for("flows.login"), code=303)
    form = ChannelForm()
    form.channel.choices = [
        SelectChoice(channel, (_("Mobile") if channel == "sms" else _("E-mail")) + " (" + mask_destination(channel, account.destination(channel)) + ")")
        for channel in account.channels()
    ]
    if not account.channels():
        flash(_("Aucun moyen de recevoir un code n'est enregistré. Contactez le helpdesk."), "error")
        return render_template("flows/login_channel.html", form=form), 409
    if form.validate_on_submit():
        return _send_code(account.id, form.channel.data, account.destination(form.channel.data))
    if request.method == "GET":
        form.channel.data = account.channels()[0]
    return render_template("flows/login_channel.html", form=form), 400 if request.method == "POST" else 200


def _send_code(account_id: int, channel: str, destination: str) -> ResponseReturnValue:
    pending = session["login"]
    try:
        challenge = one_time_code.start(account_id, LOGIN_PURPOSE, channel, destination)
    except messaging.MessageNotSent:
        db.session.commit()
        flash(_("Le code n'a pas pu être envoyé. Veuillez réessayer dans un instant."), "error")
        return redirect(url_for("flows.login_channel"), code=303)
    except (one_time_code.ResendTooSoon, one_time_code.SendLimitReached) as refused:
        db.session.rollback()
        flash(code_refused_message(refused), "error")
        return redirect(url_for("flows.login_channel"), code=303)
    challenge_id = challenge.id  # before the commit expires it
    db.session.commit()
    session["login"] = {**pending, "challenge": challenge_id}
    return redirect(url_for("flows.login_code"), code=303)


@blueprint.route("/login/code", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["RATE_LIMIT_ONE_TIME_CODE"], methods=["POST"])
def login_code() -> ResponseReturnValue:
    pending, account, challenge = _pending_code()
    if account is None or challenge is None or challenge.account_id != account.id or challenge.purpose != LOGIN_PURPOSE:
        return redirect(url_for("flows.login"), code=303)
    form, resend_form = CodeForm(), ResendForm()
    destination = mask_destination(challenge.channel, challenge.destination)
    if not form.validate_on_submit():
        return render_template("flows/login_code.html", form=form, resend_form=resend_form, destination=destination), 400 if request.method == "POST" else 200
    if not code_accepted(lambda: one_time_code.verify(challenge, form.code.data), form.code):
        return render_template("flows/login_code.html", form=form, resend_form=resend_form, destination=destination), 400
    accounts.mark_channel_verified(account, challenge.channel)
    amr = ["pwd", "otp", "sms", "mfa"] if challenge.channel == "sms" else ["pwd", "otp", "mfa"]  # RFC 8176 §2 values only
    sso_session.start(account.id, amr=amr, acr=ACR_SUBSTANTIAL, remember=bool(pending.get("remember")))
    locale = account.locale  # before the commit expires the account
    db.session.commit()
    session.pop("login", None)
    if locale and "locale" not in session:
        session["locale"] = locale  # the language this patient chose before, on any browser
    return redirect(pending.get("next") or url_for("flows.services"), code=303)


@blueprint.post("/login/code/resend")
@limiter.limit(lambda: current_app.config["RATE_LIMIT_ONE_TIME_CODE"])
def login_code_resend() -> ResponseReturnValue:
    pending, account, challenge = _pending_code()
    if account is None or challenge is None or challenge.account_id != account.id or not ResendForm().validate_on_submit():
        return redirect(url_for("flows.login"), code=303)
    try:
        one_time_code.send(challenge)
        flash(_("Un nouveau code vous a été envoyé."), "info")
    except (one_time_code.ResendTooSoon, one_time_code.SendLimitReached, one_time_code.OneTimeCodeUsed) as refused:
        flash(code_refused_message(refused), "error")
    except messaging.MessageNotSent:
        flash(_("Le code n'a pas pu être envoyé. Veuillez réessayer dans un instant."), "error")
    db.session.commit()
    return redirect(url_for("flows.login_code"), code=303)
