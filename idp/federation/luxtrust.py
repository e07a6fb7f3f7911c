"""LuxTrust as an upstream: linking a product to an account, "Connexion" with it, and step-up.

Linking happens in step 4 of the activation wizard or in the account settings; login then needs
no password or code. A relying party whose ``acr_values`` ask more than the session has is sent
here for step-up: the patient authenticates again with a linked upstream that can raise the
level (``step_up``), which must name the same account and reach the level asked; otherwise the
relying party gets ``unmet_authentication_requirements``.
"""

import hashlib

from flask import flash, redirect, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from .. import account as accounts, activation, assurance, audit, federated_identity, sso_session
from ..extensions import db
from ..page_guards import safe_next
from . import blueprint, connectors, upstream as upstreams
from .upstream import Upstream, UpstreamIdentity
from .views import begin, error_page, get_upstream, log_in

STEP_UP_TRIED_KEY = "federation_step_up_tried"
ACTIVATION_SESSION_KEY = "activation"  # the wizard id, as idp.flows.activation keeps it


@upstreams.handles_arrivals(asserts_national_id=False)
def arrive(connector: Upstream, identity: UpstreamIdentity, context: dict) -> ResponseReturnValue:
    if context.get("purpose") == "link":
        return _finish_link(connector, identity, context)
    if context.get("purpose") == "step_up":
        return _finish_step_up(connector, identity, context)
    linked = federated_identity.find(connector.name, identity.subject)
    account = accounts.get(linked.account_id) if linked else None
    if account is None or not account.is_active:
        audit.record(audit.Event.FEDERATED_UNKNOWN_IDENTITY, upstream=connector.name)
        db.session.commit()
        return error_page(_("Aucun compte eSanté n'est associé à ce produit %(name)s. Connectez-vous avec votre matricule et votre "
                            "mot de passe, puis associez-le dans « Paramètres ».", name=connector.label), 404, connector)
    federated_identity.mark_used(linked, identity.acr)
    return log_in(account, identity, context.get("next"))


@blueprint.get("/federation/<upstream>/link")
def link(upstream: str) -> ResponseReturnValue:
    """Associate a product of ``upstream`` with the account: from the wizard's step 4 or the settings."""
    connector = get_upstream(upstream)
    if upstream == "myguichet":
        return redirect(url_for("federation.start", upstream=upstream), code=303)
    if request.args.get("source") == "activation":
        try:
            wizard = activation.get(session.get(ACTIVATION_SESSION_KEY))
        except activation.WizardExpired:
            wizard = None
        if wizard is None or wizard.completed_at is not None or wizard.step != activation.STEP_OTHER_MEANS:
            return redirect(url_for("flows.activation_start"), code=303)
        return begin(connector, "link", url_for("flows.activation_other_means"), account_id=wizard.account_id, wizard=wizard.id)
    current = sso_session.current()
    account = accounts.get(current.account_id) if current else None
    if account is None or not account.is_active:
        return redirect(url_for("flows.login", next=url_for("federation.link", upstream=upstream)), code=303)
    return begin(connector, "link", url_for("federation.identities"), account_id=account.id)


def _link_target_still_valid(context: dict) -> bool:
    """The wizard or the session that asked for the link is still this browser's, for the same account."""
    if context.get("wizard"):
        try:
            wizard = activation.get(session.get(ACTIVATION_SESSION_KEY))
        except activation.WizardExpired:
            return False
        return (wizard is not None and wizard.id == context["wizard"] and wizard.completed_at is None
                and wizard.account_id == context.get("account_id"))
    current = sso_session.current()
    return current is not None and current.account_id == context.get("account_id")


def _finish_link(connector: Upstream, identity: UpstreamIdentity, context: dict) -> ResponseReturnValue:
    if not _link_target_still_valid(context):
        return error_page(_("Cette demande d'association a expiré. Veuillez recommencer."), 400, connector)
    try:
        federated_identity.link(context["account_id"], connector.name, identity.subject, identity.acr)
    except federated_identity.IdentityLinkedElsewhere:
        audit.record(audit.Event.FEDERATED_RESPONSE_REJECTED, account_id=context["account_id"], upstream=connector.name,
                     reason="identity_linked_to_another_account")
        db.session.commit()
        return error_page(_("Ce produit %(name)s est déjà associé à un autre compte eSanté.", name=connector.label), 409, connector, helpdesk=True)
    db.session.commit()
    flash(_("Votre produit %(name)s est associé à votre compte eSanté.", name=connector.label), "info")
    return redirect(safe_next(context.get("next")), code=303)


def _request_marker(next_url: str) -> str:
    return hashlib.sha256(next_url.encode()).hexdigest()[:32]


def step_up_response(account_id: int, required_acr: str, next_url: str) -> ResponseReturnValue | None:
    """Where to send the patient to reach ``required_acr``; None when no linked means can (or one just failed)."""
    if session.get(STEP_UP_TRIED_KEY) == _request_marker(next_url):
        session.pop(STEP_UP_TRIED_KEY, None)
        return None
    for name, settings in connectors.configured().items():
        if settings.get("step_up") and federated_identity.of_account(account_id, name):
            return redirect(url_for("federation.step_up", upstream=name, acr=required_acr, next=next_url), code=303)
    audit.record(audit.Event.STEP_UP_REFUSED, account_id=account_id, acr=required_acr, reason="no_means")
    db.session.commit()
    return None


@blueprint.get("/federation/<upstream>/step-up")
def step_up(upstream: str) -> ResponseReturnValue:
    connector = get_upstream(upstream)
    current = sso_session.current()
    required = assurance.minimum_acr(request.args.get("acr"))
    next_url = safe_next(request.args.get("next"))
    if current is None:
        return redirect(url_for("flows.login", next=next_url), code=303)
    if not connector.step_up or required is None or not federated_identity.of_account(current.account_id, connector.name):
        session[STEP_UP_TRIED_KEY] = _request_marker(next_url)
        return redirect(next_url, code=303)
    return begin(connector, "step_up", next_url, requested_acr=required, account_id=current.account_id)


def _finish_step_up(connector: Upstream, identity: UpstreamIdentity, context: dict) -> ResponseReturnValue:
    current = sso_session.current()
    linked = federated_identity.find(connector.name, identity.subject)
    next_url = safe_next(context.get("next"))
    if current is None or linked is None or linked.account_id != current.account_id or current.account_id != context.get("account_id"):
        audit.record(audit.Event.STEP_UP_REFUSED, account_id=current.account_id if current else None, upstream=connector.name,
                     reason="other_identity")
        db.session.commit()
        return error_page(_("Ce produit %(name)s n'est pas associé au compte eSanté connecté.", name=connector.label), 403, connector)
    if assurance.acr_rank(identity.acr) < assurance.acr_rank(context.get("acr")):
        audit.record(audit.Event.STEP_UP_REFUSED, account_id=current.account_id, upstream=connector.name, reason="level_not_reached",
                     acr=identity.acr)
        db.session.commit()
        session[STEP_UP_TRIED_KEY] = _request_marker(next_url)
        return redirect(next_url, code=303)
    federated_identity.mark_used(linked, identity.acr)
    return log_in(accounts.get(current.account_id), identity, next_url)
