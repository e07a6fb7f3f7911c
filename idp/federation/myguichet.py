""""Activation via MyGuichet" and the login through MyGuichet (guide, pages 4-5).

The citizen arrives authenticated from MyGuichet.lu. Known and consenting: logged in. Otherwise
their national identifier (a SAML attribute) is looked up in the registry: unknown, they get a
clear page and the helpdesk route; known, they consent that MyGuichet.lu shares the identifier
("Je consens..."), and a pending account then accepts the CGU and is activated without a letter,
its e-mail and phone taken from MyGuichet's attributes. An account already active is linked and
logged in after the consent. Nothing is written before the last "Valider" of the path taken.
"""

import dataclasses

from flask import redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import get_locale, gettext as _

from .. import account as accounts, audit, cgu_acceptance, federated_identity, matricule, national_id_consent, sso_session
from ..extensions import db
from ..page_guards import safe_next
from . import blueprint
from .forms import MyGuichetCguForm, NationalIdConsentForm
from .upstream import Upstream, UpstreamIdentity, handles_arrivals
from .views import error_page, log_in

UPSTREAM = national_id_consent.UPSTREAM
ARRIVAL_KEY = "myguichet_arrival"


class AccountNotPending(Exception):
    pass


@handles_arrivals(asserts_national_id=True)
def arrive(connector: Upstream, identity: UpstreamIdentity, context: dict) -> ResponseReturnValue:
    linked = federated_identity.find(UPSTREAM, identity.subject)
    if linked is not None:
        account = accounts.get(linked.account_id)
        if account is not None and account.is_active and national_id_consent.current(account.id):
            federated_identity.mark_used(linked, identity.acr)
            return log_in(account, identity, context.get("next"))
    national_id = identity.national_id or ""
    account = accounts.find_by_matricule(national_id) if matricule.is_valid(national_id) else None
    if account is None or account.status == accounts.AccountStatus.DISABLED.value:
        audit.record(audit.Event.FEDERATED_UNKNOWN_IDENTITY, upstream=UPSTREAM,
                     matricule=matricule.mask(national_id) if matricule.is_valid(national_id) else None)
        db.session.commit()
        return render_template("federation/unknown.html", upstream=connector,
                               request_url=url_for("flows.activation_request", matricule=national_id or None)), 404
    if linked is not None and linked.account_id != account.id:
        audit.record(audit.Event.FEDERATED_RESPONSE_REJECTED, upstream=UPSTREAM, reason="identity_linked_to_another_account")
        db.session.commit()
        return error_page(_("Votre identité MyGuichet.lu est déjà associée à un autre compte eSanté. Contactez le helpdesk."), 409,
                          connector, helpdesk=True)
    token = federated_identity.keep_arrival(UPSTREAM, {"identity": dataclasses.asdict(identity), "account_id": account.id,
                                                       "next": context.get("next"), "consented": False})
    db.session.commit()
    session[ARRIVAL_KEY] = token
    return redirect(url_for("federation.myguichet_consent"), code=303)


def _arrival() -> tuple[federated_identity.PendingArrival | None, accounts.Account | None]:
    arrival = federated_identity.peek_arrival(session.get(ARRIVAL_KEY))
    if arrival is None or arrival.upstream != UPSTREAM:
        return None, None
    return arrival, accounts.get(arrival.details["account_id"])


def _expired() -> ResponseReturnValue:
    session.pop(ARRIVAL_KEY, None)
    return error_page(_("Cette connexion a expiré. Veuillez recommencer depuis MyGuichet.lu."), 400)


