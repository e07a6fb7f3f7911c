""""Paramètres": the patient's linked identities (LuxTrust) and the MyGuichet consent, revocable at any time."""

from flask import abort, flash, g, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from .. import federated_identity, national_id_consent
from ..extensions import db
from ..page_guards import login_required
from . import blueprint, connectors
from .forms import ActionForm


@blueprint.get("/account/settings")
@login_required
def identities() -> ResponseReturnValue:
    linked = {identity.upstream: identity for identity in federated_identity.of_account(g.account.id)}
    others = {name: settings for name, settings in connectors.configured().items() if name != national_id_consent.UPSTREAM}
    return render_template("federation/identities.html", account=g.account, linked=linked, others=others,
                           consent=national_id_consent.current(g.account.id), form=ActionForm())


@blueprint.post("/account/settings/<upstream>/unlink")
@login_required
def unlink(upstream: str) -> ResponseReturnValue:
    if not ActionForm().validate_on_submit() or upstream == national_id_consent.UPSTREAM:
        abort(400)
    if federated_identity.unlink_upstream(g.account.id, upstream):
        flash(_("L'association a été supprimée. Vous pouvez toujours vous connecter avec votre matricule et votre mot de passe."), "info")
    db.session.commit()
    return redirect(url_for("federation.identities"), code=303)


@blueprint.post("/account/settings/myguichet-consent/revoke")
@login_required
def revoke_consent() -> ResponseReturnValue:
    if not ActionForm().validate_on_submit():
        abort(400)
    if national_id_consent.revoke(g.account.id):
        flash(_("Votre consentement a été révoqué : la connexion via MyGuichet.lu n'est plus possible. "
                "Vous pouvez toujours vous connecter avec votre matricule et votre mot de passe."), "info")
    db.session.commit()
    return redirect(url_for("federation.identities"), code=303)