@blueprint.route("/federation/myguichet/consent", methods=["GET", "POST"])
def myguichet_consent() -> ResponseReturnValue:
    arrival, account = _arrival()
    if arrival is None or account is None:
        return _expired()
    form = NationalIdConsentForm()
    if not form.validate_on_submit():
        return render_template("federation/consent.html", form=form, account=account), 400 if request.method == "POST" else 200
    if not account.is_active:
        arrival.details = {**arrival.details, "consented": True}
        db.session.commit()
        return redirect(url_for("federation.myguichet_cgu"), code=303)
    details = dict(arrival.details)
    if federated_identity.take_arrival(session.pop(ARRIVAL_KEY, None)) is None:
        return _expired()
    identity = UpstreamIdentity(**details["identity"])
    national_id_consent.give(account.id)
    try:
        linked = federated_identity.link(account.id, UPSTREAM, identity.subject, identity.acr)
    except federated_identity.IdentityLinkedElsewhere:
        db.session.rollback()
        return error_page(_("Votre identité MyGuichet.lu est déjà associée à un autre compte eSanté. Contactez le helpdesk."), 409, helpdesk=True)
    federated_identity.mark_used(linked, identity.acr)
    return log_in(account, identity, details.get("next"))


@blueprint.route("/federation/myguichet/cgu", methods=["GET", "POST"])
def myguichet_cgu() -> ResponseReturnValue:
    arrival, account = _arrival()
    if arrival is None or account is None:
        return _expired()
    if not arrival.details.get("consented"):
        return redirect(url_for("federation.myguichet_consent"), code=303)
    form = MyGuichetCguForm()
    language = str(get_locale())
    if not form.validate_on_submit():
        return render_template("federation/cgu.html", form=form, cgu_text=cgu_acceptance.text(language),
                               cgu_version=cgu_acceptance.current_version()), 400 if request.method == "POST" else 200
    details = dict(arrival.details)
    if federated_identity.take_arrival(session.pop(ARRIVAL_KEY, None)) is None:
        return _expired()
    identity = UpstreamIdentity(**details["identity"])
    try:
        activate_without_letter(account, identity)
    except AccountNotPending:
        db.session.rollback()
        return error_page(_("Votre compte eSanté est déjà activé. Connectez-vous."), 409)
    except federated_identity.IdentityLinkedElsewhere:
        db.session.rollback()
        return error_page(_("Votre identité MyGuichet.lu est déjà associée à un autre compte eSanté. Contactez le helpdesk."), 409, helpdesk=True)
    log_in(account, identity, details.get("next"))
    session["myguichet_next"] = safe_next(details.get("next"))
    return redirect(url_for("federation.myguichet_activated"), code=303)


def activate_without_letter(account: accounts.Account, identity: UpstreamIdentity) -> None:
    """Activate a pending account from MyGuichet: CGU, consent, link and profile in one transaction.

    The account row is read again under a row lock, so two arrivals racing (two tabs) cannot both
    activate it; the second gets :class:`AccountNotPending`.
    """
    db.session.refresh(account, with_for_update=True)
    if account.status != accounts.AccountStatus.PENDING.value:
        raise AccountNotPending()
    accounts.activate(account)
    if identity.email:
        account.email, account.email_verified = identity.email, False
    if identity.phone:
        account.mobile, account.mobile_verified = accounts.normalize_phone(identity.phone), False
    account.preferred_channel = accounts.Channel.SMS.value if account.mobile else (accounts.Channel.EMAIL.value if account.email else None)
    version = cgu_acceptance.current_version()
    cgu_acceptance.record(account.id, version, "myguichet")
    national_id_consent.give(account.id)
    linked = federated_identity.link(account.id, UPSTREAM, identity.subject, identity.acr)
    federated_identity.mark_used(linked, identity.acr)
    audit.record(audit.Event.ACCOUNT_ACTIVATED, account_id=account.id, via="myguichet", cgu_version=version)


@blueprint.get("/federation/myguichet/activated")
def myguichet_activated() -> ResponseReturnValue:
    current = sso_session.current()
    if current is None:
        return redirect(url_for("flows.login"), code=303)
    return render_template("federation/activated.html", continue_to=session.get("myguichet_next") or url_for("flows.services"))
